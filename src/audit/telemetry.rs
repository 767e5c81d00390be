//! OpenTelemetry setup and the span helpers the request path calls.
//!
//! One span tree per request: `{method} {route}` (the server span, a `tracing` span that
//! continues the client's W3C `traceparent`) → `guardrail input` / `guardrail output` (and
//! `guardrail grounding`) and the upstream call as a GenAI client span named
//! `{operation} {model}` ([`Tracer`]).
//!
//! The helpers take labels, counts, offsets and keyed hashes only ([`StageRecord`],
//! [`AuditRecord`], plain ids): there is no parameter through which prompt or answer text
//! could reach a span.
//!
//! Export is OTLP over HTTP/protobuf (default) or gRPC (`OTEL_EXPORTER_OTLP_PROTOCOL=grpc`)
//! with the SDK's batch processor (its own thread, so the request path never waits on the
//! collector; the gRPC channel's I/O runs on the tokio runtime it was built in). When the queue is full or the collector
//! rejects or misses an export, spans are dropped and counted in
//! `haechi_otel_dropped_spans_total`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::SystemTime;

use http::{HeaderMap, HeaderName, HeaderValue};
use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::{
    Span as _, SpanKind, Status, TraceContextExt, Tracer as _, TracerProvider as _,
};
use opentelemetry::{Array, Context, KeyValue, StringValue, Value};
use opentelemetry_otlp::tonic_types::transport::ClientTlsConfig;
use opentelemetry_otlp::{Protocol, WithExportConfig, WithTonicConfig};
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{
    BatchConfigBuilder, BatchSpanProcessor, Sampler, SdkTracer, SdkTracerProvider, SpanData,
    SpanExporter, SpanProcessor,
};
use opentelemetry_sdk::Resource;
use prometheus_client::metrics::counter::Counter;
use serde::Deserialize;
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::filter::{EnvFilter, LevelFilter, Targets};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::Layer;

use super::record::{AuditRecord, FailEvent, StageRecord};

/// Attribute names. GenAI names follow the OpenTelemetry GenAI semantic conventions;
/// `gen_ai.guardrail.*` follows the draft guardrail conventions; the rest is `haechi.*`.
pub mod attr {
    pub const GEN_AI_OPERATION_NAME: &str = "gen_ai.operation.name";
    pub const GEN_AI_PROVIDER_NAME: &str = "gen_ai.provider.name";
    pub const GEN_AI_REQUEST_MODEL: &str = "gen_ai.request.model";
    pub const GEN_AI_RESPONSE_MODEL: &str = "gen_ai.response.model";
    pub const GEN_AI_USAGE_INPUT_TOKENS: &str = "gen_ai.usage.input_tokens";
    pub const GEN_AI_USAGE_OUTPUT_TOKENS: &str = "gen_ai.usage.output_tokens";
    pub const GEN_AI_RESPONSE_FINISH_REASONS: &str = "gen_ai.response.finish_reasons";
    pub const GEN_AI_REQUEST_STREAM: &str = "gen_ai.request.stream";
    pub const SERVER_ADDRESS: &str = "server.address";
    pub const ERROR_TYPE: &str = "error.type";
    pub const HTTP_REQUEST_METHOD: &str = "http.request.method";
    pub const HTTP_ROUTE: &str = "http.route";
    pub const HTTP_RESPONSE_STATUS_CODE: &str = "http.response.status_code";

    /// `allowed` or `intervened`.
    pub const GUARDRAIL_DECISION: &str = "gen_ai.guardrail.decision";
    /// `allow` | `warn` | `anonymize` | `block`.
    pub const GUARDRAIL_ACTION: &str = "gen_ai.guardrail.action";
    /// The action if shadow rules were enforced.
    pub const GUARDRAIL_SHADOW_ACTION: &str = "gen_ai.guardrail.shadow_action";
    pub const GUARDRAIL_STAGE: &str = "gen_ai.guardrail.stage";
    pub const GUARDRAIL_POLICY_ID: &str = "gen_ai.guardrail.policy.id";
    pub const GUARDRAIL_POLICY_VERSION: &str = "gen_ai.guardrail.policy.version";
    /// String array of the rules that fired.
    pub const GUARDRAIL_RULE_IDS: &str = "gen_ai.guardrail.rule_ids";
    /// String array of finding labels, parallel to [`GUARDRAIL_FINDING_COUNTS`].
    pub const GUARDRAIL_FINDING_LABELS: &str = "gen_ai.guardrail.finding.labels";
    /// Int array of finding counts, parallel to [`GUARDRAIL_FINDING_LABELS`].
    pub const GUARDRAIL_FINDING_COUNTS: &str = "gen_ai.guardrail.finding.counts";
    pub const GUARDRAIL_FINDING_TOTAL: &str = "gen_ai.guardrail.finding.total";
    /// Event name of one finding (rule, label, offsets, keyed hash).
    pub const GUARDRAIL_FINDING_EVENT: &str = "gen_ai.guardrail.finding";

    pub const HAECHI_REQUEST_ID: &str = "haechi.request_id";
    pub const HAECHI_TENANT: &str = "haechi.tenant";
    pub const HAECHI_REGION: &str = "haechi.region";
    pub const HAECHI_UPSTREAM: &str = "haechi.upstream";
    pub const HAECHI_QUOTA_OUTCOME: &str = "haechi.quota.outcome";
    pub const HAECHI_OUTCOME: &str = "haechi.outcome";
    /// Event name prefix: `haechi.fail_open` / `haechi.fail_closed`.
    pub const HAECHI_FAIL_MODE: &str = "haechi.fail_mode";
    pub const HAECHI_FAIL_COMPONENT: &str = "haechi.fail.component";
    pub const HAECHI_FAIL_REASON: &str = "haechi.fail.reason";
    pub const HAECHI_FINDING_RULE: &str = "haechi.finding.rule";
    pub const HAECHI_FINDING_LABEL: &str = "haechi.finding.label";
    pub const HAECHI_FINDING_START: &str = "haechi.finding.start";
    pub const HAECHI_FINDING_END: &str = "haechi.finding.end";
    pub const HAECHI_FINDING_HASH: &str = "haechi.finding.hash";
}

/// Most finding events per guardrail span (the counts attributes stay exact).
pub const MAX_FINDING_EVENTS: usize = 32;

/// Telemetry settings. Every key may also come from its standard environment variable,
/// which wins over the file (so a deployment can override a baked-in config).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TelemetryConfig {
    /// OTLP base endpoint, e.g. `http://otel-collector:4318` (`/v1/traces` is appended).
    /// `OTEL_EXPORTER_OTLP_ENDPOINT`; `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` is used as is.
    /// Absent: no trace export (logs only).
    #[serde(default, alias = "otel_exporter_otlp_endpoint")]
    pub endpoint: Option<String>,
    /// `http/protobuf` (default, port 4318) or `grpc` (port 4317).
    /// `OTEL_EXPORTER_OTLP_PROTOCOL`.
    #[serde(default, alias = "otel_exporter_otlp_protocol")]
    pub protocol: Option<String>,
    /// Protocol for traces only; wins over `protocol`. `OTEL_EXPORTER_OTLP_TRACES_PROTOCOL`.
    #[serde(default, alias = "otel_exporter_otlp_traces_protocol")]
    pub traces_protocol: Option<String>,
    /// `service.name` (default `haechi`). `OTEL_SERVICE_NAME`.
    #[serde(default, alias = "otel_service_name")]
    pub service_name: Option<String>,
    /// `always_on`, `always_off`, `traceidratio`, `parentbased_always_on` (default),
    /// `parentbased_always_off`, `parentbased_traceidratio`. `OTEL_TRACES_SAMPLER`.
    #[serde(default, alias = "otel_traces_sampler")]
    pub traces_sampler: Option<String>,
    /// Ratio for the `*traceidratio` samplers. `OTEL_TRACES_SAMPLER_ARG`.
    #[serde(default, alias = "otel_traces_sampler_arg")]
    pub traces_sampler_arg: Option<String>,
    /// Log filter in `RUST_LOG` syntax (default `info`). `RUST_LOG`.
    #[serde(default)]
    pub log_filter: Option<String>,
    /// `text` (default) or `json` log lines on stderr.
    #[serde(default)]
    pub log_format: Option<String>,
    /// Spans buffered for export before new ones are dropped (default 2048).
    /// `OTEL_BSP_MAX_QUEUE_SIZE`.
    #[serde(default)]
    pub max_queue_size: Option<usize>,
}

impl TelemetryConfig {
    /// This config with every standard environment variable that is set applied over it.
    pub fn with_env(self) -> Self {
        self.with_vars(|k| std::env::var(k).ok().filter(|v| !v.trim().is_empty()))
    }

    #[cfg(test)]
    pub(crate) fn with_vars_for_test(self, var: impl Fn(&str) -> Option<String>) -> Self {
        self.with_vars(var)
    }

    fn with_vars(mut self, var: impl Fn(&str) -> Option<String>) -> Self {
        if let Some(v) = var("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") {
            self.endpoint = Some(format!("{TRACES_ENDPOINT_MARK}{v}"));
        } else if let Some(v) = var("OTEL_EXPORTER_OTLP_ENDPOINT") {
            self.endpoint = Some(v);
        }
        let set = |slot: &mut Option<String>, key: &str| {
            if let Some(v) = var(key) {
                *slot = Some(v);
            }
        };
        // Either protocol variable replaces both file keys: the environment wins as a whole.
        let traces_protocol = var("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL");
        let protocol = var("OTEL_EXPORTER_OTLP_PROTOCOL");
        if traces_protocol.is_some() || protocol.is_some() {
            self.traces_protocol = traces_protocol;
            self.protocol = protocol;
        }
        set(&mut self.service_name, "OTEL_SERVICE_NAME");
        set(&mut self.traces_sampler, "OTEL_TRACES_SAMPLER");
        set(&mut self.traces_sampler_arg, "OTEL_TRACES_SAMPLER_ARG");
        set(&mut self.log_filter, "RUST_LOG");
        if let Some(n) = var("OTEL_BSP_MAX_QUEUE_SIZE").and_then(|v| v.parse().ok()) {
            self.max_queue_size = Some(n);
        }
        self
    }

    /// The transport spans are exported with: `traces_protocol`, else `protocol`, else
    /// `http/protobuf`.
    pub fn otlp_protocol(&self) -> Result<OtlpProtocol, TelemetryError> {
        let name = self
            .traces_protocol
            .as_deref()
            .or(self.protocol.as_deref())
            .map(str::trim);
        match name {
            None | Some("http/protobuf") => Ok(OtlpProtocol::HttpProtobuf),
            Some("grpc") => Ok(OtlpProtocol::Grpc),
            Some(other) => Err(TelemetryError::UnsupportedProtocol(other.to_string())),
        }
    }

    /// Where spans go and how, or `None` when export is off. HTTP gets `/v1/traces`
    /// appended to a base endpoint; gRPC uses the endpoint as is (the method path is
    /// fixed by the service); a `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` is always used as is.
    pub fn export_target(&self) -> Result<Option<(OtlpProtocol, String)>, TelemetryError> {
        let protocol = self.otlp_protocol()?;
        let url = match protocol {
            OtlpProtocol::HttpProtobuf => self.traces_url(),
            OtlpProtocol::Grpc => self.endpoint.as_deref().map(str::trim).and_then(|e| {
                match e.strip_prefix(TRACES_ENDPOINT_MARK) {
                    Some(exact) => Some(exact.to_string()),
                    None => (!e.is_empty()).then(|| e.trim_end_matches('/').to_string()),
                }
            }),
        };
        Ok(url.map(|u| (protocol, u)))
    }

    /// The URL spans are posted to over HTTP, or `None` when export is off.
    pub fn traces_url(&self) -> Option<String> {
        let e = self.endpoint.as_deref()?.trim();
        if let Some(exact) = e.strip_prefix(TRACES_ENDPOINT_MARK) {
            return Some(exact.to_string());
        }
        if e.is_empty() {
            return None;
        }
        let base = e.trim_end_matches('/');
        Some(if base.ends_with("/v1/traces") {
            base.to_string()
        } else {
            format!("{base}/v1/traces")
        })
    }

    /// The sampler named by `traces_sampler` / `traces_sampler_arg`.
    pub fn sampler(&self) -> Result<Sampler, TelemetryError> {
        let ratio = match self.traces_sampler_arg.as_deref() {
            None => 1.0,
            Some(a) => a
                .trim()
                .parse::<f64>()
                .ok()
                .filter(|r| (0.0..=1.0).contains(r))
                .ok_or_else(|| TelemetryError::Config(format!("bad sampler ratio `{a}`")))?,
        };
        let name = self
            .traces_sampler
            .as_deref()
            .unwrap_or("parentbased_always_on");
        Ok(match name.trim() {
            "always_on" => Sampler::AlwaysOn,
            "always_off" => Sampler::AlwaysOff,
            "traceidratio" => Sampler::TraceIdRatioBased(ratio),
            "parentbased_always_on" => Sampler::ParentBased(Box::new(Sampler::AlwaysOn)),
            "parentbased_always_off" => Sampler::ParentBased(Box::new(Sampler::AlwaysOff)),
            "parentbased_traceidratio" => {
                Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(ratio)))
            }
            other => {
                return Err(TelemetryError::Config(format!(
                    "unsupported OTEL_TRACES_SAMPLER `{other}`"
                )))
            }
        })
    }
}

/// The OTLP transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OtlpProtocol {
    /// `http/protobuf`: POST of protobuf to `/v1/traces` (blocking client on the batch
    /// processor's thread).
    HttpProtobuf,
    /// `grpc`: the `TraceService/Export` call over HTTP/2 (tonic, rustls for `https`).
    Grpc,
}

/// Marks an endpoint taken from `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` (used verbatim).
const TRACES_ENDPOINT_MARK: &str = "exact:";

/// Telemetry setup errors.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    #[error("telemetry: {0}")]
    Config(String),
    #[error(
        "telemetry: OTLP protocol `{0}` is not supported; use `http/protobuf` (collector port 4318) or `grpc` (4317)"
    )]
    UnsupportedProtocol(String),
    #[error("telemetry: cannot build the OTLP exporter: {0}")]
    Exporter(String),
    #[error("telemetry: a global tracing subscriber is already installed: {0}")]
    AlreadyInstalled(String),
}

/// Keeps the exporter alive; flushes and shuts it down when dropped.
#[derive(Debug)]
pub struct TelemetryGuard {
    provider: Option<SdkTracerProvider>,
}

impl TelemetryGuard {
    /// Whether spans are exported.
    pub fn exporting(&self) -> bool {
        self.provider.is_some()
    }

    /// The tracer for guardrail and GenAI spans (disabled when not exporting).
    pub fn tracer(&self) -> Tracer {
        self.provider
            .as_ref()
            .map(Tracer::from_provider)
            .unwrap_or_default()
    }

    /// Flushes pending spans and stops the exporter (also done on drop).
    pub fn shutdown(&mut self) {
        if let Some(p) = self.provider.take() {
            if let Err(e) = p.shutdown() {
                tracing::warn!(error = %e, "OpenTelemetry shutdown");
            }
        }
    }
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Installs the global tracing subscriber: logs to stderr and, when an endpoint is
/// configured, OTLP span export. `config` should already have [`TelemetryConfig::with_env`]
/// applied. `dropped` is incremented for every span the exporter drops.
pub fn init_tracing(
    config: &TelemetryConfig,
    dropped: Option<Counter>,
) -> Result<TelemetryGuard, TelemetryError> {
    let filter = EnvFilter::try_new(config.log_filter.as_deref().unwrap_or("info"))
        .map_err(|e| TelemetryError::Config(format!("bad log filter: {e}")))?;
    let json = match config.log_format.as_deref() {
        None | Some("text") => false,
        Some("json") => true,
        Some(other) => {
            return Err(TelemetryError::Config(format!(
                "log_format must be `text` or `json`, got `{other}`"
            )))
        }
    };
    let fmt = if json {
        tracing_subscriber::fmt::layer()
            .json()
            .with_writer(std::io::stderr)
            .with_filter(filter)
            .boxed()
    } else {
        tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_filter(filter)
            .boxed()
    };
    let provider = build_provider(config, dropped.unwrap_or_default())?;
    let otel = provider.as_ref().map(|p| span_layer(p));
    tracing_subscriber::registry()
        .with(fmt)
        .with(otel)
        .try_init()
        .map_err(|e| TelemetryError::AlreadyInstalled(e.to_string()))?;
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    Ok(TelemetryGuard { provider })
}

/// The OTLP tracer provider for `config`, or `None` when no endpoint is configured.
pub fn build_provider(
    config: &TelemetryConfig,
    dropped: Counter,
) -> Result<Option<SdkTracerProvider>, TelemetryError> {
    let Some((protocol, url)) = config.export_target()? else {
        return Ok(None);
    };
    let exporter = match protocol {
        OtlpProtocol::HttpProtobuf => opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_protocol(Protocol::HttpBinary)
            .with_endpoint(url)
            .build(),
        OtlpProtocol::Grpc => {
            // The channel spawns its connection task on the current runtime.
            if tokio::runtime::Handle::try_current().is_err() {
                return Err(TelemetryError::Config(
                    "OTLP/gRPC export must be set up inside the tokio runtime".into(),
                ));
            }
            let tls = url.starts_with("https:");
            let builder = opentelemetry_otlp::SpanExporter::builder()
                .with_tonic()
                .with_endpoint(url);
            let builder = if tls {
                builder.with_tls_config(ClientTlsConfig::new().with_enabled_roots())
            } else {
                builder
            };
            builder.build()
        }
    }
    .map_err(|e| TelemetryError::Exporter(e.to_string()))?;
    let queue = config.max_queue_size.unwrap_or(2048).max(1);
    Ok(Some(provider_with_exporter(
        exporter, config, queue, dropped,
    )?))
}

/// A provider exporting through `exporter` with a batch processor whose drops are counted.
/// Public so tests and benchmarks can plug in another exporter.
pub fn provider_with_exporter<E: SpanExporter + 'static>(
    exporter: E,
    config: &TelemetryConfig,
    max_queue_size: usize,
    dropped: Counter,
) -> Result<SdkTracerProvider, TelemetryError> {
    let taken = Arc::new(AtomicU64::new(0));
    let exporter = CountingExporter {
        inner: exporter,
        taken: taken.clone(),
        dropped: dropped.clone(),
    };
    let batch = BatchSpanProcessor::builder(exporter)
        .with_batch_config(
            BatchConfigBuilder::default()
                .with_max_queue_size(max_queue_size)
                .build(),
        )
        .build();
    let gate = DropCountingProcessor {
        inner: batch,
        forwarded: AtomicU64::new(0),
        taken,
        max_queue: max_queue_size as u64,
        dropped,
    };
    let resource = Resource::builder()
        .with_service_name(
            config
                .service_name
                .clone()
                .unwrap_or_else(|| "haechi".to_string()),
        )
        .build();
    Ok(SdkTracerProvider::builder()
        .with_span_processor(gate)
        .with_sampler(config.sampler()?)
        .with_resource(resource)
        .build())
}

/// The tracing → OpenTelemetry layer with the attributes the audit schema does not want
/// (code location, thread, target, busy/idle times) turned off, and only Haechi's own
/// spans (target `haechi*`) exported.
pub fn span_layer<S>(provider: &SdkTracerProvider) -> Box<dyn Layer<S> + Send + Sync>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a> + Send + Sync,
{
    tracing_opentelemetry::layer()
        .with_tracer(provider.tracer("haechi"))
        .with_location(false)
        .with_threads(false)
        .with_target(false)
        .with_tracked_inactivity(false)
        .with_filter(Targets::new().with_target("haechi", LevelFilter::INFO))
        .boxed()
}

/// Counts spans handed to the exporter and spans of failed exports (collector down).
#[derive(Debug)]
struct CountingExporter<E> {
    inner: E,
    taken: Arc<AtomicU64>,
    dropped: Counter,
}

impl<E: SpanExporter> SpanExporter for CountingExporter<E> {
    fn export(
        &self,
        batch: Vec<SpanData>,
    ) -> impl std::future::Future<Output = OTelSdkResult> + Send {
        let n = batch.len() as u64;
        self.taken.fetch_add(n, Ordering::Relaxed);
        let dropped = self.dropped.clone();
        let fut = self.inner.export(batch);
        async move {
            let result = fut.await;
            if result.is_err() {
                dropped.inc_by(n);
            }
            result
        }
    }

    fn shutdown_with_timeout(&self, timeout: std::time::Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}

/// Drops (and counts) spans itself before the batch queue can overflow: the SDK's own
/// queue-full counter is private. Spans forwarded minus spans taken by the exporter bounds
/// the queue length, so the inner queue never drops.
#[derive(Debug)]
struct DropCountingProcessor<P> {
    inner: P,
    forwarded: AtomicU64,
    taken: Arc<AtomicU64>,
    max_queue: u64,
    dropped: Counter,
}

impl<P: SpanProcessor> SpanProcessor for DropCountingProcessor<P> {
    fn on_start(&self, span: &mut opentelemetry_sdk::trace::Span, cx: &Context) {
        self.inner.on_start(span, cx);
    }

    fn on_end(&self, span: SpanData) {
        let in_queue = self
            .forwarded
            .load(Ordering::Relaxed)
            .saturating_sub(self.taken.load(Ordering::Relaxed));
        if in_queue >= self.max_queue {
            self.dropped.inc();
            return;
        }
        self.forwarded.fetch_add(1, Ordering::Relaxed);
        self.inner.on_end(span);
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn shutdown_with_timeout(&self, timeout: std::time::Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}

// ---------------------------------------------------------------------------------------
// W3C trace context

struct HeaderExtractor<'a>(&'a HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(HeaderName::as_str).collect()
    }
}

struct HeaderInjector<'a>(&'a mut HeaderMap);

impl Injector for HeaderInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(key.as_bytes()),
            HeaderValue::from_str(&value),
        ) {
            self.0.insert(name, value);
        }
    }
}

/// The remote parent context from `traceparent` / `tracestate` (empty when absent or bad).
pub fn extract_context(headers: &HeaderMap) -> Context {
    TraceContextPropagator::new().extract(&HeaderExtractor(headers))
}

/// Writes `traceparent` (and `tracestate`) for `span` into upstream request headers,
/// replacing the client's, so the upstream continues the same trace under our span.
pub fn inject_context(span: &Span, headers: &mut HeaderMap) {
    let cx = span.context();
    if cx.span().span_context().is_valid() {
        TraceContextPropagator::new().inject_context(&cx, &mut HeaderInjector(headers));
    }
}

/// Hex trace id of `span` (for the audit record), `None` when tracing is off.
pub fn trace_id(span: &Span) -> Option<String> {
    let cx = span.context();
    let sc = cx.span().span_context().clone();
    sc.is_valid().then(|| sc.trace_id().to_string())
}

// ---------------------------------------------------------------------------------------
// Span helpers

/// The server span of one request, continuing the client's `traceparent` when present.
/// A `tracing` span, so log lines inside it carry the request's trace. Enter it (or
/// `.instrument()` the handler future with it) for the request's duration.
pub fn server_span(method: &str, route: &str, request_id: &str, headers: &HeaderMap) -> Span {
    let span = tracing::info_span!(
        target: "haechi",
        "http.server",
        otel.name = %format_args!("{method} {route}"),
        otel.kind = "server",
        http.request.method = method,
        http.route = route,
        haechi.request_id = request_id,
    );
    let parent = extract_context(headers);
    if parent.span().span_context().is_valid() {
        let _ = span.set_parent(parent);
    }
    span
}

/// Attributes that summarize the request on the server span, from its audit record:
/// status, outcome, tenant, region, upstream, quota outcome, error class and fail events.
/// Looks the span up once and sets everything in one batch (each `OpenTelemetrySpanExt`
/// call is a registry lookup of its own).
pub fn record_request(span: &Span, record: &AuditRecord) {
    let cx = span.context();
    let otel = cx.span();
    if !otel.is_recording() {
        return;
    }
    let mut attrs = Vec::with_capacity(7);
    attrs.push(KeyValue::new(
        attr::HTTP_RESPONSE_STATUS_CODE,
        i64::from(record.status),
    ));
    attrs.push(KeyValue::new(
        attr::HAECHI_OUTCOME,
        record.outcome.as_str().to_string(),
    ));
    let opt = [
        (attr::HAECHI_TENANT, &record.tenant),
        (attr::HAECHI_REGION, &record.region),
        (attr::HAECHI_UPSTREAM, &record.upstream),
        (attr::HAECHI_QUOTA_OUTCOME, &record.quota),
        (attr::ERROR_TYPE, &record.error),
    ];
    for (key, value) in opt {
        if let Some(v) = value {
            attrs.push(KeyValue::new(key, v.clone()));
        }
    }
    otel.set_attributes(attrs);
    for event in &record.fail_events {
        otel.add_event(fail_event_name(event), fail_event_attrs(event));
    }
    if record.status >= 500 {
        otel.set_status(Status::error(
            record.error.clone().unwrap_or_else(|| "error".into()),
        ));
    }
}

/// A fail-open / fail-closed event on the server span, as it happens.
pub fn record_fail_event(span: &Span, event: &FailEvent) {
    span.add_event(fail_event_name(event), fail_event_attrs(event));
}

fn fail_event_name(event: &FailEvent) -> &'static str {
    if event.mode == "fail_closed" {
        "haechi.fail_closed"
    } else {
        "haechi.fail_open"
    }
}

fn fail_event_attrs(event: &FailEvent) -> Vec<KeyValue> {
    vec![
        KeyValue::new(attr::HAECHI_FAIL_MODE, event.mode.clone()),
        KeyValue::new(attr::HAECHI_FAIL_COMPONENT, event.component.clone()),
        KeyValue::new(attr::HAECHI_FAIL_REASON, event.reason.clone()),
    ]
}

/// What the upstream call is, known before sending it.
#[derive(Debug, Clone, Copy, Default)]
pub struct GenAiCall<'a> {
    /// `chat`, `text_completion`, `embeddings`, `generate_content`...
    pub operation: &'a str,
    /// `openai`, `anthropic`, `aws.bedrock`...
    pub provider: &'a str,
    pub request_model: Option<&'a str>,
    /// Upstream name from the config.
    pub upstream: &'a str,
    pub region: Option<&'a str>,
    /// Upstream host.
    pub server_address: Option<&'a str>,
    pub stream: bool,
}

/// What the upstream answered.
#[derive(Debug, Clone, Copy, Default)]
pub struct GenAiResult<'a> {
    pub response_model: Option<&'a str>,
    pub input_tokens: Option<u64>,
    pub output_tokens: Option<u64>,
    pub finish_reasons: &'a [&'a str],
    /// Error class (`timeout`, `429`, `upstream_error`...) when the call failed.
    pub error_type: Option<&'a str>,
}

/// Makes the guardrail and GenAI spans under a request's server span.
///
/// These leaf spans are built with the OpenTelemetry API directly (all attributes in one
/// go, explicit start time) rather than as `tracing` spans: per-attribute dispatch through
/// the tracing bridge cost more than the rest of the span (see docs/audit.md). A disabled
/// tracer (no exporter) makes every call a no-op.
#[derive(Clone, Debug, Default)]
pub struct Tracer {
    inner: Option<SdkTracer>,
}

impl Tracer {
    /// A tracer exporting through `provider`.
    pub fn from_provider(provider: &SdkTracerProvider) -> Self {
        Self {
            inner: Some(provider.tracer("haechi")),
        }
    }

    /// A tracer that records nothing.
    pub fn disabled() -> Self {
        Self::default()
    }

    /// Records a finished guardrail stage (`input`, `output`, `grounding`) that started at
    /// `started`, as a child of `parent`: action, policy, rule ids, finding labels and
    /// counts, and one event per finding (label, offsets, keyed hash; never the value).
    pub fn guardrail(&self, parent: &Span, stage: &str, started: SystemTime, record: &StageRecord) {
        let Some(tracer) = &self.inner else {
            return;
        };
        let cx = parent.context();
        if !cx.span().span_context().is_valid() {
            return;
        }
        let mut attrs = Vec::with_capacity(12);
        attrs.push(KeyValue::new(attr::GUARDRAIL_STAGE, stage.to_string()));
        attrs.push(KeyValue::new(
            attr::GUARDRAIL_DECISION,
            if record.intervened() {
                "intervened"
            } else {
                "allowed"
            },
        ));
        attrs.push(KeyValue::new(attr::GUARDRAIL_ACTION, record.action.clone()));
        if record.shadow_action != record.action {
            attrs.push(KeyValue::new(
                attr::GUARDRAIL_SHADOW_ACTION,
                record.shadow_action.clone(),
            ));
        }
        attrs.push(KeyValue::new(
            attr::GUARDRAIL_POLICY_ID,
            record.policy_id.clone(),
        ));
        attrs.push(KeyValue::new(
            attr::GUARDRAIL_POLICY_VERSION,
            record.policy_version.clone(),
        ));
        if !record.rules.is_empty() {
            attrs.push(KeyValue::new(
                attr::GUARDRAIL_RULE_IDS,
                strings(record.rule_ids()),
            ));
        }
        if !record.labels.is_empty() {
            attrs.push(KeyValue::new(
                attr::GUARDRAIL_FINDING_LABELS,
                strings(record.labels.keys().map(String::as_str)),
            ));
            attrs.push(KeyValue::new(
                attr::GUARDRAIL_FINDING_COUNTS,
                Value::Array(Array::I64(
                    record.labels.values().map(|c| i64::from(*c)).collect(),
                )),
            ));
        }
        let total: i64 = record.labels.values().map(|c| i64::from(*c)).sum();
        attrs.push(KeyValue::new(attr::GUARDRAIL_FINDING_TOTAL, total));
        let name: std::borrow::Cow<'static, str> = match stage {
            "input" => "guardrail input".into(),
            "output" => "guardrail output".into(),
            "grounding" => "guardrail grounding".into(),
            other => format!("guardrail {other}").into(),
        };
        let mut span = tracer
            .span_builder(name)
            .with_kind(SpanKind::Internal)
            .with_start_time(started)
            .with_attributes(attrs)
            .start_with_context(tracer, &cx);
        for f in record.findings.iter().take(MAX_FINDING_EVENTS) {
            let mut kv = vec![
                KeyValue::new(attr::HAECHI_FINDING_RULE, f.rule.clone()),
                KeyValue::new(attr::HAECHI_FINDING_LABEL, f.label.clone()),
                KeyValue::new(
                    attr::HAECHI_FINDING_START,
                    i64::try_from(f.start).unwrap_or(-1),
                ),
                KeyValue::new(attr::HAECHI_FINDING_END, i64::try_from(f.end).unwrap_or(-1)),
            ];
            if let Some(h) = &f.hash {
                kv.push(KeyValue::new(attr::HAECHI_FINDING_HASH, h.clone()));
            }
            span.add_event(attr::GUARDRAIL_FINDING_EVENT, kv);
        }
        span.end();
    }

    /// Starts the GenAI client span of the upstream call, child of `parent`, named
    /// `{operation} {model}` as the GenAI conventions ask. Inject it into the upstream
    /// request with [`GenAiSpan::inject`], then [`GenAiSpan::finish`] it.
    pub fn genai(&self, parent: &Span, call: &GenAiCall) -> GenAiSpan {
        let Some(tracer) = &self.inner else {
            return GenAiSpan::default();
        };
        let parent_cx = parent.context();
        if !parent_cx.span().span_context().is_valid() {
            return GenAiSpan::default();
        }
        let name = match call.request_model {
            Some(model) => format!("{} {model}", call.operation),
            None => call.operation.to_string(),
        };
        let mut attrs = Vec::with_capacity(8);
        attrs.push(KeyValue::new(
            attr::GEN_AI_OPERATION_NAME,
            call.operation.to_string(),
        ));
        attrs.push(KeyValue::new(
            attr::GEN_AI_PROVIDER_NAME,
            call.provider.to_string(),
        ));
        if let Some(m) = call.request_model {
            attrs.push(KeyValue::new(attr::GEN_AI_REQUEST_MODEL, m.to_string()));
        }
        attrs.push(KeyValue::new(attr::GEN_AI_REQUEST_STREAM, call.stream));
        attrs.push(KeyValue::new(
            attr::HAECHI_UPSTREAM,
            call.upstream.to_string(),
        ));
        if let Some(r) = call.region {
            attrs.push(KeyValue::new(attr::HAECHI_REGION, r.to_string()));
        }
        if let Some(a) = call.server_address {
            attrs.push(KeyValue::new(attr::SERVER_ADDRESS, a.to_string()));
        }
        let span = tracer
            .span_builder(name)
            .with_kind(SpanKind::Client)
            .with_attributes(attrs)
            .start_with_context(tracer, &parent_cx);
        let span_context = span.span_context().clone();
        GenAiSpan {
            span: Some(span),
            cx: parent_cx.with_remote_span_context(span_context),
        }
    }
}

/// An open GenAI client span. Ends when finished or dropped.
#[derive(Debug, Default)]
pub struct GenAiSpan {
    span: Option<opentelemetry_sdk::trace::Span>,
    cx: Context,
}

impl GenAiSpan {
    /// Writes `traceparent` (and `tracestate`) naming this span into the upstream request's
    /// headers, replacing the client's, so the upstream continues the same trace.
    pub fn inject(&self, headers: &mut HeaderMap) {
        if self.span.is_some() {
            TraceContextPropagator::new().inject_context(&self.cx, &mut HeaderInjector(headers));
        }
    }

    /// Sets the response attributes and ends the span.
    pub fn finish(mut self, result: &GenAiResult) {
        let Some(mut span) = self.span.take() else {
            return;
        };
        let mut attrs = Vec::with_capacity(5);
        if let Some(m) = result.response_model {
            attrs.push(KeyValue::new(attr::GEN_AI_RESPONSE_MODEL, m.to_string()));
        }
        if let Some(n) = result.input_tokens {
            attrs.push(KeyValue::new(
                attr::GEN_AI_USAGE_INPUT_TOKENS,
                i64::try_from(n).unwrap_or(i64::MAX),
            ));
        }
        if let Some(n) = result.output_tokens {
            attrs.push(KeyValue::new(
                attr::GEN_AI_USAGE_OUTPUT_TOKENS,
                i64::try_from(n).unwrap_or(i64::MAX),
            ));
        }
        if !result.finish_reasons.is_empty() {
            attrs.push(KeyValue::new(
                attr::GEN_AI_RESPONSE_FINISH_REASONS,
                strings(result.finish_reasons.iter().copied()),
            ));
        }
        if let Some(e) = result.error_type {
            attrs.push(KeyValue::new(attr::ERROR_TYPE, e.to_string()));
            span.set_status(Status::error(e.to_string()));
        }
        span.set_attributes(attrs);
        span.end();
    }
}

impl Drop for GenAiSpan {
    fn drop(&mut self) {
        if let Some(mut span) = self.span.take() {
            span.end();
        }
    }
}

fn strings<'a>(items: impl Iterator<Item = &'a str>) -> Value {
    Value::Array(Array::String(
        items.map(|s| StringValue::from(s.to_string())).collect(),
    ))
}
