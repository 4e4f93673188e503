//! An in-process OTLP/gRPC trace receiver, for tests that assert on exported spans.
//!
//! It is the real protocol (opentelemetry-proto's generated tonic server) on 127.0.0.1, so a
//! test proves what a collector would receive: names, kinds, attributes, parent ids.

use std::{
    collections::BTreeMap,
    io::Write,
    net::SocketAddr,
    sync::{Arc, Mutex, OnceLock},
    time::Duration,
};

use opentelemetry_proto::tonic::{
    collector::trace::v1::{
        ExportTraceServiceRequest, ExportTraceServiceResponse,
        trace_service_server::{TraceService, TraceServiceServer},
    },
    common::v1::{AnyValue, any_value},
};
use serde_json::Value;
use tokio::sync::Notify;

/// Telemetry for a test process, installed once: spans go to `otlp_endpoint` when given (and
/// nowhere otherwise), log lines are kept for [`logged`] and echoed when `TEST_LOG` is set. A
/// process has one recorder and one subscriber, so the first call's settings stay; nextest
/// runs each test in its own process.
pub fn init(
    service: crate::ServiceInfo,
    otlp_endpoint: Option<String>,
) -> &'static crate::TelemetryGuard {
    static GUARD: OnceLock<crate::TelemetryGuard> = OnceLock::new();
    GUARD.get_or_init(|| {
        let args = crate::TelemetryArgs {
            otel_sdk_disabled: otlp_endpoint.is_none(),
            otel_exporter_otlp_endpoint: otlp_endpoint.unwrap_or_default(),
            ..crate::TelemetryArgs::default()
        };
        crate::init_with_writer(&args, service, || LogSink)
            .expect("telemetry installs once per test process")
    })
}

static LOGS: Mutex<Vec<u8>> = Mutex::new(Vec::new());

/// Every JSON log line written so far through [`init`] or [`LogSink`].
pub fn logged() -> Vec<serde_json::Value> {
    let bytes = LOGS.lock().map(|logs| logs.clone()).unwrap_or_default();
    String::from_utf8_lossy(&bytes)
        .lines()
        .filter_map(|line| serde_json::from_str(line).ok())
        .collect()
}

/// A log sink that keeps what it is given for [`logged`] (and echoes it when `TEST_LOG` is
/// set), for tests that call [`init_with_writer`](crate::init_with_writer) themselves.
#[derive(Debug, Clone, Copy)]
pub struct LogSink;

impl Write for LogSink {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        if std::env::var_os("TEST_LOG").is_some() {
            std::io::stdout().write_all(bytes)?;
        }
        if let Ok(mut logs) = LOGS.lock() {
            logs.extend_from_slice(bytes);
        }
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A span as the receiver got it, with ids in lower-case hex.
#[derive(Debug, Clone)]
pub struct ReceivedSpan {
    /// The span's name.
    pub name: String,
    /// OTLP `SpanKind`: 2 server, 3 client.
    pub kind: i32,
    /// 32 hex digits.
    pub trace_id: String,
    /// 16 hex digits.
    pub span_id: String,
    /// 16 hex digits, or empty for a root span.
    pub parent_span_id: String,
    /// The `service.name` resource attribute of the exporting process.
    pub service_name: Option<String>,
    /// Attributes by key; values as JSON scalars.
    pub attributes: BTreeMap<String, Value>,
    /// Event names, in order.
    pub events: Vec<String>,
    /// OTLP status code: 0 unset, 1 ok, 2 error.
    pub status_code: i32,
}

/// The receiver; it stops when dropped.
#[derive(Debug)]
pub struct OtlpReceiver {
    addr: SocketAddr,
    state: Arc<Received>,
    server: tokio::task::JoinHandle<()>,
}

#[derive(Debug, Default)]
struct Received {
    spans: Mutex<Vec<ReceivedSpan>>,
    arrived: Notify,
}

impl OtlpReceiver {
    /// Starts a receiver on 127.0.0.1 and a free port.
    pub async fn start() -> std::io::Result<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(Received::default());
        let service = TraceServiceServer::new(Collector(state.clone()));
        let server = tokio::spawn(async move {
            let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
            let _ = tonic::transport::Server::builder()
                .add_service(service)
                .serve_with_incoming(incoming)
                .await;
        });
        Ok(Self {
            addr,
            state,
            server,
        })
    }

    /// The URL to give `OTEL_EXPORTER_OTLP_ENDPOINT`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every span received so far.
    pub fn spans(&self) -> Vec<ReceivedSpan> {
        self.state
            .spans
            .lock()
            .map(|spans| spans.clone())
            .unwrap_or_default()
    }

    /// Waits up to `timeout` for a span that satisfies `matches`.
    pub async fn wait_for(
        &self,
        timeout: Duration,
        matches: impl Fn(&ReceivedSpan) -> bool,
    ) -> Option<ReceivedSpan> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let arrived = self.state.arrived.notified();
            if let Some(span) = self.spans().into_iter().find(|span| matches(span)) {
                return Some(span);
            }
            if tokio::time::timeout_at(deadline, arrived).await.is_err() {
                return None;
            }
        }
    }
}

impl Drop for OtlpReceiver {
    fn drop(&mut self) {
        self.server.abort();
    }
}

struct Collector(Arc<Received>);

#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let mut received = Vec::new();
        for resource_spans in request.into_inner().resource_spans {
            let service_name = resource_spans.resource.as_ref().and_then(|resource| {
                resource
                    .attributes
                    .iter()
                    .find(|kv| kv.key == "service.name")
                    .and_then(|kv| kv.value.as_ref())
                    .and_then(|value| json(value).as_str().map(str::to_owned))
            });
            for scope_spans in resource_spans.scope_spans {
                for span in scope_spans.spans {
                    received.push(ReceivedSpan {
                        name: span.name,
                        kind: span.kind,
                        trace_id: hex(&span.trace_id),
                        span_id: hex(&span.span_id),
                        parent_span_id: hex(&span.parent_span_id),
                        service_name: service_name.clone(),
                        attributes: span
                            .attributes
                            .iter()
                            .filter_map(|kv| Some((kv.key.clone(), json(kv.value.as_ref()?))))
                            .collect(),
                        events: span.events.into_iter().map(|event| event.name).collect(),
                        status_code: span.status.map_or(0, |status| status.code),
                    });
                }
            }
        }
        if let Ok(mut spans) = self.0.spans.lock() {
            spans.extend(received);
        }
        self.0.arrived.notify_waiters();
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

fn json(value: &AnyValue) -> Value {
    match &value.value {
        Some(any_value::Value::StringValue(text)) => Value::from(text.as_str()),
        Some(any_value::Value::IntValue(number)) => Value::from(*number),
        Some(any_value::Value::DoubleValue(number)) => Value::from(*number),
        Some(any_value::Value::BoolValue(flag)) => Value::from(*flag),
        _ => Value::Null,
    }
}
