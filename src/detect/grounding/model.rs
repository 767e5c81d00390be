//! Logistic regression over standardised features, and the weights file format.

use serde::{Deserialize, Serialize};

/// One logistic-regression model: `sigmoid(w · (x - mean) / std + bias)`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Logistic {
    pub features: Vec<String>,
    pub mean: Vec<f32>,
    pub std: Vec<f32>,
    pub weights: Vec<f32>,
    pub bias: f32,
}

impl Logistic {
    /// Probability of the positive class (grounded / relevant).
    pub fn predict(&self, x: &[f32]) -> f32 {
        let mut z = self.bias;
        for (i, &v) in x.iter().enumerate() {
            let (Some(m), Some(s), Some(w)) =
                (self.mean.get(i), self.std.get(i), self.weights.get(i))
            else {
                break;
            };
            // Clamp standardised values: inputs unlike anything seen in training must not
            // saturate the score on one feature.
            z += w * ((v - m) / s).clamp(-6.0, 6.0);
        }
        sigmoid(z)
    }

    /// Checks that the model was trained on the features the code computes.
    pub fn matches(&self, names: &[&str]) -> bool {
        self.features.len() == names.len()
            && self.features.iter().zip(names).all(|(a, b)| a == b)
            && self.mean.len() == names.len()
            && self.std.len() == names.len()
            && self.weights.len() == names.len()
            && self.std.iter().all(|s| *s > 0.0)
    }

    /// Fits by full-batch gradient descent with L2 (the data are a few tens of thousands
    /// of rows of ~20 features, so a few hundred epochs take seconds).
    pub fn fit(
        names: &[&str],
        xs: &[Vec<f32>],
        ys: &[f32],
        sw: &[f32],
        l2: f32,
        epochs: usize,
    ) -> Self {
        let d = names.len();
        let wsum: f32 = sw.iter().sum::<f32>().max(1e-6);
        let mut mean = vec![0.0f32; d];
        for (x, &w) in xs.iter().zip(sw) {
            for j in 0..d {
                mean[j] += w * x[j];
            }
        }
        mean.iter_mut().for_each(|m| *m /= wsum);
        let mut var = vec![0.0f32; d];
        for (x, &w) in xs.iter().zip(sw) {
            for j in 0..d {
                var[j] += w * (x[j] - mean[j]).powi(2);
            }
        }
        let std: Vec<f32> = var.iter().map(|v| (v / wsum).sqrt().max(1e-3)).collect();
        let z: Vec<Vec<f32>> = xs
            .iter()
            .map(|x| {
                (0..d)
                    .map(|j| ((x[j] - mean[j]) / std[j]).clamp(-6.0, 6.0))
                    .collect()
            })
            .collect();
        let mut w = vec![0.0f32; d];
        let mut b = 0.0f32;
        // Adam keeps the step size sane without tuning a learning rate per data set.
        let (mut mw, mut vw) = (vec![0.0f32; d + 1], vec![0.0f32; d + 1]);
        let lr = 0.05f32;
        for t in 1..=epochs {
            let mut g = vec![0.0f32; d + 1];
            for ((x, &y), &s) in z.iter().zip(ys).zip(sw) {
                let mut zz = b;
                for j in 0..d {
                    zz += w[j] * x[j];
                }
                let err = (sigmoid(zz) - y) * s;
                for j in 0..d {
                    g[j] += err * x[j];
                }
                g[d] += err;
            }
            for j in 0..d {
                g[j] = g[j] / wsum + l2 * w[j];
            }
            g[d] /= wsum;
            for j in 0..=d {
                mw[j] = 0.9 * mw[j] + 0.1 * g[j];
                vw[j] = 0.999 * vw[j] + 0.001 * g[j] * g[j];
                let mh = mw[j] / (1.0 - 0.9f32.powi(t as i32));
                let vh = vw[j] / (1.0 - 0.999f32.powi(t as i32));
                let step = lr * mh / (vh.sqrt() + 1e-8);
                if j < d {
                    w[j] -= step;
                } else {
                    b -= step;
                }
            }
        }
        Logistic {
            features: names.iter().map(|s| s.to_string()).collect(),
            mean,
            std,
            weights: w,
            bias: b,
        }
    }
}

impl Logistic {
    /// Shifts the bias so that a score of `from` becomes `to` (keeps the ranking).
    pub fn recalibrate(&mut self, from: f32, to: f32) {
        self.bias += logit(to) - logit(from);
    }
}

fn logit(p: f32) -> f32 {
    let p = p.clamp(1e-4, 1.0 - 1e-4);
    (p / (1.0 - p)).ln()
}

pub fn sigmoid(z: f32) -> f32 {
    1.0 / (1.0 + (-z).exp())
}

/// The shipped weights file (`models/grounding.json`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Weights {
    pub version: u32,
    /// Grounding score below which an answer or sentence is called ungrounded. Every head
    /// is calibrated by the trainer (a bias shift) so that this one threshold applies to
    /// answers and sentences in both languages.
    pub threshold: f32,
    /// Relevance score below which an answer is called irrelevant.
    pub relevance_threshold: f32,
    /// Answer-level grounding model (the detector's score).
    pub grounding: Logistic,
    /// Sentence-level grounding model (findings and per-sentence scores).
    pub sentence: Logistic,
    /// Korean answer-level and sentence-level models (chosen when most letters are Hangul).
    pub grounding_ko: Logistic,
    pub sentence_ko: Logistic,
    pub relevance: Logistic,
    /// Where the weights came from (data sets, split), for the audit trail.
    pub trained_on: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fit_separates_a_linear_problem() {
        let xs: Vec<Vec<f32>> = (0..200).map(|i| vec![i as f32 / 100.0, 1.0]).collect();
        let ys: Vec<f32> = (0..200).map(|i| if i >= 100 { 1.0 } else { 0.0 }).collect();
        let sw = vec![1.0; 200];
        let m = Logistic::fit(&["a", "b"], &xs, &ys, &sw, 1e-4, 300);
        assert!(m.predict(&[1.8, 1.0]) > 0.8);
        assert!(m.predict(&[0.2, 1.0]) < 0.2);
        assert!(m.matches(&["a", "b"]));
        assert!(!m.matches(&["a"]));
    }
}
