//! The closed set of detectors a policy can name, built once per rule at compile time.
//!
//! Adding a detector touches its own module, one variant here and one line in
//! [`CompiledDetector::build`] and [`CompiledDetector::detect`].

use super::classifier::Strength as ClassifierStrength;
use super::fold::{self, with_folded, ViewKind};
use super::grounding::{GroundingDetector, RelevanceDetector};
use super::judge::JudgeSpec;
use super::partial::{StreamMemo, Tail};
use super::pii::{PiiDetector, Strength as PiiStrength};
use super::prompt_attack::PromptAttackDetector;
use super::regex::{PatternSpec, RegexDetector};
use super::secret::SecretDetector;
use super::topic::TopicDetector;
use super::toxicity::ToxicityDetector;
use super::word::{WordDetector, DEFAULT_LABEL};
use super::{DetectContext, Detection};
use crate::policy::model::{DetectorKind, RuleDto, Strength};

/// Why a rule's detector cannot be built. `pattern` points at the offending regex pattern.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("detector `{0}` is not available in this build")]
    Unavailable(&'static str),
    #[error("{0}")]
    Word(#[from] super::word::WordError),
    #[error("{0}")]
    Regex(#[from] super::regex::RegexError),
    #[error("{0}")]
    Pii(#[from] super::pii::PiiError),
    #[error("{0}")]
    Secret(#[from] super::secret::SecretError),
    #[error("{0}")]
    Toxicity(#[from] super::toxicity::ToxicityError),
    #[error("{0}")]
    PromptAttack(#[from] super::prompt_attack::PromptAttackError),
    #[error("{0}")]
    Topic(#[from] super::topic::TopicError),
    #[error("detector `topic` needs `name` (a shipped topic) or `name` and `definition`")]
    TopicIncomplete,
    #[error("{0}")]
    Grounding(#[from] super::grounding::GroundingError),
    #[error("{0}")]
    Judge(#[from] super::judge::JudgeError),
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
///
/// Classifiers decide with thresholds chosen per strength on validation data. When a rule
/// gives a `strength` (or nothing), their scores are *calibrated*: ≥ 0.5 exactly when the
/// classifier fires at that strength, and the rule's threshold is 0.5. When a rule gives
/// an explicit `threshold`, raw probabilities are compared with it.
#[derive(Debug)]
pub enum CompiledDetector {
    Word(WordDetector),
    Regex(RegexDetector),
    Pii(Box<PiiDetector>),
    Secret(Box<SecretDetector>),
    Toxicity(ToxicityDetector, Calibration),
    PromptAttack(PromptAttackDetector, Calibration),
    Topic(Box<TopicDetector>, Calibration),
    /// Score = grounding of the whole answer (1 = supported). A rule `threshold: t` acts
    /// when the answer's score is below `t`; its findings are then the unsupported
    /// sentences (offsets an auditor can read). An answer at or above `t` has none.
    Grounding(GroundingDetector, f32),
    /// Same convention with the relevance score.
    Relevance(RelevanceDetector, f32),
    /// A remote judge: the call happens in the proxy before the engine runs (see
    /// `detect::judge`); the engine reads its verdict, so `detect` finds nothing.
    LlmJudge(Box<JudgeSpec>),
}

/// How a detector's rule is applied to an answer that streams in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamScope {
    /// Findings are local spans: text is released as soon as no span can still cover
    /// it (exact partial-match tracking, see `detect::partial`).
    Span,
    /// A classifier of the whole text: judged at sentence boundaries on the text so far.
    Sentence,
    /// Judges the complete answer (grounding, relevance): an enforcing rule buffers it.
    Whole,
}

/// Whether a classifier's scores are calibrated to its strength threshold (see above).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Calibration {
    Strength,
    Raw,
}

fn classifier_strength(s: Option<Strength>) -> ClassifierStrength {
    match s {
        Some(Strength::Low) => ClassifierStrength::Low,
        Some(Strength::High) => ClassifierStrength::High,
        Some(Strength::Medium) | None => ClassifierStrength::Medium,
    }
}

fn pii_strength(s: Option<Strength>) -> PiiStrength {
    match s {
        Some(Strength::Low) => PiiStrength::Low,
        Some(Strength::High) => PiiStrength::High,
        Some(Strength::Medium) | None => PiiStrength::Medium,
    }
}

/// The answer-level threshold of a grounding or relevance rule (default 0.5).
fn act_below(rule: &RuleDto) -> f32 {
    rule.threshold.as_ref().map_or(0.5, |t| t.value as f32)
}

/// Keeps sentence findings only when the whole answer scores below `below`.
fn answer_level(mut d: Detection, below: f32) -> Detection {
    if d.score >= below {
        d.findings.clear();
    }
    d
}

/// Maps a classifier's detection onto the calibrated scale: findings (emitted only over
/// the strength's threshold) score ≥ 0.5, a text without findings < 0.5.
fn calibrate(mut d: Detection, calibration: Calibration) -> Detection {
    if calibration == Calibration::Raw {
        return d;
    }
    let hit = !d.findings.is_empty();
    d.score = if hit {
        0.5 + 0.5 * d.score
    } else {
        0.5 * d.score
    };
    for f in &mut d.findings {
        f.score = 0.5 + 0.5 * f.score;
    }
    d
}

impl CompiledDetector {
    /// Builds the detector `kind` from the rule's parameters.
    pub fn build(kind: DetectorKind, rule: &RuleDto) -> Result<Self, BuildError> {
        let calibration = if rule.threshold.is_some() {
            Calibration::Raw
        } else {
            Calibration::Strength
        };
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
            DetectorKind::Pii => Ok(Self::Pii(Box::new(PiiDetector::new(
                rule.entities.as_deref(),
                rule.custom.as_deref().unwrap_or_default(),
            )?))),
            DetectorKind::Secret => Ok(Self::Secret(Box::new(SecretDetector::new()?))),
            DetectorKind::Toxicity => Ok(Self::Toxicity(
                ToxicityDetector::new(rule.categories.as_deref())?
                    .with_strength(classifier_strength(rule.strength)),
                calibration,
            )),
            DetectorKind::PromptAttack => Ok(Self::PromptAttack(
                PromptAttackDetector::new()?.with_strength(classifier_strength(rule.strength)),
                calibration,
            )),
            DetectorKind::Topic => {
                let name = rule.name.as_deref().ok_or(BuildError::TopicIncomplete)?;
                let topic = match &rule.definition {
                    Some(definition) => TopicDetector::new(
                        name,
                        definition,
                        rule.examples.as_deref().unwrap_or_default(),
                    )?,
                    None => TopicDetector::builtin(name)?,
                };
                Ok(Self::Topic(
                    Box::new(topic.with_strength(classifier_strength(rule.strength))),
                    calibration,
                ))
            }
            DetectorKind::Grounding => {
                Ok(Self::Grounding(GroundingDetector::new()?, act_below(rule)))
            }
            DetectorKind::Relevance => {
                Ok(Self::Relevance(RelevanceDetector::new()?, act_below(rule)))
            }
            DetectorKind::LlmJudge => Ok(Self::LlmJudge(Box::new(JudgeSpec::new(rule)?))),
        }
    }

    /// Runs the detector over one text.
    pub fn detect(&self, text: &str, ctx: &DetectContext) -> Detection {
        match self {
            // Span detectors also look at the evasion-folded view (`detect::fold`).
            Self::Word(d) => with_folded(text, ViewKind::Words, |t| d.detect(t, ctx)),
            Self::Regex(d) => with_folded(text, ViewKind::Values, |t| d.detect(t, ctx)),
            Self::Pii(d) => with_folded(text, ViewKind::Values, |t| d.detect(t, ctx)),
            Self::Secret(d) => with_folded(text, ViewKind::Values, |t| d.detect(t, ctx)),
            Self::Toxicity(d, c) => calibrate(d.detect(text, ctx), *c),
            Self::PromptAttack(d, c) => calibrate(d.detect(text, ctx), *c),
            Self::Topic(d, c) => calibrate(d.detect(text, ctx), *c),
            Self::Grounding(d, below) => answer_level(d.detect(text, ctx), *below),
            Self::Relevance(d, below) => answer_level(d.detect(text, ctx), *below),
            Self::LlmJudge(_) => Detection::default(),
        }
    }

    /// How the detector meets a streamed answer (see [`StreamScope`]).
    pub fn stream_scope(&self) -> StreamScope {
        match self {
            Self::Word(_) | Self::Regex(_) | Self::Pii(_) | Self::Secret(_) => StreamScope::Span,
            Self::Toxicity(..) | Self::PromptAttack(..) | Self::Topic(..) => StreamScope::Sentence,
            Self::Grounding(..) | Self::Relevance(..) | Self::LlmJudge(_) => StreamScope::Whole,
        }
    }

    /// For span detectors: where, at the end of a growing text, a finding may still be
    /// in progress (nothing before `from` is asked about). Other detectors answer that
    /// everything from `from` is undecided.
    /// `memo` carries what earlier calls on the same growing text learned.
    pub fn stream_tail(&self, text: &str, from: usize, memo: &mut StreamMemo) -> Tail {
        let (tail, kind) = match self {
            Self::Word(d) => (d.stream_tail(text, from), ViewKind::Words),
            Self::Regex(d) => (d.stream_tail(text, from, memo), ViewKind::Values),
            Self::Pii(d) => (d.stream_tail(text, from, memo), ViewKind::Values),
            Self::Secret(d) => (d.stream_tail(text, from, memo), ViewKind::Values),
            _ => {
                return Tail {
                    hold: from,
                    candidate: true,
                    firm_until: 0,
                }
            }
        };
        // Held from `from` already: the folded view cannot hold earlier (its holds map
        // to bytes at or after `from`), and nothing lies before the hold for a
        // candidate to start in. Mid-word deltas end here without folding.
        if tail.hold <= from {
            return tail;
        }
        tail.min(self.folded_tail(text, from, kind))
    }

    /// The hold-back the folded view asks for: `detect` also runs on the view, so a value
    /// spelled with evasions (`kim\u{200B}@…`, `f.u.c.k`) is held until it can be
    /// recognised, like a plain one.
    fn folded_tail(&self, text: &str, from: usize, kind: ViewKind) -> Tail {
        // The undecided text is folded with the released text its folds depend on (a
        // numeral chain that began before it), as the whole answer folds it; only what
        // lies at or after `from` can be held.
        let start = fold::fold_context_start(text, from);
        let Some(rest) = text.get(start..) else {
            return Tail::fixed_window(text, from);
        };
        let growing = fold::growing(rest, kind);
        let mut tail = Tail {
            hold: (start + growing.pending).max(from),
            candidate: false,
            firm_until: 0,
        };
        if let Some(view) = &growing.view {
            let v = view.text.as_str();
            let view_from = view.view_start(from - start);
            let mut memo = StreamMemo::default();
            let in_view = match self {
                Self::Word(d) => d.stream_tail(v, view_from),
                Self::Regex(d) => d.stream_tail(v, view_from, &mut memo),
                Self::Pii(d) => d.stream_tail(v, view_from, &mut memo),
                Self::Secret(d) => d.stream_tail(v, view_from, &mut memo),
                _ => return tail,
            };
            let hold = view
                .source_start(in_view.hold)
                .map_or(text.len(), |s| (start + s).max(from));
            tail = tail.min(Tail {
                hold,
                candidate: in_view.candidate,
                firm_until: 0,
            });
        }
        tail
    }

    /// The threshold findings are compared with, for detectors whose findings are on
    /// another scale than the rule's `threshold`; `None`: the rule's value as it is.
    pub fn finding_threshold(&self, rule_threshold: Option<f32>) -> Option<f32> {
        match self {
            // The detector already decided at the answer level (see the variants).
            Self::Grounding(..) | Self::Relevance(..) => {
                let _ = rule_threshold;
                Some(0.0)
            }
            _ => None,
        }
    }

    /// The rule threshold for a `strength` (or none given) when this detector has its
    /// own scale; `None` means the policy's generic mapping applies.
    pub fn strength_threshold(&self, strength: Option<Strength>) -> Option<f32> {
        match self {
            Self::Word(_) | Self::Regex(_) => None,
            Self::Pii(_) | Self::Secret(_) => {
                Some(super::pii::strength_threshold(pii_strength(strength)))
            }
            Self::Toxicity(_, c) | Self::PromptAttack(_, c) | Self::Topic(_, c) => {
                (*c == Calibration::Strength).then_some(0.5)
            }
            Self::Grounding(..) | Self::Relevance(..) | Self::LlmJudge(_) => None,
        }
    }
}
