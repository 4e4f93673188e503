//! A tonic client and server, both layered: one trace from the caller's span to the server's.

use std::time::Duration;

use http::uri::PathAndQuery;
use stormproof_telemetry::{
    grpc::{GrpcClientLayer, GrpcServerLayer},
    testing::OtlpReceiver,
};
use testkit::sample;
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};
use tower::ServiceBuilder;
use tracing::Instrument as _;

const HEALTH: &str = "grpc.health.v1.Health";

/// A health server behind `layer` on 127.0.0.1:0, and a channel to it.
async fn health_server(layer: GrpcServerLayer) -> tonic::transport::Channel {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (reporter, health) = tonic_health::server::health_reporter();
    let server = tonic::transport::Server::builder()
        .layer(layer)
        .add_service(health)
        .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener));
    tokio::spawn(async move {
        let _reporter = reporter; // serves as long as the server does
        server.await
    });
    tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .expect("uri")
        .connect()
        .await
        .expect("connect")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_and_server_spans_form_one_trace_and_are_measured() {
    let receiver = OtlpReceiver::start().await.expect("receiver");
    let guard = super::init(receiver.endpoint());

    let channel = health_server(GrpcServerLayer::new().trace_health_checks(true)).await;
    let layered = ServiceBuilder::new()
        .layer(GrpcClientLayer::new())
        .service(channel);

    let mut client = HealthClient::new(layered.clone());
    async {
        client
            .check(HealthCheckRequest::default())
            .await
            .expect("health answers");
    }
    .instrument(tracing::info_span!("checkout"))
    .await;

    // A method the server does not have: answered UNIMPLEMENTED, labelled _OTHER.
    let mut grpc = tonic::client::Grpc::new(layered);
    grpc.ready().await.expect("ready");
    let unimplemented = grpc
        .unary::<HealthCheckRequest, HealthCheckRequest, _>(
            tonic::Request::new(HealthCheckRequest::default()),
            PathAndQuery::from_static("/made.Up/Nope"),
            tonic_prost::ProstCodec::default(),
        )
        .await
        .expect_err("no such method");
    assert_eq!(unimplemented.code(), tonic::Code::Unimplemented);

    let find = |kind: i32| {
        receiver.wait_for(Duration::from_secs(10), move |span| {
            span.kind == kind && span.name == format!("{HEALTH}/Check")
        })
    };
    let (client_span, server_span) = (
        find(3).await.expect("client span"),
        find(2).await.expect("server span"),
    );
    let checkout = receiver
        .wait_for(Duration::from_secs(10), |span| span.name == "checkout")
        .await
        .expect("caller span");
    assert_eq!(client_span.trace_id, checkout.trace_id);
    assert_eq!(
        server_span.trace_id, checkout.trace_id,
        "one trace across the hop"
    );
    assert_eq!(client_span.parent_span_id, checkout.span_id);
    assert_eq!(
        server_span.parent_span_id, client_span.span_id,
        "traceparent crossed gRPC"
    );
    for span in [&client_span, &server_span] {
        assert_eq!(span.attributes["rpc.system"], "grpc");
        assert_eq!(span.attributes["rpc.service"], HEALTH);
        assert_eq!(span.attributes["rpc.method"], "Check");
        assert_eq!(span.attributes["rpc.grpc.status_code"], 0);
        assert_eq!(span.service_name.as_deref(), Some("layers-test"));
    }
    let failed = receiver
        .wait_for(Duration::from_secs(10), |span| {
            span.kind == 3 && span.name == "made.Up/Nope"
        })
        .await
        .expect("the failed attempt's span");
    assert_eq!(failed.attributes["rpc.grpc.status_code"], 12);
    assert_eq!(
        failed.status_code, 2,
        "a client span of a failed call is an error"
    );

    let metrics = stormproof_telemetry::metrics::render(&guard.prometheus());
    for side in ["server", "client"] {
        let name = format!("rpc_{side}_call_duration_seconds_count");
        let count = |service, method, code| {
            sample(
                &metrics,
                &name,
                &[
                    ("rpc_service", service),
                    ("rpc_method", method),
                    ("rpc_grpc_status_code", code),
                ],
            )
        };
        assert_eq!(count(HEALTH, "Check", "0"), Some(1.0), "{side}");
        assert_eq!(
            count("_OTHER", "_OTHER", "12"),
            Some(1.0),
            "{side}: bounded labels"
        );
    }
    assert_eq!(
        sample(&metrics, "build_info", &[("version", "1.2.3")]),
        Some(1.0)
    );
}

/// Health checks are measured, but get no span unless asked: probes would flood the traces.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_checks_are_measured_but_not_traced_by_default() {
    let receiver = OtlpReceiver::start().await.expect("receiver");
    let guard = super::init(receiver.endpoint());
    let channel = health_server(GrpcServerLayer::new()).await;
    let mut client = HealthClient::new(channel);
    client
        .check(HealthCheckRequest::default())
        .await
        .expect("health answers");
    async {}.instrument(tracing::info_span!("marker")).await;

    // The marker span is exported after the health call: if the health call had a span, it
    // would have been exported by then too.
    receiver
        .wait_for(Duration::from_secs(10), |span| span.name == "marker")
        .await
        .expect("the marker span");
    assert!(
        receiver
            .spans()
            .iter()
            .all(|span| !span.name.starts_with(HEALTH)),
        "no health span: {:?}",
        receiver.spans()
    );
    let metrics = stormproof_telemetry::metrics::render(&guard.prometheus());
    assert_eq!(
        sample(
            &metrics,
            "rpc_server_call_duration_seconds_count",
            &[
                ("rpc_service", HEALTH),
                ("rpc_method", "Check"),
                ("rpc_grpc_status_code", "0")
            ]
        ),
        Some(1.0),
        "but measured"
    );
}
