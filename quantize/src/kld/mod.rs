//! Quantization quality: the KL divergence of a model's next-token distribution from a
//! base model's, top-1 agreement and both perplexities, as `llama-perplexity
//! --kl-divergence` reports them (`tools/perplexity/perplexity.cpp`, `kl_divergence`).
//!
//! Differences from llama.cpp, all in the direction of exactness: the base model runs in
//! the same process, so its log-probabilities are exact f64 rather than llama.cpp's 16-bit
//! quantized copy in the `.kld` file, and the divergence sums over the whole vocabulary
//! (llama.cpp skips base log-probabilities below −16).

mod run;

pub use run::{evaluate, KldOptions};

/// An error of the quality evaluation.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KldError {
    #[error("the models' vocabularies differ: base has {base} tokens, model has {model}")]
    VocabMismatch { base: usize, model: usize },
    #[error("the text tokenizes to {got} tokens; {needed} are needed (2 × the context {ctx})")]
    TooFewTokens {
        got: usize,
        needed: usize,
        ctx: usize,
    },
    #[error("context must be at least 4 tokens, got {0}")]
    ContextTooSmall(usize),
    #[error("{which} model: {source}")]
    Model {
        which: &'static str,
        #[source]
        source: pith_runtime::model::ModelError,
    },
    #[error("logits rows of {got} values, expected {expected}")]
    LogitsShape { got: usize, expected: usize },
}

/// The comparison at one scored position.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TokenScore {
    /// KL(base ‖ model) in nats: `Σ p_base · (ln p_base − ln p_model)`.
    pub kld: f64,
    /// −ln p_base(next token).
    pub nll_base: f64,
    /// −ln p_model(next token).
    pub nll_model: f64,
    /// Whether both models' most likely tokens are the same (first index on ties).
    pub same_top: bool,
    /// p_model(next) − p_base(next).
    pub p_diff: f64,
}

/// Index of the first maximum and `ln Σ exp(l)` (f64).
fn argmax_logsumexp(logits: &[f32]) -> (usize, f64) {
    let mut imax = 0;
    let mut max = f32::NEG_INFINITY;
    for (i, &l) in logits.iter().enumerate() {
        if l > max {
            max = l;
            imax = i;
        }
    }
    let m = f64::from(max);
    let sum: f64 = logits.iter().map(|&l| (f64::from(l) - m).exp()).sum();
    (imax, m + sum.ln())
}

/// Compares two logits rows (same vocabulary) at a position whose next token is `next`.
/// Panics if the rows differ in length or `next` is out of range (callers check both).
pub fn score_token(base: &[f32], model: &[f32], next: usize) -> TokenScore {
    assert_eq!(base.len(), model.len(), "logits rows of different widths");
    let (top_b, lse_b) = argmax_logsumexp(base);
    let (top_m, lse_m) = argmax_logsumexp(model);
    let mut kld = 0.0f64;
    for (&b, &q) in base.iter().zip(model) {
        let lp_b = f64::from(b) - lse_b;
        let lp_m = f64::from(q) - lse_m;
        kld += lp_b.exp() * (lp_b - lp_m);
    }
    let nll_base = lse_b - f64::from(base[next]);
    let nll_model = lse_m - f64::from(model[next]);
    TokenScore {
        // Rounding can leave a tiny negative sum for identical distributions.
        kld: kld.max(0.0),
        nll_base,
        nll_model,
        same_top: top_b == top_m,
        p_diff: (-nll_model).exp() - (-nll_base).exp(),
    }
}

/// A value and its standard error.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Estimate {
    pub value: f64,
    pub stderr: f64,
}

impl std::fmt::Display for Estimate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let p = f.precision().unwrap_or(6);
        write!(f, "{:.p$} ± {:.p$}", self.value, self.stderr)
    }
}

/// llama.cpp's `mean_and_uncertainty`: the mean and its standard error (0 with ≤ 10
/// samples).
fn mean_and_uncertainty(sum: f64, sum2: f64, n: usize) -> Estimate {
    if n == 0 {
        return Estimate::default();
    }
    let mean = sum / n as f64;
    let var = sum2 / n as f64 - mean * mean;
    let stderr = if var > 0.0 && n > 10 {
        (var / (n - 1) as f64).sqrt()
    } else {
        0.0
    };
    Estimate {
        value: mean,
        stderr,
    }
}

/// llama.cpp's `percentile`: linear interpolation over sorted values.
fn percentile(sorted: &[f64], fraction: f64) -> f64 {
    match sorted {
        [] => f64::NAN,
        _ if fraction <= 0.0 => sorted[0],
        _ if fraction >= 1.0 => sorted[sorted.len() - 1],
        _ => {
            let p = fraction * (sorted.len() - 1) as f64;
            let ip = p as usize;
            let frac = p - ip as f64;
            (1.0 - frac) * sorted[ip] + frac * sorted[(ip + 1).min(sorted.len() - 1)]
        }
    }
}

/// Accumulates [`TokenScore`]s into a [`KldReport`].
#[derive(Debug, Clone, Default)]
pub struct KldStats {
    scores: Vec<TokenScore>,
    /// Chunks evaluated.
    pub chunks: usize,
}

impl KldStats {
    /// Adds one position.
    pub fn push(&mut self, s: TokenScore) {
        self.scores.push(s);
    }

    /// Positions scored so far.
    pub fn len(&self) -> usize {
        self.scores.len()
    }

    /// True before any position is scored.
    pub fn is_empty(&self) -> bool {
        self.scores.is_empty()
    }

    /// The summary, with llama.cpp's estimators.
    pub fn report(&self) -> KldReport {
        let n = self.scores.len();
        let sums = |f: &dyn Fn(&TokenScore) -> f64| {
            self.scores.iter().fold((0.0, 0.0), |(s, s2), t| {
                let v = f(t);
                (s + v, s2 + v * v)
            })
        };
        let ppl = |(s, s2): (f64, f64)| {
            let e = mean_and_uncertainty(s, s2, n);
            let v = e.value.exp();
            Estimate {
                value: v,
                stderr: v * e.stderr,
            }
        };
        let nll_b = sums(&|t| t.nll_base);
        let nll_m = sums(&|t| t.nll_model);
        let (kl_s, kl_s2) = sums(&|t| t.kld);
        let (_, pd2) = sums(&|t| t.p_diff);
        let pd4: f64 = self.scores.iter().map(|t| t.p_diff.powi(4)).sum();
        let mut sorted: Vec<f64> = self.scores.iter().map(|t| t.kld).collect();
        sorted.sort_by(f64::total_cmp);
        let median = match n {
            0 => f64::NAN,
            _ if n.is_multiple_of(2) => 0.5 * (sorted[n / 2] + sorted[n / 2 - 1]),
            _ => sorted[n / 2],
        };
        let same = self.scores.iter().filter(|t| t.same_top).count();
        let same_top = if n == 0 { 0.0 } else { same as f64 / n as f64 };
        let mse = mean_and_uncertainty(pd2, pd4, n);
        KldReport {
            n_tokens: n,
            n_chunks: self.chunks,
            ppl_base: ppl(nll_b),
            ppl_model: ppl(nll_m),
            kld_mean: mean_and_uncertainty(kl_s, kl_s2, n),
            kld_median: median,
            kld_p90: percentile(&sorted, 0.90),
            kld_p99: percentile(&sorted, 0.99),
            kld_max: sorted.last().copied().unwrap_or(f64::NAN),
            same_top: Estimate {
                value: same_top,
                stderr: if n > 1 {
                    (same_top * (1.0 - same_top) / (n - 1) as f64).sqrt()
                } else {
                    0.0
                },
            },
            rms_p_diff: mse.value.sqrt(),
        }
    }
}

/// The quality report (llama-perplexity's "KL divergence statistics").
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct KldReport {
    /// Positions scored (`(ctx − 1 − ctx/2)` per chunk).
    pub n_tokens: usize,
    /// Chunks evaluated.
    pub n_chunks: usize,
    /// Perplexity of the base model over the scored positions.
    pub ppl_base: Estimate,
    /// Perplexity of the evaluated model.
    pub ppl_model: Estimate,
    /// Mean KL(base ‖ model), nats per token.
    pub kld_mean: Estimate,
    pub kld_median: f64,
    /// 90th percentile (interpolated as llama.cpp does).
    pub kld_p90: f64,
    /// 99th percentile.
    pub kld_p99: f64,
    pub kld_max: f64,
    /// Fraction of positions where both models' top token agrees ("Same top p").
    pub same_top: Estimate,
    /// Root mean square of p_model(next) − p_base(next) ("RMS Δp"), a fraction.
    pub rms_p_diff: f64,
}

impl std::fmt::Display for KldReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "chunks: {}, scored tokens: {}",
            self.n_chunks, self.n_tokens
        )?;
        writeln!(f, "PPL(base)   : {:.6}", self.ppl_base)?;
        writeln!(f, "PPL(model)  : {:.6}", self.ppl_model)?;
        writeln!(
            f,
            "PPL ratio   : {:.6}",
            self.ppl_model.value / self.ppl_base.value
        )?;
        writeln!(f, "Mean    KLD : {:.6}", self.kld_mean)?;
        writeln!(f, "Median  KLD : {:.6}", self.kld_median)?;
        writeln!(f, "90.0%   KLD : {:.6}", self.kld_p90)?;
        writeln!(f, "99.0%   KLD : {:.6}", self.kld_p99)?;
        writeln!(f, "Maximum KLD : {:.6}", self.kld_max)?;
        writeln!(f, "RMS Δp      : {:.3} %", 100.0 * self.rms_p_diff)?;
        write!(
            f,
            "Same top p  : {:.3} ± {:.3} %",
            100.0 * self.same_top.value,
            100.0 * self.same_top.stderr
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identical_rows_have_zero_divergence_and_agree() {
        let l = [1.0f32, 3.0, -2.0, 0.5];
        let s = score_token(&l, &l, 1);
        assert_eq!(s.kld, 0.0);
        assert!(s.same_top);
        assert_eq!(s.p_diff, 0.0);
        assert!((s.nll_base - s.nll_model).abs() < 1e-15);
    }

    #[test]
    fn two_token_divergence_matches_the_closed_form() {
        // p = (0.5, 0.5), q = softmax(0, ln 3) = (0.25, 0.75):
        // KL = 0.5 ln 2 + 0.5 ln(2/3).
        let s = score_token(&[0.0, 0.0], &[0.0, 3f32.ln()], 0);
        let want = 0.5 * 2f64.ln() + 0.5 * (2.0f64 / 3.0).ln();
        assert!((s.kld - want).abs() < 1e-7, "{} vs {want}", s.kld);
        assert!((s.nll_model - 4f64.ln()).abs() < 1e-7);
        // The base tie resolves to index 0 (first maximum, as llama.cpp); the model picks 1.
        assert!(!s.same_top);
    }

    #[test]
    fn percentile_interpolates_like_llama_cpp() {
        let v = [0.0, 1.0, 2.0, 3.0, 4.0];
        assert_eq!(percentile(&v, 0.5), 2.0);
        assert!((percentile(&v, 0.99) - 3.96).abs() < 1e-12);
        assert_eq!(percentile(&v, 1.0), 4.0);
    }
}
