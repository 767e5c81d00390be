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

use crate::detect::DetectContext;
use crate::engine::{evaluate, EvalOptions, PseudonymMap, Stage, Verdict};
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

/// Evaluates an apply request; `Err` is a message for a 400. The policy's `llm_judge`
/// rules of the stage are called first (system messages left out).
pub async fn apply(
    policies: &PolicySet,
    body: &[u8],
    opts: &EvalOptions<'_>,
    judges: &super::judge::JudgeClient,
) -> Result<Value, String> {
    let req: ApplyRequest =
        serde_json::from_slice(body).map_err(|e| format!("invalid guardrail request: {e}"))?;
    let stage = req.source.unwrap_or(Stage::Input);
    let policy = match &req.policy {
        Some(id) => policies.get(id).ok_or_else(|| {
            format!(
                "unknown policy `{id}`; known: {}",
                policies.ids().collect::<Vec<_>>().join(", ")
            )
        })?,
        None => policies.default_policy(),
    };
    let mut texts: Vec<&str> = Vec::new();
    if let Some(t) = &req.text {
        texts.push(t);
    }
    if let Some(messages) = &req.messages {
        texts.extend(messages.iter().map(|m| m.content.as_str()));
    }
    if texts.is_empty() {
        return Err("give `text` or `messages`".to_string());
    }
    let context: Vec<String> = match &req.context {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| {
                v.as_str()
                    .map(str::to_string)
                    .ok_or("`context` items must be strings")
            })
            .collect::<Result<_, _>>()?,
        Some(_) => return Err("`context` must be a string or a list of strings".to_string()),
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
