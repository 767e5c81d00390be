//! `pii` detector: personal identifiers in English and Korean text.
//!
//! How it runs (see `docs/pii.md` for figures):
//! 1. one pass of a multi-pattern, byte-oriented `regex_automata` meta regex proposes
//!    candidates (each pattern belongs to a [`rules::Family`]);
//! 2. each candidate's family classifier runs validators (Luhn, mod-97, ABA, RRN date and
//!    check digit, ...) and looks for cue words in a small window around it;
//! 3. NAME and ADDRESS heuristics (gazetteers + cues) run on a cheap capitalised-word scan;
//! 4. custom entities from the policy run as their own regexes.
//!
//! Scores: each candidate starts from a base confidence per pattern, validators raise it
//! (or lower it when they fail), cue words nearby raise it, negative cues lower it. The
//! policy's threshold or [`Strength`] decides what counts.

mod classify;
mod context;
mod korean;
mod names;
mod rules;
mod swar;
pub mod validators;

use std::collections::HashSet;

use regex_automata::{meta::Regex, util::syntax, Anchored, Input};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::partial::{PartialMatcher, StreamMemo, Tail};
use super::{DetectContext, Detection, Finding};
use context::CueFinder;
use rules::Family;

/// Every built-in entity label, Bedrock Guardrails' names first, then our own.
pub fn all_entities() -> &'static [&'static str] {
    &[
        "EMAIL",
        "PHONE",
        "NAME",
        "ADDRESS",
        "AGE",
        "URL",
        "IP_ADDRESS",
        "MAC_ADDRESS",
        "USERNAME",
        "PASSWORD",
        "PIN",
        "DRIVER_ID",
        "LICENSE_PLATE",
        "VEHICLE_IDENTIFICATION_NUMBER",
        "CREDIT_DEBIT_CARD_NUMBER",
        "CREDIT_DEBIT_CARD_CVV",
        "CREDIT_DEBIT_CARD_EXPIRY",
        "INTERNATIONAL_BANK_ACCOUNT_NUMBER",
        "SWIFT_CODE",
        "US_SOCIAL_SECURITY_NUMBER",
        "US_INDIVIDUAL_TAX_IDENTIFICATION_NUMBER",
        "US_PASSPORT_NUMBER",
        "US_BANK_ACCOUNT_NUMBER",
        "US_BANK_ROUTING_NUMBER",
        "UK_NATIONAL_HEALTH_SERVICE_NUMBER",
        "UK_NATIONAL_INSURANCE_NUMBER",
        "UK_UNIQUE_TAXPAYER_REFERENCE_NUMBER",
        "CA_SOCIAL_INSURANCE_NUMBER",
        "CA_HEALTH_NUMBER",
        "KR_RRN",
        "KR_FRN",
        "KR_PHONE",
        "KR_BRN",
        "KR_CRN",
        "KR_PASSPORT",
        "KR_DRIVER_LICENSE",
        "KR_BANK_ACCOUNT",
        "KR_ADDRESS",
        "KR_NAME",
    ]
}

/// How eagerly a policy wants PII caught. Higher strength means a lower score threshold
/// (more findings), as with Bedrock Guardrails' filter strengths.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Strength {
    Low,
    Medium,
    High,
}

/// Score threshold for a strength: `low` 0.75 (only validated or strongly cued spans),
/// `medium` 0.5 (the default; what the figures in docs/pii.md use), `high` 0.3
/// (adds uncued guesses such as an RRN whose check digit fails without a cue word).
pub const fn strength_threshold(s: Strength) -> f32 {
    match s {
        Strength::Low => 0.75,
        Strength::Medium => 0.5,
        Strength::High => 0.3,
    }
}

/// A policy-defined entity: a regex, an optional named validator and cue words.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CustomEntity {
    /// Label reported in findings, e.g. `EMPLOYEE_ID`.
    pub label: String,
    /// Regular expression (Rust `regex` syntax) for the entity.
    pub pattern: String,
    /// Named validator run on the match (`luhn`, `iban`, `aba`, `ssn`, `itin`, `nhs`,
    /// `ca_sin`, `vin`, `kr_rrn`, `kr_brn`, `kr_crn`): a passing match gets `score + 0.2`,
    /// a failing one `score × 0.3` (still reported, below usual thresholds).
    #[serde(default)]
    pub validator: Option<String>,
    /// Words that raise the score by 0.3 when found within 48 bytes before the match.
    #[serde(default)]
    pub context: Vec<String>,
    /// Base score of a match.
    #[serde(default = "default_custom_score")]
    pub score: f32,
}

fn default_custom_score() -> f32 {
    0.6
}

/// Errors building a [`PiiDetector`].
#[derive(Debug, thiserror::Error)]
pub enum PiiError {
    #[error("unknown PII entity `{name}`; valid entities: {valid}")]
    UnknownEntity { name: String, valid: String },
    #[error("custom entity `{label}`: invalid pattern: {source}")]
    CustomPattern {
        label: String,
        #[source]
        source: Box<regex_automata::meta::BuildError>,
    },
    #[error("custom entity `{label}`: unknown validator `{name}`; valid: {valid}")]
    UnknownValidator {
        label: String,
        name: String,
        valid: String,
    },
    #[error("building the built-in patterns failed: {0}")]
    Internal(String),
}

/// One compiled multi-pattern regex and the family of each pattern id.
struct Group {
    re: Regex,
    families: Vec<Family>,
}

impl Group {
    fn build(rules: Vec<(Family, String)>) -> Result<Option<Self>, PiiError> {
        if rules.is_empty() {
            return Ok(None);
        }
        let (families, pats): (Vec<Family>, Vec<String>) = rules.into_iter().unzip();
        let re = Regex::builder()
            .syntax(syntax::Config::new().unicode(false).utf8(false))
            .build_many(&pats)
            .map_err(|e| PiiError::Internal(e.to_string()))?;
        Ok(Some(Self { re, families }))
    }
}

struct Custom {
    label: String,
    re: Regex,
    validator: Option<fn(&str) -> bool>,
    context: Vec<String>,
    score: f32,
}

/// The compiled PII detector. Build once per policy rule; `detect` is pure.
pub struct PiiDetector {
    /// Families that may match without a digit.
    any: Option<Group>,
    /// Families whose matches always hold a digit.
    digit: Option<Group>,
    enabled: HashSet<&'static str>,
    cues: CueFinder,
    names: Option<names::NameFinder>,
    custom: Vec<Custom>,
    /// The candidate patterns as lazy DFAs, for streamed answers.
    partial_builtin: Option<PartialMatcher>,
    partial_custom: Option<PartialMatcher>,
    /// The e-mail pattern as written, for a scan that starts inside a word (see
    /// [`rules::partial_pattern`]).
    partial_email: Option<PartialMatcher>,
    /// Whether a free-text entity (names, addresses) is enabled: those are found by
    /// heuristics without a partial-match model, so streams hold a fixed window.
    free_text: bool,
    /// Whether `ADDRESS` is enabled (see [`classify::Cx::addresses`]).
    addresses: bool,
}

impl std::fmt::Debug for PiiDetector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PiiDetector")
            .field("entities", &self.enabled.len())
            .field("custom", &self.custom.len())
            .finish()
    }
}

impl PiiDetector {
    /// Builds a detector for `entities` (None = all built-in ones) plus `custom` entities.
    pub fn new(entities: Option<&[String]>, custom: &[CustomEntity]) -> Result<Self, PiiError> {
        let all = all_entities();
        let enabled: HashSet<&'static str> = match entities {
            None => all.iter().copied().collect(),
            Some(list) => {
                let mut set = HashSet::new();
                for name in list {
                    let upper = name.trim().to_ascii_uppercase();
                    match all.iter().find(|e| **e == upper) {
                        Some(e) => {
                            set.insert(*e);
                        }
                        None => {
                            return Err(PiiError::UnknownEntity {
                                name: name.clone(),
                                valid: all.join(", "),
                            })
                        }
                    }
                }
                set
            }
        };
        let used: Vec<(Family, String)> = rules::rules()
            .into_iter()
            .filter(|(f, _)| rules::family_labels(*f).iter().any(|l| enabled.contains(l)))
            .collect();
        let builtin_patterns: Vec<String> = used
            .iter()
            .map(|(f, p)| rules::partial_pattern(*f, p))
            .collect();
        let partial_email = used
            .iter()
            .find(|(f, _)| *f == rules::Family::Email)
            .and_then(|(_, p)| PartialMatcher::new(std::slice::from_ref(p), false));
        let (digit, any): (Vec<_>, Vec<_>) =
            used.into_iter().partition(|(f, _)| rules::needs_digit(*f));
        let any = Group::build(any)?;
        let digit = Group::build(digit)?;
        let cues = CueFinder::new().map_err(|e| PiiError::Internal(e.to_string()))?;
        let names = enabled.contains("NAME").then(names::NameFinder::new);
        let mut cs = Vec::with_capacity(custom.len());
        for c in custom {
            let re = Regex::new(&c.pattern).map_err(|e| PiiError::CustomPattern {
                label: c.label.clone(),
                source: Box::new(e),
            })?;
            let validator = match &c.validator {
                None => None,
                Some(n) => {
                    Some(
                        validators::by_name(n).ok_or_else(|| PiiError::UnknownValidator {
                            label: c.label.clone(),
                            name: n.clone(),
                            valid: validators::VALIDATOR_NAMES.join(", "),
                        })?,
                    )
                }
            };
            cs.push(Custom {
                label: c.label.clone(),
                re,
                validator,
                context: c.context.iter().map(|w| w.to_lowercase()).collect(),
                score: c.score.clamp(0.0, 1.0),
            });
        }
        let custom_patterns: Vec<String> = custom.iter().map(|c| c.pattern.clone()).collect();
        let free_text = ["NAME", "ADDRESS", "KR_NAME", "KR_ADDRESS"]
            .iter()
            .any(|e| enabled.contains(e));
        Ok(Self {
            partial_builtin: if builtin_patterns.is_empty() {
                None
            } else {
                PartialMatcher::new(&builtin_patterns, false)
            },
            partial_email,
            partial_custom: if custom_patterns.is_empty() {
                None
            } else {
                PartialMatcher::new(&custom_patterns, true)
            },
            free_text,
            addresses: enabled.contains("ADDRESS"),
            any,
            digit,
            enabled,
            cues,
            names,
            custom: cs,
        })
    }

    /// Where a PII span may still be in progress (or still be re-scored by a cue word
    /// that has not arrived yet) at the end of a growing text.
    pub fn stream_tail(&self, text: &str, from: usize, memo: &mut StreamMemo) -> Tail {
        let bytes = text.as_bytes();
        let mut tail = Tail {
            hold: text.len(),
            candidate: false,
            firm_until: 0,
        };
        if self.free_text {
            tail = tail.min(Tail::fixed_window(text, from));
        }
        let sets = [
            (
                &self.partial_builtin,
                self.any.is_some() || self.digit.is_some(),
            ),
            (&self.partial_custom, !self.custom.is_empty()),
        ];
        for (k, ((matcher, has_patterns), part)) in
            sets.into_iter().zip(memo.parts.iter_mut()).enumerate()
        {
            if !has_patterns {
                continue;
            }
            // Built-in candidates that can never be reported (a year in prose) are not
            // held for the cue words after them; custom patterns have no such knowledge.
            let builtin = k == 0;
            let inert = |s: usize, e: usize| {
                builtin
                    && bytes
                        .get(s..e)
                        .is_some_and(|span| classify::inert_number(span, self.addresses))
            };
            tail = tail.min(match matcher {
                Some(m) => m.tail_memo_inert(bytes, from, context::LOOKAHEAD, part, inert),
                None => Tail::fixed_window(text, from),
            });
        }
        // The scan's e-mail pattern begins where no letter or digit precedes it; a scan
        // that starts inside a word (text before it was released) asks the pattern as
        // written about its first byte.
        let inside_word = from
            .checked_sub(1)
            .and_then(|i| bytes.get(i))
            .is_some_and(|&b| b.is_ascii_alphanumeric() || b == b'_')
            && bytes.get(from).is_some_and(u8::is_ascii_alphanumeric);
        if let (true, Some(m)) = (inside_word, &self.partial_email) {
            tail = tail.min(m.tail_at(bytes, from, context::LOOKAHEAD));
        }
        tail
    }

    /// Finds PII spans in `text`. Findings are sorted by start and do not overlap.
    pub fn detect(&self, text: &str, _ctx: &DetectContext) -> Detection {
        let mut raw: Vec<Finding> = Vec::new();
        if let Some(g) = &self.any {
            self.scan(g, text, 0, &mut raw);
        }
        if let Some(g) = &self.digit {
            if let Some(first) = swar::first_digit(text.as_bytes()) {
                let from = classify::floor(text, first.saturating_sub(rules::DIGIT_LOOKBACK));
                self.scan(g, text, from, &mut raw);
            }
        }
        if let Some(nf) = &self.names {
            nf.find(text, &self.cues, &mut raw);
        }
        self.scan_custom(text, &mut raw);
        raw.retain(|f| {
            self.enabled.contains(f.label.as_str())
                || self.custom.iter().any(|c| c.label == f.label)
        });
        Detection::from_findings(resolve_overlaps(raw))
    }

    fn scan(&self, group: &Group, text: &str, from: usize, out: &mut Vec<Finding>) {
        let (re, families) = (&group.re, &group.families);
        let bytes = text.as_bytes();
        let mut at = from;
        while at < bytes.len() {
            let Some(m) = re.search(&Input::new(bytes).range(at..)) else {
                break;
            };
            let pid = m.pattern().as_usize();
            let mut next = m.end().max(m.start() + 1);
            let cx = classify::Cx {
                text,
                cues: &self.cues,
                addresses: self.addresses,
            };
            let got = families
                .get(pid)
                .and_then(|f| classify::classify(*f, &cx, m.start(), m.end()));
            match got {
                Some(c) => {
                    next = c.resume.max(m.start() + 1);
                    out.extend(c.findings);
                }
                None => {
                    // Try the other patterns anchored at the same start (e.g. a time that
                    // looked like IPv6 may still be the start of a phone number).
                    for (other, fam) in families.iter().enumerate().skip(pid + 1) {
                        let inp = Input::new(bytes)
                            .range(m.start()..)
                            .anchored(Anchored::Pattern(regex_automata::PatternID::must(other)));
                        if let Some(m2) = re.search(&inp) {
                            if let Some(c) = classify::classify(*fam, &cx, m2.start(), m2.end()) {
                                next = c.resume.max(m.start() + 1);
                                out.extend(c.findings);
                                break;
                            }
                        }
                    }
                }
            }
            // Never resume inside a UTF-8 sequence.
            while next < bytes.len() && !text.is_char_boundary(next) {
                next += 1;
            }
            at = next;
        }
    }

    fn scan_custom(&self, text: &str, out: &mut Vec<Finding>) {
        for c in &self.custom {
            for m in c.re.find_iter(text) {
                let s = &text[m.start()..m.end()];
                let mut score = match c.validator {
                    None => c.score,
                    Some(v) if v(s) => (c.score + 0.2).min(1.0),
                    Some(_) => c.score * 0.3,
                };
                if !c.context.is_empty() {
                    let mut ws = m.start().saturating_sub(48);
                    while !text.is_char_boundary(ws) {
                        ws -= 1;
                    }
                    let window = text[ws..m.start()].to_lowercase();
                    if c.context.iter().any(|w| window.contains(w.as_str())) {
                        score = (score + 0.3).min(1.0);
                    }
                }
                out.push(Finding {
                    kind: "pii",
                    label: c.label.clone(),
                    score,
                    start: m.start(),
                    end: m.end(),
                });
            }
        }
    }
}

/// Sorts findings and drops overlaps, keeping the higher score (then the longer span).
fn resolve_overlaps(mut v: Vec<Finding>) -> Vec<Finding> {
    v.sort_by(|a, b| {
        b.score
            .total_cmp(&a.score)
            .then((b.end - b.start).cmp(&(a.end - a.start)))
            .then(a.start.cmp(&b.start))
    });
    // Kept spans are disjoint, so only the one starting last before `f.end` can overlap
    // `f`: a map by start makes this O(n log n) (a scan of all kept spans per finding was
    // quadratic: 13 443 findings in 1 MiB took 114 ms, see docs/reliability.md).
    let mut kept: std::collections::BTreeMap<usize, Finding> = std::collections::BTreeMap::new();
    for f in v {
        if f.start >= f.end {
            continue;
        }
        let overlaps = kept
            .range(..f.end)
            .next_back()
            .is_some_and(|(_, k)| k.end > f.start);
        if !overlaps {
            kept.insert(f.start, f);
        }
    }
    kept.into_values().collect()
}

#[cfg(test)]
mod tests;
