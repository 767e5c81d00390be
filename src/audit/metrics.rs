//! Prometheus metrics for `GET /metrics`, on `prometheus-client` (no global registry).
//!
//! # Cardinality
//! Every label value comes from a bounded set: route names, HTTP status codes, stages and
//! actions are fixed vocabularies; tenants, rules and detectors come from configuration;
//! models and finding labels come from requests and policies. Each free dimension is capped
//! ([`Limits`]): once a dimension has seen its cap of distinct values, new values are
//! reported as `other`. Values longer than 96 bytes are `other` too. So the worst case is
//! the product of the caps, never a function of traffic.
//!
//! All names carry the `haechi_` prefix; counters end in `_total`, durations are seconds.

use std::collections::HashSet;
use std::sync::atomic::AtomicU64;
use std::sync::RwLock;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use super::record::StageRecord;

/// Content type of [`Metrics::encode`]'s output (OpenMetrics text, which Prometheus reads).
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Value used when a dimension is over its cap.
pub const OTHER: &str = "other";

/// Caps on distinct values per free label dimension.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub tenants: usize,
    pub models: usize,
    pub rules: usize,
    pub detectors: usize,
    pub labels: usize,
    pub upstreams: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            tenants: 500,
            models: 50,
            rules: 300,
            detectors: 50,
            labels: 100,
            upstreams: 50,
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    tenant: String,
    route: String,
    status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct InterventionLabels {
    rule: String,
    action: String,
    stage: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FindingLabels {
    label: String,
    action: String,
    stage: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BlockLabels {
    tenant: String,
    stage: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DetectorLabels {
    detector: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StageLabels {
    stage: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct UpstreamLabels {
    upstream: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TokenLabels {
    tenant: String,
    model: String,
    direction: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct QuotaLabels {
    tenant: String,
    kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FailLabels {
    component: String,
    mode: String,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

fn latency_histogram() -> Histogram {
    // 10 µs .. ~5 s: detectors run in microseconds, judges and upstreams in seconds.
    Histogram::new(exponential_buckets(0.000_01, 2.5, 15))
}

fn upstream_histogram() -> Histogram {
    // 5 ms .. ~80 s.
    Histogram::new(exponential_buckets(0.005, 2.0, 15))
}

fn score_histogram() -> Histogram {
    Histogram::new((1..=10).map(|i| f64::from(i) / 10.0))
}

/// A capped set of label values for one dimension.
#[derive(Debug)]
struct Cap {
    seen: RwLock<HashSet<String>>,
    max: usize,
}

impl Cap {
    fn new(max: usize) -> Self {
        Self {
            seen: RwLock::new(HashSet::new()),
            max,
        }
    }

    fn get(&self, value: &str) -> String {
        if value.len() > 96 {
            return OTHER.to_string();
        }
        if let Ok(seen) = self.seen.read() {
            if seen.contains(value) {
                return value.to_string();
            }
            if seen.len() >= self.max {
                return OTHER.to_string();
            }
        }
        match self.seen.write() {
            Ok(mut seen) if seen.len() < self.max || seen.contains(value) => {
                seen.insert(value.to_string());
                value.to_string()
            }
            _ => OTHER.to_string(),
        }
    }
}

/// The gateway's metrics. One per process, shared (`Arc<Metrics>`).
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    interventions: Family<InterventionLabels, Counter>,
    findings: Family<FindingLabels, Counter>,
    blocks: Family<BlockLabels, Counter>,
    detector_seconds: HistogramFamily<DetectorLabels>,
    stage_seconds: HistogramFamily<StageLabels>,
    scores: HistogramFamily<DetectorLabels>,
    upstream_seconds: HistogramFamily<UpstreamLabels>,
    ttft_seconds: HistogramFamily<UpstreamLabels>,
    tokens: Family<TokenLabels, Counter>,
    quota_refusals: Family<QuotaLabels, Counter>,
    quota_usage: Family<QuotaLabels, Gauge<f64, AtomicU64>>,
    fail_events: Family<FailLabels, Counter>,
    policy_reloads: Counter,
    policy_reload_failures: Counter,
    audit_write_failures: Counter,
    otel_dropped_spans: Counter,
    tenants: Cap,
    models: Cap,
    rules: Cap,
    detectors: Cap,
    labels: Cap,
    upstreams: Cap,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new(Limits::default())
    }
}

impl Metrics {
    /// Builds and registers every family.
    pub fn new(limits: Limits) -> Self {
        let mut registry = Registry::with_prefix("haechi");
        let m = Self {
            requests: Family::default(),
            interventions: Family::default(),
            findings: Family::default(),
            blocks: Family::default(),
            detector_seconds: Family::new_with_constructor(latency_histogram),
            stage_seconds: Family::new_with_constructor(latency_histogram),
            scores: Family::new_with_constructor(score_histogram),
            upstream_seconds: Family::new_with_constructor(upstream_histogram),
            ttft_seconds: Family::new_with_constructor(upstream_histogram),
            tokens: Family::default(),
            quota_refusals: Family::default(),
            quota_usage: Family::default(),
            fail_events: Family::default(),
            policy_reloads: Counter::default(),
            policy_reload_failures: Counter::default(),
            audit_write_failures: Counter::default(),
            otel_dropped_spans: Counter::default(),
            tenants: Cap::new(limits.tenants),
            models: Cap::new(limits.models),
            rules: Cap::new(limits.rules),
            detectors: Cap::new(limits.detectors),
            labels: Cap::new(limits.labels),
            upstreams: Cap::new(limits.upstreams),
            registry: Registry::default(),
        };
        registry.register(
            "requests",
            "Requests by tenant, route and HTTP status",
            m.requests.clone(),
        );
        registry.register(
            "guardrail_interventions",
            "Rules that fired, by rule, action (would_* in shadow mode) and stage",
            m.interventions.clone(),
        );
        registry.register(
            "guardrail_findings",
            "Findings by label (EMAIL, ...), stage action and stage",
            m.findings.clone(),
        );
        registry.register(
            "guardrail_blocks",
            "Stages that ended in a block, by tenant and stage",
            m.blocks.clone(),
        );
        registry.register(
            "guardrail_detector_seconds",
            "Time spent in each detector",
            m.detector_seconds.clone(),
        );
        registry.register(
            "guardrail_stage_seconds",
            "Latency added by each guardrail stage (input, output, grounding)",
            m.stage_seconds.clone(),
        );
        registry.register(
            "guardrail_score",
            "Raw detector scores (e.g. grounding), 0..1",
            m.scores.clone(),
        );
        registry.register(
            "upstream_seconds",
            "Upstream call duration, request sent to last byte",
            m.upstream_seconds.clone(),
        );
        registry.register(
            "upstream_ttft_seconds",
            "Upstream time to first byte / first token",
            m.ttft_seconds.clone(),
        );
        registry.register(
            "tokens",
            "Tokens by tenant, model and direction (input, output)",
            m.tokens.clone(),
        );
        registry.register(
            "quota_refusals",
            "Requests refused by a quota, by tenant and kind (requests, tokens)",
            m.quota_refusals.clone(),
        );
        registry.register(
            "quota_usage_ratio",
            "Share of the tenant's quota in use in the current window, 0..1",
            m.quota_usage.clone(),
        );
        registry.register(
            "fail_events",
            "Failed checks or stores, by component and fail mode (fail_open, fail_closed)",
            m.fail_events.clone(),
        );
        registry.register(
            "policy_reloads",
            "Successful policy reloads",
            m.policy_reloads.clone(),
        );
        registry.register(
            "policy_reload_failures",
            "Policy reloads rejected (the previous policy stays)",
            m.policy_reload_failures.clone(),
        );
        registry.register(
            "audit_write_failures",
            "Audit records that could not be written",
            m.audit_write_failures.clone(),
        );
        registry.register(
            "otel_dropped_spans",
            "Spans dropped by the OTLP exporter (queue full or collector unreachable)",
            m.otel_dropped_spans.clone(),
        );
        Self { registry, ..m }
    }

    /// One finished request.
    pub fn record_request(&self, tenant: Option<&str>, route: &str, status: u16) {
        self.requests
            .get_or_create(&RequestLabels {
                tenant: self.tenant(tenant),
                route: route.to_string(),
                status: status.to_string(),
            })
            .inc();
    }

    /// One rule that fired. `action` is the reported action (`block`, `would_block`, ...).
    pub fn record_intervention(&self, rule: &str, action: &str, stage: &str) {
        self.interventions
            .get_or_create(&InterventionLabels {
                rule: self.rules.get(rule),
                action: action.to_string(),
                stage: stage.to_string(),
            })
            .inc();
    }

    /// `count` findings of one label in a stage whose final action was `action`.
    pub fn record_findings(&self, label: &str, action: &str, stage: &str, count: u64) {
        self.findings
            .get_or_create(&FindingLabels {
                label: self.labels.get(label),
                action: action.to_string(),
                stage: stage.to_string(),
            })
            .inc_by(count);
    }

    /// A stage that ended in a block, for "top blocked tenants".
    pub fn record_block(&self, tenant: Option<&str>, stage: &str) {
        self.blocks
            .get_or_create(&BlockLabels {
                tenant: self.tenant(tenant),
                stage: stage.to_string(),
            })
            .inc();
    }

    /// Everything a stage decision says: interventions per rule, findings per label,
    /// blocks per tenant, detector scores and the stage latency (when set).
    pub fn record_stage(&self, tenant: Option<&str>, stage: &str, record: &StageRecord) {
        if record.action == "block" {
            self.record_block(tenant, stage);
        }
        for rule in &record.rules {
            self.record_intervention(&rule.id, &rule.action, stage);
        }
        for (label, count) in &record.labels {
            self.record_findings(label, &record.action, stage, u64::from(*count));
        }
        for (detector, score) in &record.scores {
            self.observe_score(detector, *score);
        }
        if let Some(ms) = record.latency_ms {
            self.observe_stage(stage, ms / 1000.0);
        }
    }

    /// Time spent in one detector.
    pub fn observe_detector(&self, detector: &str, secs: f64) {
        self.detector_seconds
            .get_or_create(&DetectorLabels {
                detector: self.detectors.get(detector),
            })
            .observe(secs);
    }

    /// Latency added by one stage (`input`, `output`, `grounding`).
    pub fn observe_stage(&self, stage: &str, secs: f64) {
        self.stage_seconds
            .get_or_create(&StageLabels {
                stage: stage.to_string(),
            })
            .observe(secs);
    }

    /// A detector's raw score (grounding, relevance, toxicity...), 0..1.
    pub fn observe_score(&self, detector: &str, score: f64) {
        self.scores
            .get_or_create(&DetectorLabels {
                detector: self.detectors.get(detector),
            })
            .observe(score);
    }

    /// Upstream call duration and time to first byte (seconds).
    pub fn observe_upstream(&self, upstream: &str, total_secs: f64, first_byte_secs: Option<f64>) {
        let labels = UpstreamLabels {
            upstream: self.upstreams.get(upstream),
        };
        self.upstream_seconds
            .get_or_create(&labels)
            .observe(total_secs);
        if let Some(t) = first_byte_secs {
            self.ttft_seconds.get_or_create(&labels).observe(t);
        }
    }

    /// Token usage of one request.
    pub fn record_tokens(&self, tenant: Option<&str>, model: &str, input: u64, output: u64) {
        let tenant = self.tenant(tenant);
        let model = self.models.get(model);
        for (direction, n) in [("input", input), ("output", output)] {
            self.tokens
                .get_or_create(&TokenLabels {
                    tenant: tenant.clone(),
                    model: model.clone(),
                    direction: direction.to_string(),
                })
                .inc_by(n);
        }
    }

    /// A request refused by a quota; `kind` is `requests` or `tokens`.
    pub fn record_quota_refusal(&self, tenant: Option<&str>, kind: &str) {
        self.quota_refusals
            .get_or_create(&QuotaLabels {
                tenant: self.tenant(tenant),
                kind: kind.to_string(),
            })
            .inc();
    }

    /// Current use of a tenant's quota (0..1) for the dashboards.
    pub fn set_quota_usage(&self, tenant: Option<&str>, kind: &str, ratio: f64) {
        self.quota_usage
            .get_or_create(&QuotaLabels {
                tenant: self.tenant(tenant),
                kind: kind.to_string(),
            })
            .set(ratio);
    }

    /// A failed check or store; `mode` is `fail_open` or `fail_closed`.
    pub fn record_fail_event(&self, component: &str, mode: &str) {
        self.fail_events
            .get_or_create(&FailLabels {
                component: self.rules.get(component),
                mode: mode.to_string(),
            })
            .inc();
    }

    /// A policy reload attempt.
    pub fn record_policy_reload(&self, ok: bool) {
        if ok {
            self.policy_reloads.inc();
        } else {
            self.policy_reload_failures.inc();
        }
    }

    /// The audit-write-failure counter, to hand to [`super::log::AuditLogOptions`].
    pub fn audit_write_failures(&self) -> Counter {
        self.audit_write_failures.clone()
    }

    /// The dropped-span counter, to hand to [`super::telemetry::init_tracing`].
    pub fn otel_dropped_spans(&self) -> Counter {
        self.otel_dropped_spans.clone()
    }

    /// The registry in OpenMetrics text format ([`CONTENT_TYPE`]).
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }

    fn tenant(&self, tenant: Option<&str>) -> String {
        match tenant {
            Some(t) => self.tenants.get(t),
            None => "none".to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_expected_series() {
        let m = Metrics::default();
        m.record_request(Some("acme"), "chat_completions", 200);
        m.record_request(None, "messages", 429);
        m.record_intervention("pii-in", "pseudonymize", "input");
        m.record_findings("EMAIL", "anonymize", "input", 2);
        m.observe_detector("pii", 0.000_2);
        m.observe_upstream("seoul", 1.5, Some(0.3));
        m.record_tokens(Some("acme"), "gpt-4o-mini", 10, 5);
        m.record_quota_refusal(Some("acme"), "tokens");
        m.record_policy_reload(true);
        m.record_policy_reload(false);
        m.audit_write_failures().inc();
        m.otel_dropped_spans().inc_by(3);
        let text = m.encode();
        for want in [
            r#"haechi_requests_total{tenant="acme",route="chat_completions",status="200"} 1"#,
            r#"haechi_requests_total{tenant="none",route="messages",status="429"} 1"#,
            r#"haechi_guardrail_interventions_total{rule="pii-in",action="pseudonymize",stage="input"} 1"#,
            r#"haechi_guardrail_findings_total{label="EMAIL",action="anonymize",stage="input"} 2"#,
            r#"haechi_guardrail_detector_seconds_count{detector="pii"} 1"#,
            r#"haechi_upstream_ttft_seconds_count{upstream="seoul"} 1"#,
            r#"haechi_tokens_total{tenant="acme",model="gpt-4o-mini",direction="output"} 5"#,
            r#"haechi_quota_refusals_total{tenant="acme",kind="tokens"} 1"#,
            "haechi_policy_reloads_total 1",
            "haechi_policy_reload_failures_total 1",
            "haechi_audit_write_failures_total 1",
            "haechi_otel_dropped_spans_total 3",
        ] {
            assert!(text.contains(want), "missing `{want}` in\n{text}");
        }
        assert!(text.ends_with("# EOF\n"));
    }

    #[test]
    fn free_dimensions_are_capped() {
        let m = Metrics::new(Limits {
            models: 2,
            ..Limits::default()
        });
        for model in ["a", "b", "c", "d", "a"] {
            m.record_tokens(Some("t"), model, 1, 0);
        }
        m.record_tokens(Some("t"), &"x".repeat(200), 1, 0);
        let text = m.encode();
        assert!(text.contains(r#"model="a",direction="input"} 2"#), "{text}");
        assert!(text.contains(r#"model="b",direction="input"} 1"#));
        assert!(
            text.contains(r#"model="other",direction="input"} 3"#),
            "{text}"
        );
        assert!(!text.contains(r#"model="c""#));
    }
}
