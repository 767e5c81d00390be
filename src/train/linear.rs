//! Logistic regression over hashed features (AdaGrad SGD), Platt calibration, threshold
//! choice and metrics. Deterministic: a fixed-seed xorshift drives the shuffling.

use crate::detect::classifier::{sigmoid, FeatureConfig, LinearModel, Thresholds};
use crate::detect::normalize::normalize;

/// One training example: hashed features of the normalised text, 0/1 target per output.
#[derive(Debug, Clone)]
pub struct Example {
    pub feats: Vec<u32>,
    pub targets: Vec<f32>,
    /// Loss weight of this example (1.0 by default).
    pub weight: f32,
}

impl Example {
    pub fn new(cfg: &FeatureConfig, text: &str, targets: Vec<f32>) -> Self {
        Self::prepared(cfg, &normalize(text), targets)
    }

    /// From a text already in the form the detector scores (normalised, maybe masked).
    pub fn prepared(cfg: &FeatureConfig, prepared: &str, targets: Vec<f32>) -> Self {
        let mut feats = Vec::new();
        crate::detect::classifier::features::hash_features(cfg, prepared, &mut feats);
        Self {
            feats,
            targets,
            weight: 1.0,
        }
    }
}

/// Deterministic xorshift64* generator.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed.max(1))
    }
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }
    pub fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            let j = self.below(i + 1);
            v.swap(i, j);
        }
    }
}

/// Hyper-parameters of [`fit`].
#[derive(Debug, Clone, Copy)]
pub struct FitOptions {
    pub epochs: usize,
    pub lr: f32,
    pub l2: f32,
    /// Shuffling seed.
    pub seed: u64,
    /// Number of fits (seeds `seed`, `seed + 1`, ...) whose weights are averaged. A linear
    /// model's average is the ensemble of its members at the cost of one, and it smooths
    /// the shuffling noise of a single SGD run.
    pub runs: usize,
}

impl FitOptions {
    /// Defaults, overridable by `HAECHI_TRAIN_EPOCHS`, `HAECHI_TRAIN_LR`, `HAECHI_TRAIN_L2`
    /// (for hyper-parameter exploration; the shipped weights use the defaults).
    pub fn from_env() -> Self {
        let mut o = Self::default();
        let get = |k: &str| std::env::var(k).ok().and_then(|v| v.parse::<f32>().ok());
        if let Some(v) = get("HAECHI_TRAIN_EPOCHS") {
            o.epochs = v as usize;
        }
        if let Some(v) = get("HAECHI_TRAIN_LR") {
            o.lr = v;
        }
        if let Some(v) = get("HAECHI_TRAIN_L2") {
            o.l2 = v;
        }
        if let Some(v) = get("HAECHI_TRAIN_RUNS") {
            o.runs = (v as usize).max(1);
        }
        o
    }
}

impl Default for FitOptions {
    fn default() -> Self {
        Self {
            epochs: 12,
            lr: 0.3,
            l2: 1e-6,
            seed: 42,
            runs: 1,
        }
    }
}

/// Trains a one-vs-rest logistic model; returns the quantised model (uncalibrated).
pub fn fit(cfg: FeatureConfig, labels: &[&str], data: &[Example], opt: FitOptions) -> LinearModel {
    let k = labels.len();
    let runs = opt.runs.max(1);
    let (mut w, mut bias) = fit_once(cfg, k, data, opt);
    for r in 1..runs {
        let (wr, br) = fit_once(
            cfg,
            k,
            data,
            FitOptions {
                seed: opt.seed + r as u64,
                ..opt
            },
        );
        w.iter_mut().zip(&wr).for_each(|(a, b)| *a += b);
        bias.iter_mut().zip(&br).for_each(|(a, b)| *a += b);
    }
    if runs > 1 {
        let n = runs as f32;
        w.iter_mut().for_each(|a| *a /= n);
        bias.iter_mut().for_each(|a| *a /= n);
    }
    let mut model = LinearModel::zeros(cfg, labels);
    for j in 0..k {
        let maxw = (0..cfg.buckets())
            .map(|b| w[b * k + j].abs())
            .fold(0f32, f32::max)
            .max(1e-9);
        let scale = maxw / 32767.0;
        model.outputs[j].scale = scale;
        model.outputs[j].bias = bias[j];
        for b in 0..cfg.buckets() {
            model.weights[b * k + j] = (w[b * k + j] / scale).round() as i16;
        }
    }
    model
}

/// One AdaGrad SGD fit: float weights (bucket-major, `k` outputs) and biases.
fn fit_once(
    cfg: FeatureConfig,
    k: usize,
    data: &[Example],
    opt: FitOptions,
) -> (Vec<f32>, Vec<f32>) {
    let n = cfg.buckets() * k;
    let mut w = vec![0f32; n];
    let mut g2 = vec![1e-6f32; n];
    let mut bias = vec![0f32; k];
    let mut bg2 = vec![1e-6f32; k];
    // Balance classes per output so rare labels (HATE) are learned.
    let pos_weight: Vec<f32> = (0..k)
        .map(|j| {
            let p = data.iter().filter(|e| e.targets[j] > 0.5).count().max(1) as f32;
            let known = data.iter().filter(|e| e.targets[j] >= 0.0).count() as f32;
            let q = (known - p).max(1.0);
            (q / p).clamp(0.2, 5.0).sqrt()
        })
        .collect();
    let mut order: Vec<usize> = (0..data.len()).collect();
    let mut rng = Rng::new(opt.seed);
    for _ in 0..opt.epochs {
        rng.shuffle(&mut order);
        for &i in &order {
            let e = &data[i];
            if e.feats.is_empty() {
                continue;
            }
            let v = cfg.feature_value(e.feats.len());
            for j in 0..k {
                let y = e.targets[j];
                if y < 0.0 {
                    // Label unknown for this output (e.g. HATE on a profanity-only corpus).
                    continue;
                }
                let mut z = bias[j];
                for &h in &e.feats {
                    z += w[h as usize * k + j] * v;
                }
                let cw = if y > 0.5 { pos_weight[j] } else { 1.0 };
                let g = (sigmoid(z) - y) * cw * e.weight;
                if g.abs() < 1e-4 {
                    continue;
                }
                for &h in &e.feats {
                    let idx = h as usize * k + j;
                    let gi = g * v + opt.l2 * w[idx];
                    g2[idx] += gi * gi;
                    w[idx] -= opt.lr * gi / g2[idx].sqrt();
                }
                bg2[j] += g * g;
                bias[j] -= opt.lr * g / bg2[j].sqrt();
            }
        }
    }
    (w, bias)
}

/// Raw logits of examples for output `j`.
pub fn logits(model: &LinearModel, data: &[Example], j: usize) -> Vec<f32> {
    data.iter().map(|e| model.logits(&e.feats)[j]).collect()
}

/// Fits Platt scaling `sigmoid(a z + b)` by gradient descent on the log loss.
pub fn platt(z: &[f32], y: &[bool]) -> (f32, f32) {
    let (mut a, mut b) = (1.0f32, 0.0f32);
    if z.is_empty() {
        return (a, b);
    }
    let n = z.len() as f32;
    for _ in 0..2000 {
        let (mut ga, mut gb) = (0.0, 0.0);
        for (zi, yi) in z.iter().zip(y) {
            let p = sigmoid(a * zi + b);
            let d = p - if *yi { 1.0 } else { 0.0 };
            ga += d * zi;
            gb += d;
        }
        a -= 0.5 * ga / n;
        b -= 0.5 * gb / n;
    }
    (a, b)
}

/// Binary counts at a threshold.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Counts {
    pub tp: usize,
    pub fp: usize,
    pub tn: usize,
    pub fn_: usize,
}

impl Counts {
    pub fn at(p: &[f32], y: &[bool], t: f32) -> Self {
        let mut c = Self::default();
        for (pi, yi) in p.iter().zip(y) {
            match (*pi >= t, *yi) {
                (true, true) => c.tp += 1,
                (true, false) => c.fp += 1,
                (false, false) => c.tn += 1,
                (false, true) => c.fn_ += 1,
            }
        }
        c
    }
    pub fn precision(&self) -> f32 {
        ratio(self.tp, self.tp + self.fp)
    }
    pub fn recall(&self) -> f32 {
        ratio(self.tp, self.tp + self.fn_)
    }
    pub fn f1(&self) -> f32 {
        let (p, r) = (self.precision(), self.recall());
        if p + r == 0.0 {
            0.0
        } else {
            2.0 * p * r / (p + r)
        }
    }
    /// F1 of the negative class.
    pub fn f1_neg(&self) -> f32 {
        Counts {
            tp: self.tn,
            fp: self.fn_,
            tn: self.tp,
            fn_: self.fp,
        }
        .f1()
    }
    /// Mean of the F1 of both classes.
    pub fn macro_f1(&self) -> f32 {
        (self.f1() + self.f1_neg()) / 2.0
    }
    pub fn fpr(&self) -> f32 {
        ratio(self.fp, self.fp + self.tn)
    }
}

fn ratio(a: usize, b: usize) -> f32 {
    if b == 0 {
        0.0
    } else {
        a as f32 / b as f32
    }
}

/// Chooses thresholds on validation probabilities: `medium` maximises F1 (or macro-F1),
/// `low` is the lowest threshold ≥ medium with precision ≥ 0.95 (fewer false alarms),
/// `high` the highest threshold ≤ medium with recall ≥ 0.95 (catches more); each at least
/// 0.1 away from medium so the three strengths differ.
pub fn choose_thresholds(
    p: &[f32],
    y: &[bool],
    macro_avg: bool,
    max_fpr: Option<f32>,
) -> Thresholds {
    let grid: Vec<f32> = (1..100).map(|i| i as f32 / 100.0).collect();
    let score = |c: &Counts| if macro_avg { c.macro_f1() } else { c.f1() };
    let mut best = (0.5f32, -1.0f32);
    for &t in &grid {
        let c = Counts::at(p, y, t);
        if let Some(m) = max_fpr {
            if c.fpr() > m {
                continue;
            }
        }
        let s = score(&c);
        if s > best.1 {
            best = (t, s);
        }
    }
    let medium = best.0;
    let low = grid
        .iter()
        .copied()
        .filter(|&t| t >= medium)
        .find(|&t| Counts::at(p, y, t).precision() >= 0.95)
        .unwrap_or(0.95)
        .max((medium + 0.1).min(0.95));
    let high = grid
        .iter()
        .rev()
        .copied()
        .filter(|&t| t <= medium)
        .find(|&t| Counts::at(p, y, t).recall() >= 0.95)
        .unwrap_or(0.05)
        .min((medium - 0.1).max(0.05));
    Thresholds { low, medium, high }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn learns_a_separable_toy_problem_and_calibrates() {
        let cfg = FeatureConfig {
            bits: 12,
            word_max: 1,
            char_min: 0,
            char_max: 0,
            flags: 0,
        };
        let mut data = Vec::new();
        for i in 0..200 {
            data.push(Example::new(
                &cfg,
                &format!("you idiot number{i}"),
                vec![1.0],
            ));
            data.push(Example::new(
                &cfg,
                &format!("nice day number{i}"),
                vec![0.0],
            ));
        }
        let mut m = fit(cfg, &["toxic"], &data, FitOptions::default());
        let z = logits(&m, &data, 0);
        let y: Vec<bool> = data.iter().map(|e| e.targets[0] > 0.5).collect();
        let (a, b) = platt(&z, &y);
        m.outputs[0].platt_a = a;
        m.outputs[0].platt_b = b;
        assert!(m.predict("what an idiot")[0] > 0.8);
        assert!(m.predict("a nice day")[0] < 0.2);
        let p: Vec<f32> = data
            .iter()
            .map(|e| sigmoid(a * m.logits(&e.feats)[0] + b))
            .collect();
        let t = choose_thresholds(&p, &y, false, None);
        assert!(t.high <= t.medium && t.medium <= t.low);
        assert_eq!(Counts::at(&p, &y, t.medium).f1(), 1.0);
    }

    #[test]
    fn counts_metrics() {
        let c = Counts {
            tp: 8,
            fp: 2,
            tn: 88,
            fn_: 2,
        };
        assert!((c.precision() - 0.8).abs() < 1e-6);
        assert!((c.recall() - 0.8).abs() < 1e-6);
        assert!((c.fpr() - 2.0 / 90.0).abs() < 1e-6);
        assert!(c.macro_f1() > c.f1());
    }
}
