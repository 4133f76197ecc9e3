//! Feature hashing and the linear model: the part of a request that costs CPU.
//!
//! The specification is shared with the Python build (workloads/textscore/textscore/pyscore.py)
//! and must stay identical to it, down to the order of the floating-point additions:
//!
//! - tokens: the normalised text split on spaces, empty pieces dropped;
//! - hash: 64-bit FNV-1a over code points (xor a whole code point, then multiply);
//! - per token, in this order: the unigram (seed `SEED_UNIGRAM`), the bigram with the previous
//!   token (seed `SEED_BIGRAM`, the two tokens joined by U+0020), then the char n-grams of
//!   " token " for every start j: lengths 3, 4, 5 from the same running hash (seed `SEED_CHAR`);
//! - a feature with hash h adds `+w[h mod 2^18]` (bit 63 clear) or `-w[h mod 2^18]` (bit 63 set)
//!   to the accumulator, in the order the features are produced;
//! - score = sigmoid(BIAS + acc / sqrt(n)) with n the number of features (sigmoid(BIAS) if none).

use crate::table::Table;
use std::sync::OnceLock;

pub const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
pub const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;
pub const SEED_UNIGRAM: u64 = FNV_OFFSET ^ 1;
pub const SEED_BIGRAM: u64 = FNV_OFFSET ^ 2;
pub const SEED_CHAR: u64 = FNV_OFFSET ^ 3;
pub const DIM_BITS: u32 = 18;
pub const DIM: usize = 1 << DIM_BITS;
pub const WEIGHT_SEED: u64 = 0x7465_7874_7363_6f72; // "textscor"
pub const BIAS: f64 = -0.25;
const GOLDEN: u64 = 0x9e37_79b9_7f4a_7c15;

#[inline]
fn step(h: u64, ch: char) -> u64 {
    (h ^ u64::from(ch)).wrapping_mul(FNV_PRIME)
}

#[inline]
fn hash_chars(seed: u64, chars: &[char]) -> u64 {
    chars.iter().fold(seed, |h, &ch| step(h, ch))
}

/// The splitmix64 output for the i-th state after `seed` (shared with the Python build).
pub fn splitmix64(seed: u64, i: u64) -> u64 {
    let mut z = seed.wrapping_add(i.wrapping_add(1).wrapping_mul(GOLDEN));
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The model's weights: uniform in [-1, 1) on a grid of 2^-23, generated from `WEIGHT_SEED` so
/// both builds hold identical values without shipping a file. 24 significant bits make every
/// weight exact in f32, so they are stored as f32 (1 MiB, half the cache footprint of f64) and
/// widened to f64, losslessly, when summed.
pub fn weights() -> &'static [f32] {
    static WEIGHTS: OnceLock<Vec<f32>> = OnceLock::new();
    WEIGHTS.get_or_init(|| {
        (0..DIM as u64)
            .map(|i| weight_from_bits(splitmix64(WEIGHT_SEED, i)))
            .collect()
    })
}

/// ((top 24 bits) * 2^-24 - 0.5) * 2, computed in f64 (exact) then narrowed (exact).
fn weight_from_bits(bits: u64) -> f32 {
    (((bits >> 40) as f64 * (1.0 / (1u64 << 24) as f64) - 0.5) * 2.0) as f32
}

/// Calls `emit` with the hash of every feature of the tokens, in the specified order.
pub fn for_each_feature<F: FnMut(u64)>(tokens: &[&[char]], mut emit: F) {
    let mut padded: Vec<char> = Vec::new();
    let mut previous: Option<&[char]> = None;
    for &token in tokens {
        emit(hash_chars(SEED_UNIGRAM, token));
        if let Some(prev) = previous {
            let h = step(hash_chars(SEED_BIGRAM, prev), ' ');
            emit(hash_chars(h, token));
        }
        previous = Some(token);
        padded.clear();
        padded.push(' ');
        padded.extend_from_slice(token);
        padded.push(' ');
        for start in 0..padded.len().saturating_sub(2) {
            let mut h = SEED_CHAR;
            for (offset, &ch) in padded.iter().skip(start).take(5).enumerate() {
                h = step(h, ch);
                if offset >= 2 {
                    emit(h);
                }
            }
        }
    }
}

/// Splits normalised text into tokens (runs of non-space code points).
pub fn tokens(normalised: &[char]) -> Vec<&[char]> {
    normalised
        .split(|&ch| ch == ' ')
        .filter(|t| !t.is_empty())
        .collect()
}

/// Numerically stable logistic function, written the same way in both builds.
pub fn sigmoid(z: f64) -> f64 {
    if z >= 0.0 {
        1.0 / (1.0 + (-z).exp())
    } else {
        let e = z.exp();
        e / (1.0 + e)
    }
}

/// Scores texts; holds reusable scratch space, so one per thread.
pub struct Scorer {
    table: &'static Table,
    weights: &'static [f32],
    scratch: Vec<char>,
}

/// The result for one text: its score and how many features it had.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Scored {
    pub score: f64,
    pub features: u64,
}

impl Default for Scorer {
    fn default() -> Self {
        Scorer::new()
    }
}

impl Scorer {
    pub fn new() -> Scorer {
        Scorer {
            table: Table::builtin(),
            weights: weights(),
            scratch: Vec::new(),
        }
    }

    /// The normalised form of a text, as a string (for parity tests).
    pub fn normalise(&mut self, text: &str) -> String {
        self.scratch.clear();
        self.table.normalise_into(text, &mut self.scratch);
        self.scratch.iter().collect()
    }

    /// The feature hashes of a text, in order (for parity tests).
    pub fn feature_hashes(&mut self, text: &str) -> Vec<u64> {
        self.scratch.clear();
        self.table.normalise_into(text, &mut self.scratch);
        let mut hashes = Vec::new();
        for_each_feature(&tokens(&self.scratch), |h| hashes.push(h));
        hashes
    }

    pub fn score(&mut self, text: &str) -> Scored {
        self.scratch.clear();
        self.table.normalise_into(text, &mut self.scratch);
        let weights = self.weights;
        let mask = (DIM - 1) as u64;
        let mut acc = 0.0_f64;
        let mut n: u64 = 0;
        for_each_feature(&tokens(&self.scratch), |h| {
            let w = f64::from(weights.get((h & mask) as usize).copied().unwrap_or(0.0));
            if h >> 63 == 0 {
                acc += w;
            } else {
                acc -= w;
            }
            n += 1;
        });
        let z = if n == 0 {
            BIAS
        } else {
            BIAS + acc / (n as f64).sqrt()
        };
        Scored {
            score: sigmoid(z),
            features: n,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv_matches_reference_values() {
        // FNV-1a 64 of "a" with the standard offset basis (code point == byte for ASCII).
        assert_eq!(hash_chars(FNV_OFFSET, &['a']), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(
            hash_chars(FNV_OFFSET, &['f', 'o', 'o', 'b', 'a', 'r']),
            0x85944171f73967e8
        );
    }

    #[test]
    fn splitmix64_matches_reference_sequence() {
        // First outputs of splitmix64 seeded with 0 (Vigna's reference implementation).
        assert_eq!(splitmix64(0, 0), 0xe220_a839_7b1d_cdaf);
        assert_eq!(splitmix64(0, 1), 0x6e78_9e6a_a1b9_65f4);
    }

    #[test]
    fn weights_are_in_range_and_centred() {
        let w = weights();
        assert_eq!(w.len(), DIM);
        assert!(w.iter().all(|x| (-1.0..1.0).contains(x)));
        let mean = w.iter().map(|&x| f64::from(x)).sum::<f64>() / DIM as f64;
        assert!(mean.abs() < 0.01, "mean {mean}");
    }

    #[test]
    fn weights_are_exact_in_f32() {
        for i in 0..1000 {
            let bits = splitmix64(WEIGHT_SEED, i);
            let exact = ((bits >> 40) as f64 / (1u64 << 24) as f64 - 0.5) * 2.0;
            assert_eq!(f64::from(weight_from_bits(bits)), exact);
        }
    }

    #[test]
    fn feature_count_follows_the_spec() {
        let mut scorer = Scorer::new();
        // "ab cde": tokens ab (unigram + 3 char grams of " ab ") and cde (unigram, bigram,
        // " cde " has starts 0..3 giving 3+2+1 grams).
        assert_eq!(scorer.feature_hashes("ab cde").len(), (1 + 3) + (1 + 1 + 6));
        assert_eq!(scorer.feature_hashes("").len(), 0);
        assert_eq!(scorer.feature_hashes(" ,.;! ").len(), 0);
    }

    #[test]
    fn empty_text_scores_the_bias() {
        let mut scorer = Scorer::new();
        assert_eq!(scorer.score("").score, sigmoid(BIAS));
        assert_eq!(scorer.score("!!!").features, 0);
    }

    #[test]
    fn scores_are_probabilities_and_deterministic() {
        let mut scorer = Scorer::new();
        for text in [
            "hello world",
            "Straße ﬁ ①",
            "日本語のテキスト",
            "a",
            "\u{10FFFF}\u{0}x",
        ] {
            let first = scorer.score(text);
            assert!(first.score > 0.0 && first.score < 1.0);
            assert_eq!(first, scorer.score(text));
        }
    }

    #[test]
    fn sigmoid_is_stable_at_the_extremes() {
        assert_eq!(sigmoid(1000.0), 1.0);
        assert_eq!(sigmoid(-1000.0), 0.0);
        assert_eq!(sigmoid(0.0), 0.5);
    }

    #[test]
    fn case_and_punctuation_do_not_change_scores() {
        let mut scorer = Scorer::new();
        assert_eq!(scorer.score("Hello, World!"), scorer.score("hello world"));
    }
}
