//! `regex`: custom patterns from a policy, compiled once into one multi-pattern regex.
//!
//! `regex_automata::meta::Regex::build_many` finds every pattern in one pass and says
//! which pattern matched (one regex per pattern is ~9× slower). The regex crate cannot
//! backtrack catastrophically, but a pattern such as `\w{1000}{1000}` can still compile
//! into a huge automaton, so the NFA and DFA sizes are capped and a pattern over the cap
//! is rejected with a clear error instead of eating memory at load time.

use regex_automata::meta::{self, Regex};

use super::partial::{PartialMatcher, StreamMemo, Tail};
use super::{DetectContext, Detection, Finding};

/// Cap on the compiled NFA of one rule (all its patterns together).
pub const NFA_SIZE_LIMIT: usize = 2 * 1024 * 1024;
/// Cap on the lazy DFA cache and on fully built DFAs.
pub const DFA_SIZE_LIMIT: usize = 4 * 1024 * 1024;
/// Cap on the source length of one pattern.
pub const MAX_PATTERN_LEN: usize = 4096;
/// Cap on the number of patterns in one rule.
pub const MAX_PATTERNS: usize = 1000;

/// One pattern of a rule.
#[derive(Debug, Clone)]
pub struct PatternSpec {
    pub label: String,
    pub pattern: String,
    pub case_insensitive: bool,
}

/// Why a rule's patterns cannot be compiled; `index` is the pattern's position in the rule.
#[derive(Debug, thiserror::Error)]
pub enum RegexError {
    #[error("no patterns given")]
    Empty,
    #[error("too many patterns ({count}, at most {max})")]
    TooMany { count: usize, max: usize },
    #[error("pattern {index} is too long ({len} bytes, at most {max})")]
    TooLong {
        index: usize,
        len: usize,
        max: usize,
    },
    #[error("pattern {index} has an empty label")]
    EmptyLabel { index: usize },
    #[error("pattern {index} is not a valid regex: {message}")]
    Syntax { index: usize, message: String },
    #[error("pattern {index} matches the empty string; it would fire on every text")]
    MatchesEmpty { index: usize },
    #[error("pattern {index} compiles too big (over the {limit}-byte size limit); simplify it or lower its repetition counts")]
    TooBig { index: usize, limit: usize },
    #[error("patterns compile too big together (over the {limit}-byte size limit); split them into several rules")]
    TooBigTogether { limit: usize },
    #[error("cannot compile patterns: {0}")]
    Other(String),
}

/// A compiled set of labelled patterns.
#[derive(Debug, Clone)]
pub struct RegexDetector {
    re: Regex,
    labels: Vec<String>,
    /// The same patterns as a lazy DFA, for streamed answers (`None`: too big).
    partial: Option<std::sync::Arc<PartialMatcher>>,
}

fn builder() -> meta::Builder {
    let mut b = Regex::builder();
    b.configure(
        Regex::config()
            .nfa_size_limit(Some(NFA_SIZE_LIMIT))
            .dfa_size_limit(Some(DFA_SIZE_LIMIT))
            .onepass_size_limit(Some(DFA_SIZE_LIMIT))
            .hybrid_cache_capacity(DFA_SIZE_LIMIT),
    );
    b
}

fn source(p: &PatternSpec) -> String {
    if p.case_insensitive {
        format!("(?i:{})", p.pattern)
    } else {
        p.pattern.clone()
    }
}

impl RegexDetector {
    /// Compiles the patterns, checking each one alone first so errors name the pattern.
    pub fn new(patterns: &[PatternSpec]) -> Result<Self, RegexError> {
        if patterns.is_empty() {
            return Err(RegexError::Empty);
        }
        if patterns.len() > MAX_PATTERNS {
            return Err(RegexError::TooMany {
                count: patterns.len(),
                max: MAX_PATTERNS,
            });
        }
        let mut sources = Vec::with_capacity(patterns.len());
        for (index, p) in patterns.iter().enumerate() {
            if p.label.trim().is_empty() {
                return Err(RegexError::EmptyLabel { index });
            }
            if p.pattern.len() > MAX_PATTERN_LEN {
                return Err(RegexError::TooLong {
                    index,
                    len: p.pattern.len(),
                    max: MAX_PATTERN_LEN,
                });
            }
            let src = source(p);
            let one = builder().build(&src).map_err(|e| classify(index, &e))?;
            if one.is_match("") {
                return Err(RegexError::MatchesEmpty { index });
            }
            sources.push(src);
        }
        let re = builder()
            .build_many(&sources)
            .map_err(|e| match e.size_limit() {
                Some(limit) => RegexError::TooBigTogether { limit },
                None => RegexError::Other(e.to_string()),
            })?;
        Ok(Self {
            re,
            labels: patterns.iter().map(|p| p.label.clone()).collect(),
            partial: PartialMatcher::new(&sources, true).map(std::sync::Arc::new),
        })
    }

    /// Where a match may still be in progress at the end of a growing text.
    pub fn stream_tail(&self, text: &str, from: usize, memo: &mut StreamMemo) -> Tail {
        match &self.partial {
            Some(p) => p.tail_memo(text.as_bytes(), from, 0, &mut memo.parts[0]),
            None => Tail::fixed_window(text, from),
        }
    }

    /// Finds every non-overlapping match, leftmost-first, labelled by its pattern.
    pub fn detect(&self, text: &str, _ctx: &DetectContext) -> Detection {
        let findings = self
            .re
            .find_iter(text)
            .filter(|m| !m.is_empty())
            .map(|m| Finding {
                kind: "regex",
                label: self
                    .labels
                    .get(m.pattern().as_usize())
                    .cloned()
                    .unwrap_or_default(),
                score: 1.0,
                start: m.start(),
                end: m.end(),
            })
            .collect();
        Detection::from_findings(findings)
    }
}

fn classify(index: usize, e: &meta::BuildError) -> RegexError {
    if let Some(limit) = e.size_limit() {
        RegexError::TooBig { index, limit }
    } else if let Some(se) = e.syntax_error() {
        // The syntax error's Display draws the pattern over several lines and ends with
        // `error: <what>`; keep only the what.
        let full = se.to_string();
        let last = full.lines().last().unwrap_or_default();
        RegexError::Syntax {
            index,
            message: last.trim_start_matches("error: ").to_string(),
        }
    } else {
        RegexError::Other(e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(label: &str, pattern: &str) -> PatternSpec {
        PatternSpec {
            label: label.into(),
            pattern: pattern.into(),
            case_insensitive: false,
        }
    }

    #[test]
    fn labels_each_pattern_in_one_pass() {
        let d = RegexDetector::new(&[
            p("ORDER_ID", r"ORD-\d{6}"),
            p("TICKET", r"(?i)tkt-[a-z]{3}"),
        ])
        .unwrap();
        let text = "주문 ORD-123456 와 TKT-abc 확인";
        let det = d.detect(text, &DetectContext::default());
        let got: Vec<(&str, &str)> = det
            .findings
            .iter()
            .map(|f| (&text[f.start..f.end], f.label.as_str()))
            .collect();
        assert_eq!(got, vec![("ORD-123456", "ORDER_ID"), ("TKT-abc", "TICKET")]);
    }

    #[test]
    fn case_insensitive_flag() {
        let mut spec = p("X", "secret");
        spec.case_insensitive = true;
        let d = RegexDetector::new(&[spec]).unwrap();
        assert_eq!(
            d.detect("SeCrEt", &DetectContext::default()).findings.len(),
            1
        );
    }

    #[test]
    fn errors_name_the_pattern() {
        let cases: Vec<(Vec<PatternSpec>, &str)> = vec![
            (vec![], "no patterns"),
            (
                vec![p("A", "ok"), p("B", "(unclosed")],
                "pattern 1 is not a valid regex",
            ),
            (
                vec![p("A", r"\w{1000}{1000}")],
                "pattern 0 compiles too big",
            ),
            (vec![p("A", "a*")], "pattern 0 matches the empty string"),
            (vec![p(" ", "a")], "pattern 0 has an empty label"),
        ];
        for (specs, want) in cases {
            let err = RegexDetector::new(&specs).unwrap_err().to_string();
            assert!(err.contains(want), "{err:?} should contain {want:?}");
            assert!(!err.contains('\n'));
        }
    }
}
