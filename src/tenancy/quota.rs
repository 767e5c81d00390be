//! Quotas: the [`QuotaStore`] trait, the limits it enforces and the outcome it reports.
//!
//! # Algorithm and error bounds
//!
//! Each *scope* (the tenant, optionally one key, optionally one model) has up to four
//! limits, all checked and committed together, atomically (all scopes or none):
//!
//! - **requests per minute** and **tokens per minute**: a token bucket in its GCRA /
//!   "leaky bucket as a meter" form. The state is one `level` (units in use) and the time
//!   it was last updated; the level drains continuously at `limit / 60 s`. A request of
//!   cost `n` is admitted iff `level + n <= limit`. This is exact: in any interval of
//!   length `t` the admitted cost is at most `limit + limit * t / 60 s` (a full bucket
//!   plus its refill), and never more than `limit` at one instant; there is no
//!   fixed-window boundary burst. The level is an `f64` (53-bit mantissa), so counts are
//!   exact up to 2^53 and the drain is exact to well under one unit.
//! - **tokens per day** and **cost per calendar month**: fixed windows in UTC (day index;
//!   `year * 12 + month - 1`). Counts are exact integers within a window; the window
//!   resets at UTC midnight / the first of the month.
//!
//! Admission reserves one request plus an *estimate* of tokens (prompt estimate from
//! [`crate::tenancy::tokens`] plus `max_tokens` or a default) and its estimated cost.
//! [`QuotaStore::settle`] replaces the estimate with the usage the upstream reported
//! (refunding or charging the difference). Token limits therefore hold exactly on
//! *reservations*; actual usage can exceed a token limit only by the sum of
//! `actual - estimate` over requests in flight, which is zero when the answer estimate
//! is the client's `max_tokens` and the prompt estimate is an upper bound. A settlement
//! that arrives after its day or month window closed is dropped (the closed window no
//! longer matters; the new window is not charged for an old request).
//!
//! Costs are in micro-USD (`1e-6` USD) as `u64`.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use futures_util::future::BoxFuture;
use schemars::JsonSchema;
use serde::Deserialize;

/// The length of the per-minute windows in microseconds.
pub const MINUTE_US: f64 = 60_000_000.0;

/// Slack for float comparisons of bucket levels (units, not microseconds).
pub(crate) const EPS: f64 = 1e-6;

/// Limits of one scope. Absent means unlimited.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Requests per minute (token bucket, refills continuously).
    #[serde(default)]
    pub requests_per_minute: Option<u64>,
    /// Input + output tokens per minute (token bucket, refills continuously).
    #[serde(default)]
    pub tokens_per_minute: Option<u64>,
    /// Input + output tokens per UTC day (fixed window).
    #[serde(default)]
    pub tokens_per_day: Option<u64>,
    /// Cost budget per UTC calendar month in USD, from the price table.
    #[serde(default)]
    pub monthly_budget_usd: Option<f64>,
}

impl Limits {
    /// Whether no limit is set.
    pub fn is_unlimited(&self) -> bool {
        self.requests_per_minute.is_none()
            && self.tokens_per_minute.is_none()
            && self.tokens_per_day.is_none()
            && self.monthly_budget_usd.is_none()
    }

    /// The monthly budget in micro-USD.
    pub fn budget_micros(&self) -> Option<u64> {
        self.monthly_budget_usd.map(usd_to_micros)
    }

    /// These limits divided among `parts` replicas (rounded down, at least 1 where set);
    /// used for the local fallback limiter.
    pub fn divided(&self, parts: u32) -> Limits {
        let p = u64::from(parts.max(1));
        let div = |v: Option<u64>| v.map(|v| if v == 0 { 0 } else { (v / p).max(1) });
        Limits {
            requests_per_minute: div(self.requests_per_minute),
            tokens_per_minute: div(self.tokens_per_minute),
            tokens_per_day: div(self.tokens_per_day),
            monthly_budget_usd: self.monthly_budget_usd.map(|b| b / p as f64),
        }
    }
}

/// A tenant's quotas as written in the gateway config: tenant-wide limits, optional
/// limits that apply to each key separately, and optional limits per model.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct QuotaSpec {
    #[serde(default)]
    pub requests_per_minute: Option<u64>,
    #[serde(default)]
    pub tokens_per_minute: Option<u64>,
    #[serde(default)]
    pub tokens_per_day: Option<u64>,
    #[serde(default)]
    pub monthly_budget_usd: Option<f64>,
    /// Limits applied to each API key of the tenant on its own.
    #[serde(default)]
    pub per_key: Option<Limits>,
    /// Limits applied to each named model on its own (tenant-wide per model).
    #[serde(default)]
    pub per_model: BTreeMap<String, Limits>,
}

impl QuotaSpec {
    /// The tenant-wide limits.
    pub fn tenant_limits(&self) -> Limits {
        Limits {
            requests_per_minute: self.requests_per_minute,
            tokens_per_minute: self.tokens_per_minute,
            tokens_per_day: self.tokens_per_day,
            monthly_budget_usd: self.monthly_budget_usd,
        }
    }
}

/// Price of a model in USD per million tokens.
#[derive(Debug, Clone, Copy, Default, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Price {
    pub input_per_mtok: f64,
    pub output_per_mtok: f64,
}

/// Per-model price table from the config. Models are matched exactly, then by the
/// longest configured prefix (so `gpt-4o` prices `gpt-4o-2024-08-06`).
#[derive(Debug, Clone, Default, PartialEq, Deserialize, JsonSchema)]
#[serde(transparent)]
pub struct PriceTable(pub BTreeMap<String, Price>);

impl PriceTable {
    /// The price of a model, if configured.
    pub fn price(&self, model: &str) -> Option<Price> {
        if let Some(p) = self.0.get(model) {
            return Some(*p);
        }
        self.0
            .iter()
            .filter(|(k, _)| model.starts_with(k.as_str()))
            .max_by_key(|(k, _)| k.len())
            .map(|(_, p)| *p)
    }

    /// Cost in micro-USD of a call (0 for an unpriced model), rounded up.
    pub fn cost_micros(&self, model: &str, input_tokens: u64, output_tokens: u64) -> u64 {
        // tokens * USD per 1e6 tokens * 1e6 micro-USD per USD = tokens * price.
        self.price(model).map_or(0, |p| {
            let c =
                input_tokens as f64 * p.input_per_mtok + output_tokens as f64 * p.output_per_mtok;
            c.max(0.0).ceil() as u64
        })
    }
}

fn usd_to_micros(usd: f64) -> u64 {
    (usd.max(0.0) * 1e6).round() as u64
}

/// Which scope a limit belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Scope {
    Tenant,
    Key(String),
    Model(String),
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scope::Tenant => f.write_str("tenant"),
            Scope::Key(k) => write!(f, "key:{k}"),
            Scope::Model(m) => write!(f, "model:{m}"),
        }
    }
}

/// One scope with its limits.
#[derive(Debug, Clone, PartialEq)]
pub struct ScopedLimits {
    pub scope: Scope,
    pub limits: Limits,
}

/// Which limit refused a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LimitKind {
    RequestsPerMinute,
    TokensPerMinute,
    TokensPerDay,
    MonthlyBudget,
}

impl LimitKind {
    /// Stable name for audit records and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            LimitKind::RequestsPerMinute => "requests_per_minute",
            LimitKind::TokensPerMinute => "tokens_per_minute",
            LimitKind::TokensPerDay => "tokens_per_day",
            LimitKind::MonthlyBudget => "monthly_budget",
        }
    }

    pub(crate) fn from_code(code: i64) -> Option<Self> {
        match code {
            1 => Some(LimitKind::RequestsPerMinute),
            2 => Some(LimitKind::TokensPerMinute),
            3 => Some(LimitKind::TokensPerDay),
            4 => Some(LimitKind::MonthlyBudget),
            _ => None,
        }
    }
}

/// One request asking to be admitted.
#[derive(Debug, Clone, PartialEq)]
pub struct Admission {
    pub tenant: String,
    /// Estimated input + output tokens (at least 1).
    pub tokens: u64,
    /// Estimated cost in micro-USD.
    pub cost_micros: u64,
    /// The scopes to check, tenant first. Scopes without limits are left out.
    pub scopes: Vec<ScopedLimits>,
}

impl Admission {
    /// Builds the admission of one request from the tenant's quota spec: the tenant
    /// scope, the key scope when `per_key` is set, the model scope when the model has
    /// its own limits.
    pub fn new(
        tenant: &str,
        key_id: Option<&str>,
        model: &str,
        tokens: u64,
        cost_micros: u64,
        spec: &QuotaSpec,
    ) -> Self {
        let mut scopes = Vec::with_capacity(3);
        let tl = spec.tenant_limits();
        if !tl.is_unlimited() {
            scopes.push(ScopedLimits {
                scope: Scope::Tenant,
                limits: tl,
            });
        }
        if let (Some(k), Some(l)) = (key_id, spec.per_key.as_ref()) {
            if !l.is_unlimited() {
                scopes.push(ScopedLimits {
                    scope: Scope::Key(k.to_owned()),
                    limits: l.clone(),
                });
            }
        }
        if let Some(l) = spec.per_model.get(model) {
            if !l.is_unlimited() {
                scopes.push(ScopedLimits {
                    scope: Scope::Model(model.to_owned()),
                    limits: l.clone(),
                });
            }
        }
        Self {
            tenant: tenant.to_owned(),
            tokens: tokens.max(1),
            cost_micros,
            scopes,
        }
    }
}

/// Limit, remaining and time to full reset of one per-minute limit; the figures of
/// OpenAI's `x-ratelimit-{limit,remaining,reset}-{requests,tokens}` headers. When several
/// scopes limit the same thing, the one with the least remaining is reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateStatus {
    pub limit: u64,
    pub remaining: u64,
    /// Time until the bucket is full again.
    pub reset: Duration,
}

impl RateStatus {
    /// The reset in OpenAI's header format (`"20ms"`, `"1s"`, `"6m0s"`, `"1.5s"`).
    pub fn reset_header(&self) -> String {
        format_reset(self.reset)
    }
}

/// Formats a duration like OpenAI's `x-ratelimit-reset-*` values.
pub fn format_reset(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 1000 {
        return format!("{ms}ms");
    }
    let secs = d.as_secs_f64();
    if secs < 60.0 {
        let s = (secs * 1000.0).round() / 1000.0;
        return format!("{s}s");
    }
    let total = d.as_secs();
    let (h, m, s) = (total / 3600, (total % 3600) / 60, total % 60);
    if h > 0 {
        format!("{h}h{m}m{s}s")
    } else {
        format!("{m}m{s}s")
    }
}

/// A refusal: which scope and limit, and when to retry (`None`: the request can never
/// fit, e.g. its token estimate exceeds the limit itself).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub scope: Scope,
    pub limit: LimitKind,
    pub retry_after: Option<Duration>,
}

impl Refusal {
    /// `Retry-After` in whole seconds, rounded up (at least 1); `None` when the request
    /// can never fit.
    pub fn retry_after_secs(&self) -> Option<u64> {
        self.retry_after
            .map(|d| d.as_micros().div_ceil(1_000_000).max(1) as u64)
    }
}

/// Which limiter decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// The configured store (memory, or Redis).
    Primary,
    /// The local per-replica limiter, because the shared store was unreachable
    /// (`FailMode::Open`). Audit records should say so.
    LocalFallback,
}

/// What a store reserved for one admitted request; hand it back to
/// [`QuotaStore::settle`].
#[derive(Debug, Clone, PartialEq)]
pub struct Reservation {
    pub(crate) tenant: String,
    pub(crate) scopes: Vec<ScopedLimits>,
    pub(crate) tokens: u64,
    pub(crate) cost_micros: u64,
    pub(crate) day: i64,
    pub(crate) month: i64,
    pub(crate) backend: Backend,
}

impl Reservation {
    /// Tokens reserved.
    pub fn tokens(&self) -> u64 {
        self.tokens
    }
    /// Cost reserved in micro-USD.
    pub fn cost_micros(&self) -> u64 {
        self.cost_micros
    }
    /// Which limiter made the reservation.
    pub fn backend(&self) -> Backend {
        self.backend
    }
}

/// Admitted with a reservation, or refused.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    Admitted(Reservation),
    Refused(Refusal),
}

/// The result of one admission.
#[derive(Debug, Clone, PartialEq)]
pub struct AdmitOutcome {
    pub verdict: Verdict,
    /// Tightest requests-per-minute status, if any scope limits requests.
    pub requests: Option<RateStatus>,
    /// Tightest tokens-per-minute status, if any scope limits tokens per minute.
    pub tokens: Option<RateStatus>,
    /// Which limiter decided (`LocalFallback` when Redis was unreachable in open mode).
    pub backend: Backend,
}

impl AdmitOutcome {
    /// The reservation when admitted.
    pub fn reservation(&self) -> Option<&Reservation> {
        match &self.verdict {
            Verdict::Admitted(r) => Some(r),
            Verdict::Refused(_) => None,
        }
    }

    /// The refusal when refused.
    pub fn refusal(&self) -> Option<&Refusal> {
        match &self.verdict {
            Verdict::Admitted(_) => None,
            Verdict::Refused(r) => Some(r),
        }
    }

    /// Whether the request was admitted.
    pub fn is_admitted(&self) -> bool {
        matches!(self.verdict, Verdict::Admitted(_))
    }
}

/// Errors of a quota store.
#[derive(Debug, thiserror::Error)]
pub enum QuotaError {
    /// The shared store is unreachable and the fail mode is closed (answer 503).
    #[error("quota store unavailable: {0}")]
    Unavailable(String),
    /// The store answered something unexpected.
    #[error("quota store protocol error: {0}")]
    Protocol(String),
    /// The store could not be set up (bad URL, bad settings).
    #[error("quota store config error: {0}")]
    Config(String),
}

/// A quota store shared by all requests of a gateway process. Object safe, so the
/// gateway can hold an `Arc<dyn QuotaStore>` chosen by config.
pub trait QuotaStore: Send + Sync {
    /// Reserves one request plus `req.tokens` tokens and `req.cost_micros` against every
    /// scope of `req`, all or nothing.
    fn admit<'a>(&'a self, req: &'a Admission) -> BoxFuture<'a, Result<AdmitOutcome, QuotaError>>;

    /// Replaces a reservation's estimate by the usage actually reported.
    fn settle<'a>(
        &'a self,
        reservation: &'a Reservation,
        actual_tokens: u64,
        actual_cost_micros: u64,
    ) -> BoxFuture<'a, Result<(), QuotaError>>;

    /// How many admissions and settlements were decided locally or failed because the
    /// shared store was unreachable (a counter for a metric). 0 for stores that cannot
    /// fail.
    fn fallback_count(&self) -> u64 {
        0
    }
}

/// The state of a per-minute bucket: `level` units in use at time `at_us`.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct Meter {
    pub level: f64,
    pub at_us: u64,
}

impl Meter {
    /// The level drained to `now_us` for a bucket of `limit` per minute.
    pub fn level_at(&self, now_us: u64, limit: u64) -> f64 {
        let elapsed = now_us.saturating_sub(self.at_us) as f64;
        (self.level - elapsed * limit as f64 / MINUTE_US).max(0.0)
    }

    /// Status of a bucket at a level.
    pub fn status(level: f64, limit: u64) -> RateStatus {
        let remaining = ((limit as f64 - level + EPS).floor()).max(0.0) as u64;
        RateStatus {
            limit,
            remaining,
            reset: Self::drain_time(level, limit),
        }
    }

    /// Time for `excess` units to drain from a bucket of `limit` per minute.
    pub fn drain_time(excess: f64, limit: u64) -> Duration {
        if limit == 0 || excess <= 0.0 {
            return Duration::ZERO;
        }
        Duration::from_micros((excess * MINUTE_US / limit as f64).ceil() as u64)
    }
}

/// Keeps the tightest status (least remaining, then longest reset).
pub(crate) fn tighter(cur: Option<RateStatus>, new: RateStatus) -> Option<RateStatus> {
    match cur {
        Some(c)
            if (c.remaining, std::cmp::Reverse(c.reset))
                <= (new.remaining, std::cmp::Reverse(new.reset)) =>
        {
            Some(c)
        }
        _ => Some(new),
    }
}

/// Keeps the refusal with the longest wait (`None`, never, is the longest).
pub(crate) fn worse(cur: Option<Refusal>, new: Refusal) -> Option<Refusal> {
    match cur {
        None => Some(new),
        Some(c) => {
            let c_longer = match (c.retry_after, new.retry_after) {
                (None, _) => true,
                (Some(_), None) => false,
                (Some(a), Some(b)) => a >= b,
            };
            if c_longer {
                Some(c)
            } else {
                Some(new)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn price_table_prefix_and_cost() {
        let mut t = BTreeMap::new();
        t.insert(
            "gpt-4o".to_owned(),
            Price {
                input_per_mtok: 2.5,
                output_per_mtok: 10.0,
            },
        );
        t.insert(
            "gpt-4o-mini".to_owned(),
            Price {
                input_per_mtok: 0.15,
                output_per_mtok: 0.6,
            },
        );
        let t = PriceTable(t);
        // 1000 in * 2.5 + 100 out * 10 = 3500 micro-USD.
        assert_eq!(t.cost_micros("gpt-4o-2024-08-06", 1000, 100), 3500);
        // Longest prefix wins: 1000 * 0.15 + 1000 * 0.6 = 750.
        assert_eq!(t.cost_micros("gpt-4o-mini-2024-07-18", 1000, 1000), 750);
        assert_eq!(t.cost_micros("claude-3", 1000, 1000), 0);
        // Rounds up: 1 token at 0.15 → 1 micro-USD.
        assert_eq!(t.cost_micros("gpt-4o-mini", 1, 0), 1);
    }

    #[test]
    fn reset_format() {
        let cases = [
            (Duration::from_millis(20), "20ms"),
            (Duration::from_secs(1), "1s"),
            (Duration::from_millis(1500), "1.5s"),
            (Duration::from_secs(360), "6m0s"),
            (Duration::from_secs(3661), "1h1m1s"),
        ];
        for (d, want) in cases {
            assert_eq!(format_reset(d), want);
        }
    }

    #[test]
    fn retry_after_rounds_up() {
        let r = |d: Option<Duration>| Refusal {
            scope: Scope::Tenant,
            limit: LimitKind::TokensPerDay,
            retry_after: d,
        };
        let cases = [
            (Some(Duration::ZERO), Some(1)),
            (Some(Duration::from_millis(1)), Some(1)),
            (Some(Duration::from_millis(1001)), Some(2)),
            (Some(Duration::from_secs(60)), Some(60)),
            (None, None),
        ];
        for (d, want) in cases {
            assert_eq!(r(d).retry_after_secs(), want, "{d:?}");
        }
    }

    #[test]
    fn admission_scopes_follow_spec() {
        let mut spec = QuotaSpec {
            requests_per_minute: Some(10),
            ..Default::default()
        };
        spec.per_key = Some(Limits {
            tokens_per_minute: Some(5),
            ..Default::default()
        });
        spec.per_model.insert(
            "gpt-4o".into(),
            Limits {
                tokens_per_day: Some(9),
                ..Default::default()
            },
        );
        let a = Admission::new("acme", Some("k1"), "gpt-4o", 0, 0, &spec);
        let scopes: Vec<_> = a.scopes.iter().map(|s| s.scope.clone()).collect();
        assert_eq!(
            scopes,
            vec![
                Scope::Tenant,
                Scope::Key("k1".into()),
                Scope::Model("gpt-4o".into())
            ]
        );
        assert_eq!(a.tokens, 1, "at least one token is reserved");
        let b = Admission::new("acme", None, "other", 3, 0, &spec);
        assert_eq!(b.scopes.len(), 1);
    }

    #[test]
    fn limits_divided_for_fallback() {
        let l = Limits {
            requests_per_minute: Some(10),
            tokens_per_minute: Some(1),
            tokens_per_day: None,
            monthly_budget_usd: Some(9.0),
        };
        let d = l.divided(3);
        assert_eq!(d.requests_per_minute, Some(3));
        assert_eq!(d.tokens_per_minute, Some(1));
        assert_eq!(d.monthly_budget_usd, Some(3.0));
    }

    #[test]
    fn meter_drains_linearly() {
        let m = Meter {
            level: 60.0,
            at_us: 0,
        };
        // 60 per minute drains one unit per second.
        assert!((m.level_at(1_000_000, 60) - 59.0).abs() < 1e-9);
        assert_eq!(m.level_at(120_000_000, 60), 0.0);
        let s = Meter::status(59.0, 60);
        assert_eq!((s.remaining, s.reset), (1, Duration::from_secs(59)));
    }
}
