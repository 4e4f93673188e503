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

/// PUTs `body` as `content_type` to the admin API at `url` with `token`, and returns the
/// problem (RFC 9457) it must be refused with: asserts the answer is `expected` with an
/// `application/problem+json` body whose `status` says the same.
pub async fn admin_refusal(
    http: &reqwest::Client,
    url: &str,
    token: &str,
    content_type: &str,
    body: String,
    expected: u16,
) -> Value {
    let response = http
        .put(url)
        .bearer_auth(token)
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .expect("answered");
    assert_eq!(response.status().as_u16(), expected, "{content_type:?}");
    assert_eq!(
        response.headers().get("content-type").map(|v| v.as_bytes()),
        Some(&b"application/problem+json"[..]),
        "{content_type:?}"
    );
    let problem: Value = response.json().await.expect("a JSON body");
    assert_eq!(problem["status"], expected, "{content_type:?}");
    problem
}

/// The value of the sample `name{labels…}` in a Prometheus text exposition, where every label
/// given matches (the sample may carry others).
pub fn sample(exposition: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    exposition.lines().find_map(|line| {
        if line.starts_with('#') {
            return None;
        }
        let (series, value) = line.rsplit_once(' ')?;
        let (metric, label_text) = match series.split_once('{') {
            Some((metric, rest)) => (metric, rest.strip_suffix('}')?),
            None => (series, ""),
        };
        if metric != name {
            return None;
        }
        let present: Vec<(&str, &str)> = label_text
            .split("\",")
            .filter(|pair| !pair.is_empty())
            .filter_map(|pair| {
                let (key, value) = pair.split_once("=\"")?;
                Some((key, value.trim_end_matches('"')))
            })
            .collect();
        labels
            .iter()
            .all(|wanted| present.contains(wanted))
            .then(|| value.parse().ok())
            .flatten()
    })
}

#[cfg(test)]
mod tests {
    use super::sample;

    #[test]
    fn samples_are_found_by_name_and_labels() {
        let text = "# HELP x_total help\n\
                    x_total{a=\"1\",b=\"two\"} 3\n\
                    x_total{a=\"2\",b=\"two\"} 4\n\
                    y 5.5\n";
        assert_eq!(sample(text, "x_total", &[("a", "2")]), Some(4.0));
        assert_eq!(
            sample(text, "x_total", &[("b", "two"), ("a", "1")]),
            Some(3.0)
        );
        assert_eq!(sample(text, "x_total", &[("a", "3")]), None);
        assert_eq!(sample(text, "y", &[]), Some(5.5));
        assert_eq!(sample(text, "x", &[]), None);
    }
}

/// Runs `command`, which is expected to stop by itself (a start-up refusal, say), with its
/// stdout and stderr captured; kills it after `timeout`. Returns its exit code (`None` when it
/// was killed or ended by a signal) and what it printed, stdout then stderr.
pub fn run_to_exit(
    command: &mut std::process::Command,
    timeout: Duration,
) -> (Option<i32>, String) {
    use std::{io::Read as _, process::Stdio};

    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary runs");
    // Read both pipes beside the wait, so that a chatty child never blocks on a full pipe.
    let readers = [
        child
            .stdout
            .take()
            .map(|pipe| Box::new(pipe) as Box<dyn std::io::Read + Send>),
        child
            .stderr
            .take()
            .map(|pipe| Box::new(pipe) as Box<dyn std::io::Read + Send>),
    ]
    .map(|pipe| {
        std::thread::spawn(move || {
            let mut text = String::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_string(&mut text);
            }
            text
        })
    });
    let started = std::time::Instant::now();
    let status = loop {
        if let Ok(Some(status)) = child.try_wait() {
            break Some(status);
        }
        if started.elapsed() > timeout {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let printed = readers
        .into_iter()
        .map(|reader| reader.join().unwrap_or_default())
        .collect();
    (status.and_then(|status| status.code()), printed)
}

/// A service binary run as a child process, for tests that need a real process: a real
/// SIGTERM, a `kill -9`. It learns the bound addresses from the service's `<name>.listening`
/// JSON log line, so the service can be started on port 0.
#[derive(Debug)]
pub struct Process {
    child: std::process::Child,
    lines: tokio::sync::mpsc::UnboundedReceiver<String>,
    listening: serde_json::Value,
}

impl Process {
    /// Starts `binary` with `args` and `env`, and waits (up to 30 s) for its `listening` line.
    pub async fn start(binary: &str, args: &[&str], env: &[(&str, &str)]) -> std::io::Result<Self> {
        use std::io::BufRead as _;

        let mut command = std::process::Command::new(binary);
        command
            .args(args)
            .env("OTEL_SDK_DISABLED", "true")
            .env("RUST_LOG", "info")
            .env("LOG_FORMAT", "json")
            .stdout(std::process::Stdio::piped());
        for (key, value) in env {
            command.env(key, value);
        }
        let mut child = command.spawn()?;
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| std::io::Error::other("no stdout"))?;
        let (sender, mut lines) = tokio::sync::mpsc::unbounded_channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
            {
                if sender.send(line).is_err() {
                    break;
                }
            }
        });
        let listening = tokio::time::timeout(Duration::from_secs(30), async {
            while let Some(line) = lines.recv().await {
                let line: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
                if line["message"]
                    .as_str()
                    .is_some_and(|message| message.ends_with(".listening"))
                {
                    return Some(line);
                }
            }
            None
        })
        .await
        .ok()
        .flatten();
        let Some(listening) = listening else {
            // A process that never got ready must not outlive the test that started it.
            let _ = child.kill();
            let _ = child.wait();
            return Err(std::io::Error::other(format!(
                "{binary} never said it was listening"
            )));
        };
        Ok(Self {
            child,
            lines,
            listening,
        })
    }

    /// A bound address from the listening line (`grpc_addr`, `http_addr`, `ops_addr`).
    pub fn addr(&self, field: &str) -> String {
        self.listening["fields"][field]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// The process id.
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// Sends `signal` (`TERM`, `KILL`, …) with kill(1).
    pub fn signal(&self, signal: &str) -> std::io::Result<()> {
        let status = std::process::Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.child.id().to_string())
            .status()?;
        if status.success() {
            Ok(())
        } else {
            Err(std::io::Error::other(format!("kill -{signal} failed")))
        }
    }

    /// Waits for the process to exit and returns its exit code (`None` if a signal ended it).
    pub async fn wait(mut self) -> std::io::Result<Option<i32>> {
        tokio::task::spawn_blocking(move || self.child.wait().map(|status| status.code()))
            .await
            .map_err(std::io::Error::other)?
    }

    /// Waits up to `timeout` for a log line containing `text`.
    pub async fn logged(&mut self, text: &str, timeout: Duration) -> bool {
        tokio::time::timeout(timeout, async {
            while let Some(line) = self.lines.recv().await {
                if line.contains(text) {
                    return true;
                }
            }
            false
        })
        .await
        .unwrap_or(false)
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        // A test that failed half-way must not leave a server behind.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
