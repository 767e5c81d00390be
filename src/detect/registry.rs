//! The closed set of detectors a policy can name, built once per rule at compile time.
//!
//! Adding a detector touches its own module, one variant here and one line in
//! [`CompiledDetector::build`] and [`CompiledDetector::detect`].

use super::regex::{PatternSpec, RegexDetector};
use super::word::{WordDetector, DEFAULT_LABEL};
use super::{DetectContext, Detection};
use crate::policy::model::{DetectorKind, RuleDto};

/// Why a rule's detector cannot be built. `pattern` points at the offending regex pattern.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("detector `{0}` is not available in this build")]
    Unavailable(&'static str),
    #[error("{0}")]
    Word(#[from] super::word::WordError),
    #[error("{0}")]
    Regex(#[from] super::regex::RegexError),
}

impl BuildError {
    /// Index of the regex pattern the error is about, if any.
    pub fn pattern_index(&self) -> Option<usize> {
        use super::regex::RegexError as R;
        match self {
            Self::Regex(
                R::TooLong { index, .. }
                | R::EmptyLabel { index }
                | R::Syntax { index, .. }
                | R::MatchesEmpty { index }
                | R::TooBig { index, .. },
            ) => Some(*index),
            _ => None,
        }
    }
}

/// A rule's detector, ready to run.
#[derive(Debug, Clone)]
pub enum CompiledDetector {
    Word(WordDetector),
    Regex(RegexDetector),
}

impl CompiledDetector {
    /// Builds the detector `kind` from the rule's parameters.
    pub fn build(kind: DetectorKind, rule: &RuleDto) -> Result<Self, BuildError> {
        match kind {
            DetectorKind::Word => Ok(Self::Word(WordDetector::new(
                rule.words.as_deref().unwrap_or_default(),
                rule.label.as_deref().unwrap_or(DEFAULT_LABEL),
                rule.profanity.unwrap_or(false),
                rule.allow.as_deref().unwrap_or_default(),
            )?)),
            DetectorKind::Regex => {
                let specs: Vec<PatternSpec> = rule
                    .patterns
                    .iter()
                    .flatten()
                    .map(|p| PatternSpec {
                        label: p.value.label.clone(),
                        pattern: p.value.pattern.clone(),
                        case_insensitive: p.value.case_insensitive,
                    })
                    .collect();
                Ok(Self::Regex(RegexDetector::new(&specs)?))
            }
            // MERGE POINT: replace each line below with the real detector when it lands, e.g.
            // `DetectorKind::Pii => Ok(Self::Pii(PiiDetector::new(rule.entities.as_deref())?)),`
            DetectorKind::Pii => Err(BuildError::Unavailable("pii")),
            DetectorKind::Secret => Err(BuildError::Unavailable("secret")),
            DetectorKind::Topic => Err(BuildError::Unavailable("topic")),
            DetectorKind::Toxicity => Err(BuildError::Unavailable("toxicity")),
            DetectorKind::PromptAttack => Err(BuildError::Unavailable("prompt_attack")),
            DetectorKind::Grounding => Err(BuildError::Unavailable("grounding")),
            DetectorKind::Relevance => Err(BuildError::Unavailable("relevance")),
            DetectorKind::LlmJudge => Err(BuildError::Unavailable("llm_judge")),
        }
    }

    /// Runs the detector over one text.
    pub fn detect(&self, text: &str, ctx: &DetectContext) -> Detection {
        match self {
            Self::Word(d) => d.detect(text, ctx),
            Self::Regex(d) => d.detect(text, ctx),
        }
    }
}
