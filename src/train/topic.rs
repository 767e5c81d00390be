//! Trainer of the topic models: an IDF table for the lexical space, then the mixing weight
//! `alpha` (semantic vs lexical), the centroid weight and the thresholds, chosen on topics
//! built for each non-financial CLINC150 domain (auto definition from intent names + five
//! examples) against the validation queries of all of them: the global threshold at 5%
//! pooled false positives. The semantic space (`models/topic_vectors.bin`) is distilled
//! by `tools/topic_vectors.py` and read as shipped. The financial test topic (banking +
//! credit_cards) is never seen by any of this.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::sync::Arc;

use super::data::read;
use super::{TrainError, TrainReport};
use crate::detect::classifier::features::hash_features;
use crate::detect::classifier::{FeatureConfig, LinearModel, Thresholds};
use crate::detect::normalize::normalize;
use crate::detect::pieces::PieceVectors;
use crate::detect::topic::{TopicDetector, TopicModels};

/// Lexical space features.
pub const LEX_FEATURES: FeatureConfig = FeatureConfig {
    bits: 18,
    word_max: 1,
    char_min: 2,
    char_max: 4,
    flags: 0,
};
const FINANCIAL: [&str; 2] = ["banking", "credit_cards"];

/// The financial topic as a policy author would write it (written once from general
/// knowledge and the CLINC domain names, never tuned on the test queries).
pub const FIN_DEFINITION: &str = "Banking and credit cards: questions or requests about a person's bank accounts, balances, transactions, money transfers, paying bills, checks, routing numbers, PINs, fraud, interest rates, credit cards, credit limits, credit scores, card rewards, card applications, lost or declined cards and card fees.";
/// A terser definition, to show how much the wording matters.
pub const FIN_DEFINITION_SHORT: &str = "Banking and credit cards: anything about a person's bank account, money, bills or credit card.";
pub const FIN_EXAMPLES: [&str; 5] = [
    "How much money is in my checking account?",
    "Please transfer $200 from savings to checking",
    "My credit card was declined at the store",
    "What is the interest rate on my savings account?",
    "I want to report a fraudulent charge on my card",
];

struct Clinc {
    train: Vec<(String, String)>,
    val: Vec<(String, String)>,
    test: Vec<(String, String)>,
    oos_test: Vec<String>,
    /// domain -> intents (file order).
    domains: Vec<(String, Vec<String>)>,
}

fn pairs(v: &serde_json::Value) -> Vec<(String, String)> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|p| Some((p[0].as_str()?.to_string(), p[1].as_str()?.to_string())))
                .collect()
        })
        .unwrap_or_default()
}

fn load_clinc(dir: &Path) -> Result<Clinc, TrainError> {
    let full: serde_json::Value =
        serde_json::from_str(&read(&dir.join("clinc150_oos/data_full.json"))?)
            .map_err(|_| TrainError::Malformed("clinc data_full".into()))?;
    let doms: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(&read(&dir.join("clinc150_oos/domains.json"))?)
            .map_err(|_| TrainError::Malformed("clinc domains".into()))?;
    let domains = doms
        .into_iter()
        .map(|(k, v)| {
            let intents = v
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|x| x.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default();
            (k, intents)
        })
        .collect();
    Ok(Clinc {
        train: pairs(&full["train"]),
        val: pairs(&full["val"]),
        test: pairs(&full["test"]),
        oos_test: pairs(&full["oos_test"]).into_iter().map(|p| p.0).collect(),
        domains,
    })
}

/// IDF table over the lexical features of `docs`.
pub fn fit_idf(docs: &[String]) -> LinearModel {
    let mut df = vec![0u32; LEX_FEATURES.buckets()];
    for d in docs {
        let mut f = Vec::new();
        hash_features(&LEX_FEATURES, &normalize(d), &mut f);
        f.sort_unstable();
        f.dedup();
        for h in f {
            df[h as usize] += 1;
        }
    }
    let n = docs.len() as f32;
    let idf: Vec<f32> = df
        .iter()
        .map(|&c| ((n + 1.0) / (c as f32 + 1.0)).ln() + 0.5)
        .collect();
    let maxw = idf.iter().fold(0f32, |a, x| a.max(*x)).max(1e-9);
    let mut model = LinearModel::zeros(LEX_FEATURES, &["idf"]);
    model.outputs[0].scale = maxw / 32767.0;
    for (q, x) in model.weights.iter_mut().zip(&idf) {
        *q = (x / model.outputs[0].scale).round() as i16;
    }
    model
}

fn auto_definition(domain: &str, intents: &[String]) -> String {
    let list: Vec<String> = intents.iter().map(|i| i.replace('_', " ")).collect();
    format!("{}: {}", domain.replace('_', " "), list.join(", "))
}

/// Threshold giving at most `fpr` false positives on `neg` (scores).
fn threshold_at_fpr(neg: &[f32], fpr: f32) -> f32 {
    let mut s = neg.to_vec();
    s.sort_by(|a, b| b.total_cmp(a));
    let k = ((neg.len() as f32) * fpr).floor() as usize;
    s.get(k).map_or(1.0, |x| x + 1e-6)
}

fn rate(scores: &[f32], t: f32) -> f32 {
    if scores.is_empty() {
        return 0.0;
    }
    scores.iter().filter(|&&s| s >= t).count() as f32 / scores.len() as f32
}

/// The IDF model carrying the mixing weight `alpha` (dense vs lexical) and the centroid
/// weight (see `TopicModels::centroid_weight`).
fn with_params(idf: &LinearModel, alpha: f32, centroid: f32) -> LinearModel {
    let mut m = idf.clone();
    m.outputs[0].platt_a = alpha;
    m.outputs[0].platt_b = centroid;
    m
}

/// Semantic mixing weights tried by cross-validation.
const ALPHAS: [f32; 5] = [0.0, 0.25, 0.5, 0.75, 1.0];
/// Centroid weights tried by cross-validation.
const CENTROID_WEIGHTS: [f32; 4] = [0.0, 0.25, 0.5, 1.0];

/// Trains and evaluates the topic models; see the module docs.
pub fn run(dir: &Path, out_dir: &Path) -> Result<TrainReport, TrainError> {
    let mut rep = TrainReport::default();
    let clinc = load_clinc(dir)?;
    let domain_of: BTreeMap<&str, &str> = clinc
        .domains
        .iter()
        .flat_map(|(d, is)| is.iter().map(move |i| (i.as_str(), d.as_str())))
        .collect();
    let fin: HashSet<&str> = FINANCIAL.into_iter().collect();
    let is_fin = |intent: &str| domain_of.get(intent).is_some_and(|d| fin.contains(d));
    let other: Vec<&(String, Vec<String>)> = clinc
        .domains
        .iter()
        .filter(|(d, _)| !fin.contains(d.as_str()))
        .collect();
    if other.len() < 2 {
        return Err(TrainError::Empty);
    }

    // IDF: non-financial CLINC train queries, HaluEval questions (EN), BEEP!/curse (KO).
    let mut docs: Vec<String> = clinc
        .train
        .iter()
        .filter(|p| !is_fin(&p.1))
        .map(|p| p.0.clone())
        .collect();
    if let Ok(t) = read(&dir.join("halueval/qa_shared.jsonl")) {
        for l in t.lines() {
            if let Ok(v) = serde_json::from_str::<serde_json::Value>(l) {
                if let Some(q) = v["question"].as_str() {
                    docs.push(q.to_string());
                }
            }
        }
    }
    for r in super::data::beep(dir)?
        .into_iter()
        .chain(super::data::curse(dir)?)
    {
        docs.push(r.text);
    }
    let idf = fit_idf(&docs);

    // Topics for every other domain, scored on the validation queries of all of them.
    let vectors = PieceVectors::shipped().map_err(|e| TrainError::Malformed(e.to_string()))?;
    let alphas: Vec<(f32, f32)> = ALPHAS
        .iter()
        .flat_map(|&a| CENTROID_WEIGHTS.iter().map(move |&c| (a, c)))
        .collect();
    let mut pos_scores: Vec<Vec<f32>> = vec![Vec::new(); alphas.len()];
    let mut neg_scores: Vec<Vec<f32>> = vec![Vec::new(); alphas.len()];
    for (ai, &(alpha, cw)) in alphas.iter().enumerate() {
        let models = Arc::new(TopicModels {
            vectors: vectors.clone(),
            idf: with_params(&idf, alpha, cw),
        });
        for (dname, intents) in &other {
            let examples: Vec<String> = intents
                .iter()
                .take(5)
                .filter_map(|i| clinc.train.iter().find(|p| &p.1 == i).map(|p| p.0.clone()))
                .collect();
            let Ok(t) = TopicDetector::with_models(
                models.clone(),
                dname,
                &auto_definition(dname, intents),
                &examples,
            ) else {
                continue;
            };
            for (q, i) in clinc.val.iter().filter(|p| !is_fin(&p.1)) {
                let s = t.score_passage(q);
                if domain_of.get(i.as_str()) == Some(&dname.as_str()) {
                    pos_scores[ai].push(s);
                } else {
                    neg_scores[ai].push(s);
                }
            }
        }
    }
    let mut best = (0usize, -1.0f32);
    for ai in 0..alphas.len() {
        let t = threshold_at_fpr(&neg_scores[ai], 0.05);
        let r = rate(&pos_scores[ai], t);
        rep.push(
            format!(
                "topic cv(val domains) recall@5%FPR alpha={} centroid={}",
                alphas[ai].0, alphas[ai].1
            ),
            r,
        );
        if r > best.1 {
            best = (ai, r);
        }
    }
    let (alpha, centroid) = alphas[best.0];
    let neg = &neg_scores[best.0];
    let thresholds = Thresholds {
        low: threshold_at_fpr(neg, 0.02),
        medium: threshold_at_fpr(neg, 0.05),
        high: threshold_at_fpr(neg, 0.10),
    };
    rep.push("topic chosen alpha", alpha);
    rep.push("topic chosen centroid weight", centroid);
    rep.push("topic threshold low", thresholds.low);
    rep.push("topic threshold medium", thresholds.medium);
    rep.push("topic threshold high", thresholds.high);

    let mut idf = with_params(&idf, alpha, centroid);
    idf.outputs[0].thresholds = thresholds;
    let path = out_dir.join("topic_idf.hclf");
    std::fs::write(&path, idf.to_bytes())
        .map_err(|e| TrainError::Io(path.display().to_string(), e))?;
    rep.files.push(path);

    // Held-out test: the financial topic on CLINC test queries.
    let models = Arc::new(TopicModels { vectors, idf });
    let examples: Vec<String> = FIN_EXAMPLES.iter().map(|s| s.to_string()).collect();
    for (label, def) in [
        ("full definition", FIN_DEFINITION),
        ("short definition", FIN_DEFINITION_SHORT),
    ] {
        let t = TopicDetector::with_models(models.clone(), "financial", def, &examples)
            .map_err(|e| TrainError::Malformed(e.to_string()))?;
        let mut pos = Vec::new();
        let mut neg = Vec::new();
        for (q, i) in &clinc.test {
            let s = t.score_passage(q);
            if is_fin(i) {
                pos.push(s);
            } else {
                neg.push(s);
            }
        }
        let oos: Vec<f32> = clinc.oos_test.iter().map(|q| t.score_passage(q)).collect();
        rep.push(
            format!("topic financial[{label}] test n_pos"),
            pos.len() as f32,
        );
        rep.push(
            format!("topic financial[{label}] test n_neg(other domains)"),
            neg.len() as f32,
        );
        for (s, th) in [
            ("low", thresholds.low),
            ("medium", thresholds.medium),
            ("high", thresholds.high),
        ] {
            rep.push(
                format!("topic financial[{label}] recall @{s}"),
                rate(&pos, th),
            );
            rep.push(
                format!("topic financial[{label}] FP rate other domains @{s}"),
                rate(&neg, th),
            );
            rep.push(
                format!("topic financial[{label}] FP rate oos_test @{s}"),
                rate(&oos, th),
            );
        }
        let oracle = threshold_at_fpr(&neg, 0.05);
        rep.push(
            format!("topic financial[{label}] recall @5%FPR (oracle threshold, diagnostic)"),
            rate(&pos, oracle),
        );
    }
    Ok(rep)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A CLINC-shaped corpus in miniature: two financial domains (never used for choices)
    /// and three others with distinct vocabularies.
    fn fixture(dir: &Path) {
        let write = |rel: &str, body: String| {
            let p = dir.join(rel);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, body).unwrap();
        };
        let domains: &[(&str, &str, [&str; 3])] = &[
            (
                "banking",
                "balance",
                [
                    "how much money is in my checking account",
                    "show my bank balance",
                    "what is left in my savings account",
                ],
            ),
            (
                "credit_cards",
                "card_declined",
                [
                    "why was my credit card declined",
                    "my card got rejected at the store",
                    "the credit card payment failed",
                ],
            ),
            (
                "travel",
                "book_flight",
                [
                    "book a flight to paris",
                    "find me a plane ticket to tokyo",
                    "reserve a seat on the next flight",
                ],
            ),
            (
                "kitchen",
                "recipe",
                [
                    "how do i cook pasta",
                    "give me a recipe for soup",
                    "how long should i bake bread",
                ],
            ),
            (
                "home",
                "lights",
                [
                    "turn off the lights in the kitchen",
                    "dim the bedroom lamp",
                    "switch the living room lights on",
                ],
            ),
        ];
        let rows = |k: usize| -> String {
            let mut v = Vec::new();
            for (_, intent, qs) in domains {
                for i in 0..4 {
                    v.push(format!(
                        "[\"{} {}\", \"{intent}\"]",
                        qs[(i + k) % 3],
                        ["", "please", "now", "today"][i]
                    ));
                }
            }
            v.join(", ")
        };
        write(
            "clinc150_oos/data_full.json",
            format!(
                "{{\"train\": [{}], \"val\": [{}], \"test\": [{}], \"oos_test\": [[\"tell me a joke\", \"oos\"]]}}",
                rows(0),
                rows(1),
                rows(2)
            ),
        );
        let doms: Vec<String> = domains
            .iter()
            .map(|(d, i, _)| format!("\"{d}\": [\"{i}\"]"))
            .collect();
        write(
            "clinc150_oos/domains.json",
            format!("{{{}}}", doms.join(", ")),
        );
        write(
            "halueval/qa_shared.jsonl",
            "{\"question\": \"who wrote the book\"}\n{\"question\": \"where is the city\"}\n"
                .into(),
        );
        write(
            "kocohub_beep_ko/train.tsv",
            "comments\tcontain_gender_bias\tbias\thate\n좋은 영화\tFalse\tnone\tnone\n".into(),
        );
        write(
            "kocohub_beep_ko/dev.tsv",
            "comments\tcontain_gender_bias\tbias\thate\n재밌다\tFalse\tnone\tnone\n".into(),
        );
        write("curse_detection_ko/dataset.txt", "안녕하세요|0\n".into());
    }

    #[test]
    fn topic_trainer_runs_end_to_end_on_a_small_sample() {
        let dir = tempfile::tempdir().unwrap();
        let (corpora, out) = (dir.path().join("corpora"), dir.path().join("models"));
        fixture(&corpora);
        std::fs::create_dir_all(&out).unwrap();
        let rep = run(&corpora, &out).unwrap();
        let idf =
            LinearModel::from_bytes(&std::fs::read(out.join("topic_idf.hclf")).unwrap()).unwrap();
        let t = idf.outputs[0].thresholds;
        assert!(t.low >= t.medium && t.medium >= t.high, "{rep}");
        let alpha = rep.get("topic chosen alpha").unwrap();
        assert!(ALPHAS.contains(&alpha), "{rep}");
        // The financial topic built from the trainer's own definition finds its queries.
        let recall = rep
            .get("topic financial[full definition] recall @high")
            .unwrap();
        assert!(recall > 0.5, "{rep}");
    }
}
