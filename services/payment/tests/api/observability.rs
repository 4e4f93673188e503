//! What operators see: metrics after traffic, the server span with the caller as parent, and
//! log lines that carry the trace id.

use std::time::Duration;

use contracts::payment::v1 as pb;
use opentelemetry::trace::{SpanContext, SpanId, TraceFlags, TraceId, TraceState};
use serde_json::Value;
use stormproof_payment::faults::FaultSettings;
use telemetry::testing::OtlpReceiver;
use tonic::Code;

use crate::helpers::{charge, init_telemetry, sample, spawn_app};

const SERVICE: &str = "stormproof.payment.v1.PaymentService";

#[tokio::test]
async fn metrics_show_payments_faults_settings_and_rpc_latency() {
    let app = spawn_app().await;
    let mut client = app.client().await;
    client
        .process_payment(charge("ord-m-1", 100))
        .await
        .expect("charged");
    client
        .process_payment(charge("ord-m-1", 100))
        .await
        .expect("replayed");
    client
        .process_payment(charge("", 100))
        .await
        .expect_err("invalid");
    app.set_faults(FaultSettings {
        failure_rate: 1.0,
        latency_ms: 5,
        ..FaultSettings::default()
    });
    client
        .process_payment(charge("ord-m-2", 100))
        .await
        .expect_err("injected failure");

    let metrics = app.metrics().await;
    let count = |name, labels: &[(&str, &str)]| sample(&metrics, name, labels);
    assert_eq!(
        count("payments_total", &[("outcome", "captured")]),
        Some(1.0)
    );
    assert_eq!(
        count("payments_total", &[("outcome", "replayed")]),
        Some(1.0)
    );
    assert_eq!(
        count("payments_total", &[("outcome", "invalid")]),
        Some(1.0)
    );
    assert_eq!(count("payments_total", &[("outcome", "failed")]), Some(1.0));
    assert_eq!(
        count("payments_total", &[("outcome", "declined")]),
        Some(0.0)
    );
    assert_eq!(
        count("payment_fault_injected_total", &[("kind", "failure")]),
        Some(1.0)
    );
    assert_eq!(
        count("payment_fault_injected_total", &[("kind", "latency")]),
        Some(1.0)
    );
    assert_eq!(
        count("payment_fault_setting", &[("knob", "failure_rate")]),
        Some(1.0)
    );
    assert_eq!(
        count("payment_fault_setting", &[("knob", "latency_ms")]),
        Some(5.0)
    );
    assert_eq!(
        count("payment_fault_setting", &[("knob", "outage")]),
        Some(0.0)
    );
    let rpc = |code| {
        count(
            "rpc_server_call_duration_seconds_count",
            &[
                ("rpc_service", SERVICE),
                ("rpc_method", "ProcessPayment"),
                ("rpc_grpc_status_code", code),
            ],
        )
    };
    assert_eq!(rpc("0"), Some(2.0), "two answered");
    assert_eq!(rpc("3"), Some(1.0), "one INVALID_ARGUMENT");
    assert_eq!(rpc("14"), Some(1.0), "one UNAVAILABLE");
    assert!(
        metrics.contains("rpc_server_call_duration_seconds_bucket{")
            && metrics.contains("le=\"0.001\"")
            && metrics.contains("le=\"10\""),
        "RPC buckets from 1 ms to 10 s"
    );
    assert_eq!(
        count("build_info", &[("version", env!("CARGO_PKG_VERSION"))]),
        Some(1.0)
    );
    assert!(count("process_resident_memory_bytes", &[]).is_some_and(|bytes| bytes > 0.0));
    app.stop().await;
}

#[tokio::test]
async fn health_and_readiness_answer() {
    let app = spawn_app().await;
    for path in ["/healthz", "/readyz"] {
        let response = app
            .http
            .get(app.ops_url(path))
            .send()
            .await
            .expect("answered");
        assert_eq!(response.status(), 200, "{path}");
    }
    assert_eq!(
        testkit::grpc::health(app.grpc_addr, SERVICE).await,
        tonic_health::pb::health_check_response::ServingStatus::Serving
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_span_continues_the_callers_trace_and_logs_carry_it() {
    let receiver = OtlpReceiver::start().await.expect("receiver");
    init_telemetry(Some(receiver.endpoint()));
    let app = spawn_app().await;
    let mut client = app.client().await;

    let caller = SpanContext::new(
        TraceId::from_hex("4bf92f3577b34da6a3ce929d0e0e4736").expect("hex"),
        SpanId::from_hex("00f067aa0ba902b7").expect("hex"),
        TraceFlags::SAMPLED,
        true,
        TraceState::default(),
    );
    let mut request = tonic::Request::new(charge("ord-trace-1", 100));
    request.metadata_mut().insert(
        "traceparent",
        format!("00-{}-{}-01", caller.trace_id(), caller.span_id())
            .parse()
            .expect("ascii"),
    );
    client.process_payment(request).await.expect("charged");
    let status = client
        .get_payment(pb::GetPaymentRequest {
            order_id: String::new(),
        })
        .await
        .expect_err("invalid");
    assert_eq!(status.code(), Code::InvalidArgument);

    let span = receiver
        .wait_for(Duration::from_secs(10), |span| {
            span.name == format!("{SERVICE}/ProcessPayment")
        })
        .await
        .expect("the server span is exported");
    assert_eq!(span.kind, 2, "SPAN_KIND_SERVER");
    assert_eq!(span.trace_id, caller.trace_id().to_string(), "same trace");
    assert_eq!(
        span.parent_span_id,
        caller.span_id().to_string(),
        "caller is parent"
    );
    assert_eq!(span.service_name.as_deref(), Some("payment"));
    assert_eq!(span.attributes["rpc.system"], "grpc");
    assert_eq!(span.attributes["rpc.service"], SERVICE);
    assert_eq!(span.attributes["rpc.method"], "ProcessPayment");
    assert_eq!(span.attributes["rpc.grpc.status_code"], 0);

    let failed = receiver
        .wait_for(Duration::from_secs(10), |span| {
            span.name.ends_with("/GetPayment")
        })
        .await
        .expect("the failed call's span is exported");
    assert_eq!(failed.attributes["rpc.grpc.status_code"], 3);
    assert_eq!(failed.parent_span_id, "", "no traceparent: a new trace");

    let line: Value = telemetry::testing::logged()
        .into_iter()
        .find(|line| line["message"] == "payment.processed")
        .expect("a JSON line for the payment");
    assert_eq!(line["trace_id"], caller.trace_id().to_string());
    assert_eq!(line["span_id"].as_str().map(str::len), Some(16));
    assert_eq!(line["spans"][1]["order_id"], "ord-trace-1");
    app.stop().await;
}

/// What `grpcurl -plaintext 127.0.0.1:50052 list` asks: the services, through reflection.
#[tokio::test]
async fn reflection_lists_every_service() {
    use tonic_reflection::pb::v1::{
        ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
        server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
    };

    let app = spawn_app().await;
    let channel = tonic::transport::Channel::from_shared(format!("http://{}", app.grpc_addr))
        .expect("uri")
        .connect()
        .await
        .expect("connect");
    let mut client = ServerReflectionClient::new(channel);
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut responses = client
        .server_reflection_info(tokio_stream::once(request))
        .await
        .expect("reflection answers")
        .into_inner();
    let response = responses
        .message()
        .await
        .expect("a response")
        .expect("one message");
    let Some(MessageResponse::ListServicesResponse(list)) = response.message_response else {
        panic!("a service list, got {response:?}");
    };
    let mut names: Vec<_> = list
        .service
        .into_iter()
        .map(|service| service.name)
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "grpc.health.v1.Health",
            "grpc.reflection.v1.ServerReflection",
            SERVICE,
        ]
    );

    // And the payment service's file is there to describe its methods.
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::FileContainingSymbol(SERVICE.to_owned())),
    };
    let response = client
        .server_reflection_info(tokio_stream::once(request))
        .await
        .expect("reflection answers")
        .into_inner()
        .message()
        .await
        .expect("a response")
        .expect("one message");
    assert!(
        matches!(
            response.message_response,
            Some(MessageResponse::FileDescriptorResponse(ref files)) if !files.file_descriptor_proto.is_empty()
        ),
        "{response:?}"
    );
    app.stop().await;
}
