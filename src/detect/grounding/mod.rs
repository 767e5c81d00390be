//! Grounding and relevance of an answer against the retrieved context and the question.
//!
//! # Sign convention (read this before writing a policy rule)
//!
//! Both detectors report a **goodness** score, like Bedrock's contextual grounding check:
//!
//! * `grounding`: [`Detection::score`] is the grounding score in `[0, 1]`; **1 = fully
//!   supported by the context**, 0 = unsupported. A rule `threshold: 0.6` on `grounding`
//!   means "act when grounding < 0.6".
//! * `relevance`: [`Detection::score`] is the relevance score in `[0, 1]`; **1 = the answer
//!   addresses the query**. Act when it is below the threshold.
//!
//! The **findings** point the other way, like every other detector's findings: each
//! finding's `score` is how *bad* its span is (`1 - grounding` of that sentence, or
//! `1 - relevance`). Grounding yields one finding (`kind = "grounding"`,
//! `label = "UNGROUNDED"`) for each answer sentence whose own grounding score is below
//! the model's threshold, with the byte range of that sentence; relevance yields at most
//! one finding (`kind = "relevance"`, `label = "IRRELEVANT"`) spanning the answer.
//!
//! Edge cases: with **no context** the grounding detector returns score 1.0 and no
//! findings (nothing to check against; the policy decides whether missing context is
//! itself a problem). With **no query** the relevance detector returns 1.0 and no
//! findings. An answer without any content word (e.g. "Yes.") is not flagged.
//!
//! # Method
//!
//! The answer is cut into sentences (English and Korean rules in [`text`]); each sentence
//! is a claim. Features of a claim against the context ([`features`]): support of its
//! content words weighted by rarity (a shipped table of common-word weights; Korean
//! matched by josa-stripped stems and syllable bigrams), numbers, names and quoted strings
//! absent from the context, a negation mismatch with the best-aligned context sentence,
//! support of adjacent word pairs, coverage by the best one or two context sentences, and
//! verbatim copy rates. Logistic regressions (answer-level and sentence-level heads, for
//! English and for Korean) trained on HaluEval (MIT), KLUE-NLI (CC BY-SA 4.0) and
//! synthetic perturbations of their contexts turn them into a probability of being
//! grounded (`train.rs`; method and measured figures in `docs/grounding.md`). Everything
//! runs in-process with no I/O; the weights are embedded with `include_bytes!`.

pub mod features;
pub mod model;
pub mod text;
pub mod train;

use std::sync::{Arc, OnceLock};

use super::{DetectContext, Detection, Finding};
use features::{ContextIndex, QueryIndex, Rarity, GROUNDING_FEATURES, RELEVANCE_FEATURES};
use model::{Logistic, Weights};

const WEIGHTS_JSON: &[u8] = include_bytes!("../../../models/grounding.json");
const RARITY_TSV: &str = include_str!("../../../models/grounding_idf.tsv");

/// Errors building the grounding models.
#[derive(Debug, thiserror::Error)]
pub enum GroundingError {
    #[error("grounding weights are not valid JSON: {0}")]
    Weights(#[from] serde_json::Error),
    #[error("grounding weights were trained on other features than this build computes ({0})")]
    FeatureMismatch(&'static str),
}

/// A sentence's byte range in the answer and its feature vector.
pub type SentenceFeatures = (usize, usize, Vec<f32>);

/// Grounding score of one answer sentence.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SentenceScore {
    /// Byte range of the sentence in the answer.
    pub start: usize,
    pub end: usize,
    /// Grounding score in `[0, 1]`, 1 = supported.
    pub grounding: f32,
}

/// The shared scorer behind both detectors: weights plus the rarity table.
#[derive(Debug, Clone)]
pub struct Scorer {
    weights: Weights,
    rarity: Rarity,
}

impl Scorer {
    /// The scorer with the weights shipped in the binary.
    pub fn embedded() -> Result<Self, GroundingError> {
        Self::from_parts(WEIGHTS_JSON, RARITY_TSV)
    }

    /// [`Scorer::embedded`], built once per process and shared by every grounding and
    /// relevance rule of every policy load (parsing the rarity table is most of a policy
    /// compile's time; a failed build is not kept, so the error shows on every attempt).
    pub fn embedded_shared() -> Result<Arc<Self>, GroundingError> {
        static EMBEDDED: OnceLock<Arc<Scorer>> = OnceLock::new();
        if let Some(scorer) = EMBEDDED.get() {
            return Ok(Arc::clone(scorer));
        }
        let built = Arc::new(Self::embedded()?);
        Ok(Arc::clone(EMBEDDED.get_or_init(|| built)))
    }

    /// A scorer from a weights file and a rarity table (used by the trainer).
    pub fn from_parts(weights_json: &[u8], rarity_tsv: &str) -> Result<Self, GroundingError> {
        let weights: Weights = serde_json::from_slice(weights_json)?;
        Self::from_weights(weights, Rarity::parse(rarity_tsv))
    }

    pub fn from_weights(weights: Weights, rarity: Rarity) -> Result<Self, GroundingError> {
        if !weights.grounding.matches(GROUNDING_FEATURES) {
            return Err(GroundingError::FeatureMismatch("grounding"));
        }
        let heads = [
            &weights.sentence,
            &weights.grounding_ko,
            &weights.sentence_ko,
        ];
        if !heads.iter().all(|h| h.matches(GROUNDING_FEATURES)) {
            return Err(GroundingError::FeatureMismatch("sentence or Korean"));
        }
        if !weights.relevance.matches(RELEVANCE_FEATURES) {
            return Err(GroundingError::FeatureMismatch("relevance"));
        }
        Ok(Self { weights, rarity })
    }

    pub fn threshold(&self) -> f32 {
        self.weights.threshold
    }

    /// The (answer, sentence) heads for this text: Korean ones when most letters are Hangul.
    fn heads(&self, text: &str) -> (&Logistic, &Logistic) {
        let (mut h, mut l) = (0usize, 0usize);
        for c in text.chars() {
            if ('\u{AC00}'..='\u{D7A3}').contains(&c) {
                h += 1;
            } else if c.is_alphabetic() {
                l += 1;
            }
        }
        if h > l {
            (&self.weights.grounding_ko, &self.weights.sentence_ko)
        } else {
            (&self.weights.grounding, &self.weights.sentence)
        }
    }

    pub fn relevance_threshold(&self) -> f32 {
        self.weights.relevance_threshold
    }

    pub fn rarity(&self) -> &Rarity {
        &self.rarity
    }

    /// Grounding score of the whole answer in `[0, 1]` (1 = supported); 1.0 when there is
    /// no context.
    pub fn grounding_score(&self, answer: &str, context: &[String], query: Option<&str>) -> f32 {
        self.analyse(answer, context, query).0
    }

    /// Per-sentence grounding scores (also usable for sentence-level benchmarks such as
    /// QAGS); empty when there is no context.
    pub fn sentence_scores(
        &self,
        answer: &str,
        context: &[String],
        query: Option<&str>,
    ) -> Vec<SentenceScore> {
        self.analyse(answer, context, query).1
    }

    /// Grounding score of one claim (a sentence) by the sentence model, treating `claim`
    /// as a single unit: the function to use for sentence-level benchmarks such as QAGS.
    /// 1.0 when there is no context.
    pub fn claim_score(&self, claim: &str, context: &[String], query: Option<&str>) -> f32 {
        let ctx = ContextIndex::new(context);
        if ctx.is_empty() {
            return 1.0;
        }
        let (x, _) = self.features_with(claim, &ctx, query);
        predict_claim(self.heads(claim).1, &x)
    }

    /// Answer score and sentence scores in one pass over the context.
    pub fn analyse(
        &self,
        answer: &str,
        context: &[String],
        query: Option<&str>,
    ) -> (f32, Vec<SentenceScore>) {
        let ctx = ContextIndex::new(context);
        if ctx.is_empty() {
            return (1.0, Vec::new());
        }
        let (answer_x, sent_x) = self.features_with(answer, &ctx, query);
        let (answer_head, _) = self.heads(answer);
        let sents = sent_x
            .into_iter()
            .map(|(s, e, x)| SentenceScore {
                start: s,
                end: e,
                grounding: predict_claim(self.heads(&answer[s..e]).1, &x),
            })
            .collect();
        (predict_claim(answer_head, &answer_x), sents)
    }

    /// Answer-level feature vector and per-sentence feature vectors (for training).
    pub fn grounding_features(
        &self,
        answer: &str,
        context: &[String],
        query: Option<&str>,
    ) -> (Vec<f32>, Vec<SentenceFeatures>) {
        let ctx = ContextIndex::new(context);
        self.features_with(answer, &ctx, query)
    }

    fn features_with(
        &self,
        answer: &str,
        ctx: &ContextIndex,
        query: Option<&str>,
    ) -> (Vec<f32>, Vec<SentenceFeatures>) {
        let toks = text::tokenize(answer, 0);
        let q = query.map(QueryIndex::new);
        let mut scratch = Vec::new();
        let spans = text::sentences(answer);
        let sent_x: Vec<(usize, usize, Vec<f32>)> = spans
            .iter()
            .map(|&(s, e)| {
                let x = features::grounding_features(
                    answer,
                    (s, e),
                    &toks,
                    ctx,
                    q.as_ref(),
                    &self.rarity,
                    &mut scratch,
                );
                (s, e, x)
            })
            .collect();
        let mut answer_x = features::grounding_features(
            answer,
            (0, answer.len()),
            &toks,
            ctx,
            q.as_ref(),
            &self.rarity,
            &mut scratch,
        );
        let with_content: Vec<&Vec<f32>> = sent_x
            .iter()
            .map(|(_, _, x)| x)
            .filter(|x| x[features::NO_CONTENT] < 0.5)
            .collect();
        if !with_content.is_empty() {
            let min_of = |i: usize| {
                with_content
                    .iter()
                    .map(|x| x[i])
                    .fold(f32::INFINITY, f32::min)
            };
            answer_x[features::MIN_SENT_WSUP] = min_of(0);
            answer_x[features::MIN_SENT_COV2] = min_of(10);
            let weak = with_content
                .iter()
                .filter(|x| x[features::WEAK_SENT_SHARE] > 0.5)
                .count();
            answer_x[features::WEAK_SENT_SHARE] = weak as f32 / with_content.len() as f32;
        }
        (answer_x, sent_x)
    }

    /// Relevance score in `[0, 1]` (1 = addresses the query); 1.0 without a query.
    pub fn relevance_score(&self, answer: &str, query: Option<&str>, context: &[String]) -> f32 {
        match query {
            Some(q) if !q.trim().is_empty() && !answer.trim().is_empty() => {
                let x = self.relevance_features(answer, q, context);
                self.weights.relevance.predict(&x)
            }
            _ => 1.0,
        }
    }

    pub fn relevance_features(&self, answer: &str, query: &str, context: &[String]) -> Vec<f32> {
        let ctx = ContextIndex::new(context);
        let c = if ctx.is_empty() { None } else { Some(&ctx) };
        features::relevance_features(answer, query, c, &self.rarity)
    }
}

/// A claim without any content word ("Yes.", "OK") asserts nothing to check: 1.0.
fn predict_claim(head: &Logistic, x: &[f32]) -> f32 {
    if x.get(features::NO_CONTENT).is_some_and(|v| *v > 0.5) {
        1.0
    } else {
        head.predict(x)
    }
}

/// Is the answer supported by the retrieved context? See the module doc for the sign
/// convention: `Detection::score` is the grounding score (1 = grounded).
#[derive(Debug, Clone)]
pub struct GroundingDetector {
    scorer: Arc<Scorer>,
}

impl GroundingDetector {
    pub fn new() -> Result<Self, GroundingError> {
        Ok(Self {
            scorer: Scorer::embedded_shared()?,
        })
    }

    pub fn scorer(&self) -> &Scorer {
        &self.scorer
    }

    /// Grounding score of `answer` in `[0, 1]`, 1 = supported (1.0 without context).
    pub fn grounding_score(&self, answer: &str, ctx: &DetectContext) -> f32 {
        self.scorer.grounding_score(answer, ctx.context, ctx.query)
    }

    /// Grounding score of each sentence of `answer`.
    pub fn sentence_scores(&self, answer: &str, ctx: &DetectContext) -> Vec<SentenceScore> {
        self.scorer.sentence_scores(answer, ctx.context, ctx.query)
    }

    pub fn detect(&self, answer: &str, ctx: &DetectContext) -> Detection {
        let (score, sents) = self.scorer.analyse(answer, ctx.context, ctx.query);
        let th = self.scorer.threshold();
        let mut findings: Vec<Finding> = sents
            .iter()
            .filter(|s| s.grounding < th)
            .map(|s| finding(s, "grounding", "UNGROUNDED"))
            .collect();
        if findings.is_empty() && score < th {
            // The answer as a whole fails: point the auditor at its weakest sentence.
            if let Some(worst) = sents
                .iter()
                .min_by(|a, b| a.grounding.total_cmp(&b.grounding))
            {
                findings.push(finding(worst, "grounding", "UNGROUNDED"));
            }
        }
        Detection { findings, score }
    }
}

fn finding(s: &SentenceScore, kind: &'static str, label: &str) -> Finding {
    Finding {
        kind,
        label: label.to_string(),
        score: (1.0 - s.grounding).clamp(0.0, 1.0),
        start: s.start,
        end: s.end,
    }
}

/// Does the answer address the query? `Detection::score` is the relevance score
/// (1 = relevant); 1.0 and no findings without a query.
#[derive(Debug, Clone)]
pub struct RelevanceDetector {
    scorer: Arc<Scorer>,
}

impl RelevanceDetector {
    pub fn new() -> Result<Self, GroundingError> {
        Ok(Self {
            scorer: Scorer::embedded_shared()?,
        })
    }

    /// Relevance score in `[0, 1]`, 1 = relevant (1.0 without a query).
    pub fn relevance_score(&self, answer: &str, ctx: &DetectContext) -> f32 {
        self.scorer.relevance_score(answer, ctx.query, ctx.context)
    }

    pub fn detect(&self, answer: &str, ctx: &DetectContext) -> Detection {
        let score = self.relevance_score(answer, ctx);
        let mut findings = Vec::new();
        if score < self.scorer.relevance_threshold() {
            let lead = answer.len() - answer.trim_start().len();
            let end = answer.trim_end().len();
            if end > lead {
                findings.push(Finding {
                    kind: "relevance",
                    label: "IRRELEVANT".to_string(),
                    score: 1.0 - score,
                    start: lead,
                    end,
                });
            }
        }
        Detection { findings, score }
    }
}

#[cfg(test)]
mod tests;
