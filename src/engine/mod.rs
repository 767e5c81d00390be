//! The engine: a compiled policy, some texts and a stage in; one explainable decision out.
//!
//! Pure: no I/O, no clock, no randomness. Rules run cheapest first; every rule's hits are
//! recorded; the final action follows a fixed precedence
//! `block > anonymize (pseudonymize | mask | redact | hash) > warn > allow`.
//! Shadow rules are evaluated and reported (`would_block`, ...) but never change the
//! action or the text. Once an enforced rule blocks, later rules cannot change the outcome,
//! so they are skipped unless [`EvalOptions::run_all`] is set (`scan` sets it to report
//! every detector's score).

pub mod pseudonym;
pub mod stream;

use std::collections::BTreeMap;

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

pub use pseudonym::{restore, restore_json_escaped, PseudonymMap};
pub use stream::{Blocked, StreamGuard, TextKind};

use crate::detect::judge::{JudgeOutcome, JudgeReport, JudgeVerdict, UNSAFE_LABEL};
use crate::detect::registry::{CompiledDetector, StreamScope};
use crate::detect::DetectContext;
use crate::policy::compile::{CompiledPolicy, CompiledRule, Messages};
use crate::policy::model::{Action, BlockStyle, DetectorKind, FailMode, Mode};

/// Which side of the model call a text is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stage {
    /// The request (prompt, history, tool results) before it is forwarded.
    #[default]
    Input,
    /// The model's answer.
    Output,
}

impl Stage {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Input => "input",
            Self::Output => "output",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "input" => Some(Self::Input),
            "output" => Some(Self::Output),
            _ => None,
        }
    }
}

/// The outcome of a stage, in precedence order (`Block` is the strongest).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    #[default]
    Allow,
    Warn,
    /// At least one span was pseudonymized, masked, redacted or hashed.
    Anonymize,
    Block,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Allow => "allow",
            Self::Warn => "warn",
            Self::Anonymize => "anonymize",
            Self::Block => "block",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Self::Allow, Self::Warn, Self::Anonymize, Self::Block]
            .into_iter()
            .find(|v| v.as_str() == s)
    }

    fn of(action: Action) -> Self {
        match action {
            Action::Block => Self::Block,
            Action::Mask | Action::Pseudonymize | Action::Redact | Action::Hash => Self::Anonymize,
            // An annotated answer is allowed with a flag: `warn`, plus `Decision::annotation`.
            Action::Warn | Action::Annotate => Self::Warn,
            Action::None => Self::Allow,
        }
    }
}

/// Language of block messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Lang {
    En,
    Ko,
}

/// Per-request evaluation settings.
#[derive(Debug, Clone, Default)]
pub struct EvalOptions<'a> {
    /// Key of the `hash` action's HMAC (per tenant). Empty is allowed but not advised.
    pub hash_key: &'a [u8],
    /// Block message language; `None`: Korean if any text contains Hangul, else English.
    pub language: Option<Lang>,
    /// Run every rule even after a block (for `scan`: every detector's raw score).
    pub run_all: bool,
    /// Per text: true when the application itself wrote it (system / developer prompts).
    /// Classifiers of user intent (prompt attack, toxicity, topic) skip such texts;
    /// span detectors (PII, secrets, words, patterns) still check them. Empty: no text
    /// is trusted.
    pub trusted: &'a [bool],
    /// Only rules for which this returns true run (the streaming stage splits a policy
    /// into rules that gate the text and rules that are only recorded). `None`: all.
    pub select: Option<fn(&CompiledRule) -> bool>,
    /// Per rule of the stage (by index): `true` skips it as well (the streaming stage
    /// runs on a window only the rules that found a candidate in it). Empty: none.
    pub skip: &'a [bool],
    /// Outcomes of the stage's `llm_judge` rules, computed by the caller (the proxy runs
    /// the remote calls before evaluating, so the engine stays pure). A judge rule
    /// without a verdict here is not evaluated and is reported as `not_run`.
    pub judged: &'a [JudgeVerdict],
}

/// One finding of a rule, located in one of the evaluated texts.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HitFinding {
    /// Index of the text in the `texts` slice given to [`evaluate`].
    pub text: usize,
    pub label: String,
    pub score: f32,
    /// Byte offset (on a char boundary) into that text.
    pub start: usize,
    /// Byte offset one past the end.
    pub end: usize,
}

/// A rule that fired.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RuleHit {
    pub rule: String,
    /// Detector name.
    pub kind: &'static str,
    pub action: Action,
    pub mode: Mode,
    /// Highest finding score.
    pub score: f32,
    pub findings: Vec<HitFinding>,
}

impl RuleHit {
    /// `block`, `mask`, ... for enforced rules; `would_block`, ... for shadow rules.
    pub fn reported_action(&self) -> String {
        match self.mode {
            Mode::Enforce => self.action.as_str().to_string(),
            Mode::Shadow => format!("would_{}", self.action.as_str()),
        }
    }
}

/// What the gateway does with one stage of one request, and why.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Decision {
    /// The final action.
    pub action: Verdict,
    /// What the action would be if shadow rules were enforced (for trying rules safely).
    pub shadow_action: Verdict,
    pub policy_id: String,
    pub policy_version: String,
    pub stage: Stage,
    /// Rules that fired (enforced and shadow), in evaluation order.
    pub hits: Vec<RuleHit>,
    /// Per input text: the rewritten text, or `None` when unchanged (always `None` on block).
    pub rewritten: Vec<Option<String>>,
    /// Block message in the chosen language (only when `action` is `block`).
    pub message: Option<String>,
    /// How the block is returned to the caller.
    pub block_style: BlockStyle,
    /// Notice to append to the answer, from enforced `annotate` rules that fired (their
    /// notices in the chosen language, one per line); `None` on block.
    pub annotation: Option<String>,
    /// Every evaluated detector's raw score (max over texts and rules), even below threshold.
    pub scores: BTreeMap<&'static str, f32>,
    /// What each `llm_judge` rule that was reached came to (including fail-open and
    /// fail-closed), in evaluation order.
    pub judges: Vec<JudgeReport>,
}

impl Decision {
    /// Ids of enforced rules that acted (action other than `none`), for `x-haechi-rules`.
    pub fn acting_rules(&self) -> impl Iterator<Item = &str> {
        self.hits
            .iter()
            .filter(|h| h.mode == Mode::Enforce && h.action != Action::None)
            .map(|h| h.rule.as_str())
    }
}

/// Built-in block messages when neither the rule nor the policy gives one.
fn builtin_message(stage: Stage) -> Messages {
    match stage {
        Stage::Input => Messages {
            en: "This request was blocked by policy.".into(),
            ko: "정책에 따라 차단된 요청입니다.".into(),
        },
        Stage::Output => Messages {
            en: "The response was blocked by policy.".into(),
            ko: "정책에 따라 차단된 응답입니다.".into(),
        },
    }
}

/// Built-in notices of `annotate` rules that give none.
fn builtin_notice(kind: crate::policy::model::DetectorKind) -> Messages {
    use crate::policy::model::DetectorKind;
    match kind {
        DetectorKind::Grounding => Messages {
            en: "Note: parts of this answer are not supported by the provided sources; please verify them.".into(),
            ko: "참고: 이 답변의 일부는 제공된 자료로 뒷받침되지 않습니다. 확인이 필요합니다.".into(),
        },
        DetectorKind::Relevance => Messages {
            en: "Note: this answer may not address the question that was asked.".into(),
            ko: "참고: 이 답변은 질문에 맞지 않을 수 있습니다.".into(),
        },
        _ => Messages {
            en: "Note: this answer was flagged by a content policy check.".into(),
            ko: "참고: 이 답변은 콘텐츠 정책 검사에서 표시되었습니다.".into(),
        },
    }
}

fn has_hangul(s: &str) -> bool {
    s.chars()
        .any(|c| matches!(c as u32, 0xAC00..=0xD7A3 | 0x1100..=0x11FF | 0x3130..=0x318F))
}

/// Evaluates one stage of a policy over the texts of a request or answer.
///
/// `pseudonyms` is shared by every stage of a request (and may live across a
/// conversation) so that the same value keeps its placeholder and can be restored.
pub fn evaluate(
    policy: &CompiledPolicy,
    stage: Stage,
    texts: &[&str],
    ctx: &DetectContext,
    opts: &EvalOptions,
    pseudonyms: &mut PseudonymMap,
) -> Decision {
    let mut hits = Vec::new();
    let mut scores: BTreeMap<&'static str, f32> = BTreeMap::new();
    let mut action = Verdict::Allow;
    let mut shadow_action = Verdict::Allow;
    let mut blocker: Option<&CompiledRule> = None;
    // (text, start, end, rule index) of enforced rewriting findings.
    let mut spans: Vec<(usize, usize, usize, usize)> = Vec::new();
    let rules = policy.rules(stage);
    let mut judges = Vec::new();

    for (ri, rule) in rules.iter().enumerate() {
        if blocker.is_some() && !opts.run_all {
            break;
        }
        if opts.select.is_some_and(|keep| !keep(rule)) || opts.skip.get(ri) == Some(&true) {
            continue;
        }
        let mut findings = Vec::new();
        let mut score = 0.0_f32;
        if rule.kind == DetectorKind::LlmJudge {
            if let Some(hit) = judge_finding(rule, texts, opts.judged, &mut judges) {
                let s = scores.entry(rule.kind.as_str()).or_insert(0.0);
                *s = s.max(hit.1);
                if let Some(f) = hit.0 {
                    score = f.score;
                    findings.push(f);
                }
            }
        }
        for (ti, text) in texts.iter().enumerate() {
            if rule.kind == DetectorKind::LlmJudge {
                break;
            }
            if rule.kind.judges_whole_text() && opts.trusted.get(ti).copied().unwrap_or(false) {
                continue;
            }
            let det = rule.detector.detect(text, ctx);
            let s = scores.entry(rule.kind.as_str()).or_insert(0.0);
            *s = s.max(det.score);
            let before = findings.len();
            findings.extend(
                det.findings
                    .iter()
                    .filter(|f| f.score >= rule.threshold)
                    .map(|f| HitFinding {
                        text: ti,
                        label: f.label.clone(),
                        score: f.score,
                        start: f.start,
                        end: f.end,
                    }),
            );
            if findings.len() == before
                && rule.kind.judges_whole_text()
                && det.score >= rule.threshold
            {
                // A whole-text classifier: the finding is the whole text.
                findings.push(HitFinding {
                    text: ti,
                    label: det
                        .findings
                        .first()
                        .map_or_else(|| rule.kind.as_str().to_uppercase(), |f| f.label.clone()),
                    score: det.score,
                    start: 0,
                    end: text.len(),
                });
            }
            score = score.max(
                findings[before..]
                    .iter()
                    .map(|f| f.score)
                    .fold(0.0, f32::max),
            );
        }
        if texts.len() > 1 && rule.detector.stream_scope() == StreamScope::Span {
            add_boundary_findings(rule, texts, ctx, &mut findings);
            score = findings.iter().map(|f| f.score).fold(score, f32::max);
        }
        if findings.is_empty() {
            continue;
        }
        let verdict = Verdict::of(rule.action);
        shadow_action = shadow_action.max(verdict);
        if rule.mode == Mode::Enforce {
            action = action.max(verdict);
            if rule.action == Action::Block && blocker.is_none() {
                blocker = Some(rule);
            }
            if rule.action.rewrites() {
                spans.extend(findings.iter().map(|f| (f.text, f.start, f.end, ri)));
            }
        }
        hits.push(RuleHit {
            rule: rule.id.clone(),
            kind: rule.kind.as_str(),
            action: rule.action,
            mode: rule.mode,
            score,
            findings,
        });
    }

    let mut rewritten = vec![None; texts.len()];
    let mut message = None;
    let mut annotation = None;
    let lang = || {
        opts.language.unwrap_or_else(|| {
            if texts.iter().any(|t| has_hangul(t)) {
                Lang::Ko
            } else {
                Lang::En
            }
        })
    };
    if blocker.is_none() {
        let mut notices: Vec<String> = Vec::new();
        for hit in hits
            .iter()
            .filter(|h| h.mode == Mode::Enforce && h.action == Action::Annotate)
        {
            let Some(rule) = rules.iter().find(|r| r.id == hit.rule) else {
                continue;
            };
            let m = rule
                .notice
                .clone()
                .unwrap_or_else(|| builtin_notice(rule.kind));
            let text = match lang() {
                Lang::En => m.en,
                Lang::Ko => m.ko,
            };
            if !text.is_empty() && !notices.contains(&text) {
                notices.push(text);
            }
        }
        if !notices.is_empty() {
            annotation = Some(notices.join("\n"));
        }
    }
    if let Some(rule) = blocker {
        let lang = lang();
        let m = rule
            .message
            .clone()
            .or_else(|| policy.message.clone())
            .unwrap_or_else(|| builtin_message(stage));
        message = Some(match lang {
            Lang::En => m.en,
            Lang::Ko => m.ko,
        });
    } else if !spans.is_empty() {
        for (ti, text) in texts.iter().enumerate() {
            let mine: Vec<(usize, usize, &CompiledRule, &str)> = spans
                .iter()
                .filter(|s| s.0 == ti)
                .filter_map(|&(_, s, e, ri)| {
                    let rule = rules.get(ri)?;
                    let label = hits
                        .iter()
                        .find(|h| h.rule == rule.id)
                        .and_then(|h| {
                            h.findings
                                .iter()
                                .find(|f| f.text == ti && f.start == s && f.end == e)
                        })
                        .map_or("REDACTED", |f| f.label.as_str());
                    Some((s, e, rule, label))
                })
                .collect();
            if !mine.is_empty() {
                rewritten[ti] = Some(rewrite(text, &mine, opts.hash_key, pseudonyms));
            }
        }
    }

    Decision {
        action,
        shadow_action,
        policy_id: policy.id.clone(),
        policy_version: policy.version.clone(),
        stage,
        hits,
        rewritten,
        message,
        block_style: policy.on_block,
        annotation,
        scores,
        judges,
    }
}

/// How far each side of a message boundary a span rule looks for a value cut in two.
const BOUNDARY_WINDOW: usize = 128;

/// Span findings across the boundary of two consecutive texts: a value cut in two at a
/// message boundary ("my card is 4111 1111" | "1111 1111") is found in the end of one
/// text and the start of the next joined by a space, and reported as one finding per
/// part with the value's label. A part replaces this rule's findings it covers whole (the
/// halves were seen as shorter values); a part that only partly overlaps one is dropped.
fn add_boundary_findings(
    rule: &CompiledRule,
    texts: &[&str],
    ctx: &DetectContext,
    findings: &mut Vec<HitFinding>,
) {
    let mut added = false;
    for ti in 0..texts.len().saturating_sub(1) {
        let (a, b) = (texts[ti], texts[ti + 1]);
        if a.is_empty() || b.is_empty() {
            continue;
        }
        let mut a_start = a.len().saturating_sub(BOUNDARY_WINDOW);
        while !a.is_char_boundary(a_start) {
            a_start += 1;
        }
        let mut b_end = BOUNDARY_WINDOW.min(b.len());
        while !b.is_char_boundary(b_end) {
            b_end -= 1;
        }
        let joined = format!("{} {}", &a[a_start..], &b[..b_end]);
        let junction = a.len() - a_start;
        for f in rule.detector.detect(&joined, ctx).findings {
            let crosses = f.start < junction && f.end > junction + 1;
            // A value touching a cut end of the window may be longer than what was seen.
            let whole = (f.start > 0 || a_start == 0) && (f.end < joined.len() || b_end == b.len());
            if !crosses || !whole || f.score < rule.threshold {
                continue;
            }
            let parts = [
                (ti, a_start + f.start, a.len()),
                (ti + 1, 0, f.end - junction - 1),
            ];
            let clashes = parts.iter().any(|&(t, s, e)| {
                findings.iter().any(|g| {
                    g.text == t && g.start < e && s < g.end && !(s <= g.start && g.end <= e)
                })
            });
            if clashes {
                continue;
            }
            for (t, s, e) in parts {
                findings.retain(|g| !(g.text == t && g.start < e && s < g.end));
                findings.push(HitFinding {
                    text: t,
                    label: f.label.clone(),
                    score: f.score,
                    start: s,
                    end: e,
                });
            }
            added = true;
        }
    }
    if added {
        findings.sort_by_key(|f| (f.text, f.start));
    }
}

/// Reads a judge rule's precomputed verdict: `(finding if the rule fires, raw score)`,
/// `None` when the rule has no verdict (it is then reported as `not_run`). A failed call
/// follows the rule's `fail`: open finds nothing, closed fires on the whole text.
fn judge_finding(
    rule: &CompiledRule,
    texts: &[&str],
    judged: &[JudgeVerdict],
    reports: &mut Vec<JudgeReport>,
) -> Option<(Option<HitFinding>, f32)> {
    let CompiledDetector::LlmJudge(spec) = rule.detector.as_ref() else {
        return None;
    };
    let Some(v) = judged.iter().find(|v| v.rule == rule.id) else {
        reports.push(JudgeReport {
            rule: rule.id.clone(),
            outcome: "not_run",
            reason: None,
            latency_ms: None,
        });
        return None;
    };
    let whole = |label: String, score: f32| HitFinding {
        text: v.text,
        label,
        score,
        start: 0,
        end: texts.get(v.text).map_or(0, |t| t.len()),
    };
    let (outcome, reason, result) = match &v.outcome {
        JudgeOutcome::Judged(j) => {
            let hit = match spec.threshold {
                Some(t) => j.score >= t,
                None => j.flagged,
            };
            let finding = hit.then(|| {
                let label = j
                    .labels
                    .first()
                    .cloned()
                    .unwrap_or_else(|| UNSAFE_LABEL.to_string());
                whole(label, j.score.max(if j.flagged { 0.5 } else { 0.0 }))
            });
            let outcome = if j.flagged { "flagged" } else { "safe" };
            (outcome, None, (finding, j.score))
        }
        JudgeOutcome::Failed(why) => match spec.fail {
            FailMode::Open => ("fail_open", Some(why.as_str()), (None, 0.0)),
            FailMode::Closed => (
                "fail_closed",
                Some(why.as_str()),
                (
                    Some(whole(
                        crate::detect::judge::UNAVAILABLE_LABEL.to_string(),
                        1.0,
                    )),
                    1.0,
                ),
            ),
        },
    };
    reports.push(JudgeReport {
        rule: rule.id.clone(),
        outcome,
        reason,
        latency_ms: Some(v.latency_ms),
    });
    Some(result)
}

/// Rewrite strength when overlapping spans disagree: the most destructive wins.
fn rewrite_rank(a: Action) -> u8 {
    match a {
        Action::Redact => 3,
        Action::Hash => 2,
        Action::Mask => 1,
        _ => 0,
    }
}

/// Applies rewriting spans to one text. Overlapping spans are merged into their union
/// (so no part of a sensitive value survives), rewritten with the action and label of the
/// longest member (ties: the stronger action, then the earlier rule).
fn rewrite(
    text: &str,
    spans: &[(usize, usize, &CompiledRule, &str)],
    key: &[u8],
    pseudonyms: &mut PseudonymMap,
) -> String {
    let mut sorted: Vec<&(usize, usize, &CompiledRule, &str)> = spans.iter().collect();
    sorted.sort_by_key(|s| (s.0, std::cmp::Reverse(s.1)));
    let mut out = String::with_capacity(text.len());
    let mut pos = 0;
    let mut i = 0;
    while i < sorted.len() {
        let (start, mut end) = (sorted[i].0, sorted[i].1);
        let mut best = sorted[i];
        let mut j = i + 1;
        while j < sorted.len() && sorted[j].0 < end {
            let c = sorted[j];
            let better = (
                c.1 - c.0,
                rewrite_rank(c.2.action),
                std::cmp::Reverse(c.2.order),
            ) > (
                best.1 - best.0,
                rewrite_rank(best.2.action),
                std::cmp::Reverse(best.2.order),
            );
            if better {
                best = c;
            }
            end = end.max(c.1);
            j += 1;
        }
        let (Some(before), Some(value)) = (text.get(pos..start), text.get(start..end)) else {
            // Offsets off char boundaries would be a detector bug; leave the text as is.
            return text.to_string();
        };
        out.push_str(before);
        let label = best.3;
        match best.2.action {
            Action::Mask => {
                out.push('{');
                out.push_str(label);
                out.push('}');
            }
            Action::Redact => {}
            Action::Hash => out.push_str(&hash_placeholder(label, value, key)),
            _ => out.push_str(&pseudonyms.placeholder(label, value)),
        }
        pos = end;
        i = j;
    }
    out.push_str(text.get(pos..).unwrap_or_default());
    out
}

/// `<LABEL:8 hex>`: the first 4 bytes of HMAC-SHA256(key, value).
fn hash_placeholder(label: &str, value: &str, key: &[u8]) -> String {
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(key) else {
        return format!("<{label}>");
    };
    mac.update(value.as_bytes());
    let tag = mac.finalize().into_bytes();
    format!("<{label}:{}>", hex::encode(&tag[..4]))
}

#[cfg(test)]
mod tests;
