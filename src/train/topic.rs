//! Trainer of the topic models: an IDF table for the lexical space and a small dense
//! projection trained so that same-intent queries land close (softmax over CLINC150
//! intents of the non-financial domains only). `alpha` and the thresholds are chosen by
//! two-fold cross-validation over domains: embed on four domains, build topics (auto
//! definition from intent names + five examples) for the other four, pick the global
//! threshold at 5% pooled false positives. The financial test topic (banking +
//! credit_cards) is never seen by any of this.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::sync::Arc;

use super::data::read;
use super::linear::Rng;
use super::{TrainError, TrainReport};
use crate::detect::classifier::features::hash_features;
use crate::detect::classifier::{FeatureConfig, LinearModel, Thresholds};
use crate::detect::normalize::normalize;
use crate::detect::topic::{TopicDetector, TopicModels};

/// Dense space features and size.
pub const EMBED_FEATURES: FeatureConfig = FeatureConfig {
    bits: 16,
    word_max: 1,
    char_min: 4,
    char_max: 4,
    flags: 0,
};
/// Lexical space features.
pub const LEX_FEATURES: FeatureConfig = FeatureConfig {
    bits: 18,
    word_max: 1,
    char_min: 2,
    char_max: 4,
    flags: 0,
};
pub const DIM: usize = 48;
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

/// Trains the dense projection: softmax over the intents of `train`.
pub fn fit_embed(train: &[(String, String)], epochs: usize, seed: u64) -> LinearModel {
    let intents: Vec<&String> = {
        let s: std::collections::BTreeSet<&String> = train.iter().map(|p| &p.1).collect();
        s.into_iter().collect()
    };
    let idx: BTreeMap<&String, usize> = intents.iter().enumerate().map(|(i, s)| (*s, i)).collect();
    let c = intents.len().max(1);
    let buckets = EMBED_FEATURES.buckets();
    let mut rng = Rng::new(seed);
    let mut rand = |s: f32| ((rng.next_u64() >> 11) as f32 / (1u64 << 53) as f32 * 2.0 - 1.0) * s;
    // Random init keeps unseen n-grams informative (a random projection still preserves
    // lexical overlap); training pulls same-intent paraphrases together.
    let mut w: Vec<f32> = (0..buckets * DIM).map(|_| rand(0.3)).collect();
    let mut u: Vec<f32> = (0..DIM * c).map(|_| rand(0.1)).collect();
    let data: Vec<(Vec<u32>, usize)> = train
        .iter()
        .map(|(q, i)| {
            let mut f = Vec::new();
            hash_features(&EMBED_FEATURES, &normalize(q), &mut f);
            (f, idx.get(i).copied().unwrap_or(0))
        })
        .collect();
    let mut order: Vec<usize> = (0..data.len()).collect();
    let mut rng2 = Rng::new(seed ^ 0x5555);
    for ep in 0..epochs {
        rng2.shuffle(&mut order);
        let lr = 0.2 / (1.0 + ep as f32 * 0.3);
        for &n in &order {
            let (f, y) = &data[n];
            if f.is_empty() {
                continue;
            }
            let v = 1.0 / (f.len() as f32).sqrt();
            let mut h = [0f32; DIM];
            for &b in f {
                let row = &w[b as usize * DIM..(b as usize + 1) * DIM];
                h.iter_mut().zip(row).for_each(|(a, x)| *a += x * v);
            }
            // Train on the normalised embedding (cosine geometry), scaled.
            let norm = h.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-6);
            let s = 8.0 / norm;
            let hn: Vec<f32> = h.iter().map(|x| x * s).collect();
            let mut logits = vec![0f32; c];
            for (k, l) in logits.iter_mut().enumerate() {
                *l = (0..DIM).map(|d| hn[d] * u[d * c + k]).sum();
            }
            let m = logits.iter().copied().fold(f32::MIN, f32::max);
            let z: f32 = logits.iter().map(|l| (l - m).exp()).sum();
            let g: Vec<f32> = logits
                .iter()
                .enumerate()
                .map(|(k, l)| (l - m).exp() / z - if k == *y { 1.0 } else { 0.0 })
                .collect();
            let mut dhn = vec![0f32; DIM];
            for d in 0..DIM {
                for k in 0..c {
                    dhn[d] += u[d * c + k] * g[k];
                    u[d * c + k] -= lr * hn[d] * g[k];
                }
            }
            // Through the normalisation: dh = s * (dhn - hn (hn·dhn) / |hn|^2).
            let dot: f32 = hn.iter().zip(&dhn).map(|(a, b)| a * b).sum::<f32>() / 64.0;
            let dh: Vec<f32> = (0..DIM).map(|d| s * (dhn[d] - hn[d] * dot)).collect();
            for &b in f {
                let row = &mut w[b as usize * DIM..(b as usize + 1) * DIM];
                row.iter_mut().zip(&dh).for_each(|(x, g)| *x -= lr * g * v);
            }
        }
    }
    let labels: Vec<String> = (0..DIM).map(|d| format!("d{d}")).collect();
    let label_refs: Vec<&str> = labels.iter().map(String::as_str).collect();
    let mut model = LinearModel::zeros(EMBED_FEATURES, &label_refs);
    let maxw = w.iter().fold(0f32, |a, x| a.max(x.abs())).max(1e-9);
    let scale = maxw / 32767.0;
    for o in model.outputs.iter_mut() {
        o.scale = scale;
    }
    for (q, x) in model.weights.iter_mut().zip(&w) {
        *q = (x / scale).round() as i16;
    }
    model
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

    // Two-fold over domains to choose alpha and thresholds.
    let half = other.len() / 2;
    let folds = [
        (0..half).collect::<Vec<_>>(),
        (half..other.len()).collect::<Vec<_>>(),
    ];
    let alphas: Vec<(f32, f32)> = [0.0f32, 0.25, 0.5, 0.75, 1.0]
        .iter()
        .flat_map(|&a| CENTROID_WEIGHTS.iter().map(move |&c| (a, c)))
        .collect();
    let mut pos_scores: Vec<Vec<f32>> = vec![Vec::new(); alphas.len()];
    let mut neg_scores: Vec<Vec<f32>> = vec![Vec::new(); alphas.len()];
    for f in 0..2 {
        let (train_d, eval_d) = (&folds[f], &folds[1 - f]);
        let train_domains: HashSet<&str> = train_d.iter().map(|&i| other[i].0.as_str()).collect();
        let tr: Vec<(String, String)> = clinc
            .train
            .iter()
            .filter(|p| {
                domain_of
                    .get(p.1.as_str())
                    .is_some_and(|d| train_domains.contains(d))
            })
            .cloned()
            .collect();
        let embed = fit_embed(&tr, 8, 7 + f as u64);
        for (ai, &(alpha, cw)) in alphas.iter().enumerate() {
            let models = Arc::new(TopicModels {
                embed: embed.clone(),
                idf: with_params(&idf, alpha, cw),
            });
            for &di in eval_d {
                let (dname, intents) = other[di];
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

    // Final models: embed on all non-financial train queries.
    let tr: Vec<(String, String)> = clinc
        .train
        .iter()
        .filter(|p| !is_fin(&p.1))
        .cloned()
        .collect();
    let embed = if alpha > 0.0 {
        fit_embed(&tr, 8, 7)
    } else {
        // The dense space lost on validation: ship an empty one (not computed at detect time).
        let cfg = FeatureConfig {
            bits: 8,
            ..EMBED_FEATURES
        };
        LinearModel::zeros(cfg, &["d0"])
    };
    let mut idf = with_params(&idf, alpha, centroid);
    idf.outputs[0].thresholds = thresholds;
    for (name, m) in [("topic_embed.hclf", &embed), ("topic_idf.hclf", &idf)] {
        let path = out_dir.join(name);
        std::fs::write(&path, m.to_bytes())
            .map_err(|e| TrainError::Io(path.display().to_string(), e))?;
        rep.files.push(path);
    }

    // Held-out test: the financial topic on CLINC test queries.
    let models = Arc::new(TopicModels { embed, idf });
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
