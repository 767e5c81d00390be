//! Identify, admit and pin: the tenancy phases of the request path.
//!
//! Pass-through mode (no tenants configured) skips identification and quotas; region
//! narrowing by header still works. With tenants, a request must present a key; its
//! tenant's model list, regions and quotas then apply.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use http::{HeaderMap, HeaderName, HeaderValue};

use super::error::GatewayError;
use crate::config::{GatewayConfig, TenantConfig};
use crate::dialect::Exchange;
use crate::tenancy::keys::{KeyHash, KeyMatch, KeyRing};
use crate::tenancy::memory::MemoryQuota;
use crate::tenancy::quota::{
    Admission, AdmitOutcome, Backend, PriceTable, QuotaError, QuotaStore, RateStatus, Scope,
};
use crate::tenancy::redis::{RedisQuota, RedisQuotaConfig};
use crate::tenancy::tokens;

/// Header a client may send to narrow (never widen) the regions its request may go to.
pub const REGION_HEADER: &str = "x-haechi-region";

/// Tenants, their keys and the quota store.
pub struct Tenancy {
    ring: KeyRing,
    tenants: HashMap<String, TenantConfig>,
    pub store: Arc<dyn QuotaStore>,
    prices: PriceTable,
    default_answer_tokens: u64,
}

/// A tenancy set-up problem.
#[derive(Debug, thiserror::Error)]
pub enum TenancyError {
    #[error("tenants: {0}")]
    Keys(String),
    #[error("store: {0}")]
    Store(#[from] QuotaError),
}

/// Who is calling.
#[derive(Debug, Clone)]
pub struct Identity {
    pub tenant: Arc<str>,
    pub key_id: Arc<str>,
}

/// An admitted request: the store's outcome (with the reservation to settle), `None`
/// when the tenant has no quotas.
pub struct Admitted {
    pub outcome: Option<AdmitOutcome>,
    /// Estimated prompt tokens (for settling a stream that reports no usage).
    pub prompt_tokens: u64,
}

impl Tenancy {
    /// `None` in pass-through mode (no tenants configured). Must run inside a tokio
    /// runtime when a Redis store is configured.
    pub fn new(config: &GatewayConfig) -> Result<Option<Self>, TenancyError> {
        if config.tenants.is_empty() {
            return Ok(None);
        }
        let mut parsed = Vec::new();
        for t in &config.tenants {
            let hashes = t
                .keys
                .iter()
                .map(|k| k.parse::<KeyHash>())
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| TenancyError::Keys(format!("tenant `{}`: {e}", t.id)))?;
            parsed.push((t.id.as_str(), hashes));
        }
        let ring = KeyRing::new(parsed).map_err(|e| TenancyError::Keys(e.to_string()))?;
        let store: Arc<dyn QuotaStore> = match config
            .store
            .as_ref()
            .and_then(|s| s.redis_url.as_ref().map(|u| (s, u)))
        {
            Some((store, url)) => {
                let mut cfg = RedisQuotaConfig::new(url.clone());
                cfg.fail_mode = store.fail_mode;
                cfg.timeout = Duration::from_millis(store.timeout_ms);
                cfg.fallback_replicas = store.replicas.max(1);
                Arc::new(RedisQuota::new(cfg)?)
            }
            None => Arc::new(MemoryQuota::new()),
        };
        tokens::warm_up();
        Ok(Some(Self {
            ring,
            tenants: config
                .tenants
                .iter()
                .map(|t| (t.id.clone(), t.clone()))
                .collect(),
            store,
            prices: config.prices.clone(),
            default_answer_tokens: config.default_answer_tokens,
        }))
    }

    /// Finds the tenant of the key the client presented (`Authorization: Bearer`,
    /// `x-api-key`, or `x-haechi-key`).
    pub fn identify(&self, headers: &HeaderMap) -> Result<Identity, GatewayError> {
        let presented = presented_key(headers).ok_or_else(|| {
            GatewayError::Unauthorized(
                "missing API key (Authorization: Bearer <key> or x-api-key)".into(),
            )
        })?;
        let KeyMatch { tenant, key_id } = self
            .ring
            .lookup(presented)
            .ok_or_else(|| GatewayError::Unauthorized("invalid API key".into()))?;
        Ok(Identity {
            tenant: tenant.clone(),
            key_id: key_id.clone(),
        })
    }

    pub fn tenant(&self, identity: &Identity) -> Option<&TenantConfig> {
        self.tenants.get(&*identity.tenant)
    }

    /// Reserves the request and its estimated tokens; a refusal becomes a 429 with
    /// `Retry-After` and the rate-limit headers, a store outage in fail-closed mode a 503.
    pub async fn admit(
        &self,
        identity: &Identity,
        exchange: &Exchange,
    ) -> Result<Admitted, GatewayError> {
        let tenant = self
            .tenant(identity)
            .ok_or_else(|| GatewayError::Unauthorized("unknown tenant".into()))?;
        let model = exchange.model.as_deref().unwrap_or("");
        if let Some(models) = &tenant.models {
            if !models.iter().any(|m| m == model) {
                return Err(GatewayError::Forbidden(format!(
                    "model `{model}` is not allowed for this tenant (allowed: {})",
                    models.join(", ")
                )));
            }
        }
        let estimate = tokens::estimate(exchange, self.default_answer_tokens);
        let Some(spec) = &tenant.quotas else {
            // No quotas: nothing to reserve or settle.
            return Ok(Admitted {
                outcome: None,
                prompt_tokens: estimate.prompt,
            });
        };
        let cost = self
            .prices
            .cost_micros(model, estimate.prompt, estimate.answer);
        let admission = Admission::new(
            &identity.tenant,
            Some(&identity.key_id),
            model,
            estimate.total(),
            cost,
            spec,
        );
        let outcome = self.store.admit(&admission).await.map_err(|e| match e {
            QuotaError::Unavailable(m) => {
                GatewayError::Unavailable(format!("quota store unavailable (fail_closed): {m}"))
            }
            other => GatewayError::Unavailable(other.to_string()),
        })?;
        if let Some(refusal) = outcome.refusal() {
            let message = format!(
                "rate limit reached for {} ({}){}",
                refusal.limit.as_str(),
                scope_name(&refusal.scope),
                refusal
                    .retry_after_secs()
                    .map(|s| format!("; retry after {s}s"))
                    .unwrap_or_else(|| "; this request can never fit the limit".into())
            );
            return Err(GatewayError::RateLimited {
                local_fallback: outcome.backend == Backend::LocalFallback,
                message,
                headers: rate_headers(&outcome, refusal.retry_after_secs()),
            });
        }
        Ok(Admitted {
            outcome: Some(outcome),
            prompt_tokens: estimate.prompt,
        })
    }

    /// The cost function of `model`'s actual usage, in micro-USD, for settlement.
    pub fn price_fn(
        &self,
        model: String,
    ) -> Box<dyn Fn(super::settle::Usage) -> u64 + Send + Sync> {
        let prices = self.prices.clone();
        Box::new(move |u| prices.cost_micros(&model, u.input, u.output))
    }
}

fn scope_name(scope: &Scope) -> String {
    match scope {
        Scope::Tenant => "tenant".into(),
        Scope::Key(_) => "this key".into(),
        Scope::Model(m) => format!("model {m}"),
    }
}

/// The client's key: `Authorization: Bearer`, `x-api-key` or `x-haechi-key`.
fn presented_key(headers: &HeaderMap) -> Option<&str> {
    if let Some(v) = headers.get("x-haechi-key").and_then(|v| v.to_str().ok()) {
        return Some(v.trim());
    }
    if let Some(v) = headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    {
        let v = v.trim();
        return Some(
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
                .unwrap_or(v)
                .trim(),
        );
    }
    headers
        .get("x-api-key")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
}

/// OpenAI's `x-ratelimit-*` headers (and `Retry-After` when given).
pub fn rate_headers(
    outcome: &AdmitOutcome,
    retry_after: Option<u64>,
) -> Vec<(HeaderName, HeaderValue)> {
    let mut out = Vec::new();
    let mut put = |name: &'static str, value: String| {
        if let Ok(v) = HeaderValue::from_str(&value) {
            out.push((HeaderName::from_static(name), v));
        }
    };
    let mut status = |kind: &str, s: &Option<RateStatus>| {
        if let Some(s) = s {
            let (l, r, t) = match kind {
                "requests" => (
                    "x-ratelimit-limit-requests",
                    "x-ratelimit-remaining-requests",
                    "x-ratelimit-reset-requests",
                ),
                _ => (
                    "x-ratelimit-limit-tokens",
                    "x-ratelimit-remaining-tokens",
                    "x-ratelimit-reset-tokens",
                ),
            };
            put(l, s.limit.to_string());
            put(r, s.remaining.to_string());
            put(t, s.reset_header());
        }
    };
    status("requests", &outcome.requests);
    status("tokens", &outcome.tokens);
    if let Some(secs) = retry_after {
        put("retry-after", secs.to_string());
    }
    out
}

/// The regions a request may be routed to: the tenant's, narrowed by the
/// `x-haechi-region` header (comma-separated). `None` means any region. Naming a region
/// outside the tenant's set is refused, never silently widened.
pub fn allowed_regions(
    tenant_regions: Option<&[String]>,
    headers: &HeaderMap,
) -> Result<Option<Vec<String>>, GatewayError> {
    let requested: Option<Vec<String>> = headers
        .get(REGION_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(',')
                .map(|r| r.trim().to_string())
                .filter(|r| !r.is_empty())
                .collect()
        });
    match (tenant_regions, requested) {
        (None, None) => Ok(None),
        (Some(t), None) => Ok(Some(t.to_vec())),
        (None, Some(r)) => Ok(Some(r)),
        (Some(t), Some(r)) => {
            if let Some(outside) = r.iter().find(|x| !t.contains(x)) {
                return Err(GatewayError::Forbidden(format!(
                    "region `{outside}` is outside this tenant's allowed regions ({}); {REGION_HEADER} may narrow them, never widen",
                    t.join(", ")
                )));
            }
            Ok(Some(r))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(region: Option<&str>) -> HeaderMap {
        let mut h = HeaderMap::new();
        if let Some(r) = region {
            h.insert(REGION_HEADER, HeaderValue::from_str(r).expect("header"));
        }
        h
    }

    #[test]
    fn regions_narrow_but_never_widen() {
        let tenant = vec!["ap-northeast-2".to_string(), "ap-northeast-1".to_string()];
        assert_eq!(allowed_regions(None, &headers(None)).expect("any"), None);
        assert_eq!(
            allowed_regions(Some(&tenant), &headers(None)).expect("tenant"),
            Some(tenant.clone())
        );
        assert_eq!(
            allowed_regions(Some(&tenant), &headers(Some("ap-northeast-2"))).expect("narrow"),
            Some(vec!["ap-northeast-2".to_string()])
        );
        let err = allowed_regions(Some(&tenant), &headers(Some("ap-northeast-2, us-east-1")))
            .expect_err("widen");
        assert!(err.to_string().contains("us-east-1"));
        assert_eq!(
            allowed_regions(None, &headers(Some("eu-west-1"))).expect("pass-through narrows"),
            Some(vec!["eu-west-1".to_string()])
        );
    }

    #[test]
    fn keys_are_read_from_the_usual_headers() {
        let mut h = HeaderMap::new();
        h.insert(
            http::header::AUTHORIZATION,
            HeaderValue::from_static("Bearer hk_abc"),
        );
        assert_eq!(presented_key(&h), Some("hk_abc"));
        let mut h = HeaderMap::new();
        h.insert("x-api-key", HeaderValue::from_static("hk_def"));
        assert_eq!(presented_key(&h), Some("hk_def"));
        assert_eq!(presented_key(&HeaderMap::new()), None);
    }
}
