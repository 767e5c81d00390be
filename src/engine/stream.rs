//! The output stage on an answer that streams in.
//!
//! A [`StreamGuard`] receives each text of the answer (a choice's content, a content
//! block, a tool call's arguments) delta by delta and releases text only once no rule can
//! change it any more, so that what the client reads equals what the same policy makes of
//! the whole answer:
//!
//! - Rules that *gate* the text are enforced rules whose action blocks or rewrites.
//!   Warn, none and shadow rules never hold text back; they run once on the whole answer
//!   at the end, for the record (so the record equals the non-streaming one).
//! - Span detectors (PII, secrets, words, patterns) hold text only from the earliest
//!   position where a finding may still be in progress (`detect::partial`): ordinary prose
//!   passes with no delay, an e-mail address is held until it is complete and its cue
//!   window has arrived. Held text is bounded by [`MAX_HOLD`]; past it the oldest text is
//!   decided as if the answer ended there.
//! - Classifiers (toxicity, prompt attack, topics) that gate are judged on the text so
//!   far at each sentence end; the sentence is released once it passed.
//! - Grounding and relevance that gate need the whole answer: it is buffered (up to
//!   [`MAX_HOLD`]) and judged at its end.
//! - Pseudonym placeholders from the input stage are restored in released text; a
//!   placeholder split across deltas is held until complete.
//!
//! Pure: the proxy feeds deltas and writes what comes back.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::pseudonym::open_placeholder;
use super::{
    evaluate, restore, restore_json_escaped, rewrite, Decision, EvalOptions, HitFinding, Lang,
    PseudonymMap, RuleHit, Stage, Verdict,
};
use crate::detect::partial::{StreamMemo, Tail};
use crate::detect::registry::StreamScope;
use crate::detect::DetectContext;
use crate::policy::compile::{CompiledPolicy, CompiledRule};
use crate::policy::model::{Action, DetectorKind, Mode, StreamMode};

/// Longest text held back in one stream. Findings longer than this (a private key of
/// more than 16 KiB) are cut at the bound; grounding on answers longer than this is
/// judged on their first 16 KiB before the rest is released.
pub const MAX_HOLD: usize = 16 * 1024;

/// Text before the undecided part that span detectors see again, so that a window
/// decides as the whole text does: the longest look-behind of the span detectors (the
/// rest of a connection string before a password, 160 bytes; PII cue words, 48). No
/// finding crosses the start of the undecided part (it would have been held there).
pub const LEFT_CONTEXT: usize = crate::detect::secret::CONNECTION_CONTEXT;

/// What kind of text a stream carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextKind {
    /// Answer text: output rules apply, then placeholders are restored.
    Text,
    /// JSON source (tool-call arguments): placeholders are restored JSON-escaped; output
    /// rules do not run on it (as for whole answers).
    JsonArgs,
}

/// The answer was blocked: the decision to record and the message to show.
#[derive(Debug, Clone)]
pub struct Blocked {
    pub decision: Box<Decision>,
    /// How much of the blocked text had been released (bytes of the text as received):
    /// nothing of a blocking finding ever is.
    pub released: usize,
}

struct TextState {
    kind: TextKind,
    /// Everything received (with input-stage placeholders, before rewriting).
    text: String,
    /// Bytes of `text` already decided and released.
    released: usize,
    /// Sentence classifiers judged `text[..judged]`.
    judged: usize,
    /// What the client got for this text so far.
    out: String,
    /// Per output rule: what partial-match scans of this text learned.
    memos: Vec<StreamMemo>,
    /// Until the text is this long nothing more can be released (the last scan found a
    /// hold that only more bytes lift, such as a complete match waiting for the bytes
    /// after it): deltas until then are only appended.
    wake: usize,
}

/// The output stage of one streamed answer.
pub struct StreamGuard {
    policy: Arc<CompiledPolicy>,
    context: Vec<String>,
    query: Option<String>,
    hash_key: Vec<u8>,
    language: Option<Lang>,
    pseudonyms: PseudonymMap,
    /// Whether a placeholder can be restored in this answer: the input stage made some,
    /// or an output rule may. When not, a `<` at the end holds nothing back.
    may_restore: bool,
    texts: Vec<TextState>,
    span_gating: bool,
    sentence_gating: bool,
    whole_gating: bool,
    /// Findings of gating span rules in released text, per rule index.
    span_hits: BTreeMap<usize, Vec<HitFinding>>,
    span_scores: BTreeMap<&'static str, f32>,
    blocked: Option<Decision>,
    /// The record's decision, once every text ended (see [`StreamGuard::annotation`]).
    decided: Option<Decision>,
    /// Whether deltas before a text's `wake` length skip the scan (off only in tests that
    /// compare the two).
    skip_until_wake: bool,
}

fn gates(rule: &CompiledRule) -> bool {
    rule.can_change_text()
}

fn span_gate(rule: &CompiledRule) -> bool {
    gates(rule) && rule.detector.stream_scope() == StreamScope::Span
}

fn sentence_gate(rule: &CompiledRule) -> bool {
    gates(rule) && rule.detector.stream_scope() == StreamScope::Sentence
}

/// Grounding-like rules hold the answer only when their `stream` mode is `buffer` (the
/// default for blocking and rewriting actions); `annotate` releases the answer as it
/// comes and reports the verdict at its end.
/// Remote judges (`llm_judge`) are not called on streamed answers (the proxy calls them
/// before non-streaming stages only), so they never hold one back.
fn whole_gate(rule: &CompiledRule) -> bool {
    gates(rule)
        && rule.detector.stream_scope() == StreamScope::Whole
        && rule.stream == StreamMode::Buffer
        && rule.kind != DetectorKind::LlmJudge
}

fn not_span_gate(rule: &CompiledRule) -> bool {
    !span_gate(rule)
}

impl StreamGuard {
    /// A guard for one answer. `pseudonyms` is the request's map after the input stage.
    pub fn new(
        policy: Arc<CompiledPolicy>,
        context: Vec<String>,
        query: Option<String>,
        hash_key: Vec<u8>,
        language: Option<Lang>,
        pseudonyms: PseudonymMap,
    ) -> Self {
        let rules = policy.rules(Stage::Output);
        let span_gating = rules.iter().any(span_gate);
        let sentence_gating = rules.iter().any(sentence_gate);
        // Grounding and relevance only judge answers to requests that carry context or
        // a question; without them there is nothing to wait for.
        let whole_gating = rules.iter().any(whole_gate) && (!context.is_empty() || query.is_some());
        let may_restore =
            !pseudonyms.is_empty() || rules.iter().any(|r| r.action == Action::Pseudonymize);
        Self {
            may_restore,
            policy,
            context,
            query,
            hash_key,
            language,
            pseudonyms,
            texts: Vec::new(),
            span_gating,
            sentence_gating,
            whole_gating,
            span_hits: BTreeMap::new(),
            span_scores: BTreeMap::new(),
            blocked: None,
            decided: None,
            skip_until_wake: true,
        }
    }

    /// Whether the guard can change anything: some output rule, or placeholders to
    /// restore. When false the stream can be relayed untouched.
    pub fn is_active(&self) -> bool {
        !self.policy.rules(Stage::Output).is_empty() || !self.pseudonyms.is_empty()
    }

    /// Opens a new text of the answer; returns its id for [`push`](Self::push).
    pub fn open(&mut self, kind: TextKind) -> usize {
        self.texts.push(TextState {
            kind,
            text: String::new(),
            released: 0,
            judged: 0,
            out: String::new(),
            memos: vec![StreamMemo::default(); self.policy.rules(Stage::Output).len()],
            wake: 0,
        });
        self.texts.len() - 1
    }

    /// Whether an earlier delta blocked the answer.
    pub fn is_blocked(&self) -> bool {
        self.blocked.is_some()
    }

    /// What the client has received of text `id` so far.
    pub fn released(&self, id: usize) -> &str {
        self.texts.get(id).map_or("", |t| t.out.as_str())
    }

    /// How many bytes of text `id` as the upstream wrote it are still held back (the
    /// reader's delay beyond the upstream's, in bytes).
    pub fn held(&self, id: usize) -> usize {
        self.texts.get(id).map_or(0, |t| t.text.len() - t.released)
    }

    /// Adds a delta to text `id`; returns the text that can be released now (often all
    /// of it, sometimes nothing).
    pub fn push(&mut self, id: usize, delta: &str) -> Result<String, Blocked> {
        self.check_not_blocked()?;
        let Some(state) = self.texts.get_mut(id) else {
            return Ok(String::new());
        };
        state.text.push_str(delta);
        self.advance(id, false)
    }

    /// Adds a delta to text `id` without deciding anything yet: the next
    /// [`push`](Self::push) or [`finish_text`](Self::finish_text) decides it with the
    /// rest. For deltas that arrived together, so that they are scanned once.
    pub fn append(&mut self, id: usize, delta: &str) -> Result<(), Blocked> {
        self.check_not_blocked()?;
        if let Some(state) = self.texts.get_mut(id) {
            state.text.push_str(delta);
        }
        Ok(())
    }

    /// Text `id` is complete: decides and returns everything still held.
    pub fn finish_text(&mut self, id: usize) -> Result<String, Blocked> {
        self.check_not_blocked()?;
        if id >= self.texts.len() {
            return Ok(String::new());
        }
        self.advance(id, true)
    }

    fn check_not_blocked(&self) -> Result<(), Blocked> {
        match &self.blocked {
            Some(d) => Err(Blocked {
                decision: Box::new(d.clone()),
                released: 0,
            }),
            None => Ok(()),
        }
    }

    fn options(&self, select: fn(&CompiledRule) -> bool) -> EvalOptions<'_> {
        EvalOptions {
            hash_key: &self.hash_key,
            language: self.language,
            run_all: false,
            trusted: &[],
            select: Some(select),
            judged: &[],
            skip: &[],
        }
    }

    fn block(&mut self, mut decision: Decision, id: usize, offset: usize) -> Blocked {
        for hit in &mut decision.hits {
            for f in &mut hit.findings {
                f.text = id;
                f.start += offset;
                f.end += offset;
            }
        }
        decision.rewritten.clear();
        self.blocked = Some(decision.clone());
        Blocked {
            decision: Box::new(decision),
            released: self.texts.get(id).map_or(0, |t| t.released),
        }
    }

    /// Decides as much of text `id` as can be decided, and releases it.
    fn advance(&mut self, id: usize, at_end: bool) -> Result<String, Blocked> {
        let policy = Arc::clone(&self.policy);
        let rules = policy.rules(Stage::Output);
        let (kind, len, released) = {
            let s = &self.texts[id];
            (s.kind, s.text.len(), s.released)
        };
        let c = released;
        if !at_end && self.skip_until_wake && len < self.texts[id].wake {
            return Ok(String::new());
        }
        let mut p = len;
        let mut forced = false;
        let mut candidate = at_end;
        // Span rules (by index, the first 64) whose scan found a complete match: only
        // they can find anything in the releasable part, so a window runs only them.
        let mut candidates: u64 = 0;

        if kind == TextKind::Text && !at_end {
            // Until a hold is known to stay, nothing is known beyond this delta.
            let mut firm_until = 0;
            if self.whole_gating {
                p = c;
                firm_until = usize::MAX;
            }
            let TextState { text, memos, .. } = &mut self.texts[id];
            if self.span_gating {
                let mut span = Tail {
                    hold: len,
                    candidate: false,
                    firm_until: 0,
                };
                for (ri, (rule, memo)) in rules.iter().zip(memos.iter_mut()).enumerate() {
                    if !span_gate(rule) {
                        continue;
                    }
                    let tail = rule.detector.stream_tail(text, c, memo);
                    if tail.candidate {
                        candidates |= 1u64.checked_shl(ri as u32).unwrap_or(0);
                    }
                    span = span.min(tail);
                }
                p = p.min(span.hold);
                candidate |= span.candidate;
                if span.hold <= c {
                    firm_until = firm_until.max(span.firm_until);
                }
            }
            // Nothing is released before the text reaches `firm_until` (or the bound
            // forces a release): the deltas until then need no scan.
            if p <= c {
                self.texts[id].wake = firm_until.min(c + MAX_HOLD + 1);
            }
            let text = &self.texts[id].text;
            if self.sentence_gating && p > c {
                p = last_sentence_end(text, c, p).unwrap_or(c);
            }
        }
        if !at_end {
            if let Some(open) = self
                .may_restore
                .then(|| open_placeholder(&self.texts[id].text, c))
                .flatten()
            {
                p = p.min(open);
            }
            if p + MAX_HOLD < len {
                p = ceil_char(&self.texts[id].text, len - MAX_HOLD);
                forced = true;
                candidate = true;
            }
        }
        if p <= c && !at_end {
            return Ok(String::new());
        }

        let mut spans: Vec<(usize, usize, usize, String)> = Vec::new();
        if kind == TextKind::Text {
            // Classifiers judge the text so far at sentence ends (and at the end).
            if self.sentence_gating && p > self.texts[id].judged {
                self.texts[id].judged = p;
                let decision = {
                    let text = &self.texts[id].text[..p];
                    let ctx = DetectContext {
                        context: &self.context,
                        query: self.query.as_deref(),
                    };
                    let opts = self.options(sentence_gate);
                    let mut scratch = self.pseudonyms.clone();
                    evaluate(&policy, Stage::Output, &[text], &ctx, &opts, &mut scratch)
                };
                if decision.action == Verdict::Block {
                    return Err(self.block(decision, id, 0));
                }
                for hit in &decision.hits {
                    if let Some(ri) = rules.iter().position(|r| r.id == hit.rule) {
                        if rules[ri].action.rewrites() && rules[ri].mode == Mode::Enforce {
                            // A rewriting classifier rewrites the undecided sentence(s).
                            let label = hit.findings.first().map_or("REDACTED", |f| &f.label);
                            spans.push((c, p, ri, label.to_string()));
                        }
                    }
                }
            }
            if at_end && self.whole_gating {
                let decision = {
                    let text = self.texts[id].text.as_str();
                    let ctx = DetectContext {
                        context: &self.context,
                        query: self.query.as_deref(),
                    };
                    let opts = self.options(whole_gate);
                    let mut scratch = self.pseudonyms.clone();
                    evaluate(&policy, Stage::Output, &[text], &ctx, &opts, &mut scratch)
                };
                if decision.action == Verdict::Block {
                    return Err(self.block(decision, id, 0));
                }
            }
            if self.span_gating && candidate {
                let text = self.texts[id].text.as_str();
                let a = floor_char(text, c.saturating_sub(LEFT_CONTEXT));
                let window = &text[a..];
                // At the end or past the bound every rule may find something; otherwise
                // a rule without a complete match before its hold cannot (the rules past
                // the first 64 always run).
                let skip: Vec<bool> = if at_end || forced {
                    Vec::new()
                } else {
                    (0..rules.len())
                        .map(|ri| ri < 64 && candidates & (1 << ri) == 0)
                        .collect()
                };
                let decision = {
                    let ctx = DetectContext {
                        context: &self.context,
                        query: self.query.as_deref(),
                    };
                    // Every gating rule runs even when one blocks: a block found at the
                    // undecided end may not hold once more text comes, while another
                    // rule's finding earlier in the window still has to be applied.
                    let opts = EvalOptions {
                        hash_key: &self.hash_key,
                        language: self.language,
                        run_all: true,
                        trusted: &[],
                        select: Some(span_gate),
                        judged: &[],
                        skip: &skip,
                    };
                    let mut scratch = self.pseudonyms.clone();
                    evaluate(&policy, Stage::Output, &[window], &ctx, &opts, &mut scratch)
                };
                let mut found: Vec<(usize, usize, usize, &RuleHit, usize)> = Vec::new();
                for hit in &decision.hits {
                    let Some(ri) = rules.iter().position(|r| r.id == hit.rule) else {
                        continue;
                    };
                    for (fi, f) in hit.findings.iter().enumerate() {
                        let (s, e) = (a + f.start, a + f.end);
                        if s >= c {
                            found.push((s, e, ri, hit, fi));
                        }
                    }
                }
                // A finding across the cut holds the cut back to its start (or, past
                // the bound, carries it forward to its end).
                loop {
                    let crossing = found.iter().find(|f| f.0 < p && f.1 > p);
                    match crossing {
                        Some(f) if forced => p = f.1,
                        Some(f) => p = f.0,
                        None => break,
                    }
                }
                if p <= c && !at_end {
                    return Ok(String::new());
                }
                let inside: Vec<&(usize, usize, usize, &RuleHit, usize)> =
                    found.iter().filter(|f| f.1 <= p).collect();
                if inside
                    .iter()
                    .any(|f| rules[f.2].action == Action::Block && rules[f.2].mode == Mode::Enforce)
                {
                    let mut d = decision.clone();
                    for hit in &mut d.hits {
                        hit.findings.retain(|f| a + f.start >= c && a + f.end <= p);
                    }
                    d.hits.retain(|h| !h.findings.is_empty());
                    return Err(self.block(d, id, a));
                }
                for (k, v) in &decision.scores {
                    let s = self.span_scores.entry(k).or_insert(0.0);
                    *s = s.max(*v);
                }
                for &&(s, e, ri, hit, fi) in &inside {
                    let f = &hit.findings[fi];
                    if rules[ri].action.rewrites() && rules[ri].mode == Mode::Enforce {
                        spans.push((s, e, ri, f.label.clone()));
                    }
                    self.span_hits.entry(ri).or_default().push(HitFinding {
                        text: id,
                        label: f.label.clone(),
                        score: f.score,
                        start: s,
                        end: e,
                    });
                }
            }
        }

        let state = &mut self.texts[id];
        let segment = &state.text[c..p];
        let rewritten = if spans.is_empty() {
            segment.to_string()
        } else {
            let refs: Vec<(usize, usize, &CompiledRule, &str)> = spans
                .iter()
                .map(|(s, e, ri, label)| (s - c, e - c, &rules[*ri], label.as_str()))
                .collect();
            rewrite(segment, &refs, &self.hash_key, &mut self.pseudonyms)
        };
        let out = match kind {
            _ if !self.may_restore => rewritten,
            TextKind::Text => restore(&rewritten, &self.pseudonyms),
            TextKind::JsonArgs => restore_json_escaped(&rewritten, &self.pseudonyms),
        };
        state.released = p;
        state.out.push_str(&out);
        Ok(out)
    }

    /// The stage's decision for the record, as the non-streaming stage would make it:
    /// the block that stopped the stream, or every rule on the whole answer (gating
    /// span rules contribute what they found in released text). `None` when the policy
    /// has no output rules.
    pub fn finish(mut self) -> Option<Decision> {
        if let Some(d) = self.blocked.take() {
            return Some(d);
        }
        if let Some(d) = self.decided.take() {
            return Some(d);
        }
        self.decide()
    }

    /// What the client may read about the answer's grounding once every text ended:
    /// the grounding and relevance scores and the stage's action (no text), when the
    /// request carried context or a question. The decision is kept for the record.
    pub fn annotation(&mut self) -> Option<serde_json::Value> {
        if self.context.is_empty() && self.query.is_none() {
            return None;
        }
        if self.decided.is_none() && self.blocked.is_none() {
            self.decided = self.decide();
        }
        let d = self.decided.as_ref()?;
        let mut out = serde_json::Map::new();
        for key in ["grounding", "relevance"] {
            if let Some(score) = d.scores.get(key) {
                out.insert(
                    key.into(),
                    serde_json::json!((*score * 1000.0).round() / 1000.0),
                );
            }
        }
        if out.is_empty() {
            return None;
        }
        out.insert("action".into(), d.action.as_str().into());
        let rules: Vec<&str> = d.acting_rules().collect();
        out.insert("rules".into(), rules.into());
        if let Some(notice) = &d.annotation {
            out.insert("notice".into(), notice.as_str().into());
        }
        Some(serde_json::Value::Object(out))
    }

    /// The notices of `annotate` rules that fired on the whole answer (available once
    /// [`annotation`](Self::annotation) decided).
    pub fn notice(&self) -> Option<&str> {
        self.decided.as_ref()?.annotation.as_deref()
    }

    fn decide(&self) -> Option<Decision> {
        let rules = self.policy.rules(Stage::Output);
        if rules.is_empty() {
            return None;
        }
        let ids: Vec<usize> = (0..self.texts.len())
            .filter(|&i| self.texts[i].kind == TextKind::Text)
            .collect();
        let texts: Vec<&str> = ids.iter().map(|&i| self.texts[i].text.as_str()).collect();
        let ctx = DetectContext {
            context: &self.context,
            query: self.query.as_deref(),
        };
        let mut scratch = self.pseudonyms.clone();
        let mut d = evaluate(
            &self.policy,
            Stage::Output,
            &texts,
            &ctx,
            &self.options(not_span_gate),
            &mut scratch,
        );
        for hit in &mut d.hits {
            for f in &mut hit.findings {
                f.text = ids.get(f.text).copied().unwrap_or(f.text);
            }
        }
        for (&ri, findings) in &self.span_hits {
            let findings = findings.clone();
            let rule = &rules[ri];
            let verdict = Verdict::of(rule.action);
            d.shadow_action = d.shadow_action.max(verdict);
            d.action = d.action.max(verdict);
            d.hits.push(RuleHit {
                rule: rule.id.clone(),
                kind: rule.kind.as_str(),
                action: rule.action,
                mode: rule.mode,
                score: findings.iter().map(|f| f.score).fold(0.0, f32::max),
                findings,
            });
        }
        d.hits.sort_by_key(|h| {
            rules
                .iter()
                .position(|r| r.id == h.rule)
                .unwrap_or(usize::MAX)
        });
        for (k, v) in &self.span_scores {
            let s = d.scores.entry(k).or_insert(0.0);
            *s = s.max(*v);
        }
        d.rewritten = vec![None; texts.len()];
        Some(d)
    }
}

/// The end of the last sentence in `text[from..upto]` (just after its terminator), if
/// one ends there.
fn last_sentence_end(text: &str, from: usize, upto: usize) -> Option<usize> {
    let region = text.get(from..upto)?;
    let mut end = None;
    let mut chars = region.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        let next = chars.peek().map(|&(_, n)| n);
        let ends = match c {
            '\n' => true,
            '.' | '!' | '?' | '。' | '！' | '？' => next.is_some_and(char::is_whitespace),
            _ => false,
        };
        if ends {
            end = Some(from + i + c.len_utf8());
        }
    }
    end
}

fn floor_char(text: &str, mut i: usize) -> usize {
    while i > 0 && !text.is_char_boundary(i) {
        i -= 1;
    }
    i
}

fn ceil_char(text: &str, mut i: usize) -> usize {
    while i < text.len() && !text.is_char_boundary(i) {
        i += 1;
    }
    i
}

#[cfg(test)]
mod tests;
