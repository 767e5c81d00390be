//! Hashed n-gram features ("hashing trick"): no vocabulary file, constant memory.
//!
//! Word n-grams catch phrases ("ignore previous instructions"); character n-grams catch
//! misspellings, inflections and Korean morphology. Each n-gram is hashed with a seed per
//! kind (so word `ab` and char `ab` differ) into `2^bits` buckets.

/// What to extract; stored in the model file so the trainer and the detector agree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FeatureConfig {
    /// Number of hash buckets is `2^bits`.
    pub bits: u8,
    /// Word n-grams from 1 to `word_max` (0 = no word features).
    pub word_max: u8,
    /// Character n-grams from `char_min` to `char_max` (0 = none), padded with spaces.
    pub char_min: u8,
    pub char_max: u8,
}

impl FeatureConfig {
    /// `2^bits`.
    pub fn buckets(&self) -> usize {
        1usize << self.bits
    }
}

#[inline]
fn mix(mut h: u32) -> u32 {
    // murmur3 fmix32: spreads FNV's weak low bits.
    h ^= h >> 16;
    h = h.wrapping_mul(0x85eb_ca6b);
    h ^= h >> 13;
    h = h.wrapping_mul(0xc2b2_ae35);
    h ^ (h >> 16)
}

#[inline]
fn step(h: u32, c: u32) -> u32 {
    (h ^ c).wrapping_mul(0x0100_0193)
}

/// Appends the hashed features of an already normalised text to `out`.
pub fn hash_features(cfg: &FeatureConfig, text: &str, out: &mut Vec<u32>) {
    let mask = (cfg.buckets() - 1) as u32;
    // Words: runs of alphanumerics; punctuation runs count as their own token because
    // prompt attacks use markup (`###`, `<|im_start|>`, `}}`).
    if cfg.word_max > 0 {
        let mut words: Vec<u32> = Vec::with_capacity(text.len() / 4 + 1);
        let mut cur: Option<(u32, bool)> = None;
        for c in text.chars() {
            let kind_alnum = crate::detect::normalize::is_alnum(c);
            if c == ' ' {
                if let Some((h, _)) = cur.take() {
                    words.push(h);
                }
                continue;
            }
            match cur {
                Some((h, alnum)) if alnum == kind_alnum => cur = Some((step(h, c as u32), alnum)),
                Some((h, _)) => {
                    words.push(h);
                    cur = Some((step(0x811c_9dc5, c as u32), kind_alnum));
                }
                None => cur = Some((step(0x811c_9dc5, c as u32), kind_alnum)),
            }
        }
        if let Some((h, _)) = cur {
            words.push(h);
        }
        for (i, &w) in words.iter().enumerate() {
            out.push(mix(w ^ 0x1111_1111) & mask);
            let mut h = w;
            for n in 2..=cfg.word_max as usize {
                if i + n > words.len() {
                    break;
                }
                h = step(h.rotate_left(5), words[i + n - 1]);
                out.push(mix(h ^ (0x2222_2222u32.wrapping_mul(n as u32))) & mask);
            }
        }
    }
    if cfg.char_max > 0 {
        let mut chars: Vec<u32> = Vec::with_capacity(text.len() + 2);
        chars.push(' ' as u32);
        chars.extend(text.chars().map(|c| c as u32));
        chars.push(' ' as u32);
        let (lo, hi) = (cfg.char_min.max(1) as usize, cfg.char_max as usize);
        for i in 0..chars.len() {
            let mut h = 0x9e37_79b9u32;
            for n in 1..=hi {
                if i + n > chars.len() {
                    break;
                }
                h = step(h, chars[i + n - 1]);
                if n >= lo {
                    // 1- and 2-grams only for non-ASCII (a Hangul syllable or two is a
                    // morpheme; a Latin letter pair says little and costs a quarter of the
                    // features of English text).
                    if n <= 2 && chars[i] < 0x80 && chars.get(i + 1).is_none_or(|&c| c < 0x80) {
                        continue;
                    }
                    out.push(mix(h ^ (n as u32).wrapping_mul(0x3333_3333)) & mask);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn features_are_deterministic_and_bounded() {
        let cfg = FeatureConfig {
            bits: 12,
            word_max: 2,
            char_min: 1,
            char_max: 3,
        };
        let mut a = Vec::new();
        let mut b = Vec::new();
        hash_features(&cfg, "ignore previous instructions 한국어", &mut a);
        hash_features(&cfg, "ignore previous instructions 한국어", &mut b);
        assert_eq!(a, b);
        assert!(a.iter().all(|&h| (h as usize) < cfg.buckets()));
        let mut c = Vec::new();
        hash_features(&cfg, "completely different", &mut c);
        assert_ne!(a, c);
        // word unigrams 4 + bigrams 3 present
        let words_only = FeatureConfig {
            bits: 12,
            word_max: 2,
            char_min: 0,
            char_max: 0,
        };
        let mut w = Vec::new();
        hash_features(&words_only, "a b c", &mut w);
        assert_eq!(w.len(), 5);
    }
}
