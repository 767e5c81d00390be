//! The request pipeline: route → read body → decode → pick upstreams → forward → respond.
//!
//! Named phases, in the order of DESIGN.md's request path. Later stages (identify,
//! admit, guard in/out, settle, audit) slot in between these phases.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use tokio::time::Instant;

use super::admission::{allowed_regions, rate_headers, Tenancy, REGION_HEADER};
use super::body::{full, Body, TimedBody, TimeoutEnding};
use super::error::{GatewayError, TimeoutKind};
use super::guard::{self, guard_input, guard_output};
use super::record::{AuditBody, Recorder, RequestInfo};
use super::routes::{self, Route};
use super::settle::{request_usage_chunk, SettleBody, Settlement, UsageFormat};
use super::stream_guard::{GuardedBody, GuardedEvents, GuardedFrames};
use super::upstream::{is_hop_by_hop, Upstream, UpstreamError};
use crate::audit::{AuditLog, AuditLogOptions, FsyncPolicy, Metrics};
use crate::config::GatewayConfig;
use crate::detect::DetectContext;
use crate::dialect::response::{refusal_json, refusal_stream};
use crate::dialect::sse::StreamFormat;
use crate::dialect::{self, anthropic, openai, Exchange, Operation, Provider};
use crate::engine::{Decision, EvalOptions, PseudonymMap, StreamGuard, Verdict};
use crate::policy::model::BlockStyle;
use crate::policy::{PolicyErrors, PolicyStore};
use crate::tenancy::vault::{MemoryVault, PseudonymVault, RedisVault, VaultKey};

/// Header carrying the request id on every response.
pub const REQUEST_ID: &str = "x-haechi-request-id";
/// Header naming the strongest action a rule took (`block`, `anonymize`, `warn`).
pub const ACTION: &str = "x-haechi-action";
/// Header listing the ids of the enforced rules that acted.
pub const RULES: &str = "x-haechi-rules";
/// Header carrying the grounding score of an answer checked against request context.
pub const GROUNDING: &str = "x-haechi-grounding";

/// Why the gateway could not be built.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error(transparent)]
    Upstream(#[from] UpstreamError),
    #[error("policies:\n{0}")]
    Policy(#[from] PolicyErrors),
    #[error("hash key: environment variable `{0}` is not set")]
    HashKey(String),
    #[error(transparent)]
    Tenancy(#[from] super::admission::TenancyError),
    #[error("tenant `{tenant}`: unknown policy `{policy}`")]
    UnknownPolicy { tenant: String, policy: String },
    #[error(transparent)]
    Audit(#[from] crate::audit::AuditError),
    #[error("audit.fsync: {0}")]
    Fsync(String),
    #[error("pseudonym vault: {0}")]
    Vault(String),
}

/// The pseudonym vault: encrypted in Redis when `store.redis_url` and
/// `store.vault_key_env` are set, else in memory (bounded, per replica).
fn build_vault(config: &GatewayConfig) -> Result<(Arc<dyn PseudonymVault>, Duration), BuildError> {
    let ttl = Duration::from_secs(config.store.as_ref().map_or(86_400, |s| s.vault_ttl_secs));
    let redis = config.store.as_ref().and_then(|s| {
        s.redis_url
            .as_ref()
            .zip(s.vault_key_env.as_ref())
            .map(|(url, var)| (url, var, s.timeout_ms))
    });
    let vault: Arc<dyn PseudonymVault> = match redis {
        Some((url, var, timeout_ms)) => {
            let text = std::env::var(var).map_err(|_| {
                BuildError::Vault(format!("environment variable `{var}` is not set"))
            })?;
            let key = VaultKey::parse(&text).map_err(|e| BuildError::Vault(e.to_string()))?;
            Arc::new(
                RedisVault::new(url, key, Duration::from_millis(timeout_ms))
                    .map_err(|e| BuildError::Vault(e.to_string()))?,
            )
        }
        None => Arc::new(MemoryVault::new(100_000)),
    };
    Ok((vault, ttl))
}

/// The audit event of a quota store that could not be reached (`mode`: `fail_open` or
/// `fail_closed`).
fn quota_store_event(mode: &str) -> crate::audit::record::FailEvent {
    crate::audit::record::FailEvent {
        mode: mode.into(),
        component: "quota_store".into(),
        reason: "unavailable".into(),
    }
}

/// Header naming the conversation a request belongs to (scope of its pseudonyms).
pub const CONVERSATION: &str = "x-haechi-conversation";

/// Vault entry holding a conversation's whole pseudonym map.
const MAP_ENTRY: &str = "map";

/// The gateway: configuration, live upstreams and the current policies. One per
/// process, shared by all connections.
pub struct Gateway {
    pub config: GatewayConfig,
    upstreams: Vec<Arc<Upstream>>,
    pub policies: Arc<PolicyStore>,
    /// Tenants and quotas; `None` in pass-through mode.
    pub tenancy: Option<Tenancy>,
    /// Audit log and metrics.
    pub recorder: Recorder,
    hash_key: Vec<u8>,
    draining: AtomicBool,
    /// Policy reloads already reported to the metrics.
    reloads_seen: std::sync::Mutex<(u64, u64)>,
    /// Guardrail and GenAI spans (a no-op until [`Gateway::set_tracer`]).
    tracer: std::sync::OnceLock<crate::audit::telemetry::Tracer>,
    /// Pseudonym maps of conversations (`x-haechi-conversation`), so that placeholders
    /// stay the same across turns and replicas and come back in later answers.
    vault: Arc<dyn PseudonymVault>,
    vault_ttl: Duration,
    /// AWS credentials that sign requests to Bedrock upstreams.
    bedrock: super::bedrock::Signer,
    /// Shared client of the `llm_judge` rules' remote calls.
    judges: super::judge::JudgeClient,
}

impl Gateway {
    /// Builds the gateway from a validated configuration: upstream pools, and the
    /// policies of `config.policies` (or the embedded default).
    pub fn new(config: GatewayConfig) -> Result<Arc<Self>, BuildError> {
        let mut upstreams = config
            .upstreams
            .iter()
            .cloned()
            .map(Upstream::new)
            .collect::<Result<Vec<_>, _>>()?;
        upstreams.sort_by_key(|u| u.config.priority);
        let policies = match &config.policies {
            Some(path) => PolicyStore::open(path)?,
            None => PolicyStore::embedded(),
        };
        let hash_key = match &config.hash_key_env {
            Some(var) => std::env::var(var)
                .map_err(|_| BuildError::HashKey(var.clone()))?
                .into_bytes(),
            None => rand::random::<[u8; 32]>().to_vec(),
        };
        let tenancy = Tenancy::new(&config)?;
        // A reload must never drop a policy a tenant is bound to.
        policies.require(
            config
                .tenants
                .iter()
                .filter_map(|t| t.policy.clone())
                .collect(),
        );
        let set = policies.current();
        for tenant in &config.tenants {
            if let Some(policy) = &tenant.policy {
                if set.get(policy).is_none() {
                    return Err(BuildError::UnknownPolicy {
                        tenant: tenant.id.clone(),
                        policy: policy.clone(),
                    });
                }
            }
        }
        let metrics = Arc::new(Metrics::default());
        let fsync = match &config.audit.fsync {
            Some(text) => text
                .parse::<FsyncPolicy>()
                .map_err(|e| BuildError::Fsync(e.to_string()))?,
            None => FsyncPolicy::default(),
        };
        let log = AuditLog::open(AuditLogOptions {
            path: config.audit.path.clone(),
            also_stdout: config.audit.stdout,
            fsync,
            max_bytes: config.audit.max_bytes,
            rotate_daily: config.audit.rotate_daily,
            failure_counter: Some(metrics.audit_write_failures()),
            ..AuditLogOptions::default()
        })?;
        let recorder = Recorder {
            log: Arc::new(log),
            metrics,
            fail_closed: config.audit.fail_mode == crate::tenancy::redis::FailMode::Closed,
        };
        let (vault, vault_ttl) = build_vault(&config)?;
        let bedrock = super::bedrock::Signer::from_env(&config)?;
        Ok(Arc::new(Self {
            bedrock,
            vault,
            vault_ttl,
            config,
            upstreams,
            policies,
            tenancy,
            recorder,
            hash_key,
            draining: AtomicBool::new(false),
            reloads_seen: std::sync::Mutex::new((0, 0)),
            tracer: std::sync::OnceLock::new(),
            judges: super::judge::JudgeClient::new(),
        }))
    }

    /// Installs the tracer of the OpenTelemetry exporter (once, at start).
    pub fn set_tracer(&self, tracer: crate::audit::telemetry::Tracer) {
        let _ = self.tracer.set(tracer);
    }

    fn tracer(&self) -> Option<&crate::audit::telemetry::Tracer> {
        self.tracer.get()
    }

    /// Flushes and closes the audit log (at shutdown).
    pub async fn close_audit(&self) {
        if let Err(e) = self.recorder.log.close().await {
            tracing::error!(error = %e, "closing the audit log");
        }
    }

    /// Marks the gateway as shutting down: `/readyz` turns 503 so balancers move away.
    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::SeqCst);
    }

    /// Serves one request of the admin listener (`admin_listen`): `GET /metrics`,
    /// `/healthz` and `/readyz`; anything else is a 404. No audit record, no upstream.
    pub fn handle_admin(&self, req: Request<Incoming>) -> Response<Body> {
        let request_id = request_id(req.headers());
        let mut response = match (req.method(), req.uri().path()) {
            (&Method::GET, "/metrics") => self.metrics_response(),
            (&Method::GET, "/healthz") => json_response(StatusCode::OK, r#"{"status":"ok"}"#),
            (&Method::GET, "/readyz") => self.readiness(),
            (method, path) => {
                not_found(method, path, ADMIN_ROUTES).into_response(routes::provider_for_path(path))
            }
        };
        if let Ok(value) = HeaderValue::from_str(&request_id) {
            response.headers_mut().insert(REQUEST_ID, value);
        }
        response
    }

    /// Serves one request; never fails (errors become provider-shaped responses). Model
    /// calls and guardrail checks leave one audit record.
    pub async fn handle(self: Arc<Self>, req: Request<Incoming>) -> Response<Body> {
        let started = std::time::Instant::now();
        let request_id = request_id(req.headers());
        let provider = routes::provider_for_path(req.uri().path());
        let span = crate::audit::telemetry::server_span(
            req.method().as_str(),
            req.uri().path(),
            &request_id,
            req.headers(),
        );
        let mut info = RequestInfo {
            route: req.uri().path().to_string(),
            span: Some(span.clone()),
            ..RequestInfo::default()
        };
        let dispatched = {
            use tracing::Instrument;
            self.dispatch(req, &request_id, &mut info)
                .instrument(span)
                .await
        };
        let mut response = match dispatched {
            Ok(response) => response,
            Err(err) => {
                tracing::info!(request_id = %request_id, status = err.status().as_u16(), error = %err, "request failed");
                info.error = Some(err.code().to_string());
                info.deferred = false;
                err.into_response(provider)
            }
        };
        if let Ok(value) = HeaderValue::from_str(&request_id) {
            response.headers_mut().insert(REQUEST_ID, value);
        }
        if !info.audited {
            return response;
        }
        let status = response.status().as_u16();
        if info.deferred {
            // Streamed: the record is written when the body ends.
            let (parts, body) = response.into_parts();
            let body = AuditBody::new(
                body,
                self.recorder.clone(),
                Arc::new(info),
                request_id,
                status,
                started,
            );
            return Response::from_parts(parts, body.boxed_unsync());
        }
        let record = info.to_record(&request_id, status, started, false);
        info.observe(&self.recorder.metrics, status);
        if info.audit_refused {
            // Already a 503 refusal, counted by the pre-flight.
            let _ = self.recorder.append_refused(record).await;
            return response;
        }
        if self.recorder.append(record).await.is_err() && self.recorder.fail_closed {
            let mut refused =
                GatewayError::Unavailable("the audit log cannot be written (fail_closed)".into())
                    .into_response(provider);
            if let Ok(value) = HeaderValue::from_str(&request_id) {
                refused.headers_mut().insert(REQUEST_ID, value);
            }
            return refused;
        }
        response
    }

    async fn dispatch(
        &self,
        req: Request<Incoming>,
        request_id: &str,
        info: &mut RequestInfo,
    ) -> Result<Response<Body>, GatewayError> {
        let route = routes::resolve(req.method(), req.uri().path())?;
        match route {
            Route::Health => Ok(json_response(StatusCode::OK, r#"{"status":"ok"}"#)),
            Route::Ready => Ok(self.readiness()),
            Route::Metrics if !self.config.metrics_on_client_listener => {
                Err(not_found(req.method(), req.uri().path(), &client_routes()))
            }
            Route::Metrics => Ok(self.metrics_response()),
            Route::ListModels => {
                // With tenants this is a call like any other: a gateway key is required,
                // it never goes upstream, and the tenant's regions and credentials apply.
                let (mut parts, _) = req.into_parts();
                let tenant = self.identify_tenant(&mut parts.headers, info)?;
                let regions =
                    allowed_regions(tenant.and_then(|t| t.regions.as_deref()), &parts.headers)?;
                let candidates = self.candidates(Provider::OpenAi, None, regions.as_deref())?;
                let (upstream, response, deadline) = self
                    .send(
                        &candidates,
                        &parts.method,
                        &parts.uri,
                        &parts.headers,
                        Bytes::new(),
                        tenant,
                    )
                    .await?;
                Ok(self.relay(&upstream, response, deadline))
            }
            Route::GuardrailApply => {
                info.audited = true;
                let (mut parts, body) = req.into_parts();
                let tenant = self.identify_tenant(&mut parts.headers, info)?;
                let body = self.read_body(&parts.headers, body).await?;
                let policies = self.policies.current();
                let scope = match tenant {
                    Some(t) => super::apply::PolicyScope::Tenant(policies.select(
                        t.policy.as_deref(),
                        Some(t.id.as_str()),
                        parts.uri.path(),
                        None,
                    )),
                    None => super::apply::PolicyScope::Any,
                };
                let hash_key = self.tenant_hash_key(info.tenant.as_deref());
                super::apply::apply(
                    &policies,
                    scope,
                    &body,
                    &self.eval_options(&hash_key),
                    &self.judges,
                )
                .await
                .map(|value| json_value_response(StatusCode::OK, &value))
            }
            Route::Model(operation) => {
                info.audited = true;
                self.model_call(operation, req, request_id, info).await
            }
        }
    }

    /// Audit pre-flight (`audit.fail_mode: fail_closed`): while the audit log is known to
    /// be failing, a model call is refused with a 503 before any quota is reserved or
    /// upstream called, since its record could not be written anyway (and fail closed
    /// would refuse the answer after the tokens were spent). The log's probe clears the
    /// state when space returns (`AuditLog::accepting`).
    fn audit_preflight(&self, info: &mut RequestInfo) -> Result<(), GatewayError> {
        if self.recorder.preflight() {
            return Ok(());
        }
        info.audit_refused = true;
        info.fail_events.push(crate::audit::record::FailEvent {
            mode: "fail_closed".into(),
            component: "audit".into(),
            reason: "unavailable".into(),
        });
        Err(GatewayError::Unavailable(
            "the audit log cannot be written (fail_closed)".into(),
        ))
    }

    /// Tenant mode: the caller's tenant, from its gateway key (401 without one); the key
    /// headers are removed so that they never reach an upstream. `None` in pass-through
    /// mode.
    fn identify_tenant(
        &self,
        headers: &mut HeaderMap,
        info: &mut RequestInfo,
    ) -> Result<Option<&crate::config::TenantConfig>, GatewayError> {
        let Some(tenancy) = &self.tenancy else {
            return Ok(None);
        };
        let identity = super::bedrock::identify(tenancy, &self.config, headers)?;
        info.tenant = Some(identity.tenant.to_string());
        info.key_id = Some(identity.key_id.to_string());
        for name in ["authorization", "x-api-key"] {
            headers.remove(name);
        }
        Ok(tenancy.tenant(&identity))
    }

    /// The pseudonym map of a conversation (empty when new, or when the vault fails:
    /// the request goes on, placeholders of earlier turns are then not restored).
    async fn load_pseudonyms(&self, scope: &str) -> PseudonymMap {
        match self.vault.get(scope, MAP_ENTRY).await {
            Ok(Some(text)) => PseudonymMap::import(&text).unwrap_or_default(),
            Ok(None) => PseudonymMap::new(),
            Err(e) => {
                tracing::warn!(error = %e, "pseudonym vault read failed (fail open)");
                self.recorder.metrics.record_fail_event("vault", "open");
                PseudonymMap::new()
            }
        }
    }

    async fn store_pseudonyms(&self, scope: &str, map: &PseudonymMap) {
        if let Err(e) = self
            .vault
            .put(scope, MAP_ENTRY, &map.export(), self.vault_ttl)
            .await
        {
            tracing::warn!(error = %e, "pseudonym vault write failed (fail open)");
            self.recorder.metrics.record_fail_event("vault", "open");
        }
    }

    /// Records a guardrail span for the stage just evaluated.
    fn trace_stage(&self, info: &RequestInfo, stage: &str, started: std::time::SystemTime) {
        let record = match stage {
            "input" => info.input.as_ref(),
            _ => info.output.as_ref(),
        };
        if let (Some(tracer), Some(span), Some(record)) = (self.tracer(), &info.span, record) {
            tracer.guardrail(span, stage, started, record);
        }
    }

    /// `/metrics`: the Prometheus exposition, with policy reloads brought up to date.
    fn metrics_response(&self) -> Response<Body> {
        let status = self.policies.status();
        if let Ok(mut seen) = self.reloads_seen.lock() {
            let ok = status.reloads;
            for _ in seen.0..ok {
                self.recorder.metrics.record_policy_reload(true);
            }
            for _ in seen.1..status.failures {
                self.recorder.metrics.record_policy_reload(false);
            }
            *seen = (ok.max(seen.0), status.failures.max(seen.1));
        }
        let mut response = Response::new(full(Bytes::from(self.recorder.metrics.encode())));
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(crate::audit::metrics::CONTENT_TYPE),
        );
        response
    }

    /// The `hash` action's key for a tenant: HMAC-SHA256(master key, tenant id), so the
    /// same value hashes differently for two tenants (no correlation across tenants).
    /// Pass-through mode uses the master key itself.
    fn tenant_hash_key(&self, tenant: Option<&str>) -> Vec<u8> {
        use hmac::Mac;
        let Some(tenant) = tenant else {
            return self.hash_key.clone();
        };
        match hmac::Hmac::<sha2::Sha256>::new_from_slice(&self.hash_key) {
            Ok(mut mac) => {
                mac.update(b"haechi tenant hash key\0");
                mac.update(tenant.as_bytes());
                mac.finalize().into_bytes().to_vec()
            }
            Err(_) => self.hash_key.clone(),
        }
    }

    fn eval_options<'a>(&self, hash_key: &'a [u8]) -> EvalOptions<'a> {
        EvalOptions {
            hash_key,
            language: None,
            run_all: false,
            trusted: &[],
            select: None,
            judged: &[],
            skip: &[],
        }
    }

    /// `/readyz`: 503 while draining; otherwise 200 with the policy status (a failed
    /// reload keeps the last good policy serving, and is shown here).
    fn readiness(&self) -> Response<Body> {
        let status = self.policies.status();
        let draining = self.draining.load(Ordering::SeqCst);
        let body = serde_json::json!({
            "status": if draining { "draining" } else { "ready" },
            "policy": {
                "version": status.version,
                "reloads": status.reloads,
                "reload_failures": status.failures,
                "last_error": status.last_error,
            }
        });
        let code = if draining {
            StatusCode::SERVICE_UNAVAILABLE
        } else {
            StatusCode::OK
        };
        json_value_response(code, &body)
    }

    /// A model call, in phases: read → decode → identify → admit → guard in → route →
    /// forward → guard out → settle (as the answer streams past).
    async fn model_call(
        &self,
        operation: Operation,
        req: Request<Incoming>,
        request_id: &str,
        info: &mut RequestInfo,
    ) -> Result<Response<Body>, GatewayError> {
        let (mut parts, body) = req.into_parts();
        let body = self.read_body(&parts.headers, body).await?;
        let mut exchange =
            dialect::decode(operation, &body).map_err(|e| GatewayError::BadRequest(e.message))?;
        super::bedrock::set_model(&mut exchange, parts.uri.path());
        let provider = routes::provider_of(operation);
        let model = exchange.model.as_deref();
        info.provider = Some(provider_name(provider));
        info.model = exchange.model.clone();
        info.stream = exchange.stream;

        // Identify and admit (tenant mode only).
        let mut tenant_cfg = None;
        let mut admitted = None;
        if self.tenancy.is_none() {
            self.audit_preflight(info)?;
        }
        if let Some(tenancy) = &self.tenancy {
            let identity = super::bedrock::identify(tenancy, &self.config, &parts.headers)?;
            info.tenant = Some(identity.tenant.to_string());
            info.key_id = Some(identity.key_id.to_string());
            tenant_cfg = tenancy.tenant(&identity);
            // Refusals for the route (no upstream, region) come before admission, so that
            // they spend none of the tenant's quota.
            let regions = allowed_regions(
                tenant_cfg.and_then(|t| t.regions.as_deref()),
                &parts.headers,
            )?;
            self.routable(provider, model, regions.as_deref())?;
            self.audit_preflight(info)?;
            let result = tenancy.admit(&identity, &exchange).await;
            match &result {
                Err(GatewayError::RateLimited { local_fallback, .. }) => {
                    info.quota = Some("refused".into());
                    self.recorder
                        .metrics
                        .record_quota_refusal(Some(&identity.tenant), "rate_limit");
                    if *local_fallback {
                        info.quota = Some("refused_local_fallback".into());
                        info.fail_events.push(quota_store_event("fail_open"));
                        self.recorder
                            .metrics
                            .record_fail_event("quota_store", "open");
                    }
                }
                // The store is unreachable and fails closed: a 503, counted and audited.
                Err(GatewayError::Unavailable(_)) => {
                    info.quota = Some("store_unavailable".into());
                    info.fail_events.push(quota_store_event("fail_closed"));
                    self.recorder
                        .metrics
                        .record_fail_event("quota_store", "closed");
                }
                _ => {}
            }
            admitted = Some(result?);
            info.quota = Some(
                match admitted.as_ref().and_then(|a| a.outcome.as_ref()) {
                    None => "unlimited",
                    Some(o) if o.backend == crate::tenancy::quota::Backend::LocalFallback => {
                        info.fail_events.push(quota_store_event("fail_open"));
                        self.recorder
                            .metrics
                            .record_fail_event("quota_store", "open");
                        "admitted_local_fallback"
                    }
                    Some(_) => "admitted",
                }
                .to_string(),
            );
            // The client's key is a gateway key: it never goes upstream.
            for name in ["authorization", "x-api-key"] {
                parts.headers.remove(name);
            }
        }
        let regions = allowed_regions(
            tenant_cfg.and_then(|t| t.regions.as_deref()),
            &parts.headers,
        )?;
        let reservation = admitted
            .as_ref()
            .and_then(|a| a.outcome.as_ref())
            .and_then(|o| o.reservation().cloned());
        let rate = admitted
            .as_ref()
            .and_then(|a| a.outcome.as_ref())
            .map(|o| rate_headers(o, None))
            .unwrap_or_default();

        let policies = self.policies.current();
        let policy = policies.select(
            tenant_cfg.and_then(|t| t.policy.as_deref()),
            tenant_cfg.map(|t| t.id.as_str()),
            parts.uri.path(),
            model,
        );
        let hash_key = self.tenant_hash_key(info.tenant.as_deref());
        let opts = self.eval_options(&hash_key);

        // Guard in. A conversation's earlier placeholders come from the vault.
        let conversation = parts
            .headers
            .get(CONVERSATION)
            .and_then(|v| v.to_str().ok())
            .filter(|v| !v.is_empty() && v.len() <= 256)
            .map(|v| format!("{}:{v}", info.tenant.as_deref().unwrap_or("-")));
        let mut pseudonyms = match &conversation {
            Some(scope) => self.load_pseudonyms(scope).await,
            None => PseudonymMap::new(),
        };
        let known_before = pseudonyms.len();
        let stage_started = std::time::Instant::now();
        let stage_wall = std::time::SystemTime::now();
        // Remote judges run first (concurrently, each within its deadline); the engine
        // then treats their verdicts like any rule's.
        let judged = self.judges.judge_input(&policy, &exchange).await;
        let in_opts = EvalOptions {
            judged: &judged,
            skip: &[],
            ..opts.clone()
        };
        let input = off_the_reactor(body.len(), || {
            guard_input(&policy, &exchange, &body, &in_opts, &mut pseudonyms)
        });
        if let Some(d) = &input.decision {
            info.stage(d, stage_started.elapsed().as_secs_f64() * 1000.0);
            self.trace_stage(info, "input", stage_wall);
        }
        let mut decisions: Vec<Decision> = input.decision.into_iter().collect();
        if let Some(blocked) = decisions.iter().find(|d| d.action == Verdict::Block) {
            let mut response = block_response(&exchange, blocked, request_id);
            set_decision_headers(&mut response, &decisions);
            add_headers(&mut response, &rate);
            if let Some(res) = &reservation {
                // Nothing was generated: give the reservation back.
                if let Some(tenancy) = &self.tenancy {
                    let store = tenancy.store.clone();
                    let res = res.clone();
                    tokio::spawn(async move {
                        let _ = store.settle(&res, 0, 0).await;
                    });
                }
            }
            return Ok(response);
        }
        let mut forward_body = input.body.map(Bytes::from).unwrap_or(body);
        if let Some(scope) = &conversation {
            if pseudonyms.len() > known_before {
                self.store_pseudonyms(scope, &pseudonyms).await;
            }
        }

        // Ask an OpenAI stream for its usage chunk so that settlement gets real figures;
        // the chunk is removed again before the client sees it.
        let mut strip_usage_chunk = false;
        if reservation.is_some() && exchange.stream && operation == Operation::ChatCompletions {
            if let Some(with_usage) = request_usage_chunk(&forward_body) {
                forward_body = Bytes::from(with_usage);
                strip_usage_chunk = true;
            }
        }

        // Route and forward.
        let candidates = self.routable(provider, model, regions.as_deref())?;
        if let (Some(tracer), Some(span), Some(first)) =
            (self.tracer(), &info.span, candidates.first())
        {
            let call = tracer.genai(
                span,
                &crate::audit::telemetry::GenAiCall {
                    operation: operation_name(operation),
                    provider: provider_name(provider),
                    request_model: model,
                    upstream: &first.config.name,
                    region: first.config.region.as_deref(),
                    server_address: None,
                    stream: exchange.stream,
                },
            );
            // The upstream continues this trace (W3C traceparent).
            call.inject(&mut parts.headers);
            if let Ok(mut g) = info.genai.lock() {
                *g = Some(call);
            }
        }
        let sent_at = std::time::Instant::now();
        let (upstream, response, deadline) = self
            .send(
                &candidates,
                &parts.method,
                &parts.uri,
                &parts.headers,
                forward_body,
                tenant_cfg,
            )
            .await?;
        let first_byte = sent_at.elapsed().as_secs_f64();
        info.upstream_first_byte_ms = Some(first_byte * 1000.0);
        info.upstream = Some(upstream.config.name.clone());
        info.region = upstream.config.region.clone();
        self.recorder
            .metrics
            .observe_upstream(&upstream.config.name, first_byte, Some(first_byte));
        // Bedrock answers for OpenAI clients are translated; event streams are checked.
        let response = super::bedrock::adapt_response(
            &upstream,
            response,
            deadline,
            self.config.limits.max_response_bytes,
            request_id,
        )
        .await?;
        let settlement = match (&self.tenancy, reservation) {
            (Some(tenancy), Some(reservation)) => {
                let store = tenancy.store.clone();
                let model_name = model.unwrap_or("").to_string();
                let prices = tenancy.price_fn(model_name);
                Some((
                    Settlement {
                        store,
                        reservation,
                        cost: prices,
                        on_usage: None,
                    },
                    strip_usage_chunk,
                ))
            }
            _ => None,
        };

        // Guard out (non-streaming answers; streams are relayed as they come).
        let is_json = response
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/json"));
        let needs_output =
            !policy.rules(crate::engine::Stage::Output).is_empty() || !pseudonyms.is_empty();
        let content_type = response
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let is_sse = content_type.starts_with("text/event-stream");
        let is_event_stream =
            content_type.starts_with(crate::dialect::bedrock::eventstream::CONTENT_TYPE);
        // The context comes from the sources the policy names (extension field, tool
        // results, tagged text); relevance is judged when there is context (the question
        // defaults to the last user message) or an explicit question.
        let grounding = crate::dialect::context::gather(&exchange, policy.grounding);
        let ctx_query = grounding.query.clone();
        let mut response = if response.status().is_success() && is_json && needs_output {
            let (mut head, body) = self
                .relay_settled(
                    &upstream,
                    response,
                    deadline,
                    settlement,
                    Some(info.usage.clone()),
                    Some(info.fault.clone()),
                )
                .into_parts();
            let limit = self.config.limits.max_response_bytes;
            let bytes = read_answer(body, limit).await.map_err(|message| {
                GatewayError::UpstreamConnect {
                    upstream: upstream.config.name.clone(),
                    message: format!("reading the answer: {message}"),
                }
            })?;
            let ctx = DetectContext {
                context: &grounding.context,
                query: ctx_query.as_deref(),
            };
            let stage_started = std::time::Instant::now();
            let stage_wall = std::time::SystemTime::now();
            let judged = self
                .judges
                .judge_output(&policy, provider, &bytes, &exchange.context)
                .await;
            let out_opts = EvalOptions {
                judged: &judged,
                skip: &[],
                ..opts.clone()
            };
            let checked = off_the_reactor(bytes.len(), || {
                guard_output(&policy, provider, &bytes, &ctx, &out_opts, &mut pseudonyms)
            });
            match checked {
                Ok(out) => {
                    if let Some(d) = &out.decision {
                        info.stage(d, stage_started.elapsed().as_secs_f64() * 1000.0);
                        self.trace_stage(info, "output", stage_wall);
                    }
                    decisions.extend(out.decision);
                    if let Some(blocked) = decisions.iter().find(|d| d.action == Verdict::Block) {
                        block_response(&exchange, blocked, request_id)
                    } else {
                        let new = out.body.map(Bytes::from).unwrap_or(bytes);
                        head.headers.remove(header::CONTENT_LENGTH);
                        Response::from_parts(head, full(new))
                    }
                }
                Err(e) if output_can_change(&policy) => {
                    // Rules that block or rewrite could not run: fail closed rather than
                    // pass unchecked text on.
                    tracing::warn!(request_id, error = %e, "answer withheld: not parseable for the output stage");
                    return Err(GatewayError::UncheckedAnswer {
                        upstream: upstream.config.name.clone(),
                    });
                }
                Err(e) => {
                    // Only recording rules (warn, shadow) could not run: the answer
                    // passes untouched and the skip is logged.
                    tracing::warn!(request_id, error = %e, "output stage skipped: answer not parseable");
                    Response::from_parts(head, full(bytes))
                }
            }
        } else {
            info.deferred = true;
            let guarded =
                response.status().is_success() && (is_sse || is_event_stream) && needs_output;
            let relayed = self.relay_settled(
                &upstream,
                response,
                deadline,
                settlement,
                Some(info.usage.clone()),
                Some(info.fault.clone()),
            );
            let format = match operation {
                Operation::ConverseStream if is_event_stream => Some(StreamFormat::BedrockConverse),
                _ if is_sse => stream_format(operation),
                _ => None,
            };
            match format.filter(|_| guarded) {
                Some(format) => {
                    // Streams get the same output stage, event by event.
                    let guard = StreamGuard::new(
                        policy.clone(),
                        grounding.context.clone(),
                        ctx_query,
                        hash_key.clone(),
                        None,
                        pseudonyms.clone(),
                    );
                    let (mut head, body) = relayed.into_parts();
                    head.headers.remove(header::CONTENT_LENGTH);
                    let events = GuardedEvents::new(format, guard);
                    let slot = info.stream_output.clone();
                    let body = if format == StreamFormat::BedrockConverse {
                        GuardedFrames::new(body, events, slot).boxed_unsync()
                    } else {
                        GuardedBody::new(body, events, slot).boxed_unsync()
                    };
                    Response::from_parts(head, body)
                }
                None => relayed,
            }
        };
        set_decision_headers(&mut response, &decisions);
        add_headers(&mut response, &rate);
        if !grounding.context.is_empty() {
            // The grounding score of a checked answer, for apps that show or log it.
            let score = decisions
                .iter()
                .filter(|d| d.stage == crate::engine::Stage::Output)
                .find_map(|d| d.scores.get("grounding").copied());
            if let Some(score) = score {
                if let Ok(value) = HeaderValue::from_str(&format!("{score:.3}")) {
                    response.headers_mut().insert(GROUNDING, value);
                }
            }
        }
        if let Some(region) = &upstream.config.region {
            if let Ok(value) = HeaderValue::from_str(region) {
                response.headers_mut().insert(REGION_HEADER, value);
            }
        }
        Ok(response)
    }

    /// Reads the whole request body within the size and time limits.
    async fn read_body(&self, headers: &HeaderMap, body: Incoming) -> Result<Bytes, GatewayError> {
        let limit = self.config.limits.max_body_bytes;
        let declared = headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<usize>().ok());
        if declared.is_some_and(|len| len > limit) {
            return Err(GatewayError::PayloadTooLarge { limit });
        }
        let timeout_ms = self.config.limits.body_read_timeout_ms;
        let collected = tokio::time::timeout(
            Duration::from_millis(timeout_ms),
            Limited::new(body, limit).collect(),
        )
        .await
        .map_err(|_| GatewayError::BodyTimeout(timeout_ms))?;
        match collected {
            Ok(c) => Ok(c.to_bytes()),
            Err(e) if e.is::<http_body_util::LengthLimitError>() => {
                Err(GatewayError::PayloadTooLarge { limit })
            }
            Err(e) => Err(GatewayError::BadRequest(format!(
                "could not read the request body: {e}"
            ))),
        }
    }

    /// [`Gateway::candidates`], and a Bedrock model id must not leave pinned regions.
    fn routable(
        &self,
        provider: Provider,
        model: Option<&str>,
        regions: Option<&[String]>,
    ) -> Result<Vec<Arc<Upstream>>, GatewayError> {
        let candidates = self.candidates(provider, model, regions)?;
        if let (Some(regions), Some(model)) = (regions, model) {
            if candidates.iter().any(|u| u.provider() == Provider::Bedrock) {
                super::bedrock::check_model_region(model, regions)?;
            }
        }
        Ok(candidates)
    }

    /// Upstreams that speak `provider`, serve `model` and sit in one of `regions`
    /// (any region when `None`), best first. Failover never leaves this list.
    fn candidates(
        &self,
        provider: Provider,
        model: Option<&str>,
        regions: Option<&[String]>,
    ) -> Result<Vec<Arc<Upstream>>, GatewayError> {
        let serving: Vec<Arc<Upstream>> = self
            .upstreams
            .iter()
            .filter(|u| {
                (u.provider() == provider || super::bedrock::serves_openai(u, provider, model))
                    && u.serves(model)
            })
            .cloned()
            .collect();
        let for_model = model
            .map(|m| format!(" for model `{m}`"))
            .unwrap_or_default();
        if serving.is_empty() {
            return Err(GatewayError::NoUpstream(format!(
                "no {} upstream is configured{for_model}",
                provider_name(provider),
            )));
        }
        // Healthy upstreams first, each group by priority (the sort is stable).
        let mut serving = serving;
        serving.sort_by_key(|u| u.is_unhealthy());
        let Some(regions) = regions else {
            return Ok(serving);
        };
        let allowed: Vec<Arc<Upstream>> = serving
            .into_iter()
            .filter(|u| {
                u.config
                    .region
                    .as_ref()
                    .is_some_and(|r| regions.contains(r))
            })
            .collect();
        if allowed.is_empty() {
            return Err(GatewayError::Forbidden(format!(
                "no {} upstream{for_model} is in the allowed regions ({})",
                provider_name(provider),
                regions.join(", ")
            )));
        }
        Ok(allowed)
    }

    /// Sends the request to the first candidate that answers, failing over on connect
    /// errors, 429 and 5xx (nothing has reached the client yet at that point).
    async fn send(
        &self,
        candidates: &[Arc<Upstream>],
        method: &Method,
        uri: &http::Uri,
        headers: &HeaderMap,
        body: Bytes,
        tenant: Option<&crate::config::TenantConfig>,
    ) -> Result<(Arc<Upstream>, Response<Incoming>, Instant), GatewayError> {
        let path_and_query = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
        let mut last_error = None;
        for (index, upstream) in candidates.iter().enumerate() {
            let has_next = index + 1 < candidates.len();
            let timeouts = upstream.config.timeouts;
            let deadline = Instant::now() + timeouts.total();
            let url = upstream
                .url_for(path_and_query)
                .map_err(|e| GatewayError::BadRequest(format!("bad request path: {e}")))?;
            let mut request = Request::new(Full::new(body.clone()));
            *request.method_mut() = method.clone();
            *request.uri_mut() = url;
            *request.headers_mut() = upstream.request_headers(headers);
            // A tenant's own provider key for this upstream, when it has one.
            if let Some(var) = tenant.and_then(|t| t.credentials.get(&upstream.config.name)) {
                let value = std::env::var(var)
                    .ok()
                    .and_then(|key| upstream.credential_value(&key));
                if let Some(value) = value {
                    upstream.set_credential(request.headers_mut(), value);
                }
            }
            let translation = if upstream.provider() == Provider::Bedrock {
                super::bedrock::prepare(&self.bedrock, upstream, &mut request, &body)?
            } else {
                None
            };
            let sent = tokio::time::timeout(
                timeouts.first_byte().min(timeouts.total()),
                upstream.client.request(request),
            )
            .await;
            let response = match sent {
                Err(_) => {
                    return Err(GatewayError::UpstreamTimeout {
                        upstream: upstream.config.name.clone(),
                        kind: TimeoutKind::FirstByte,
                        millis: timeouts.first_byte_ms.min(timeouts.total_ms),
                    })
                }
                Ok(Err(e)) if e.is_connect() => {
                    upstream.mark_unhealthy();
                    let err = connect_error(upstream, &e);
                    tracing::warn!(upstream = %upstream.config.name, error = %err, "upstream connect failed");
                    last_error = Some(err);
                    continue;
                }
                Ok(Err(e)) => {
                    return Err(GatewayError::UpstreamConnect {
                        upstream: upstream.config.name.clone(),
                        message: error_chain(&e),
                    })
                }
                Ok(Ok(response)) => response,
            };
            let status = response.status();
            let failed = status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error();
            if failed {
                upstream.mark_unhealthy();
            } else {
                upstream.mark_healthy();
            }
            if has_next && failed {
                tracing::warn!(upstream = %upstream.config.name, status = status.as_u16(), "failing over");
                last_error = Some(GatewayError::UpstreamConnect {
                    upstream: upstream.config.name.clone(),
                    message: format!("answered {status}"),
                });
                continue;
            }
            let response = super::bedrock::tag(response, translation);
            return Ok((upstream.clone(), response, deadline));
        }
        Err(last_error.unwrap_or_else(|| GatewayError::NoUpstream("no candidates".into())))
    }

    /// Streams an upstream response back to the client, frame by frame.
    fn relay<B>(
        &self,
        upstream: &Upstream,
        response: Response<B>,
        deadline: Instant,
    ) -> Response<Body>
    where
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<super::body::BoxError>,
    {
        self.relay_settled(upstream, response, deadline, None, None, None)
    }

    /// Like `relay`, reading usage from the answer to settle the quota reservation.
    fn relay_settled<B>(
        &self,
        upstream: &Upstream,
        response: Response<B>,
        deadline: Instant,
        settlement: Option<(Settlement, bool)>,
        usage_slot: Option<super::record::UsageSlot>,
        fault: Option<super::record::FaultSlot>,
    ) -> Response<Body>
    where
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<super::body::BoxError>,
    {
        let (mut parts, body) = response.into_parts();
        // Hop-by-hop headers, and `x-haechi-*` ones: only the gateway speaks for itself
        // in that namespace (an upstream must not pass for a gateway decision).
        let hop: Vec<_> = parts
            .headers
            .keys()
            .filter(|name| is_hop_by_hop(name) || name.as_str().starts_with("x-haechi-"))
            .cloned()
            .collect();
        for name in hop {
            parts.headers.remove(name);
        }
        let is_sse = parts
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("text/event-stream"));
        let ending = StreamEnding {
            provider: upstream.provider(),
            sse: is_sse,
            fault,
        };
        let body = TimedBody::new(
            body,
            upstream.config.timeouts.idle(),
            deadline,
            ending,
            upstream.config.name.clone(),
        );
        if !parts.status.is_success() || (settlement.is_none() && usage_slot.is_none()) {
            return Response::from_parts(parts, body.boxed_unsync());
        }
        let (settlement, strip) = match settlement {
            Some((s, strip)) => (Some(s), strip),
            None => (None, false),
        };
        let format = if is_sse {
            UsageFormat::Sse {
                strip_usage_chunk: strip,
            }
        } else {
            UsageFormat::Json
        };
        if is_sse && strip {
            parts.headers.remove(header::CONTENT_LENGTH);
        }
        let body = SettleBody::new(body.boxed_unsync(), format, settlement, usage_slot);
        Response::from_parts(parts, body.boxed_unsync())
    }
}

/// The event format of a streamed answer to `operation`, when the output stage reads it.
fn stream_format(operation: Operation) -> Option<StreamFormat> {
    match operation {
        Operation::ChatCompletions => Some(StreamFormat::OpenAiChat),
        Operation::Completions => Some(StreamFormat::OpenAiCompletions),
        Operation::Responses => Some(StreamFormat::OpenAiResponses),
        Operation::Messages => Some(StreamFormat::Anthropic),
        _ => None,
    }
}

/// Ends a timed-out SSE stream with an error event the provider's SDK understands;
/// other bodies are aborted.
struct StreamEnding {
    provider: Provider,
    sse: bool,
    /// Where the fault's class goes, for the audit record.
    fault: Option<super::record::FaultSlot>,
}

impl TimeoutEnding for StreamEnding {
    fn ending(&self, class: &'static str, message: &str) -> Option<Bytes> {
        if let Some(Ok(mut slot)) = self.fault.as_ref().map(|f| f.lock()) {
            *slot = Some(class);
        }
        if !self.sse {
            return None;
        }
        let event = match self.provider {
            Provider::Anthropic => {
                let data = String::from_utf8_lossy(&anthropic::error_body(message, "api_error"))
                    .into_owned();
                format!("event: error\ndata: {data}\n\n")
            }
            _ => {
                let data = String::from_utf8_lossy(&openai::error_body(
                    message,
                    "upstream_error",
                    Some(class),
                ))
                .into_owned();
                format!("data: {data}\n\n")
            }
        };
        Some(Bytes::from(event))
    }
}

fn connect_error(upstream: &Upstream, e: &hyper_util::client::legacy::Error) -> GatewayError {
    let chain = error_chain(e);
    if is_timeout(e) {
        GatewayError::UpstreamTimeout {
            upstream: upstream.config.name.clone(),
            kind: TimeoutKind::Connect,
            millis: upstream.config.timeouts.connect_ms,
        }
    } else {
        GatewayError::UpstreamConnect {
            upstream: upstream.config.name.clone(),
            message: chain,
        }
    }
}

/// Whether any error in the chain is a timeout (hyper-util wraps the connect
/// deadline as an `io::Error` of kind `TimedOut`).
fn is_timeout(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut current = Some(e);
    while let Some(err) = current {
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            if io.kind() == std::io::ErrorKind::TimedOut {
                return true;
            }
        }
        if err.is::<tokio::time::error::Elapsed>() {
            return true;
        }
        current = err.source();
    }
    false
}

/// The error and its sources, joined: hyper's top-level messages are terse.
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

/// `gen_ai.operation.name` of an operation.
fn operation_name(operation: Operation) -> &'static str {
    match operation {
        Operation::ChatCompletions | Operation::Messages | Operation::Responses => "chat",
        Operation::Completions => "text_completion",
        Operation::Embeddings => "embeddings",
        Operation::CountTokens => "count_tokens",
        Operation::Converse | Operation::ConverseStream => "chat",
        Operation::Invoke | Operation::InvokeStream => "chat",
    }
}

fn provider_name(provider: Provider) -> &'static str {
    match provider {
        Provider::OpenAi => "openai",
        Provider::Anthropic => "anthropic",
        Provider::Bedrock => "bedrock",
    }
}

/// The provider-shaped answer to a blocked request: a refusal (a normal answer with a
/// content-filter finish reason, streamed if the client asked to stream) or an error,
/// as the policy chooses.
/// Whether an enforced output rule could block or rewrite the answer (an answer those
/// rules cannot read is then withheld).
fn output_can_change(policy: &crate::policy::compile::CompiledPolicy) -> bool {
    policy
        .rules(crate::engine::Stage::Output)
        .iter()
        .any(|r| r.can_change_text())
}

fn block_response(exchange: &Exchange, decision: &Decision, request_id: &str) -> Response<Body> {
    let message = decision
        .message
        .clone()
        .unwrap_or_else(|| "This request was blocked by policy.".to_string());
    if routes::provider_of(exchange.operation) == Provider::Bedrock {
        return super::bedrock::block_response(
            exchange,
            &message,
            decision.block_style,
            request_id,
        );
    }
    let model = exchange.model.as_deref().unwrap_or("unknown");
    if decision.block_style == BlockStyle::Refusal {
        if exchange.stream {
            if let Some(events) = refusal_stream(exchange.operation, model, &message, request_id) {
                let mut response = Response::new(full(Bytes::from(events)));
                response.headers_mut().insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("text/event-stream"),
                );
                return response;
            }
        } else if let Some(value) = refusal_json(exchange.operation, model, &message, request_id) {
            return json_value_response(StatusCode::OK, &value);
        }
    }
    let body = match routes::provider_of(exchange.operation) {
        Provider::Anthropic => anthropic::error_body(&message, "invalid_request_error"),
        _ => openai::error_body(
            &message,
            "invalid_request_error",
            Some("content_policy_violation"),
        ),
    };
    let mut response = Response::new(full(Bytes::from(body)));
    *response.status_mut() = StatusCode::BAD_REQUEST;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

fn add_headers(response: &mut Response<Body>, headers: &[(http::HeaderName, HeaderValue)]) {
    for (name, value) in headers {
        response.headers_mut().insert(name.clone(), value.clone());
    }
}

/// `x-haechi-action` and `x-haechi-rules` when a rule acted.
fn set_decision_headers(response: &mut Response<Body>, decisions: &[Decision]) {
    let action = guard::combined_action(decisions);
    if action == Verdict::Allow {
        return;
    }
    let headers = response.headers_mut();
    headers.insert(ACTION, HeaderValue::from_static(action.as_str()));
    let rules = guard::acting_rules(decisions).join(",");
    if let Ok(value) = HeaderValue::from_str(&rules) {
        headers.insert(RULES, value);
    }
}

/// Reads a whole (non-streaming) answer up to `limit` bytes.
async fn read_answer(mut body: Body, limit: usize) -> Result<Bytes, String> {
    let mut buf = bytes::BytesMut::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| e.to_string())?;
        if let Ok(data) = frame.into_data() {
            if buf.len() + data.len() > limit {
                return Err(format!("answer exceeds the limit of {limit} bytes"));
            }
            buf.extend_from_slice(&data);
        }
    }
    Ok(buf.freeze())
}

fn json_value_response(status: StatusCode, value: &serde_json::Value) -> Response<Body> {
    let mut response = Response::new(full(Bytes::from(value.to_string())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

fn json_response(status: StatusCode, body: &'static str) -> Response<Body> {
    let mut response = Response::new(full(Bytes::from_static(body.as_bytes())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// The routes of the admin listener.
const ADMIN_ROUTES: &[&str] = &["GET /metrics", "GET /healthz", "GET /readyz"];

/// The client listener's routes when it does not serve `/metrics`.
fn client_routes() -> Vec<&'static str> {
    routes::SUPPORTED
        .iter()
        .copied()
        .filter(|r| *r != "GET /metrics")
        .collect()
}

fn not_found(method: &Method, path: &str, supported: &[&str]) -> GatewayError {
    GatewayError::NotFound {
        method: method.to_string(),
        path: path.to_string(),
        supported: supported.join(", "),
    }
}

/// The client's `x-request-id` when it sent a usable one, else a fresh random id.
fn request_id(headers: &HeaderMap) -> String {
    if let Some(id) = headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128)
    {
        return id.to_string();
    }
    format!("req_{:032x}", rand::random::<u128>())
}

/// Bodies from this size on are checked off the async worker.
const BLOCKING_CHECK_BYTES: usize = 64 * 1024;

/// Runs a guard stage over a large body with [`tokio::task::block_in_place`]: detection is
/// linear but takes milliseconds per hundred KB (seconds for the largest bodies), and
/// on a worker thread it would stall every other connection that worker serves. The
/// worker's other tasks move to another thread meanwhile. Small bodies (the common
/// case, tens of microseconds) and current-thread runtimes run inline.
fn off_the_reactor<T>(body_bytes: usize, check: impl FnOnce() -> T) -> T {
    let multi_thread = tokio::runtime::Handle::try_current()
        .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
    if body_bytes >= BLOCKING_CHECK_BYTES && multi_thread {
        tokio::task::block_in_place(check)
    } else {
        check()
    }
}
