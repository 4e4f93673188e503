//! Log lines: JSON objects that carry the OpenTelemetry `trace_id` and `span_id`, or text.
//!
//! tracing-subscriber's own JSON formatter knows nothing of OpenTelemetry ids, so this one writes
//! the same shape (`timestamp`, `level`, `target`, `fields`, `spans`) plus the two ids of the
//! event's span, which is what lets a log search jump to the trace and back.

use std::fmt;

use opentelemetry::trace::{TraceContextExt as _, TraceId};
use serde_json::{Map, Value};
use tracing::{Event, Subscriber, field::Field};
use tracing_subscriber::{
    EnvFilter, Layer,
    fmt::{
        FmtContext, FormatEvent, FormatFields, FormattedFields, MakeWriter, format::JsonFields,
        format::Writer, time::FormatTime as _,
    },
    registry::LookupSpan,
};

use crate::LogFormat;

/// Directives added to every filter: the OTLP exporter says "export failed" each second while
/// no collector listens, which is expected (traces are optional) and would drown the log.
const QUIET: &[&str] = &[
    "opentelemetry_sdk=off",
    "opentelemetry_otlp=off",
    "opentelemetry=off",
];

pub(crate) fn filter(
    directives: &str,
) -> Result<EnvFilter, tracing_subscriber::filter::ParseError> {
    let mut filter = EnvFilter::builder().parse(directives)?;
    for quiet in QUIET {
        if !names_target(directives, quiet) {
            filter = filter.add_directive(quiet.parse()?);
        }
    }
    Ok(filter)
}

/// Whether the operator's `directives` name the target of `directive` (`target=level`)
/// themselves: a quieting directive is added only where they do not.
pub(crate) fn names_target(directives: &str, directive: &str) -> bool {
    let target = directive.split('=').next().unwrap_or_default();
    directives.contains(target)
}

pub(crate) fn layer<S, W>(format: LogFormat, writer: W) -> Box<dyn Layer<S> + Send + Sync>
where
    S: Subscriber + for<'span> LookupSpan<'span>,
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    match format {
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .fmt_fields(JsonFields::new())
            .event_format(JsonWithTraceIds)
            .with_writer(writer)
            .boxed(),
        LogFormat::Text => tracing_subscriber::fmt::layer().with_writer(writer).boxed(),
    }
}

/// The JSON event format.
struct JsonWithTraceIds;

impl<S, N> FormatEvent<S, N> for JsonWithTraceIds
where
    S: Subscriber + for<'span> LookupSpan<'span>,
    N: for<'w> FormatFields<'w> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let metadata = event.metadata();
        let mut line = Map::new();

        let mut timestamp = String::new();
        tracing_subscriber::fmt::time::SystemTime.format_time(&mut Writer::new(&mut timestamp))?;
        line.insert("timestamp".into(), timestamp.into());
        line.insert("level".into(), metadata.level().as_str().into());
        line.insert("target".into(), metadata.target().into());

        let mut fields = FieldVisitor::default();
        event.record(&mut fields);
        if let Some(Value::String(message)) = fields.0.remove("message") {
            line.insert("message".into(), message.into());
        }
        if !fields.0.is_empty() {
            line.insert("fields".into(), Value::Object(fields.0));
        }

        if let Some(span) = ctx.parent_span() {
            // Look the ids up before reading any span extensions: the OpenTelemetry layer takes
            // them mutably to start the span.
            let ids = tracing::dispatcher::get_default(|dispatch| {
                tracing_opentelemetry::get_otel_context(&span.id(), dispatch)
            })
            .map(|cx| {
                let span_context = cx.span().span_context().clone();
                (span_context.trace_id(), span_context.span_id())
            });

            let spans: Vec<Value> = span
                .scope()
                .from_root()
                .map(|span| {
                    let mut object = span
                        .extensions()
                        .get::<FormattedFields<N>>()
                        .and_then(|fields| serde_json::from_str::<Map<String, Value>>(fields).ok())
                        .unwrap_or_default();
                    object.insert("name".into(), span.name().into());
                    Value::Object(object)
                })
                .collect();
            line.insert("spans".into(), Value::Array(spans));

            if let Some((trace_id, span_id)) =
                ids.filter(|(trace_id, _)| *trace_id != TraceId::INVALID)
            {
                line.insert("trace_id".into(), trace_id.to_string().into());
                line.insert("span_id".into(), span_id.to_string().into());
            }
        }

        let text = serde_json::to_string(&line).map_err(|_| fmt::Error)?;
        writeln!(writer, "{text}")
    }
}

/// Collects an event's fields as JSON values.
#[derive(Default)]
struct FieldVisitor(Map<String, Value>);

impl tracing::field::Visit for FieldVisitor {
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        // The whole cause chain, so that a logged error says why.
        let mut text = value.to_string();
        let mut source = value.source();
        while let Some(cause) = source {
            text.push_str(": ");
            text.push_str(&cause.to_string());
            source = cause.source();
        }
        self.0.insert(field.name().into(), text.into());
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0
            .insert(field.name().into(), format!("{value:?}").into());
    }
}
