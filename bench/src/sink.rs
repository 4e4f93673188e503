//! A stand-in OTLP/gRPC collector that counts the spans it receives by name and keeps none, so that
//! "tracing on" means spans really exported over the network, as in production, and the
//! bench can say how many arrived. It runs on a runtime of its own, on its own thread, so that
//! it never queues behind the load driver's tasks.

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex},
};

use opentelemetry_proto::tonic::{
    collector::trace::v1::{
        ExportTraceServiceRequest, ExportTraceServiceResponse,
        trace_service_server::{TraceService, TraceServiceServer},
    },
    common::v1::any_value::Value,
};

/// The running sink; it stops with the process.
#[derive(Debug, Clone)]
pub struct Sink {
    endpoint: String,
    spans: Arc<Mutex<BTreeMap<String, u64>>>,
}

impl Sink {
    /// Starts the sink on 127.0.0.1 and a free port.
    pub fn start() -> anyhow::Result<Self> {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let endpoint = format!("http://{}", listener.local_addr()?);
        let spans = Arc::new(Mutex::new(BTreeMap::new()));
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let counter = Counter(spans.clone());
        std::thread::Builder::new()
            .name("otlp-sink".to_owned())
            .spawn(move || {
                runtime.block_on(async move {
                    let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
                        eprintln!("bench: the OTLP sink cannot listen");
                        return;
                    };
                    let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
                    if let Err(error) = tonic::transport::Server::builder()
                        .add_service(TraceServiceServer::new(counter))
                        .serve_with_incoming(incoming)
                        .await
                    {
                        eprintln!("bench: the OTLP sink stopped: {error}");
                    }
                });
            })?;
        Ok(Self { endpoint, spans })
    }

    /// The URL to give `OTEL_EXPORTER_OTLP_ENDPOINT`.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Spans received so far, by service and span name.
    pub fn spans(&self) -> BTreeMap<String, u64> {
        self.spans
            .lock()
            .map(|spans| spans.clone())
            .unwrap_or_default()
    }
}

struct Counter(Arc<Mutex<BTreeMap<String, u64>>>);

#[tonic::async_trait]
impl TraceService for Counter {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let mut received = BTreeMap::<String, u64>::new();
        for resource in &request.get_ref().resource_spans {
            let service = resource
                .resource
                .iter()
                .flat_map(|resource| &resource.attributes)
                .find(|attribute| attribute.key == "service.name")
                .and_then(|attribute| attribute.value.as_ref())
                .and_then(|value| match &value.value {
                    Some(Value::StringValue(name)) => Some(name.as_str()),
                    _ => None,
                })
                .unwrap_or("?");
            for span in resource.scope_spans.iter().flat_map(|scope| &scope.spans) {
                *received
                    .entry(format!("{service}: {}", span.name))
                    .or_default() += 1;
            }
        }
        if let Ok(mut spans) = self.0.lock() {
            for (name, count) in received {
                *spans.entry(name).or_default() += count;
            }
        }
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}
