//! Detectors: pure functions of text (and optional grounding context) to findings.
//!
//! A detector knows nothing of HTTP, providers or policies' actions. It sees text and
//! returns [`Finding`]s with byte offsets into that text, plus one raw score so that
//! `haechi scan` can report every detector's score even below its threshold.

pub mod grounding;
pub mod judge;

use serde::Serialize;

/// One thing a detector found in a text.
///
/// Offsets are **byte** offsets into the scanned `&str` and always lie on UTF-8 char
/// boundaries; conversion to character offsets happens at the output edge (`haechi scan`).
/// The matched text itself is never stored here: callers slice the text if they must.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Finding {
    /// Detector name, e.g. `pii`, `secret`, `word`, `regex`, `toxicity`.
    pub kind: &'static str,
    /// What was found, e.g. `EMAIL`, `KR_RRN`, `AWS_ACCESS_KEY`, `INSULTS`.
    pub label: String,
    /// Confidence in `[0, 1]`.
    pub score: f32,
    /// Byte offset of the first byte of the span.
    pub start: usize,
    /// Byte offset one past the last byte of the span.
    pub end: usize,
}

/// What a detector may look at besides the text itself.
#[derive(Debug, Clone, Copy, Default)]
pub struct DetectContext<'a> {
    /// Retrieved documents the answer should be grounded in.
    pub context: &'a [String],
    /// The user's question, for relevance checks.
    pub query: Option<&'a str>,
}

/// The outcome of running one detector over one text.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Detection {
    pub findings: Vec<Finding>,
    /// The detector's raw score for the whole text in `[0, 1]` (for span detectors: the
    /// highest finding score, 0 when nothing was found).
    pub score: f32,
}

impl Detection {
    /// Builds a detection whose score is the highest finding score.
    pub fn from_findings(findings: Vec<Finding>) -> Self {
        let score = findings.iter().map(|f| f.score).fold(0.0_f32, f32::max);
        Self { findings, score }
    }
}

pub mod classifier;
pub mod fold;
pub mod normalize;
pub mod overlapping;
pub mod partial;
pub mod pieces;
pub mod pii;
pub mod prompt_attack;
pub mod regex;
pub mod registry;
pub mod secret;
pub mod topic;
pub mod toxicity;
pub mod word;
