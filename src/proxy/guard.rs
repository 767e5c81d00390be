//! Applying decisions to bodies: the glue between the pure engine and the wire.
//!
//! No I/O here: the handler reads and writes bodies; these functions decide what the new
//! bytes are. Input rewrites touch only the JSON string literals of rewritten text parts;
//! output rewrites touch only the answer's strings.

use std::ops::Range;

use crate::detect::DetectContext;
use crate::dialect::response::{response_parts, PartKind};
use crate::dialect::{
    remove_member_with_cut, rewrite_strings, DecodeError, Exchange, Provider, Role,
};
use crate::engine::{
    evaluate, restore, restore_json_escaped, Decision, EvalOptions, PseudonymMap, Stage, Verdict,
};
use crate::policy::CompiledPolicy;

/// The outcome of the input stage on one request.
pub struct InputOutcome {
    /// `None` when no input rule ran.
    pub decision: Option<Decision>,
    /// The body to forward, when it differs from the client's.
    pub body: Option<Vec<u8>>,
}

/// Runs the input rules over every text of the request and rewrites the body when a rule
/// anonymized something; strips the `haechi` extension in the same pass.
pub fn guard_input(
    policy: &CompiledPolicy,
    exchange: &Exchange,
    body: &[u8],
    opts: &EvalOptions,
    pseudonyms: &mut PseudonymMap,
) -> InputOutcome {
    let parts: Vec<_> = exchange.texts().map(|(_, part)| part).collect();
    let decision = if policy.rules(Stage::Input).is_empty() {
        None
    } else {
        let texts: Vec<&str> = parts.iter().map(|p| p.text.as_str()).collect();
        // The application's own system prompt is not user input: intent classifiers
        // (prompt attack, toxicity, topic) skip it.
        let trusted: Vec<bool> = exchange
            .texts()
            .map(|(role, _)| role == Role::System)
            .collect();
        let opts = &EvalOptions {
            trusted: &trusted,
            ..opts.clone()
        };
        let ctx = DetectContext {
            context: &exchange.context,
            query: exchange.query.as_deref(),
        };
        Some(evaluate(
            policy,
            Stage::Input,
            &texts,
            &ctx,
            opts,
            pseudonyms,
        ))
    };
    let mut edits: Vec<(Range<usize>, &str)> = Vec::new();
    if let Some(d) = &decision {
        if d.action != Verdict::Block {
            for (part, new) in parts.iter().zip(&d.rewritten) {
                if let Some(new) = new {
                    edits.push((part.span.clone(), new.as_str()));
                }
            }
        }
    }
    let mut current: Option<Vec<u8>> = None;
    if let Some(ext) = &exchange.extension {
        if let Some((stripped, cut)) = remove_member_with_cut(body, ext.clone()) {
            // Text parts never lie inside the extension; those after it move left.
            let removed = cut.end - cut.start;
            for (span, _) in &mut edits {
                if span.start >= cut.end {
                    *span = span.start - removed..span.end - removed;
                }
            }
            current = Some(stripped);
        }
    }
    if !edits.is_empty() {
        let base = current.as_deref().unwrap_or(body);
        current = Some(rewrite_strings(base, &edits));
    }
    InputOutcome {
        decision,
        body: current,
    }
}

/// The outcome of the output stage on one non-streaming answer.
pub struct OutputOutcome {
    /// `None` when no output rule ran.
    pub decision: Option<Decision>,
    /// The body to return, when it differs from the upstream's (not set on block).
    pub body: Option<Vec<u8>>,
}

/// Runs the output rules on the answer (while it still holds placeholders, so that only
/// personal data that did not come from the user is masked), then restores pseudonyms.
pub fn guard_output(
    policy: &CompiledPolicy,
    provider: Provider,
    body: &[u8],
    ctx: &DetectContext,
    opts: &EvalOptions,
    pseudonyms: &mut PseudonymMap,
) -> Result<OutputOutcome, DecodeError> {
    let parts = response_parts(provider, body)?;
    let text_indices: Vec<usize> = parts
        .iter()
        .enumerate()
        .filter(|(_, p)| p.kind == PartKind::Text)
        .map(|(i, _)| i)
        .collect();
    let decision = if policy.rules(Stage::Output).is_empty() {
        None
    } else {
        let texts: Vec<&str> = text_indices
            .iter()
            .map(|&i| parts[i].part.text.as_str())
            .collect();
        Some(evaluate(
            policy,
            Stage::Output,
            &texts,
            ctx,
            opts,
            pseudonyms,
        ))
    };
    if decision
        .as_ref()
        .is_some_and(|d| d.action == Verdict::Block)
    {
        return Ok(OutputOutcome {
            decision,
            body: None,
        });
    }
    let mut new_texts: Vec<Option<String>> = vec![None; parts.len()];
    if let Some(d) = &decision {
        for (k, &i) in text_indices.iter().enumerate() {
            if let Some(Some(new)) = d.rewritten.get(k) {
                new_texts[i] = Some(new.clone());
            }
        }
    }
    if !pseudonyms.is_empty() {
        for (i, part) in parts.iter().enumerate() {
            let text = new_texts[i].as_deref().unwrap_or(&part.part.text);
            let restored = match part.kind {
                PartKind::JsonText => restore_json_escaped(text, pseudonyms),
                PartKind::Text | PartKind::JsonValue => restore(text, pseudonyms),
            };
            if restored != text {
                new_texts[i] = Some(restored);
            }
        }
    }
    // An `annotate` rule's notice goes after the answer's last text (the visible end of
    // the answer in every provider shape); an answer with no text is left as it is.
    if let (Some(note), Some(&last)) = (
        decision.as_ref().and_then(|d| d.annotation.as_deref()),
        text_indices.last(),
    ) {
        let base = new_texts[last].as_deref().unwrap_or(&parts[last].part.text);
        new_texts[last] = Some(annotate(base, note));
    }
    let edits: Vec<(Range<usize>, &str)> = parts
        .iter()
        .zip(&new_texts)
        .filter_map(|(p, new)| new.as_deref().map(|n| (p.part.span.clone(), n)))
        .collect();
    let body = (!edits.is_empty()).then(|| rewrite_strings(body, &edits));
    Ok(OutputOutcome { decision, body })
}

/// The answer text with a notice appended after a blank line.
pub fn annotate(text: &str, notice: &str) -> String {
    let body = text.trim_end();
    if body.is_empty() {
        return notice.to_string();
    }
    format!("{body}\n\n{notice}")
}

/// The answer texts `guard_output` evaluates, in its order (for remote judges, which
/// run before it).
pub fn output_texts(provider: Provider, body: &[u8]) -> Result<Vec<String>, DecodeError> {
    Ok(response_parts(provider, body)?
        .into_iter()
        .filter(|p| p.kind == PartKind::Text)
        .map(|p| p.part.text)
        .collect())
}

/// The strongest action of the stages that ran, for `x-haechi-action`.
pub fn combined_action<'a>(decisions: impl IntoIterator<Item = &'a Decision>) -> Verdict {
    decisions
        .into_iter()
        .map(|d| d.action)
        .max()
        .unwrap_or(Verdict::Allow)
}

/// Rule ids that acted in any stage, deduplicated in order, for `x-haechi-rules`.
pub fn acting_rules<'a>(decisions: impl IntoIterator<Item = &'a Decision>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for d in decisions {
        for r in d.acting_rules() {
            if !out.iter().any(|x| x == r) {
                out.push(r.to_string());
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::compile::compile_sources;
    use crate::policy::load::Source;
    use serde_json::{json, Value};

    fn policy() -> std::sync::Arc<CompiledPolicy> {
        let set = compile_sources(&[Source {
            name: "t.yaml".into(),
            text: "id: default\noutput:\n  - {id: note, detector: word, words: [rumour, 소문], action: annotate, notice: {en: \"[unverified]\", ko: \"[미확인]\"}}\n".into(),
        }])
        .unwrap_or_else(|e| panic!("{e}"));
        set.default_policy()
    }

    fn run(provider: Provider, body: &Value) -> (Verdict, Option<Value>) {
        let bytes = body.to_string().into_bytes();
        let out = guard_output(
            &policy(),
            provider,
            &bytes,
            &DetectContext::default(),
            &EvalOptions::default(),
            &mut PseudonymMap::new(),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let verdict = out.decision.map_or(Verdict::Allow, |d| d.action);
        let body = out
            .body
            .map(|b| serde_json::from_slice(&b).unwrap_or_else(|e| panic!("{e}")));
        (verdict, body)
    }

    #[test]
    fn annotate_appends_to_the_last_text_of_each_shape() {
        // (provider, answer, JSON pointer of the annotated text, expected text)
        let cases = [
            (
                Provider::OpenAi,
                json!({"object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":"A rumour says so."},"finish_reason":"stop"}]}),
                "/choices/0/message/content",
                "A rumour says so.\n\n[unverified]",
            ),
            (
                Provider::OpenAi,
                json!({"object":"text_completion","choices":[{"index":0,"text":"rumour  \n"}]}),
                "/choices/0/text",
                "rumour\n\n[unverified]",
            ),
            (
                Provider::OpenAi,
                json!({"object":"response","output":[{"type":"message","role":"assistant","content":[{"type":"output_text","text":"One."},{"type":"output_text","text":"A rumour."}]}]}),
                "/output/0/content/1/text",
                "A rumour.\n\n[unverified]",
            ),
            (
                Provider::Anthropic,
                json!({"type":"message","role":"assistant","content":[{"type":"text","text":"그건 소문입니다."}],"stop_reason":"end_turn"}),
                "/content/0/text",
                "그건 소문입니다.\n\n[미확인]",
            ),
        ];
        for (provider, answer, pointer, want) in cases {
            let (verdict, body) = run(provider, &answer);
            assert_eq!(verdict, Verdict::Warn, "{answer}");
            let body = body.unwrap_or_else(|| panic!("annotated body for {answer}"));
            assert_eq!(body.pointer(pointer).and_then(Value::as_str), Some(want));
            // Everything else is as the upstream sent it.
            let mut back = body.clone();
            if let Some(v) = back.pointer_mut(pointer) {
                *v = answer.pointer(pointer).cloned().unwrap_or(Value::Null);
            }
            assert_eq!(back, answer);
        }
        let (verdict, body) = run(
            Provider::OpenAi,
            &json!({"choices":[{"message":{"role":"assistant","content":"fine"}}]}),
        );
        assert_eq!((verdict, body), (Verdict::Allow, None));
    }
}
