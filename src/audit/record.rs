//! The audit record: one JSON object per request, one per line of the audit log.
//!
//! Only labels, counts, offsets, ids and keyed hashes go in: a record never holds prompt
//! text, answer text or a matched value. The constructors take an engine [`Decision`] and
//! drop its `rewritten` texts and block `message` on purpose.
//!
//! Every field but the chain fields is optional or defaulted so that the format can grow:
//! readers must ignore fields they do not know, and the chain covers whatever was written
//! (see `log.rs`).

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use super::keyed::KeyedHasher;
use crate::engine::Decision;
use crate::policy::model::Mode;

/// Version of the record layout; bumped when a field changes meaning.
pub const RECORD_VERSION: u32 = 1;

/// Most findings kept per stage in [`StageRecord::findings`]; the counts stay exact.
pub const MAX_FINDINGS_PER_STAGE: usize = 64;

/// How the request ended, as far as an auditor is concerned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Forwarded and answered (possibly with warnings or anonymization).
    Ok,
    /// A guardrail blocked the prompt or the answer.
    Blocked,
    /// A quota refused the request (429).
    QuotaRefused,
    /// No upstream in the tenant's allowed regions (403).
    RegionRefused,
    /// Unknown or missing API key (401).
    Unauthorized,
    /// The client sent something unusable (4xx before forwarding).
    BadRequest,
    /// The upstream failed or timed out.
    UpstreamError,
    /// The gateway failed (including fail-closed refusals of a failed check).
    Error,
    /// The client went away before the answer was complete.
    Cancelled,
    /// A value written by a newer gateway; kept so old verifiers and readers still work.
    #[serde(untagged)]
    Other(String),
}

impl Outcome {
    /// The serialized name (`ok`, `blocked`, ...), without going through serde.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Ok => "ok",
            Self::Blocked => "blocked",
            Self::QuotaRefused => "quota_refused",
            Self::RegionRefused => "region_refused",
            Self::Unauthorized => "unauthorized",
            Self::BadRequest => "bad_request",
            Self::UpstreamError => "upstream_error",
            Self::Error => "error",
            Self::Cancelled => "cancelled",
            Self::Other(s) => s,
        }
    }
}

/// Per-stage guardrail decision, without any text.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StageRecord {
    /// Final action: `allow` | `warn` | `anonymize` | `block`.
    pub action: String,
    /// The action if shadow rules were enforced (differs from `action` only with shadow rules).
    pub shadow_action: String,
    /// Id of the policy that decided.
    pub policy_id: String,
    /// Version (content hash or declared version) of that policy.
    pub policy_version: String,
    /// Rules that fired, in evaluation order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<RuleRecord>,
    /// Finding counts per label over all rules (e.g. `{"EMAIL": 2}`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, u32>,
    /// Up to [`MAX_FINDINGS_PER_STAGE`] findings with offsets and keyed hashes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub findings: Vec<FindingRecord>,
    /// True when `findings` was cut at [`MAX_FINDINGS_PER_STAGE`].
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub findings_truncated: bool,
    /// Raw score of every evaluated detector (e.g. grounding), 0.0..1.0.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub scores: BTreeMap<String, f64>,
    /// Time spent in this stage, milliseconds (remote judges included).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<f64>,
    /// What each `llm_judge` rule came to: `flagged`, `safe`, `fail_open`, `fail_closed`
    /// or `not_run`, with the failure reason and the call's latency.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub judges: Vec<JudgeRecord>,
}

/// One remote judge call of a stage. Never holds the text sent or the judge's answer.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct JudgeRecord {
    /// Rule id.
    pub rule: String,
    /// `flagged`, `safe`, `fail_open`, `fail_closed` or `not_run`.
    pub outcome: String,
    /// For `fail_*`: `timeout`, `connect`, `status`, `parse` or `config`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Duration of the call, milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<f64>,
}

impl JudgeRecord {
    /// The fail event of a judge that failed (`None` when it answered or did not run).
    pub fn fail_event(&self) -> Option<FailEvent> {
        matches!(self.outcome.as_str(), "fail_open" | "fail_closed").then(|| FailEvent {
            mode: self.outcome.clone(),
            component: self.rule.clone(),
            reason: self.reason.clone().unwrap_or_else(|| "error".into()),
        })
    }
}

/// One rule that fired.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RuleRecord {
    /// Rule id from the policy file.
    pub id: String,
    /// Detector name (`pii`, `word`, `grounding`, ...).
    pub detector: String,
    /// What the rule did: `block`, `mask`, ... or `would_block`, ... in shadow mode.
    pub action: String,
    /// Highest finding score.
    pub score: f64,
    /// Number of findings.
    pub count: u32,
}

/// One finding, located but not quoted.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FindingRecord {
    /// Rule id.
    pub rule: String,
    /// Entity or class label (`EMAIL`, `CREDIT_DEBIT_CARD_NUMBER`, ...).
    pub label: String,
    /// Index of the evaluated text (message) the finding is in.
    pub text: usize,
    /// Byte offsets into that text (UTF-8, on char boundaries).
    pub start: usize,
    pub end: usize,
    /// Keyed hash of the matched value (`hmac:` + 16 hex) when a key is configured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hash: Option<String>,
}

impl StageRecord {
    /// Summarizes a decision: labels, counts, rule ids and scores, never text.
    pub fn from_decision(decision: &Decision) -> Self {
        Self::build(decision, None)
    }

    /// Like [`StageRecord::from_decision`], adding a keyed hash of each matched value so
    /// that the same value can be correlated across records. `texts` are the texts the
    /// decision was computed on (same order as given to the engine).
    pub fn from_decision_hashed(decision: &Decision, texts: &[&str], key: &KeyedHasher) -> Self {
        Self::build(decision, Some((texts, key)))
    }

    fn build(decision: &Decision, hashing: Option<(&[&str], &KeyedHasher)>) -> Self {
        let mut rules = Vec::with_capacity(decision.hits.len());
        let mut labels: BTreeMap<String, u32> = BTreeMap::new();
        let mut findings = Vec::new();
        let mut truncated = false;
        for hit in &decision.hits {
            rules.push(RuleRecord {
                id: hit.rule.clone(),
                detector: hit.kind.to_string(),
                action: hit.reported_action(),
                score: f64::from(hit.score),
                count: u32::try_from(hit.findings.len()).unwrap_or(u32::MAX),
            });
            for f in &hit.findings {
                *labels.entry(f.label.clone()).or_insert(0) += 1;
                if findings.len() >= MAX_FINDINGS_PER_STAGE {
                    truncated = true;
                    continue;
                }
                let hash = hashing.and_then(|(texts, key)| {
                    texts
                        .get(f.text)
                        .and_then(|t| t.get(f.start..f.end))
                        .map(|v| key.tag(v.as_bytes()))
                });
                findings.push(FindingRecord {
                    rule: hit.rule.clone(),
                    label: f.label.clone(),
                    text: f.text,
                    start: f.start,
                    end: f.end,
                    hash,
                });
            }
        }
        Self {
            action: decision.action.as_str().to_string(),
            shadow_action: decision.shadow_action.as_str().to_string(),
            policy_id: decision.policy_id.clone(),
            policy_version: decision.policy_version.clone(),
            rules,
            labels,
            findings,
            findings_truncated: truncated,
            scores: decision
                .scores
                .iter()
                .map(|(k, v)| ((*k).to_string(), f64::from(*v)))
                .collect(),
            latency_ms: None,
            judges: decision
                .judges
                .iter()
                .map(|j| JudgeRecord {
                    rule: j.rule.clone(),
                    outcome: j.outcome.to_string(),
                    reason: j.reason.map(str::to_string),
                    latency_ms: j.latency_ms,
                })
                .collect(),
        }
    }

    /// Sets the stage latency.
    pub fn with_latency_ms(mut self, ms: f64) -> Self {
        self.latency_ms = Some(ms);
        self
    }

    /// Ids of the rules that fired, enforced and shadow.
    pub fn rule_ids(&self) -> impl Iterator<Item = &str> {
        self.rules.iter().map(|r| r.id.as_str())
    }

    /// Whether an enforced rule acted (anything but allow).
    pub fn intervened(&self) -> bool {
        self.action != "allow"
    }
}

/// Token usage as reported by the upstream (or counted by the gateway).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Usage {
    /// Prompt tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_tokens: Option<u64>,
    /// Completion tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_tokens: Option<u64>,
    /// True when the gateway estimated the numbers (the upstream reported none).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub estimated: bool,
}

/// Latencies in milliseconds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Latency {
    /// From the first byte of the request to the last byte of the response.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_ms: Option<f64>,
    /// From sending the request upstream to its first response byte (time to first token
    /// for streams).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstream_first_byte_ms: Option<f64>,
    /// From sending the request upstream to its last byte.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstream_total_ms: Option<f64>,
}

/// A failed check or store and what the gateway did about it (the rule's fail mode).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FailEvent {
    /// `fail_open` (let the request through) or `fail_closed` (refused it).
    pub mode: String,
    /// What failed: a rule id, `quota_store`, `pseudonym_vault`, `audit`, ...
    pub component: String,
    /// A short, fixed reason label (`timeout`, `connect`, `error`), never a message that
    /// could echo request content.
    pub reason: String,
}

/// One audit record. Field order is the on-disk order; `prev_hash` and `hash` close it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditRecord {
    /// Layout version ([`RECORD_VERSION`]).
    pub v: u32,
    /// When the request arrived, RFC 3339 UTC with milliseconds (`2025-01-02T03:04:05.678Z`).
    pub time: String,
    /// `x-haechi-request-id` of the request.
    pub request_id: String,
    /// Tenant id; absent in pass-through mode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    /// Which of the tenant's keys was used: a key id or a keyed hash, never the key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
    /// Route label (`chat_completions`, `messages`, `guardrail_apply`, ...).
    pub route: String,
    /// Provider dialect (`openai`, `anthropic`, `bedrock`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    /// Model the client asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// Model the upstream says answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_model: Option<String>,
    /// Upstream name from the config that served the request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstream: Option<String>,
    /// Region of that upstream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// Whether the answer was streamed.
    #[serde(default)]
    pub stream: bool,
    /// HTTP status returned to the client.
    pub status: u16,
    /// How the request ended.
    pub outcome: Outcome,
    /// Input stage decision.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input: Option<StageRecord>,
    /// Output stage decision (includes grounding scores).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<StageRecord>,
    /// Quota outcome (`admitted`, `refused_requests`, `refused_tokens`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quota: Option<String>,
    /// Token usage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
    /// Latencies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency: Option<Latency>,
    /// Fail-open / fail-closed events during the request.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fail_events: Vec<FailEvent>,
    /// Error class when `outcome` is an error (`upstream_timeout`, ...), never a message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// W3C trace id of the request's trace, to jump from the log to the trace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
    /// Hash of the previous record in the chain (64 hex; 64 zeros for the very first).
    /// Set by the log writer; any value given by the caller is replaced.
    #[serde(default)]
    pub prev_hash: String,
    /// SHA-256 (hex) of this record's line without this field. Set by the log writer;
    /// must stay the last field.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub hash: String,
}

impl AuditRecord {
    /// A record with the required fields set and everything else empty; `time` is now.
    pub fn new(
        request_id: impl Into<String>,
        route: impl Into<String>,
        status: u16,
        outcome: Outcome,
    ) -> Self {
        Self {
            v: RECORD_VERSION,
            time: now_rfc3339(),
            request_id: request_id.into(),
            tenant: None,
            key_id: None,
            route: route.into(),
            provider: None,
            model: None,
            response_model: None,
            upstream: None,
            region: None,
            stream: false,
            status,
            outcome,
            input: None,
            output: None,
            quota: None,
            usage: None,
            latency: None,
            fail_events: Vec::new(),
            error: None,
            trace_id: None,
            prev_hash: String::new(),
            hash: String::new(),
        }
    }
}

/// Whether a shadow rule fired in a decision (useful for metrics labels).
pub fn has_shadow_hits(decision: &Decision) -> bool {
    decision.hits.iter().any(|h| h.mode == Mode::Shadow)
}

/// Current time as RFC 3339 UTC with milliseconds.
pub fn now_rfc3339() -> String {
    rfc3339(SystemTime::now())
}

/// `t` as RFC 3339 UTC with milliseconds, e.g. `2025-01-02T03:04:05.678Z`.
pub fn rfc3339(t: SystemTime) -> String {
    let c = Civil::from(t);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        c.year, c.month, c.day, c.hour, c.minute, c.second, c.millis
    )
}

/// Compact UTC timestamp for rotated file names, sortable as text: `20250102T030405678Z`.
pub fn file_stamp(t: SystemTime) -> String {
    let c = Civil::from(t);
    format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}{:03}Z",
        c.year, c.month, c.day, c.hour, c.minute, c.second, c.millis
    )
}

/// The UTC day of `t` as `YYYY-MM-DD` (the prefix of [`rfc3339`]).
pub fn utc_day(t: SystemTime) -> String {
    let c = Civil::from(t);
    format!("{:04}-{:02}-{:02}", c.year, c.month, c.day)
}

/// Broken-down UTC time (proleptic Gregorian; times before 1970 clamp to the epoch).
struct Civil {
    year: i64,
    month: u32,
    day: u32,
    hour: u64,
    minute: u64,
    second: u64,
    millis: u32,
}

impl From<SystemTime> for Civil {
    fn from(t: SystemTime) -> Self {
        let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
        let secs = d.as_secs();
        let days = i64::try_from(secs / 86_400).unwrap_or(0);
        let rem = secs % 86_400;
        // Howard Hinnant's civil_from_days.
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z.rem_euclid(146_097);
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
        let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
        let year = yoe + era * 400 + i64::from(month <= 2);
        Self {
            year,
            month,
            day,
            hour: rem / 3600,
            minute: rem / 60 % 60,
            second: rem % 60,
            millis: d.subsec_millis(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn rfc3339_known_instants() {
        let cases = [
            (0u64, 0u32, "1970-01-01T00:00:00.000Z"),
            (951_782_400, 5, "2000-02-29T00:00:00.005Z"),
            (1_735_787_045, 678, "2025-01-02T03:04:05.678Z"),
            (4_102_444_799, 999, "2099-12-31T23:59:59.999Z"),
        ];
        for (secs, ms, want) in cases {
            let t = UNIX_EPOCH + Duration::from_secs(secs) + Duration::from_millis(ms.into());
            assert_eq!(rfc3339(t), want);
            assert_eq!(utc_day(t), want[..10]);
        }
        let t = UNIX_EPOCH + Duration::from_millis(1_735_787_045_678);
        assert_eq!(file_stamp(t), "20250102T030405678Z");
    }

    #[test]
    fn outcome_as_str_matches_serde() {
        for o in [
            Outcome::Ok,
            Outcome::Blocked,
            Outcome::QuotaRefused,
            Outcome::RegionRefused,
            Outcome::Unauthorized,
            Outcome::BadRequest,
            Outcome::UpstreamError,
            Outcome::Error,
            Outcome::Cancelled,
            Outcome::Other("later".into()),
        ] {
            assert_eq!(serde_json::to_value(&o).unwrap(), o.as_str(), "{o:?}");
        }
    }

    #[test]
    fn unknown_outcome_round_trips() {
        let o: Outcome = serde_json::from_str("\"some_future_outcome\"").unwrap();
        assert_eq!(o, Outcome::Other("some_future_outcome".into()));
        assert_eq!(
            serde_json::to_string(&o).unwrap(),
            "\"some_future_outcome\""
        );
        let q: Outcome = serde_json::from_str("\"quota_refused\"").unwrap();
        assert_eq!(q, Outcome::QuotaRefused);
    }

    #[test]
    fn record_round_trips_and_hash_is_last() {
        let mut r = AuditRecord::new("req_1", "chat_completions", 200, Outcome::Ok);
        r.tenant = Some("acme".into());
        r.usage = Some(Usage {
            input_tokens: Some(10),
            output_tokens: Some(3),
            estimated: false,
        });
        r.prev_hash = "0".repeat(64);
        r.hash = "a".repeat(64);
        let line = serde_json::to_string(&r).unwrap();
        assert!(line.ends_with(&format!(",\"hash\":\"{}\"}}", "a".repeat(64))));
        let back: AuditRecord = serde_json::from_str(&line).unwrap();
        assert_eq!(back, r);
        // Unknown fields from a newer writer are accepted.
        let newer = line.replacen("{", "{\"future\":1,", 1);
        assert!(serde_json::from_str::<AuditRecord>(&newer).is_ok());
    }
}
