//! `build` checks every setting before it opens the store or binds a port.

use server::Service as _;
use stormproof_order::{Application, StartupError};

use crate::helpers::init_telemetry;

/// `build` with every listener on one port that another socket holds, and `flags`; and
/// whether the store's file exists afterwards.
async fn build_on_taken_port(flags: &[&str]) -> (Result<Application, StartupError>, bool) {
    let guard = init_telemetry(None);
    let held = std::net::TcpListener::bind("127.0.0.1:0").expect("a port");
    let addr = held.local_addr().expect("its address").to_string();
    let dir = tempfile::tempdir().expect("temp dir");
    let database = dir.path().join("order.db");
    let database_url = format!("sqlite://{}", database.display());
    let mut args = vec![
        "order",
        "--grpc-addr",
        &addr,
        "--http-addr",
        &addr,
        "--ops-addr",
        &addr,
        "--database-url",
        &database_url,
    ];
    args.extend_from_slice(flags);
    let config = <stormproof_order::Config as clap::Parser>::try_parse_from(args).expect("flags");
    let built = Application::build(config, guard.prometheus()).await;
    (built, database.exists())
}

#[tokio::test]
async fn a_bad_load_shedding_setting_fails_build_before_any_port_is_bound() {
    // A limit whose floor is above its ceiling: refused as load shedding, although every
    // port is taken, so nothing was bound first; and the store was never opened.
    let (built, opened) = build_on_taken_port(&["--limit-min", "10", "--limit-max", "5"]).await;
    match built {
        Err(StartupError::LoadShedding(error)) => assert_eq!(error.field(), "max_limit"),
        other => panic!("expected a load-shedding error, got {other:?}"),
    }
    assert!(
        !opened,
        "the store is opened only once the settings are good"
    );

    // With good settings the same ports fail the bind: the check above could have seen it.
    let (built, opened) = build_on_taken_port(&[]).await;
    assert!(
        matches!(
            built,
            Err(StartupError::Skeleton(server::SkeletonError::Bind { .. }))
        ),
        "{built:?}"
    );
    assert!(opened, "the store opens before the listeners bind");
}
