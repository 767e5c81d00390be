//! `toxicity`: a calibrated toxic score with HATE / INSULTS categories, English and Korean.
//!
//! Two hashed n-gram logistic models (see [`crate::detect::classifier`]), one per language,
//! trained by `haechi train toxicity` (English: Davidson + ToxiGen seeds; Korean: BEEP! +
//! Curse-detection). A text goes to the model of its script (both when mixed). Label scheme:
//! `HATE` when the hate output clears its threshold (hate speech against a group), else
//! `INSULTS` when the toxic output does (Davidson's "offensive": insults, slurs used as
//! insults, profanity). The data does not support SEXUAL / VIOLENCE / MISCONDUCT, so those
//! categories are rejected at construction rather than silently never firing.

use thiserror::Error;

use super::classifier::{LinearModel, ModelError, Strength};
use super::normalize::{mask_entities, normalize_shared};
use super::{DetectContext, Detection, Finding};

const EN_MODEL: &[u8] = include_bytes!("../../models/toxicity_en.hclf");
const KO_MODEL: &[u8] = include_bytes!("../../models/toxicity_ko.hclf");

/// Categories this detector can report.
pub const CATEGORIES: &[&str] = &["HATE", "INSULTS"];

/// Why a toxicity detector cannot be built.
#[derive(Debug, Error)]
pub enum ToxicityError {
    #[error("toxicity model: {0}")]
    Model(#[from] ModelError),
    #[error("unknown toxicity category {0:?} (supported: HATE, INSULTS)")]
    UnknownCategory(String),
}

/// Language of a text, by script.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    En,
    Ko,
}

/// The text the toxicity models score: normalised, e-mail addresses and URLs masked
/// (the trainer featurizes exactly this).
pub fn prepare(text: &str) -> String {
    mask_entities(&super::normalize::normalize(text)).into_owned()
}

/// Toxicity classifier. Build once, call [`ToxicityDetector::detect`] per text.
#[derive(Debug, Clone)]
pub struct ToxicityDetector {
    en: LinearModel,
    ko: LinearModel,
    hate: bool,
    insults: bool,
    strength: Strength,
}

/// Share of Hangul among letters, and whether there is Latin text.
fn scripts(text: &str) -> (f32, usize) {
    let (mut hangul, mut latin) = (0usize, 0usize);
    for c in text.chars() {
        if ('\u{AC00}'..='\u{D7A3}').contains(&c) || ('\u{3131}'..='\u{318E}').contains(&c) {
            hangul += 1;
        } else if c.is_ascii_alphabetic() {
            latin += 1;
        }
    }
    let total = hangul + latin;
    if total == 0 {
        (0.0, 0)
    } else {
        (hangul as f32 / total as f32, latin)
    }
}

impl ToxicityDetector {
    /// Loads the shipped weights. `categories` restricts the reported labels
    /// (`HATE`, `INSULTS`; `TOXIC` means both); `None` reports both.
    pub fn new(categories: Option<&[String]>) -> Result<Self, ToxicityError> {
        let (mut hate, mut insults) = (true, true);
        if let Some(cats) = categories {
            hate = false;
            insults = false;
            for c in cats {
                match c.to_ascii_uppercase().as_str() {
                    "HATE" => hate = true,
                    "INSULTS" => insults = true,
                    "TOXIC" | "TOXICITY" => {
                        hate = true;
                        insults = true;
                    }
                    _ => return Err(ToxicityError::UnknownCategory(c.clone())),
                }
            }
        }
        Ok(Self {
            en: LinearModel::from_bytes(EN_MODEL)?,
            ko: LinearModel::from_bytes(KO_MODEL)?,
            hate,
            insults,
            strength: Strength::Medium,
        })
    }

    /// Sets the strength (default medium).
    pub fn with_strength(mut self, strength: Strength) -> Self {
        self.strength = strength;
        self
    }

    /// Threshold on the calibrated toxic probability for a strength and language; chosen
    /// by the trainer on validation data (medium = best F1, low = precision ≥ 0.95,
    /// high = recall ≥ 0.95; see docs/classifiers.md).
    pub fn threshold(&self, strength: Strength, lang: Lang) -> f32 {
        strength.pick(&self.model(lang).outputs[0].thresholds)
    }

    fn model(&self, lang: Lang) -> &LinearModel {
        match lang {
            Lang::En => &self.en,
            Lang::Ko => &self.ko,
        }
    }

    /// Uses in-memory models (the trainer evaluates through the detector's own scoring).
    pub fn from_models(en: LinearModel, ko: LinearModel) -> Self {
        Self {
            en,
            ko,
            hate: true,
            insults: true,
            strength: Strength::Medium,
        }
    }

    /// Calibrated `(toxic, hate)` probabilities and the language used.
    pub fn scores(&self, text: &str) -> (f32, f32, Lang) {
        let shared = normalize_shared(text);
        let norm = mask_entities(&shared);
        let (ko_share, latin) = scripts(&norm);
        let mut langs = Vec::with_capacity(2);
        if ko_share >= 0.2 {
            langs.push(Lang::Ko);
        }
        if ko_share < 0.2 || (latin >= 12 && ko_share < 0.8) {
            langs.push(Lang::En);
        }
        let mut best = (0.0f32, 0.0f32, Lang::En);
        for lang in langs {
            let p = self.model(lang).predict_normalized(&norm);
            let (t, h) = (p[0], p.get(1).copied().unwrap_or(0.0));
            if t >= best.0 {
                best = (t, h, lang);
            }
        }
        best
    }

    /// Scores the whole text; one finding (`HATE` or `INSULTS`) when over the threshold.
    pub fn detect(&self, text: &str, _ctx: &DetectContext) -> Detection {
        let (toxic, hate, lang) = self.scores(text);
        let m = self.model(lang);
        let t_toxic = self.strength.pick(&m.outputs[0].thresholds);
        let t_hate = m
            .outputs
            .get(1)
            .map(|o| self.strength.pick(&o.thresholds))
            .unwrap_or(1.0);
        let mut findings = Vec::new();
        let label = if hate >= t_hate && toxic >= t_toxic.min(0.5) {
            Some(("HATE", self.hate, hate.max(toxic)))
        } else if toxic >= t_toxic {
            Some(("INSULTS", self.insults, toxic))
        } else {
            None
        };
        if let Some((label, wanted, score)) = label {
            // A HATE text is also insulting: report it under INSULTS when HATE is not asked.
            let label = if !wanted && label == "HATE" && self.insults {
                Some("INSULTS")
            } else if wanted {
                Some(label)
            } else {
                None
            };
            if let Some(label) = label {
                findings.push(Finding {
                    kind: "toxicity",
                    label: label.to_string(),
                    score,
                    start: 0,
                    end: text.len(),
                });
            }
        }
        Detection {
            findings,
            score: toxic,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn det() -> ToxicityDetector {
        ToxicityDetector::new(None).unwrap()
    }

    #[test]
    fn known_positives_and_negatives_en_ko() {
        let d = det();
        let ctx = DetectContext::default();
        let toxic = [
            "you are a fucking idiot",
            "shut up you stupid bitch",
            "이 병신같은 새끼야 꺼져",
            "진짜 개념 없는 쓰레기네 죽어라",
            "시발 존나 짜증나게 하네",
        ];
        let benign = [
            "thank you for your help with the report",
            "the weather is lovely today, let's go for a walk",
            "Can you summarize this article about climate policy?",
            "오늘 회의 자료를 정리해서 보내드리겠습니다",
            "이 영화 정말 감동적이었어요 배우들 연기 최고",
            "내일 오후 세 시에 회의실을 예약해 주세요",
        ];
        for t in toxic {
            let det = d.detect(t, &ctx);
            assert!(
                !det.findings.is_empty(),
                "missed toxic {t:?} score {}",
                det.score
            );
            assert_eq!(det.findings[0].kind, "toxicity");
            assert_eq!(det.findings[0].end, t.len());
        }
        for t in benign {
            let det = d.detect(t, &ctx);
            assert!(
                det.findings.is_empty(),
                "false positive {t:?} score {}",
                det.score
            );
        }
    }

    /// Known weakness (docs/classifiers.md): implicit hate without slurs scores below the
    /// medium threshold (0.38 here) and its benign twin scores higher (0.68) — the English
    /// model leans on Davidson's tweet style. Kept as the target behaviour.
    #[test]
    #[ignore = "known miss of the shipped English toxicity model"]
    fn implicit_hate_ranks_above_its_benign_twin() {
        let d = det();
        let (hate, _, _) = d.scores("all those people are animals and should be sent back");
        let (fine, _, _) = d.scores("all those people are friendly and should be welcomed");
        assert!(hate > 0.2 && hate > 5.0 * fine, "{hate} vs {fine}");
    }

    #[test]
    fn evasions_do_not_hide_insults() {
        let d = det();
        let ctx = DetectContext::default();
        for t in [
            "you are a f.u.c.k.i.n.g idiot",
            "ｙｏｕ ａｒｅ ａ ｆｕｃｋｉｎｇ ｉｄｉｏｔ",
            "you are a fu\u{200B}cking id1ot",
        ] {
            assert!(!d.detect(t, &ctx).findings.is_empty(), "missed {t:?}");
        }
    }

    #[test]
    fn categories_and_thresholds() {
        assert!(matches!(
            ToxicityDetector::new(Some(&["SEXUAL".to_string()])),
            Err(ToxicityError::UnknownCategory(_))
        ));
        let d = det();
        for lang in [Lang::En, Lang::Ko] {
            let (l, m, h) = (
                d.threshold(Strength::Low, lang),
                d.threshold(Strength::Medium, lang),
                d.threshold(Strength::High, lang),
            );
            assert!(h <= m && m <= l, "{lang:?} {l} {m} {h}");
        }
        let only_hate = ToxicityDetector::new(Some(&["HATE".to_string()])).unwrap();
        let det = only_hate.detect("thanks, that was a nice read", &DetectContext::default());
        assert!(det.findings.is_empty());
    }
}
