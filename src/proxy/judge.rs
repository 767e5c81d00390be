//! The I/O half of `llm_judge` rules: calls every judge rule of a stage concurrently,
//! each within its own deadline, before the engine evaluates the stage.
//!
//! The engine stays pure: it receives the outcomes as [`JudgeVerdict`]s and applies each
//! rule's `fail` mode to failed calls. Nothing of the text or of the judge's answer is
//! logged; failures are reported with fixed reason labels.

use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE};
use http::{Method, Request};
use http_body_util::{BodyExt, Full, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use crate::detect::judge::{FailReason, JudgeOutcome, JudgeSpec, JudgeVerdict};
use crate::detect::registry::CompiledDetector;
use crate::engine::Stage;
use crate::policy::compile::CompiledPolicy;
use crate::policy::model::DetectorKind;

/// Largest judge answer read; a judge says a word or a small JSON object.
const MAX_ANSWER_BYTES: usize = 256 * 1024;

type JudgeHttp = Client<HttpsConnector<HttpConnector>, Full<Bytes>>;

/// One pooled HTTP client shared by every judge rule of the gateway.
#[derive(Clone)]
pub struct JudgeClient {
    http: JudgeHttp,
}

impl Default for JudgeClient {
    fn default() -> Self {
        Self::new()
    }
}

impl JudgeClient {
    /// A client trusting the web PKI roots, HTTP/1.1 and HTTP/2, plain HTTP allowed (a
    /// judge on a private network often is).
    pub fn new() -> Self {
        let mut roots = rustls::RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        let tls = rustls::ClientConfig::builder()
            .with_root_certificates(roots)
            .with_no_client_auth();
        let mut connector = HttpConnector::new();
        connector.enforce_http(false);
        connector.set_nodelay(true);
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_all_versions()
            .wrap_connector(connector);
        let http = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(Duration::from_secs(90))
            .timer(TokioTimer::new())
            .build(https);
        Self { http }
    }

    /// Runs the stage's judge rules over the texts a judge should see (`trusted` texts,
    /// the application's own system prompts, are left out as for the other intent
    /// classifiers), joined by blank lines. A hit is reported on the last judged text.
    /// Returns no verdicts when the stage has no judge rule or nothing to judge.
    pub async fn judge_stage(
        &self,
        policy: &CompiledPolicy,
        stage: Stage,
        texts: &[&str],
        trusted: &[bool],
        context: &[String],
    ) -> Vec<JudgeVerdict> {
        let specs: Vec<(&str, &JudgeSpec)> = policy
            .rules(stage)
            .iter()
            .filter(|r| r.kind == DetectorKind::LlmJudge)
            .filter_map(|r| match r.detector.as_ref() {
                CompiledDetector::LlmJudge(spec) => Some((r.id.as_str(), spec.as_ref())),
                _ => None,
            })
            .collect();
        if specs.is_empty() {
            return Vec::new();
        }
        let judged: Vec<usize> = (0..texts.len())
            .filter(|&i| !trusted.get(i).copied().unwrap_or(false))
            .filter(|&i| !texts[i].trim().is_empty())
            .collect();
        let Some(&last) = judged.last() else {
            return Vec::new();
        };
        let joined = judged
            .iter()
            .map(|&i| texts[i])
            .collect::<Vec<_>>()
            .join("\n\n");
        let calls = specs.iter().map(|(rule, spec)| {
            let joined = joined.as_str();
            async move {
                let started = Instant::now();
                let outcome = self.call(spec, joined, context).await;
                if let JudgeOutcome::Failed(reason) = &outcome {
                    tracing::warn!(
                        rule,
                        reason = reason.as_str(),
                        fail = ?spec.fail,
                        "llm_judge call failed"
                    );
                }
                JudgeVerdict {
                    rule: (*rule).to_string(),
                    text: last,
                    outcome,
                    latency_ms: started.elapsed().as_secs_f64() * 1000.0,
                }
            }
        });
        futures_util::future::join_all(calls).await
    }

    /// One judge call within the rule's deadline.
    pub async fn call(&self, spec: &JudgeSpec, text: &str, context: &[String]) -> JudgeOutcome {
        match tokio::time::timeout(spec.deadline, self.call_inner(spec, text, context)).await {
            Ok(outcome) => outcome,
            Err(_) => JudgeOutcome::Failed(FailReason::Timeout),
        }
    }

    async fn call_inner(&self, spec: &JudgeSpec, text: &str, context: &[String]) -> JudgeOutcome {
        let body = spec.request_body(text, context);
        let Ok(bytes) = serde_json::to_vec(&body) else {
            return JudgeOutcome::Failed(FailReason::Config);
        };
        let mut builder = Request::builder()
            .method(Method::POST)
            .uri(spec.url())
            .header(CONTENT_TYPE, "application/json");
        if let Some(var) = &spec.api_key_env {
            let Some(mut value) = std::env::var(var)
                .ok()
                .and_then(|k| HeaderValue::from_str(&format!("Bearer {k}")).ok())
            else {
                return JudgeOutcome::Failed(FailReason::Config);
            };
            value.set_sensitive(true);
            builder = builder.header(AUTHORIZATION, value);
        }
        let Ok(request) = builder.body(Full::new(Bytes::from(bytes))) else {
            return JudgeOutcome::Failed(FailReason::Config);
        };
        let response = match self.http.request(request).await {
            Ok(r) => r,
            Err(_) => return JudgeOutcome::Failed(FailReason::Connect),
        };
        if !response.status().is_success() {
            return JudgeOutcome::Failed(FailReason::Status);
        }
        let body = match Limited::new(response.into_body(), MAX_ANSWER_BYTES)
            .collect()
            .await
        {
            Ok(b) => b.to_bytes(),
            Err(_) => return JudgeOutcome::Failed(FailReason::Connect),
        };
        match spec.parse_response(&body) {
            Ok(j) => JudgeOutcome::Judged(j),
            Err(_) => JudgeOutcome::Failed(FailReason::Parse),
        }
    }
}

/// Whether a stage of a policy has a judge rule (so callers skip the work otherwise).
pub fn has_judges(policy: &CompiledPolicy, stage: Stage) -> bool {
    policy
        .rules(stage)
        .iter()
        .any(|r| r.kind == DetectorKind::LlmJudge)
}

impl JudgeClient {
    /// Judges a request's texts for the input stage (system prompts left out).
    pub async fn judge_input(
        &self,
        policy: &CompiledPolicy,
        exchange: &crate::dialect::Exchange,
    ) -> Vec<JudgeVerdict> {
        if !has_judges(policy, Stage::Input) {
            return Vec::new();
        }
        let texts: Vec<&str> = exchange.texts().map(|(_, p)| p.text.as_str()).collect();
        let trusted: Vec<bool> = exchange
            .texts()
            .map(|(role, _)| role == crate::dialect::Role::System)
            .collect();
        self.judge_stage(policy, Stage::Input, &texts, &trusted, &exchange.context)
            .await
    }

    /// Judges a non-streamed answer for the output stage, on the same texts (and in the
    /// same order) as `guard::guard_output` evaluates.
    pub async fn judge_output(
        &self,
        policy: &CompiledPolicy,
        provider: crate::dialect::Provider,
        body: &[u8],
        context: &[String],
    ) -> Vec<JudgeVerdict> {
        if !has_judges(policy, Stage::Output) {
            return Vec::new();
        }
        let Ok(texts) = super::guard::output_texts(provider, body) else {
            return Vec::new();
        };
        let texts: Vec<&str> = texts.iter().map(String::as_str).collect();
        self.judge_stage(policy, Stage::Output, &texts, &[], context)
            .await
    }
}
