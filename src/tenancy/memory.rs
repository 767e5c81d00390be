//! In-memory quota backend: the embedded default, and the local limiter the Redis
//! backend falls back to in open fail mode.
//!
//! Exact under concurrency: all scopes of one tenant live in one shard behind one
//! mutex, so a check and its commit are one critical section (a few hundred
//! nanoseconds, never held across an `.await`). Memory is bounded by the config: scopes
//! exist only for configured tenants, their keys and the models that have their own
//! limits. The algorithm is the one described in [`crate::tenancy::quota`]; the Redis
//! Lua script implements the same arithmetic.

use std::collections::hash_map::DefaultHasher;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex};

use futures_util::future::BoxFuture;

use super::clock::{self, Clock, SystemClock};
use super::quota::{
    tighter, worse, Admission, AdmitOutcome, Backend, LimitKind, Limits, Meter, QuotaError,
    QuotaStore, RateStatus, Refusal, Reservation, Scope, Verdict, EPS,
};

const SHARDS: usize = 32;

/// State of one scope.
#[derive(Debug, Default, Clone)]
struct ScopeState {
    req: Meter,
    tok: Meter,
    /// (day index, tokens used that day)
    day: (i64, u64),
    /// (month index, micro-USD used that month)
    month: (i64, u64),
}

#[derive(Debug, Default)]
struct TenantState {
    tenant: ScopeState,
    keys: HashMap<String, ScopeState>,
    models: HashMap<String, ScopeState>,
}

impl TenantState {
    fn get(&self, scope: &Scope) -> Option<&ScopeState> {
        match scope {
            Scope::Tenant => Some(&self.tenant),
            Scope::Key(k) => self.keys.get(k),
            Scope::Model(m) => self.models.get(m),
        }
    }

    fn get_mut(&mut self, scope: &Scope) -> &mut ScopeState {
        match scope {
            Scope::Tenant => &mut self.tenant,
            Scope::Key(k) => entry(&mut self.keys, k),
            Scope::Model(m) => entry(&mut self.models, m),
        }
    }
}

fn entry<'a>(map: &'a mut HashMap<String, ScopeState>, k: &str) -> &'a mut ScopeState {
    if !map.contains_key(k) {
        map.insert(k.to_owned(), ScopeState::default());
    }
    map.get_mut(k)
        .unwrap_or_else(|| unreachable!("inserted above"))
}

/// Time-dependent context of one decision.
#[derive(Debug, Clone, Copy)]
struct Now {
    us: u64,
    day: i64,
    month: i64,
}

impl Now {
    fn at(us: u64) -> Self {
        Self {
            us,
            day: clock::day_index(us),
            month: clock::month_index(us),
        }
    }
}

/// Checks one scope without changing it; records refusals.
fn check(
    scope: &Scope,
    st: Option<&ScopeState>,
    l: &Limits,
    n: u64,
    cost: u64,
    now: Now,
    refusal: &mut Option<Refusal>,
) {
    let empty = ScopeState::default();
    let st = st.unwrap_or(&empty);
    let mut refuse = |limit: LimitKind, retry_after| {
        *refusal = worse(
            refusal.take(),
            Refusal {
                scope: scope.clone(),
                limit,
                retry_after,
            },
        );
    };
    if let Some(rpm) = l.requests_per_minute {
        let lv = st.req.level_at(now.us, rpm);
        if lv + 1.0 > rpm as f64 + EPS {
            let retry = (rpm > 0).then(|| Meter::drain_time(lv + 1.0 - rpm as f64, rpm));
            refuse(LimitKind::RequestsPerMinute, retry);
        }
    }
    if let Some(tpm) = l.tokens_per_minute {
        let lv = st.tok.level_at(now.us, tpm);
        if n > tpm {
            refuse(LimitKind::TokensPerMinute, None);
        } else if lv + n as f64 > tpm as f64 + EPS {
            refuse(
                LimitKind::TokensPerMinute,
                Some(Meter::drain_time(lv + n as f64 - tpm as f64, tpm)),
            );
        }
    }
    if let Some(tpd) = l.tokens_per_day {
        let used = if st.day.0 == now.day { st.day.1 } else { 0 };
        if n > tpd {
            refuse(LimitKind::TokensPerDay, None);
        } else if used.saturating_add(n) > tpd {
            refuse(LimitKind::TokensPerDay, Some(clock::until_next_day(now.us)));
        }
    }
    if let Some(budget) = l.budget_micros() {
        let used = if st.month.0 == now.month {
            st.month.1
        } else {
            0
        };
        if cost > budget {
            refuse(LimitKind::MonthlyBudget, None);
        } else if used >= budget || used.saturating_add(cost) > budget {
            refuse(
                LimitKind::MonthlyBudget,
                Some(clock::until_next_month(now.us)),
            );
        }
    }
}

/// Commits an admitted request to one scope.
fn commit(st: &mut ScopeState, l: &Limits, n: u64, cost: u64, now: Now) {
    if let Some(rpm) = l.requests_per_minute {
        st.req = Meter {
            level: st.req.level_at(now.us, rpm) + 1.0,
            at_us: now.us.max(st.req.at_us),
        };
    }
    if let Some(tpm) = l.tokens_per_minute {
        st.tok = Meter {
            level: st.tok.level_at(now.us, tpm) + n as f64,
            at_us: now.us.max(st.tok.at_us),
        };
    }
    if l.tokens_per_day.is_some() {
        let used = if st.day.0 == now.day { st.day.1 } else { 0 };
        st.day = (now.day, used.saturating_add(n));
    }
    if l.monthly_budget_usd.is_some() {
        let used = if st.month.0 == now.month {
            st.month.1
        } else {
            0
        };
        st.month = (now.month, used.saturating_add(cost));
    }
}

/// Per-minute statuses of one scope at its current state.
fn status(
    st: Option<&ScopeState>,
    l: &Limits,
    now: Now,
    req: &mut Option<RateStatus>,
    tok: &mut Option<RateStatus>,
) {
    let empty = ScopeState::default();
    let st = st.unwrap_or(&empty);
    if let Some(rpm) = l.requests_per_minute {
        *req = tighter(*req, Meter::status(st.req.level_at(now.us, rpm), rpm));
    }
    if let Some(tpm) = l.tokens_per_minute {
        *tok = tighter(*tok, Meter::status(st.tok.level_at(now.us, tpm), tpm));
    }
}

fn add_signed(v: u64, d: i64) -> u64 {
    if d >= 0 {
        v.saturating_add(d as u64)
    } else {
        v.saturating_sub(d.unsigned_abs())
    }
}

/// Replaces an estimate by actual usage in one scope.
fn adjust(st: &mut ScopeState, l: &Limits, dtok: i64, dcost: i64, now: Now, res: &Reservation) {
    if let Some(tpm) = l.tokens_per_minute {
        let lv = (st.tok.level_at(now.us, tpm) + dtok as f64).max(0.0);
        st.tok = Meter {
            level: lv,
            at_us: now.us.max(st.tok.at_us),
        };
    }
    if l.tokens_per_day.is_some() && st.day.0 == res.day {
        st.day.1 = add_signed(st.day.1, dtok);
    }
    if l.monthly_budget_usd.is_some() && st.month.0 == res.month {
        st.month.1 = add_signed(st.month.1, dcost);
    }
}

/// The in-memory quota store.
#[derive(Debug)]
pub struct MemoryQuota {
    shards: Box<[Mutex<HashMap<String, TenantState>>]>,
    clock: Arc<dyn Clock>,
    backend: Backend,
}

impl Default for MemoryQuota {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryQuota {
    /// A store on the system clock.
    pub fn new() -> Self {
        Self::with_clock(Arc::new(SystemClock))
    }

    /// A store on the given clock (tests use [`clock::FakeClock`]).
    pub fn with_clock(clock: Arc<dyn Clock>) -> Self {
        let shards = (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect();
        Self {
            shards,
            clock,
            backend: Backend::Primary,
        }
    }

    /// The same store reporting its decisions as the local fallback of a shared store.
    pub(crate) fn into_fallback(mut self) -> Self {
        self.backend = Backend::LocalFallback;
        self
    }

    fn shard(&self, tenant: &str) -> &Mutex<HashMap<String, TenantState>> {
        let mut h = DefaultHasher::new();
        tenant.hash(&mut h);
        &self.shards[(h.finish() as usize) % self.shards.len()]
    }

    /// Admits synchronously (the work is a few hundred nanoseconds under a mutex).
    pub fn admit_sync(&self, req: &Admission) -> AdmitOutcome {
        self.admit_scaled(req, 1)
    }

    /// Admits with every limit divided among `parts` replicas.
    pub(crate) fn admit_scaled(&self, req: &Admission, parts: u32) -> AdmitOutcome {
        let now = Now::at(self.clock.now_us());
        let n = req.tokens.max(1);
        let scaled;
        let scopes = if parts > 1 {
            scaled = req
                .scopes
                .iter()
                .map(|s| super::quota::ScopedLimits {
                    scope: s.scope.clone(),
                    limits: s.limits.divided(parts),
                })
                .collect::<Vec<_>>();
            &scaled
        } else {
            &req.scopes
        };
        let mut guard = self
            .shard(&req.tenant)
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let tenant = guard.get(&req.tenant);
        let mut refusal = None;
        for s in scopes {
            check(
                &s.scope,
                tenant.and_then(|t| t.get(&s.scope)),
                &s.limits,
                n,
                req.cost_micros,
                now,
                &mut refusal,
            );
        }
        let (mut rq, mut tk) = (None, None);
        let verdict = match refusal {
            Some(r) => {
                for s in scopes {
                    status(
                        tenant.and_then(|t| t.get(&s.scope)),
                        &s.limits,
                        now,
                        &mut rq,
                        &mut tk,
                    );
                }
                Verdict::Refused(r)
            }
            None => {
                if !guard.contains_key(&req.tenant) {
                    guard.insert(req.tenant.clone(), TenantState::default());
                }
                let t = guard
                    .get_mut(&req.tenant)
                    .unwrap_or_else(|| unreachable!("inserted above"));
                for s in scopes {
                    let st = t.get_mut(&s.scope);
                    commit(st, &s.limits, n, req.cost_micros, now);
                    status(Some(st), &s.limits, now, &mut rq, &mut tk);
                }
                Verdict::Admitted(Reservation {
                    tenant: req.tenant.clone(),
                    scopes: scopes.clone(),
                    tokens: n,
                    cost_micros: req.cost_micros,
                    day: now.day,
                    month: now.month,
                    backend: self.backend,
                })
            }
        };
        AdmitOutcome {
            verdict,
            requests: rq,
            tokens: tk,
            backend: self.backend,
        }
    }

    /// Settles synchronously.
    pub fn settle_sync(&self, res: &Reservation, actual_tokens: u64, actual_cost_micros: u64) {
        let now = Now::at(self.clock.now_us());
        let dtok = actual_tokens as i64 - res.tokens as i64;
        let dcost = actual_cost_micros as i64 - res.cost_micros as i64;
        if dtok == 0 && dcost == 0 {
            return;
        }
        let mut guard = self
            .shard(&res.tenant)
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let Some(t) = guard.get_mut(&res.tenant) else {
            return;
        };
        for s in &res.scopes {
            adjust(t.get_mut(&s.scope), &s.limits, dtok, dcost, now, res);
        }
    }
}

impl QuotaStore for MemoryQuota {
    fn admit<'a>(&'a self, req: &'a Admission) -> BoxFuture<'a, Result<AdmitOutcome, QuotaError>> {
        let out = self.admit_sync(req);
        Box::pin(async move { Ok(out) })
    }

    fn settle<'a>(
        &'a self,
        reservation: &'a Reservation,
        actual_tokens: u64,
        actual_cost_micros: u64,
    ) -> BoxFuture<'a, Result<(), QuotaError>> {
        self.settle_sync(reservation, actual_tokens, actual_cost_micros);
        Box::pin(async { Ok(()) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tenancy::clock::FakeClock;
    use crate::tenancy::quota::{QuotaSpec, ScopedLimits};
    use std::time::Duration;

    fn spec(rpm: Option<u64>, tpm: Option<u64>, tpd: Option<u64>, usd: Option<f64>) -> QuotaSpec {
        QuotaSpec {
            requests_per_minute: rpm,
            tokens_per_minute: tpm,
            tokens_per_day: tpd,
            monthly_budget_usd: usd,
            ..Default::default()
        }
    }

    fn store(at_us: u64) -> (Arc<FakeClock>, MemoryQuota) {
        let c = Arc::new(FakeClock::new(at_us));
        (c.clone(), MemoryQuota::with_clock(c))
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn exact_under_concurrency() {
        let (_c, q) = store(1_700_000_000_000_000);
        let q = Arc::new(q);
        let s = spec(Some(500), Some(100_000), None, None);
        let mut tasks = Vec::new();
        for t in 0..16 {
            let (q, s) = (q.clone(), s.clone());
            tasks.push(tokio::spawn(async move {
                let mut ok = 0u64;
                for i in 0..200 {
                    let key = format!("k{}", (t + i) % 3);
                    let a = Admission::new("acme", Some(&key), "m", 10, 0, &s);
                    if q.admit(&a).await.map(|o| o.is_admitted()).unwrap_or(false) {
                        ok += 1;
                    }
                }
                ok
            }));
        }
        let mut total = 0;
        for t in tasks {
            total += t.await.unwrap_or(0);
        }
        assert_eq!(
            total, 500,
            "exactly the request limit is admitted out of 3200"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn token_limit_exact_under_concurrency() {
        let (_c, q) = store(1_700_000_000_000_000);
        let q = Arc::new(q);
        let s = spec(None, Some(10_000), None, None);
        let mut tasks = Vec::new();
        for _ in 0..8 {
            let (q, s) = (q.clone(), s.clone());
            tasks.push(tokio::spawn(async move {
                let mut tokens = 0u64;
                for i in 0..100u64 {
                    let a = Admission::new("t", None, "m", 37 + i % 5, 0, &s);
                    if q.admit_sync(&a).is_admitted() {
                        tokens += a.tokens;
                    }
                }
                tokens
            }));
        }
        let mut total = 0;
        for t in tasks {
            total += t.await.unwrap_or(0);
        }
        assert!(total <= 10_000 && total > 10_000 - 41, "reserved {total}");
    }

    #[test]
    fn refill_with_fake_clock() {
        let (c, q) = store(1_000_000_000_000);
        let s = spec(Some(60), None, None, None);
        let a = Admission::new("t", None, "m", 1, 0, &s);
        for _ in 0..60 {
            assert!(q.admit_sync(&a).is_admitted());
        }
        let out = q.admit_sync(&a);
        let r = out.refusal().cloned();
        assert_eq!(
            r.as_ref().map(|r| r.limit),
            Some(LimitKind::RequestsPerMinute)
        );
        assert_eq!(r.and_then(|r| r.retry_after), Some(Duration::from_secs(1)));
        assert_eq!(out.requests.map(|s| s.remaining), Some(0));
        assert_eq!(out.requests.map(|s| s.reset), Some(Duration::from_secs(60)));
        c.advance(Duration::from_millis(999));
        assert!(!q.admit_sync(&a).is_admitted());
        c.advance(Duration::from_millis(1));
        let out = q.admit_sync(&a);
        assert!(out.is_admitted());
        assert_eq!(out.requests.map(|s| s.remaining), Some(0));
        c.advance(Duration::from_secs(30));
        let out = q.admit_sync(&a);
        assert_eq!(out.requests.map(|s| s.remaining), Some(29));
        assert_eq!(out.requests.map(|s| s.limit), Some(60));
    }

    #[test]
    fn oversized_request_never_fits() {
        let (_c, q) = store(1);
        let s = spec(None, Some(100), None, None);
        let out = q.admit_sync(&Admission::new("t", None, "m", 101, 0, &s));
        let r = out.refusal().cloned();
        assert_eq!(
            r.map(|r| (r.limit, r.retry_after)),
            Some((LimitKind::TokensPerMinute, None))
        );
    }

    #[test]
    fn settlement_replaces_estimate() {
        let (_c, q) = store(1_000_000_000_000);
        let s = spec(None, Some(1000), Some(5000), Some(1.0));
        let a = Admission::new("t", None, "m", 800, 600_000, &s);
        let out = q.admit_sync(&a);
        let res = out.reservation().cloned();
        assert_eq!(out.tokens.map(|t| t.remaining), Some(200));
        let Some(res) = res else {
            panic!("not admitted")
        };
        // Only 300 used and 0.1 USD: 500 tokens and 0.5 USD are refunded.
        q.settle_sync(&res, 300, 100_000);
        let b = Admission::new("t", None, "m", 700, 900_000, &s);
        let out = q.admit_sync(&b);
        assert!(out.is_admitted(), "{out:?}");
        assert_eq!(out.tokens.map(|t| t.remaining), Some(0));
        // Month: 0.1 + 0.9 = 1.0 USD used; any further cost is refused.
        let Some(res2) = out.reservation().cloned() else {
            panic!()
        };
        // Over-use is charged: 700 estimated, 1700 used → day total 300 + 1700 = 2000.
        q.settle_sync(&res2, 1700, 900_000);
        let c = Admission::new("t", None, "m", 1, 1, &s);
        let r = q.admit_sync(&c).refusal().cloned();
        // Both the minute bucket and the month budget refuse; the longer wait is reported.
        assert_eq!(r.map(|r| r.limit), Some(LimitKind::MonthlyBudget));
        let tpm_only = spec(None, Some(1000), None, None);
        let r = q
            .admit_sync(&Admission::new("t", None, "m", 1, 0, &tpm_only))
            .refusal()
            .cloned();
        // Level 2000 in a bucket of 1000/min: 1001 tokens must drain, 60.06 s.
        assert_eq!(
            r.map(|r| (r.limit, r.retry_after)),
            Some((
                LimitKind::TokensPerMinute,
                Some(Duration::from_millis(60_060))
            ))
        );
        let s2 = spec(None, None, Some(2001), None);
        assert!(q
            .admit_sync(&Admission::new("t", None, "m", 1, 0, &s2))
            .is_admitted());
        assert!(!q
            .admit_sync(&Admission::new("t", None, "m", 1, 0, &s2))
            .is_admitted());
    }

    #[test]
    fn month_rollover_of_budget() {
        let c = Arc::new(FakeClock::at_date(2025, 1, 31));
        let q = MemoryQuota::with_clock(c.clone());
        let s = spec(None, None, None, Some(2.0));
        let a = Admission::new("t", None, "m", 1, 1_500_000, &s);
        assert!(q.admit_sync(&a).is_admitted());
        c.advance(Duration::from_secs(86_399));
        let out = q.admit_sync(&a);
        let r = out.refusal().cloned();
        assert_eq!(r.as_ref().map(|r| r.limit), Some(LimitKind::MonthlyBudget));
        assert_eq!(r.and_then(|r| r.retry_after), Some(Duration::from_secs(1)));
        c.advance(Duration::from_secs(1)); // 2025-02-01T00:00:00Z
        let out = q.admit_sync(&a);
        assert!(out.is_admitted());
        // A settlement of January's reservation arriving in February is not charged to February.
        let jan = Reservation {
            month: 2025 * 12,
            ..out.reservation().cloned().unwrap_or_else(|| unreachable!())
        };
        q.settle_sync(&jan, 1, 10_000_000);
        let small = Admission::new("t", None, "m", 1, 500_000, &s);
        assert!(q.admit_sync(&small).is_admitted());
        assert!(!q.admit_sync(&small).is_admitted());
    }

    #[test]
    fn day_window_resets_at_utc_midnight() {
        let c = Arc::new(FakeClock::at_date(2025, 3, 9));
        let q = MemoryQuota::with_clock(c.clone());
        let s = spec(None, None, Some(100), None);
        assert!(q
            .admit_sync(&Admission::new("t", None, "m", 100, 0, &s))
            .is_admitted());
        c.advance(Duration::from_secs(3600));
        let out = q.admit_sync(&Admission::new("t", None, "m", 1, 0, &s));
        assert_eq!(
            out.refusal().and_then(|r| r.retry_after),
            Some(Duration::from_secs(23 * 3600))
        );
        c.advance(Duration::from_secs(23 * 3600));
        assert!(q
            .admit_sync(&Admission::new("t", None, "m", 100, 0, &s))
            .is_admitted());
    }

    #[test]
    fn all_scopes_or_none() {
        let (_c, q) = store(1_000_000);
        let mut s = spec(Some(10), None, None, None);
        s.per_key = Some(Limits {
            requests_per_minute: Some(2),
            ..Default::default()
        });
        let k1 = Admission::new("t", Some("k1"), "m", 1, 0, &s);
        let k2 = Admission::new("t", Some("k2"), "m", 1, 0, &s);
        assert!(q.admit_sync(&k1).is_admitted());
        assert!(q.admit_sync(&k1).is_admitted());
        let out = q.admit_sync(&k1);
        assert_eq!(
            out.refusal().map(|r| r.scope.clone()),
            Some(Scope::Key("k1".into()))
        );
        // The refused k1 request did not consume the tenant slot: 8 remain for k2 + others.
        let out = q.admit_sync(&k2);
        assert_eq!(
            out.requests.map(|r| r.remaining),
            Some(1),
            "key scope is tighter"
        );
        let t_only = Admission {
            scopes: vec![ScopedLimits {
                scope: Scope::Tenant,
                limits: s.tenant_limits(),
            }],
            ..k1.clone()
        };
        assert_eq!(q.admit_sync(&t_only).requests.map(|r| r.remaining), Some(6));
    }

    #[test]
    fn fallback_share_divides_limits() {
        let (_c, q) = store(1_000_000);
        let s = spec(Some(10), None, None, None);
        let a = Admission::new("t", None, "m", 1, 0, &s);
        let admitted = (0..10)
            .filter(|_| q.admit_scaled(&a, 3).is_admitted())
            .count();
        assert_eq!(admitted, 3);
    }
}
