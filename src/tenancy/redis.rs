//! Redis quota backend: quotas shared by several gateway replicas.
//!
//! - **One round trip per admission**: one Lua script (`EVALSHA`, with a `SCRIPT LOAD`
//!   fallback after a Redis restart) reads, checks and commits every scope atomically.
//!   Settlement is one more script call after the response.
//! - **Shared clock**: the script reads `redis.call('TIME')`, so replicas with skewed
//!   clocks agree on windows. The arithmetic is the same as the in-memory backend's
//!   (see [`crate::tenancy::quota`] for the algorithm and its error bounds).
//! - **Cluster-ready key layout**: one hash per scope, `q:{tenant}` (tenant scope),
//!   `q:{tenant}:k:<key id>` and `q:{tenant}:m:<model>`; the `{tenant}` hash tag puts all
//!   scopes of a tenant in one slot so the script may touch them together. Fields:
//!   `rl`/`ra` (request bucket level / updated at, µs), `tl`/`ta` (token bucket),
//!   `dw`/`dv` (day index / tokens), `mw`/`mv` (month index / micro-USD). Each hash
//!   expires 35 days after its last write.
//! - **Failure**: a [`ConnectionManager`] with short connect and response timeouts
//!   reconnects in the background. While Redis is unreachable, [`FailMode::Closed`]
//!   answers [`QuotaError::Unavailable`] (the gateway answers 503) and
//!   [`FailMode::Open`] decides with a local per-replica in-memory limiter (each limit
//!   divided by `fallback_replicas`), marking the outcome [`Backend::LocalFallback`].
//!   Either way [`RedisQuota::stats`] counts it. After a failure, calls skip Redis
//!   for `retry_interval` (a circuit breaker), then the next call probes it again. A call that times out after Redis ran
//!   the script may leave that reservation in Redis too: a conservative over-count.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ::redis::aio::{ConnectionManager, ConnectionManagerConfig};
use ::redis::Script;
use futures_util::future::BoxFuture;

use super::clock::{Clock, SystemClock};
use super::memory::MemoryQuota;
use super::quota::{
    Admission, AdmitOutcome, Backend, LimitKind, QuotaError, QuotaStore, RateStatus, Refusal,
    Reservation, Scope, ScopedLimits, Verdict,
};

/// What to do when Redis cannot be reached. In config: `closed` / `open` (also
/// `fail_closed` / `fail_open`, the names in issue 8).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum FailMode {
    /// Refuse service: `admit` returns [`QuotaError::Unavailable`].
    #[default]
    #[serde(alias = "fail_closed")]
    Closed,
    /// Keep serving with local per-replica limits.
    #[serde(alias = "fail_open")]
    Open,
}

/// Settings of the Redis backend.
#[derive(Debug, Clone)]
pub struct RedisQuotaConfig {
    /// `redis://host:port/db` (or `rediss://` with TLS support compiled in).
    pub url: String,
    pub fail_mode: FailMode,
    /// Deadline of one admission or settlement round trip, reconnects included.
    pub timeout: Duration,
    /// Deadline of one TCP connect.
    pub connect_timeout: Duration,
    /// In open mode, each limit is divided by this many replicas for the local limiter.
    pub fallback_replicas: u32,
    /// After a failure, calls skip Redis (and go straight to the fail mode) for this
    /// long, so an outage costs microseconds per request instead of a connect attempt;
    /// the first call after it probes Redis again.
    pub retry_interval: Duration,
}

impl RedisQuotaConfig {
    /// Defaults: fail closed, 250 ms per call, 200 ms per connect, one replica share,
    /// 250 ms between probes while Redis is down.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            fail_mode: FailMode::Closed,
            timeout: Duration::from_millis(250),
            connect_timeout: Duration::from_millis(200),
            fallback_replicas: 1,
            retry_interval: Duration::from_millis(250),
        }
    }
}

/// Counters of a Redis-backed store, for metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RedisStats {
    /// Admissions and settlements not served by Redis: failed, timed out, or skipped
    /// within `retry_interval` of a failure.
    pub redis_errors: u64,
    /// Admissions decided by the local fallback limiter (open mode).
    pub local_admissions: u64,
    /// Settlements dropped because Redis was unreachable (open mode).
    pub dropped_settlements: u64,
}

/// A connection manager with short timeouts and quick background reconnects, shared by
/// the quota store and the vault.
pub fn connection_manager(
    url: &str,
    connect_timeout: Duration,
    response_timeout: Duration,
) -> Result<ConnectionManager, ::redis::RedisError> {
    let client = ::redis::Client::open(url)?;
    let cfg = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(connect_timeout))
        .set_response_timeout(Some(response_timeout))
        .set_number_of_retries(1)
        .set_min_delay(Duration::from_millis(5))
        .set_max_delay(Duration::from_millis(50));
    // Lazy: the gateway starts even when Redis is down; the fail mode then applies.
    ConnectionManager::new_lazy_with_config(client, cfg)
}

/// Key of one scope's hash. Braces and `%` in the tenant id are escaped so the hash tag
/// is exactly the tenant.
pub fn scope_key(tenant: &str, scope: &Scope) -> String {
    let t = escape_tag(tenant);
    match scope {
        Scope::Tenant => format!("q:{{{t}}}"),
        Scope::Key(k) => format!("q:{{{t}}}:k:{k}"),
        Scope::Model(m) => format!("q:{{{t}}}:m:{m}"),
    }
}

/// Escapes `%`, `{` and `}` so a string can sit inside a hash tag.
pub(crate) fn escape_tag(s: &str) -> String {
    if !s.contains(['%', '{', '}']) {
        return s.to_owned();
    }
    s.replace('%', "%25")
        .replace('{', "%7B")
        .replace('}', "%7D")
}

/// Hash expiry: longer than the longest window (a calendar month).
const TTL_MS: u64 = 35 * 86_400_000;

const LUA_PRELUDE: &str = r#"
local now = tonumber(ARGV[1])
if now <= 0 then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000000 + tonumber(t[2])
end
local W = 60000000
local EPS = 1e-6
local DAY = 86400000000
local day = math.floor(now / DAY)
-- civil_from_days (H. Hinnant), as in clock.rs
local z = day + 719468
local era = math.floor(z / 146097)
local doe = z - era * 146097
local yoe = math.floor((doe - math.floor(doe / 1460) + math.floor(doe / 36524) - math.floor(doe / 146096)) / 365)
local doy = doe - (365 * yoe + math.floor(yoe / 4) - math.floor(yoe / 100))
local mp = math.floor((5 * doy + 2) / 153)
local m = mp + 3
if mp >= 10 then m = mp - 9 end
local y = yoe + era * 400
if m <= 2 then y = y + 1 end
local month = y * 12 + m - 1
local function drained(level, at, limit)
  local el = now - at
  if el < 0 then el = 0 end
  local lv = level - el * limit / W
  if lv < 0 then lv = 0 end
  return lv
end
local function fmt(x) return string.format('%.17g', x) end
local function int(x) return string.format('%.0f', x) end
"#;

const LUA_ADMIT: &str = r#"
-- ARGV: now_us (0: TIME), tokens, cost, ttl_ms, then per scope: rpm, tpm, tpd, budget (-1: none)
local n = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local ttl = tonumber(ARGV[4])
local function days_from_civil(yy, mm, dd)
  if mm <= 2 then yy = yy - 1 end
  local e = math.floor(yy / 400)
  local ye = yy - e * 400
  local mq = (mm + 9) % 12
  local dy = math.floor((153 * mq + 2) / 5) + dd - 1
  local de = ye * 365 + math.floor(ye / 4) - math.floor(ye / 100) + dy
  return e * 146097 + de - 719468
end
local ny, nm = y, m + 1
if nm == 13 then ny, nm = y + 1, 1 end
local until_month = days_from_civil(ny, nm, 1) * DAY - now
local until_day = DAY - (now % DAY)
local function drain_time(excess, limit)
  if limit <= 0 or excess <= 0 then return 0 end
  return math.ceil(excess * W / limit)
end
local ref_scope, ref_kind, ref_retry = 0, 0, 0
local function refuse(i, kind, retry)
  if ref_kind == 0 then ref_scope, ref_kind, ref_retry = i, kind, retry return end
  if ref_retry == -1 then return end
  if retry == -1 or retry > ref_retry then ref_scope, ref_kind, ref_retry = i, kind, retry end
end
local st = {}
for i = 1, #KEYS do
  local b = 4 + (i - 1) * 4
  local rpm, tpm, tpd, bud = tonumber(ARGV[b + 1]), tonumber(ARGV[b + 2]), tonumber(ARGV[b + 3]), tonumber(ARGV[b + 4])
  local h = redis.call('HMGET', KEYS[i], 'rl', 'ra', 'tl', 'ta', 'dw', 'dv', 'mw', 'mv')
  local s = { rpm = rpm, tpm = tpm, tpd = tpd, bud = bud,
    ra = tonumber(h[2]) or 0, ta = tonumber(h[4]) or 0 }
  if rpm >= 0 then
    s.rl = drained(tonumber(h[1]) or 0, s.ra, rpm)
    if s.rl + 1 > rpm + EPS then
      if rpm > 0 then refuse(i, 1, drain_time(s.rl + 1 - rpm, rpm)) else refuse(i, 1, -1) end
    end
  end
  if tpm >= 0 then
    s.tl = drained(tonumber(h[3]) or 0, s.ta, tpm)
    if n > tpm then refuse(i, 2, -1)
    elseif s.tl + n > tpm + EPS then refuse(i, 2, drain_time(s.tl + n - tpm, tpm)) end
  end
  if tpd >= 0 then
    s.du = 0
    if tonumber(h[5]) == day then s.du = tonumber(h[6]) or 0 end
    if n > tpd then refuse(i, 3, -1)
    elseif s.du + n > tpd then refuse(i, 3, until_day) end
  end
  if bud >= 0 then
    s.mu = 0
    if tonumber(h[7]) == month then s.mu = tonumber(h[8]) or 0 end
    if cost > bud then refuse(i, 4, -1)
    elseif s.mu >= bud or s.mu + cost > bud then refuse(i, 4, until_month) end
  end
  st[i] = s
end
local admitted = 0
if ref_kind == 0 then admitted = 1 end
local rq = {-1, -1, -1}
local tk = {-1, -1, -1}
local function tighter(cur, lim, level)
  local rem = math.floor(lim - level + EPS)
  if rem < 0 then rem = 0 end
  local reset = drain_time(level, lim)
  if cur[1] == -1 or rem < cur[2] or (rem == cur[2] and reset > cur[3]) then
    cur[1], cur[2], cur[3] = lim, rem, reset
  end
end
for i = 1, #KEYS do
  local s = st[i]
  local f = {}
  if s.rpm >= 0 then
    if admitted == 1 then
      s.rl = s.rl + 1
      table.insert(f, 'rl') table.insert(f, fmt(s.rl))
      table.insert(f, 'ra') table.insert(f, int(math.max(now, s.ra)))
    end
    tighter(rq, s.rpm, s.rl)
  end
  if s.tpm >= 0 then
    if admitted == 1 then
      s.tl = s.tl + n
      table.insert(f, 'tl') table.insert(f, fmt(s.tl))
      table.insert(f, 'ta') table.insert(f, int(math.max(now, s.ta)))
    end
    tighter(tk, s.tpm, s.tl)
  end
  if admitted == 1 and s.tpd >= 0 then
    table.insert(f, 'dw') table.insert(f, int(day))
    table.insert(f, 'dv') table.insert(f, int(s.du + n))
  end
  if admitted == 1 and s.bud >= 0 then
    table.insert(f, 'mw') table.insert(f, int(month))
    table.insert(f, 'mv') table.insert(f, int(s.mu + cost))
  end
  if #f > 0 then
    redis.call('HSET', KEYS[i], unpack(f))
    redis.call('PEXPIRE', KEYS[i], ttl)
  end
end
return {admitted, now, day, month, ref_scope, ref_kind, ref_retry, rq[1], rq[2], rq[3], tk[1], tk[2], tk[3]}
"#;

const LUA_SETTLE: &str = r#"
-- ARGV: now_us (0: TIME), dtokens, dcost, day, month, ttl_ms, then per scope: tpm, tpd, budget (-1: none)
local dt = tonumber(ARGV[2])
local dc = tonumber(ARGV[3])
local rday = tonumber(ARGV[4])
local rmonth = tonumber(ARGV[5])
local ttl = tonumber(ARGV[6])
for i = 1, #KEYS do
  local b = 6 + (i - 1) * 3
  local tpm, tpd, bud = tonumber(ARGV[b + 1]), tonumber(ARGV[b + 2]), tonumber(ARGV[b + 3])
  local h = redis.call('HMGET', KEYS[i], 'tl', 'ta', 'dw', 'dv', 'mw', 'mv')
  local f = {}
  if tpm >= 0 then
    local ta = tonumber(h[2]) or 0
    local lv = drained(tonumber(h[1]) or 0, ta, tpm) + dt
    if lv < 0 then lv = 0 end
    table.insert(f, 'tl') table.insert(f, fmt(lv))
    table.insert(f, 'ta') table.insert(f, int(math.max(now, ta)))
  end
  if tpd >= 0 and tonumber(h[3]) == rday then
    local v = (tonumber(h[4]) or 0) + dt
    if v < 0 then v = 0 end
    table.insert(f, 'dv') table.insert(f, int(v))
  end
  if bud >= 0 and tonumber(h[5]) == rmonth then
    local v = (tonumber(h[6]) or 0) + dc
    if v < 0 then v = 0 end
    table.insert(f, 'mv') table.insert(f, int(v))
  end
  if #f > 0 then
    redis.call('HSET', KEYS[i], unpack(f))
    redis.call('PEXPIRE', KEYS[i], ttl)
  end
end
return 1
"#;

fn opt(v: Option<u64>) -> i64 {
    v.map_or(-1, |v| i64::try_from(v).unwrap_or(i64::MAX))
}

/// The Redis quota store. Cheap to share behind an `Arc`; all clones of its connection
/// manager multiplex one connection.
pub struct RedisQuota {
    conn: ConnectionManager,
    admit: Script,
    settle: Script,
    cfg: RedisQuotaConfig,
    local: MemoryQuota,
    clock: Option<Arc<dyn Clock>>,
    redis_errors: AtomicU64,
    /// Microseconds since `epoch` until which calls skip Redis.
    down_until_us: AtomicU64,
    epoch: std::time::Instant,
    local_admissions: AtomicU64,
    dropped_settlements: AtomicU64,
}

impl std::fmt::Debug for RedisQuota {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisQuota")
            .field("fail_mode", &self.cfg.fail_mode)
            .finish_non_exhaustive()
    }
}

impl RedisQuota {
    /// Builds the store; connects lazily, so this works (and the fail mode applies) while
    /// Redis is down. Must be called inside a Tokio runtime.
    pub fn new(cfg: RedisQuotaConfig) -> Result<Self, QuotaError> {
        let conn = connection_manager(&cfg.url, cfg.connect_timeout, cfg.timeout)
            .map_err(|e| QuotaError::Config(e.to_string()))?;
        Ok(Self {
            conn,
            admit: Script::new(&format!("{LUA_PRELUDE}{LUA_ADMIT}")),
            settle: Script::new(&format!("{LUA_PRELUDE}{LUA_SETTLE}")),
            local: MemoryQuota::with_clock(Arc::new(SystemClock)).into_fallback(),
            cfg,
            clock: None,
            redis_errors: AtomicU64::new(0),
            down_until_us: AtomicU64::new(0),
            epoch: std::time::Instant::now(),
            local_admissions: AtomicU64::new(0),
            dropped_settlements: AtomicU64::new(0),
        })
    }

    /// Replaces Redis `TIME` (and the fallback's clock) by `clock`. For tests of windows
    /// and month rollover; production uses Redis time so replicas agree.
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.local = MemoryQuota::with_clock(clock.clone()).into_fallback();
        self.clock = Some(clock);
        self
    }

    /// The counters, for metrics and tests.
    pub fn stats(&self) -> RedisStats {
        RedisStats {
            redis_errors: self.redis_errors.load(Ordering::Relaxed),
            local_admissions: self.local_admissions.load(Ordering::Relaxed),
            dropped_settlements: self.dropped_settlements.load(Ordering::Relaxed),
        }
    }

    /// The fail mode in force.
    pub fn fail_mode(&self) -> FailMode {
        self.cfg.fail_mode
    }

    fn mono_us(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_micros()).unwrap_or(u64::MAX)
    }

    /// Whether Redis failed less than `retry_interval` ago.
    fn breaker_open(&self) -> bool {
        self.mono_us() < self.down_until_us.load(Ordering::Relaxed)
    }

    /// Records a failure: skip Redis for `retry_interval`.
    fn trip(&self, error: &str) {
        let interval = u64::try_from(self.cfg.retry_interval.as_micros()).unwrap_or(u64::MAX);
        self.down_until_us
            .store(self.mono_us().saturating_add(interval), Ordering::Relaxed);
        tracing::warn!(error = %error, mode = ?self.cfg.fail_mode, "quota store unreachable");
    }

    fn now_arg(&self) -> u64 {
        self.clock.as_ref().map_or(0, |c| c.now_us())
    }

    async fn admit_redis(&self, req: &Admission) -> Result<Vec<i64>, String> {
        let mut inv = self.admit.prepare_invoke();
        for s in &req.scopes {
            inv.key(scope_key(&req.tenant, &s.scope));
        }
        inv.arg(self.now_arg())
            .arg(req.tokens.max(1))
            .arg(req.cost_micros)
            .arg(TTL_MS);
        for s in &req.scopes {
            let l = &s.limits;
            inv.arg(opt(l.requests_per_minute))
                .arg(opt(l.tokens_per_minute))
                .arg(opt(l.tokens_per_day))
                .arg(opt(l.budget_micros()));
        }
        let mut conn = self.conn.clone();
        match tokio::time::timeout(self.cfg.timeout, inv.invoke_async::<Vec<i64>>(&mut conn)).await
        {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err("timed out".to_owned()),
        }
    }

    fn parse_admit(req: &Admission, v: &[i64]) -> Result<AdmitOutcome, QuotaError> {
        let [admitted, now, day, month, rscope, rkind, rretry, rq_l, rq_r, rq_t, tk_l, tk_r, tk_t] =
            v
        else {
            return Err(QuotaError::Protocol(format!(
                "admission script returned {} values",
                v.len()
            )));
        };
        let status = |l: i64, r: i64, t: i64| {
            (l >= 0).then(|| RateStatus {
                limit: l as u64,
                remaining: r.max(0) as u64,
                reset: Duration::from_micros(t.max(0) as u64),
            })
        };
        let verdict = if *admitted == 1 {
            Verdict::Admitted(Reservation {
                tenant: req.tenant.clone(),
                scopes: req.scopes.clone(),
                tokens: req.tokens.max(1),
                cost_micros: req.cost_micros,
                day: *day,
                month: *month,
                backend: Backend::Primary,
            })
        } else {
            let scope = usize::try_from(*rscope - 1)
                .ok()
                .and_then(|i| req.scopes.get(i))
                .map(|s| s.scope.clone())
                .ok_or_else(|| QuotaError::Protocol("refusal names no scope".into()))?;
            let limit = LimitKind::from_code(*rkind)
                .ok_or_else(|| QuotaError::Protocol("refusal names no limit".into()))?;
            let retry_after = (*rretry >= 0).then(|| Duration::from_micros(*rretry as u64));
            Verdict::Refused(Refusal {
                scope,
                limit,
                retry_after,
            })
        };
        let _ = now;
        Ok(AdmitOutcome {
            verdict,
            requests: status(*rq_l, *rq_r, *rq_t),
            tokens: status(*tk_l, *tk_r, *tk_t),
            backend: Backend::Primary,
        })
    }

    async fn settle_redis(&self, res: &Reservation, dtok: i64, dcost: i64) -> Result<(), String> {
        let mut inv = self.settle.prepare_invoke();
        for s in &res.scopes {
            inv.key(scope_key(&res.tenant, &s.scope));
        }
        inv.arg(self.now_arg())
            .arg(dtok)
            .arg(dcost)
            .arg(res.day)
            .arg(res.month)
            .arg(TTL_MS);
        for ScopedLimits { limits: l, .. } in &res.scopes {
            inv.arg(opt(l.tokens_per_minute))
                .arg(opt(l.tokens_per_day))
                .arg(opt(l.budget_micros()));
        }
        let mut conn = self.conn.clone();
        match tokio::time::timeout(self.cfg.timeout, inv.invoke_async::<i64>(&mut conn)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err("timed out".to_owned()),
        }
    }

    /// Admission (see [`QuotaStore::admit`]).
    pub async fn admit_request(&self, req: &Admission) -> Result<AdmitOutcome, QuotaError> {
        if req.scopes.is_empty() {
            return Ok(self.local_unlimited(req));
        }
        let result = if self.breaker_open() {
            Err("skipped: Redis failed less than retry_interval ago".to_owned())
        } else {
            self.admit_redis(req).await.inspect_err(|e| self.trip(e))
        };
        match result {
            Ok(v) => Self::parse_admit(req, &v),
            Err(e) => {
                self.redis_errors.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(error = %e, tenant = %req.tenant, mode = ?self.cfg.fail_mode, "quota store unreachable");
                match self.cfg.fail_mode {
                    FailMode::Closed => Err(QuotaError::Unavailable(e)),
                    FailMode::Open => {
                        self.local_admissions.fetch_add(1, Ordering::Relaxed);
                        Ok(self.local.admit_scaled(req, self.cfg.fallback_replicas))
                    }
                }
            }
        }
    }

    fn local_unlimited(&self, req: &Admission) -> AdmitOutcome {
        // No limits: nothing to share, no round trip.
        let mut out = self.local.admit_sync(req);
        out.backend = Backend::Primary;
        if let Verdict::Admitted(r) = &mut out.verdict {
            r.backend = Backend::Primary;
        }
        out
    }

    /// Settlement (see [`QuotaStore::settle`]).
    pub async fn settle_request(
        &self,
        res: &Reservation,
        tokens: u64,
        cost: u64,
    ) -> Result<(), QuotaError> {
        if res.backend == Backend::LocalFallback {
            self.local.settle_sync(res, tokens, cost);
            return Ok(());
        }
        let dtok = tokens as i64 - res.tokens as i64;
        let dcost = cost as i64 - res.cost_micros as i64;
        if res.scopes.is_empty() || (dtok == 0 && dcost == 0) {
            return Ok(());
        }
        let result = if self.breaker_open() {
            Err("skipped: Redis failed less than retry_interval ago".to_owned())
        } else {
            self.settle_redis(res, dtok, dcost)
                .await
                .inspect_err(|e| self.trip(e))
        };
        match result {
            Ok(()) => Ok(()),
            Err(e) => {
                self.redis_errors.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(error = %e, tenant = %res.tenant, "quota settlement not recorded");
                match self.cfg.fail_mode {
                    FailMode::Closed => Err(QuotaError::Unavailable(e)),
                    FailMode::Open => {
                        self.dropped_settlements.fetch_add(1, Ordering::Relaxed);
                        Ok(())
                    }
                }
            }
        }
    }
}

impl QuotaStore for RedisQuota {
    fn admit<'a>(&'a self, req: &'a Admission) -> BoxFuture<'a, Result<AdmitOutcome, QuotaError>> {
        Box::pin(self.admit_request(req))
    }

    fn settle<'a>(
        &'a self,
        reservation: &'a Reservation,
        actual_tokens: u64,
        actual_cost_micros: u64,
    ) -> BoxFuture<'a, Result<(), QuotaError>> {
        Box::pin(self.settle_request(reservation, actual_tokens, actual_cost_micros))
    }

    fn fallback_count(&self) -> u64 {
        self.redis_errors.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_share_the_tenant_hash_tag() {
        let cases = [
            ("acme", Scope::Tenant, "q:{acme}"),
            ("acme", Scope::Key("ab12".into()), "q:{acme}:k:ab12"),
            ("acme", Scope::Model("gpt-4o".into()), "q:{acme}:m:gpt-4o"),
            ("a{b}%", Scope::Tenant, "q:{a%7Bb%7D%25}"),
        ];
        for (t, s, want) in cases {
            assert_eq!(scope_key(t, &s), want);
        }
    }

    #[test]
    fn fail_mode_names() {
        let cases = [
            ("\"closed\"", FailMode::Closed),
            ("\"fail_open\"", FailMode::Open),
            ("\"open\"", FailMode::Open),
        ];
        for (text, want) in cases {
            assert_eq!(
                serde_json::from_str::<FailMode>(text).ok(),
                Some(want),
                "{text}"
            );
        }
        assert!(serde_json::from_str::<FailMode>("\"maybe\"").is_err());
    }

    #[test]
    fn parse_rejects_short_reply() {
        let a = Admission {
            tenant: "t".into(),
            tokens: 1,
            cost_micros: 0,
            scopes: vec![],
        };
        assert!(matches!(
            RedisQuota::parse_admit(&a, &[1, 2]),
            Err(QuotaError::Protocol(_))
        ));
    }
}
