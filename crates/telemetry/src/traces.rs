//! The OTLP/gRPC span exporter, sampler and resource, built from [`TelemetryArgs`].

use std::time::Duration;

use opentelemetry::{KeyValue, trace::TracerProvider as _};
use opentelemetry_otlp::{ExporterBuildError, WithExportConfig as _};
use opentelemetry_sdk::{
    Resource,
    trace::{BatchConfigBuilder, BatchSpanProcessor, Sampler, SdkTracerProvider},
};
use tracing::{Level, Subscriber};
use tracing_subscriber::{filter::Targets, registry::LookupSpan};

use crate::{SamplerKind, ServiceInfo, TelemetryArgs};

/// How long one export may take. Short, so that an absent collector costs little.
const EXPORT_TIMEOUT: Duration = Duration::from_secs(2);

/// The tracer provider, or `None` when `OTEL_SDK_DISABLED` is set.
pub(crate) fn provider(
    args: &TelemetryArgs,
    service: ServiceInfo,
) -> Result<Option<SdkTracerProvider>, ExporterBuildError> {
    if args.otel_sdk_disabled {
        return Ok(None);
    }
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .with_endpoint(args.otel_exporter_otlp_endpoint.clone())
        .with_timeout(EXPORT_TIMEOUT)
        .build()?;
    let processor = BatchSpanProcessor::builder(exporter)
        .with_batch_config(
            BatchConfigBuilder::default()
                .with_scheduled_delay(Duration::from_secs(1))
                .build(),
        )
        .build();
    let name = args
        .otel_service_name
        .clone()
        .unwrap_or_else(|| service.name.to_owned());
    let resource = Resource::builder()
        .with_service_name(name)
        .with_attribute(KeyValue::new("service.version", service.version))
        .build();
    let provider = SdkTracerProvider::builder()
        .with_resource(resource)
        .with_sampler(sampler(
            args.otel_traces_sampler,
            args.otel_traces_sampler_arg,
        ))
        .with_span_processor(processor)
        .build();
    Ok(Some(provider))
}

fn sampler(kind: SamplerKind, ratio: Option<f64>) -> Sampler {
    let ratio = ratio.unwrap_or(1.0);
    match kind {
        SamplerKind::AlwaysOn => Sampler::AlwaysOn,
        SamplerKind::AlwaysOff => Sampler::AlwaysOff,
        SamplerKind::Traceidratio => Sampler::TraceIdRatioBased(ratio),
        SamplerKind::ParentbasedAlwaysOn => Sampler::ParentBased(Box::new(Sampler::AlwaysOn)),
        SamplerKind::ParentbasedAlwaysOff => Sampler::ParentBased(Box::new(Sampler::AlwaysOff)),
        SamplerKind::ParentbasedTraceidratio => {
            Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(ratio)))
        }
    }
}

/// The tracing → OpenTelemetry bridge.
pub(crate) fn layer<S>(
    provider: &SdkTracerProvider,
    service: ServiceInfo,
) -> tracing_opentelemetry::OpenTelemetryLayer<S, opentelemetry_sdk::trace::SdkTracer>
where
    S: Subscriber + for<'span> LookupSpan<'span>,
{
    tracing_opentelemetry::layer()
        .with_tracer(provider.tracer(service.name))
        .with_location(false)
        .with_threads(false)
        .with_target(false)
        .with_tracked_inactivity(false)
}

/// Spans worth exporting: ours at info and above, never the exporter's own transport (which
/// would trace its own exports).
pub(crate) fn span_filter() -> Targets {
    Targets::new()
        .with_default(Level::INFO)
        .with_target("opentelemetry", tracing::level_filters::LevelFilter::OFF)
        .with_target(
            "opentelemetry_sdk",
            tracing::level_filters::LevelFilter::OFF,
        )
        .with_target(
            "opentelemetry_otlp",
            tracing::level_filters::LevelFilter::OFF,
        )
        .with_target("h2", tracing::level_filters::LevelFilter::OFF)
        .with_target("hyper", tracing::level_filters::LevelFilter::OFF)
        .with_target("tonic", tracing::level_filters::LevelFilter::OFF)
        .with_target("tower", tracing::level_filters::LevelFilter::OFF)
}
