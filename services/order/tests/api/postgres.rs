//! The store on PostgreSQL, and two order replicas sharing one database.
//!
//! These need a PostgreSQL server: they read the standard `PG*` variables and make a fresh
//! database per test. They are ignored by a plain `cargo nextest run`; CI runs them under
//! Debian's `pg_virtualenv`, which starts a throwaway cluster:
//! `pg_virtualenv cargo nextest run --workspace --run-ignored only`.

use std::time::Duration;

use futures::future::join_all;
use serde_json::Value;
use stormproof_payment::faults::{FaultSettings, Preset};

use testkit::{Process, ServiceArgs, fresh_database};

use crate::helpers::{sample, spawn_order, spawn_payment};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL: pg_virtualenv cargo nextest run --run-ignored only"]
async fn orders_are_stored_read_and_deduplicated_on_postgres() {
    let url = fresh_database().await;
    let payment = spawn_payment().await;
    let order = spawn_order(&payment.url(), &["--database-url", &url]).await;
    assert_eq!(
        order.store.backend(),
        stormproof_order::store::Backend::Postgres
    );

    let (status, placed) = order.place("cust-pg", &[("CAP-RED", 2)], None).await;
    assert_eq!(status, 201);
    let id = placed["order_id"].as_str().expect("id");
    let read: Value = order
        .http
        .get(order.url(&format!("/v1/orders/{id}")))
        .send()
        .await
        .expect("answered")
        .json()
        .await
        .expect("JSON");
    assert_eq!(read, placed);

    let answers =
        join_all((0..20).map(|_| order.place("cust-pg", &[("MUG-LOGO", 1)], Some("pg-key-1"))))
            .await;
    let first = answers[0].1["order_id"].clone();
    assert!(
        answers
            .iter()
            .all(|(status, body)| *status == 201 && body["order_id"] == first)
    );
    assert_eq!(order.store.count().await.expect("count"), 2);
    assert_eq!(
        payment.ledger.count().await.expect("count"),
        2,
        "one charge each"
    );

    let page: Value = order
        .http
        .get(order.url("/v1/orders"))
        .query(&[("customer_id", "cust-pg")])
        .send()
        .await
        .expect("answered")
        .json()
        .await
        .expect("JSON");
    assert_eq!(page["orders"].as_array().map(Vec::len), Some(2));
    order.stop().await;
    payment.stop().await;
}

/// Two order processes on one database, payment down while orders pile up, then healed:
/// both reconcilers race for the backlog, and no order is sent to payment twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL: pg_virtualenv cargo nextest run --run-ignored only"]
async fn two_replicas_racing_reconcilers_never_charge_an_order_twice() {
    let url = fresh_database().await;
    let payment = spawn_payment().await;
    payment.set_faults(Preset::Outage.settings());
    let payment_url = payment.url();
    let replicas = [
        replica(&url, &payment_url).await,
        replica(&url, &payment_url).await,
    ];

    let http = reqwest::Client::new();
    let mut ids = Vec::new();
    for n in 0..80_u32 {
        let replica = &replicas[n as usize % 2];
        let response = http
            .post(format!("http://{}/v1/orders", replica.addr("http_addr")))
            .json(&serde_json::json!({ "customer_id": format!("cust-{}", n % 7), "lines": [{ "sku": "SOCKS-3PK", "quantity": 1 + n % 3 }] }))
            .send()
            .await
            .expect("answered");
        assert_eq!(response.status(), 202);
        let body: Value = response.json().await.expect("JSON");
        ids.push(body["order_id"].as_str().expect("id").to_owned());
    }
    payment.set_faults(FaultSettings::default());

    let store = stormproof_order::store::Store::connect(&url.parse().expect("a database URL"))
        .await
        .expect("store");
    let drained = tokio::time::timeout(Duration::from_secs(60), async {
        while store.backlog().await.expect("backlog").0 > 0 {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
    assert!(drained.is_ok(), "the backlog drains");
    assert_eq!(
        payment.ledger.count().await.expect("count"),
        80,
        "every order charged"
    );
    for id in &ids {
        let stored = store.get(id).await.expect("read").expect("stored");
        assert_eq!(stored.status.as_str(), "CONFIRMED");
    }
    let payment_metrics =
        telemetry::metrics::render(&crate::helpers::init_telemetry(None).prometheus());
    assert_eq!(
        sample(
            &payment_metrics,
            "payments_total",
            &[("outcome", "replayed")]
        ),
        Some(0.0),
        "no order reached payment twice: the claims never overlapped"
    );
    let mut settled = 0.0;
    for replica in &replicas {
        let url = format!("http://{}/metrics", replica.addr("ops_addr"));
        let metrics = testkit::metrics::scrape(&http, &url).await;
        let confirmed = sample(
            &metrics,
            "order_reconcile_total",
            &[("outcome", "confirmed")],
        )
        .unwrap_or_default();
        assert!(confirmed > 0.0, "both replicas took part");
        settled += confirmed;
    }
    assert_eq!(settled, 80.0, "each order settled once, by one replica");
    store.close().await;
    payment.stop().await;
}

/// An order process on `database`, calling `payment`. Each reconciler pass claims a second's
/// worth of charges (20), so neither replica can take the whole backlog at once: they race.
async fn replica(database: &str, payment: &str) -> Process {
    let args = ServiceArgs::order(payment, database).extend(&[
        "--breaker-wait",
        "300ms",
        "--reconcile-interval",
        "100ms",
        "--reconcile-max-rate",
        "20",
    ]);
    Process::start(env!("CARGO_BIN_EXE_order"), &args.as_strs(), &[])
        .await
        .expect("an order replica starts")
}

/// Eight claimers at once on one backlog: every order is claimed by exactly one of them.
async fn claims_are_exclusive(url: &str) {
    use stormproof_order::{
        catalogue::Catalogue,
        domain::{LineInput, OrderStatus, PlaceOrderInput, validate},
        store::{Inserted, Store},
    };

    let store = Store::connect(&url.parse().expect("a database URL"))
        .await
        .expect("store");
    let catalogue = Catalogue::shipped();
    for n in 0..400 {
        let input = PlaceOrderInput {
            customer_id: format!("cust-{}", n % 9),
            lines: vec![LineInput {
                sku: "CAP-RED".to_owned(),
                quantity: 1,
            }],
            idempotency_key: None,
        };
        let valid = validate(&catalogue, &input).expect("valid");
        let id = format!("ord_{n:032x}");
        let Inserted::New(order) = store
            .insert_pending(&id, &valid, 1_000)
            .await
            .expect("insert")
        else {
            panic!("{id} is new");
        };
        store
            .transition(order, OrderStatus::PaymentPending, 1_000)
            .await
            .expect("defer");
    }
    let claimers = (0..8).map(|claimer| {
        let store = store.clone();
        async move {
            let owner = format!("claimer-{claimer}");
            let mut claimed = Vec::new();
            loop {
                let batch = store
                    .claim(
                        &owner,
                        7,
                        Duration::from_secs(60),
                        Duration::from_secs(60),
                        2_000,
                    )
                    .await
                    .expect("claim");
                if batch.is_empty() {
                    return claimed;
                }
                claimed.extend(batch.into_iter().map(|order| order.order_id));
            }
        }
    });
    let claimed: Vec<String> = join_all(claimers).await.into_iter().flatten().collect();
    let unique: std::collections::BTreeSet<_> = claimed.iter().collect();
    assert_eq!(unique.len(), 400, "every order claimed");
    assert_eq!(claimed.len(), 400, "and none twice");
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL: pg_virtualenv cargo nextest run --run-ignored only"]
async fn concurrent_claims_are_exclusive_on_postgres() {
    claims_are_exclusive(&fresh_database().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_claims_are_exclusive_on_sqlite() {
    let dir = tempfile::tempdir().expect("temp dir");
    claims_are_exclusive(&format!(
        "sqlite://{}",
        dir.path().join("order.db").display()
    ))
    .await;
}
