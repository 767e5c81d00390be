//! `POST /v1/guardrail/apply`: evaluate text against a policy without calling a model,
//! in the spirit of Bedrock's ApplyGuardrail (apps use it for text that never goes to
//! a model, e.g. retrieved documents).
//!
//! Request: `{"source": "input"|"output", "text"? , "messages"?: [{"role", "content"}],
//! "context"?: string|[string], "query"?, "policy"?}`. Response: the decision, findings
//! with character offsets into the text they were found in (`index` says which), and the
//! rewritten text or messages.

use serde::Deserialize;
use serde_json::{json, Value};

use std::sync::Arc;

use super::error::GatewayError;
use crate::detect::DetectContext;
use crate::engine::{evaluate, EvalOptions, PseudonymMap, Stage, Verdict};
use crate::policy::compile::CompiledPolicy;
use crate::policy::PolicySet;
use crate::text::char_offset;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ApplyRequest {
    #[serde(default)]
    source: Option<Stage>,
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    messages: Option<Vec<ApplyMessage>>,
    #[serde(default)]
    context: Option<Value>,
    #[serde(default)]
    query: Option<String>,
    #[serde(default)]
    policy: Option<String>,
}

#[derive(Deserialize)]
struct ApplyMessage {
    #[serde(default)]
    role: Option<String>,
    content: String,
}

/// Which policy an apply request may use.
pub enum PolicyScope {
    /// Pass-through mode: any loaded policy by id, else `default`.
    Any,
    /// A tenant's request: only the policy the gateway selects for that tenant. Naming
    /// another one is a 403 (a tenant never runs, or probes, another tenant's policy).
    Tenant(Arc<CompiledPolicy>),
}

/// Evaluates an apply request. The policy's `llm_judge` rules of the stage are called
/// first (system messages left out).
pub async fn apply(
    policies: &PolicySet,
    scope: PolicyScope,
    body: &[u8],
    opts: &EvalOptions<'_>,
    judges: &super::judge::JudgeClient,
) -> Result<Value, GatewayError> {
    let bad = GatewayError::BadRequest;
    let req: ApplyRequest = serde_json::from_slice(body).map_err(|e| {
        bad(format!(
            "invalid guardrail request: {}",
            crate::text::scrub_json_error(&e)
        ))
    })?;
    let stage = req.source.unwrap_or(Stage::Input);
    let policy = match (scope, &req.policy) {
        (PolicyScope::Tenant(own), Some(id)) if *id != own.id => {
            return Err(GatewayError::Forbidden(
                "`policy` names a policy this tenant may not use; omit it to use the tenant's own"
                    .into(),
            ))
        }
        (PolicyScope::Tenant(own), _) => own,
        (PolicyScope::Any, Some(id)) => policies.get(id).ok_or_else(|| {
            // Echo the name only when it looks like a policy id: error bodies and logs
            // never carry free text a client sent.
            let looks_like_id = id.len() <= 64
                && id
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
            let named = if looks_like_id {
                format!(" `{id}`")
            } else {
                String::new()
            };
            bad(format!(
                "unknown policy{named}; known: {}",
                policies.ids().collect::<Vec<_>>().join(", ")
            ))
        })?,
        (PolicyScope::Any, None) => policies.default_policy(),
    };
    let mut texts: Vec<&str> = Vec::new();
    if let Some(t) = &req.text {
        texts.push(t);
    }
    if let Some(messages) = &req.messages {
        texts.extend(messages.iter().map(|m| m.content.as_str()));
    }
    if texts.is_empty() {
        return Err(bad("give `text` or `messages`".to_string()));
    }
    let context: Vec<String> = match &req.context {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| {
                v.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| bad("`context` items must be strings".into()))
            })
            .collect::<Result<_, _>>()?,
        Some(_) => {
            return Err(bad(
                "`context` must be a string or a list of strings".to_string()
            ))
        }
    };
    let ctx = DetectContext {
        context: &context,
        query: req.query.as_deref(),
    };
    let mut trusted = vec![false; texts.len()];
    if let Some(messages) = &req.messages {
        let first = usize::from(req.text.is_some());
        for (k, m) in messages.iter().enumerate() {
            trusted[first + k] = m.role.as_deref() == Some("system");
        }
    }
    let judged = if super::judge::has_judges(&policy, stage) {
        judges
            .judge_stage(&policy, stage, &texts, &trusted, &context)
            .await
    } else {
        Vec::new()
    };
    let opts = &EvalOptions {
        judged: &judged,
        skip: &[],
        ..opts.clone()
    };
    let mut pseudonyms = PseudonymMap::new();
    let decision = evaluate(&policy, stage, &texts, &ctx, opts, &mut pseudonyms);
    let findings: Vec<Value> = decision
        .hits
        .iter()
        .flat_map(|hit| {
            let texts = &texts;
            hit.findings.iter().map(move |f| {
                let text = texts.get(f.text).copied().unwrap_or("");
                json!({
                    "rule": hit.rule, "kind": hit.kind, "label": f.label, "score": f.score,
                    "action": hit.reported_action(), "index": f.text,
                    "start": char_offset(text, f.start), "end": char_offset(text, f.end),
                })
            })
        })
        .collect();
    let rewritten = |i: usize| -> &str {
        decision
            .rewritten
            .get(i)
            .and_then(|r| r.as_deref())
            .unwrap_or(texts[i])
    };
    let mut out = json!({
        "action": decision.action.as_str(),
        "shadow_action": decision.shadow_action.as_str(),
        "policy": {"id": decision.policy_id, "version": decision.policy_version},
        "rules": decision.acting_rules().collect::<Vec<_>>(),
        "findings": findings,
        "scores": decision.scores,
    });
    if !decision.judges.is_empty() {
        out["judges"] = json!(decision.judges);
    }
    let blocked = decision.action == Verdict::Block;
    if blocked {
        out["message"] = json!(decision.message);
    }
    let mut index = 0;
    if req.text.is_some() {
        if !blocked {
            out["text"] = json!(rewritten(0));
        }
        index = 1;
    }
    if let Some(messages) = &req.messages {
        if !blocked {
            out["messages"] = Value::Array(
                messages
                    .iter()
                    .enumerate()
                    .map(|(k, m)| json!({"role": m.role.as_deref().unwrap_or("user"), "content": rewritten(index + k)}))
                    .collect(),
            );
        }
    }
    Ok(out)
}
