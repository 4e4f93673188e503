//! A stand-in OTLP/gRPC collector that counts the spans it receives and keeps none, so that
//! "tracing on" means spans really exported over the network, as in production, and the
//! bench can say how many arrived. It runs on a runtime of its own, on its own thread, so that
//! it never queues behind the load driver's tasks.

use std::sync::{
    Arc,
    atomic::{AtomicU64, Ordering},
};

use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
    trace_service_server::{TraceService, TraceServiceServer},
};

/// The running sink; it stops with the process.
#[derive(Debug, Clone)]
pub struct Sink {
    endpoint: String,
    spans: Arc<AtomicU64>,
}

impl Sink {
    /// Starts the sink on 127.0.0.1 and a free port.
    pub fn start() -> anyhow::Result<Self> {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let endpoint = format!("http://{}", listener.local_addr()?);
        let spans = Arc::new(AtomicU64::new(0));
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

    /// Spans received so far.
    pub fn spans(&self) -> u64 {
        self.spans.load(Ordering::Relaxed)
    }
}

struct Counter(Arc<AtomicU64>);

#[tonic::async_trait]
impl TraceService for Counter {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let spans: usize = request
            .get_ref()
            .resource_spans
            .iter()
            .flat_map(|resource| &resource.scope_spans)
            .map(|scope| scope.spans.len())
            .sum();
        self.0.fetch_add(spans as u64, Ordering::Relaxed);
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}
