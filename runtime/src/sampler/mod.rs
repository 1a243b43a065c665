//! Token sampling: greedy, temperature, top-k, top-p, min-p, penalties, stop strings.
//!
//! [`Sampler`] follows llama.cpp's default sampler chain (`common/sampling.cpp`,
//! `src/llama-sampler.cpp`) with the stages pith supports, in the same order:
//!
//! 1. **penalties** over the last `repeat_last_n` accepted tokens: a token seen `c > 0`
//!    times has its logit divided by `repeat_penalty` when positive (multiplied when
//!    `<= 0`), then `c * frequency_penalty + presence_penalty` subtracted;
//! 2. **top-k**: keep the `top_k` highest logits;
//! 3. **top-p**: keep the smallest prefix (by descending probability, softmax of the
//!    current candidates at temperature 1) whose cumulative probability reaches `top_p`;
//! 4. **min-p**: keep tokens whose probability is at least `min_p` times the largest,
//!    i.e. `logit >= max_logit + ln(min_p)`;
//! 5. **temperature**: divide the remaining logits by `temperature`;
//! 6. **dist**: draw from the softmax of what is left.
//!
//! With `temperature <= 0` the result is the argmax of the penalised logits (ties go to
//! the lowest token id), which is what llama.cpp's chain yields at `--temp 0`.
//!
//! Also here: [`log_softmax_top_k`] (log-probabilities of the top tokens, for golden
//! tests and the server's `logprobs`) and [`StopMatcher`] (stop strings over streamed
//! text).

mod filters;
mod logprobs;
mod stop;

pub use logprobs::log_softmax_top_k;
pub use stop::StopMatcher;

use filters::{
    apply_min_p, apply_top_p, collect_top, draw, greedy_pick, sanitize, softmax_in_place,
    sort_prefix, Candidate,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::{HashMap, HashSet, VecDeque};

/// Sampling parameters. [`Default`] gives llama.cpp's defaults (`common/common.h`).
#[derive(Debug, Clone, PartialEq)]
pub struct SamplerConfig {
    /// Softmax temperature. Default `0.8`. `<= 0` (or NaN) means greedy decoding.
    pub temperature: f32,
    /// Keep only the `top_k` most likely tokens. Default `40`; `0` disables top-k.
    pub top_k: usize,
    /// Nucleus sampling threshold, a probability in `(0, 1]`. Default `0.95`; `>= 1`
    /// disables top-p.
    pub top_p: f32,
    /// Drop tokens less likely than `min_p` times the most likely one. Default `0.05`;
    /// `<= 0` disables min-p.
    pub min_p: f32,
    /// Repetition penalty factor for tokens in the recent history. Default `1.0` (off).
    pub repeat_penalty: f32,
    /// How many of the most recently accepted tokens the penalties look at. Default `64`;
    /// `0` disables all penalties.
    pub repeat_last_n: usize,
    /// Subtracted once from the logit of every token present in the history. Default `0`.
    pub presence_penalty: f32,
    /// Subtracted from a token's logit once per occurrence in the history. Default `0`.
    pub frequency_penalty: f32,
    /// RNG seed for reproducible sampling. Default `None`: seeded from the OS.
    pub seed: Option<u64>,
}

impl Default for SamplerConfig {
    fn default() -> Self {
        Self {
            temperature: 0.8,
            top_k: 40,
            top_p: 0.95,
            min_p: 0.05,
            repeat_penalty: 1.0,
            repeat_last_n: 64,
            presence_penalty: 0.0,
            frequency_penalty: 0.0,
            seed: None,
        }
    }
}

impl SamplerConfig {
    /// Greedy decoding (temperature 0), every other option at its default.
    pub fn greedy() -> Self {
        Self {
            temperature: 0.0,
            ..Self::default()
        }
    }

    /// Whether this configuration decodes greedily (`temperature <= 0` or NaN).
    pub fn is_greedy(&self) -> bool {
        self.temperature.is_nan() || self.temperature <= 0.0
    }

    fn penalties_enabled(&self) -> bool {
        self.repeat_last_n > 0
            && (self.repeat_penalty != 1.0
                || self.frequency_penalty != 0.0
                || self.presence_penalty != 0.0)
    }
}

/// Index of the largest logit, ties to the lowest index; NaN counts as `-inf`.
/// `None` for an empty slice.
pub fn argmax(logits: &[f32]) -> Option<u32> {
    let mut best: Option<(usize, f32)> = None;
    for (i, &l) in logits.iter().enumerate() {
        let l = sanitize(l);
        match best {
            Some((_, b)) if l <= b => {}
            _ => best = Some((i, l)),
        }
    }
    best.map(|(i, _)| i as u32)
}

/// A stateful token sampler: configuration, RNG and the penalty history.
///
/// Keeps a candidate buffer across calls, so after the first token sampling allocates
/// nothing proportional to the vocabulary.
#[derive(Debug, Clone)]
pub struct Sampler {
    cfg: SamplerConfig,
    rng: StdRng,
    /// The last `repeat_last_n` accepted tokens, oldest first.
    history: VecDeque<u32>,
    /// Occurrences of each token in `history`.
    counts: HashMap<u32, u32>,
    /// Reused scratch space: up to one entry per vocabulary token.
    cand: Vec<Candidate>,
    /// Reused scratch: penalised tokens already among the candidates.
    present: HashSet<u32>,
}

impl Sampler {
    /// A sampler for `cfg`, seeded from `cfg.seed` (or from the OS when `None`).
    pub fn new(cfg: SamplerConfig) -> Self {
        let rng = match cfg.seed {
            Some(seed) => StdRng::seed_from_u64(seed),
            None => StdRng::try_from_os_rng().unwrap_or_else(|_| {
                let nanos = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_nanos() as u64)
                    .unwrap_or(0);
                StdRng::seed_from_u64(nanos)
            }),
        };
        Self {
            history: VecDeque::with_capacity(cfg.repeat_last_n.min(4096)),
            cfg,
            rng,
            counts: HashMap::new(),
            cand: Vec::new(),
            present: HashSet::new(),
        }
    }

    /// The configuration this sampler was built with.
    pub fn config(&self) -> &SamplerConfig {
        &self.cfg
    }

    /// Forget the penalty history (the RNG state is kept).
    pub fn reset(&mut self) {
        self.history.clear();
        self.counts.clear();
    }

    /// Record `token` as generated (or as part of the prompt) for the penalties.
    pub fn accept(&mut self, token: u32) {
        let n = self.cfg.repeat_last_n;
        if n == 0 {
            return;
        }
        if self.history.len() >= n {
            if let Some(old) = self.history.pop_front() {
                if let Some(c) = self.counts.get_mut(&old) {
                    *c -= 1;
                    if *c == 0 {
                        self.counts.remove(&old);
                    }
                }
            }
        }
        self.history.push_back(token);
        *self.counts.entry(token).or_insert(0) += 1;
    }

    /// Choose the next token from `logits` (one per vocabulary entry; not modified).
    ///
    /// Returns `0` for an empty slice. NaN logits are treated as `-inf`.
    pub fn sample(&mut self, logits: &[f32]) -> u32 {
        let _span = tracing::trace_span!("sample", n_vocab = logits.len()).entered();
        if let Some(token) = self.filter(logits) {
            return token;
        }
        let r: f64 = self.rng.random();
        draw(&mut self.cand, r)
    }

    /// The distribution [`sample`](Self::sample) would draw from: every token that
    /// survives the filters with its probability after temperature, most likely first.
    /// Greedy configurations give `[(argmax, 1.0)]`; an empty slice gives `[]`.
    ///
    /// This is what llama.cpp reports as `post_sampling_probs`. It neither draws nor
    /// advances the RNG.
    pub fn probabilities(&mut self, logits: &[f32]) -> Vec<(u32, f32)> {
        if logits.is_empty() {
            return Vec::new();
        }
        if let Some(token) = self.filter(logits) {
            return vec![(token, 1.0)];
        }
        softmax_in_place(&mut self.cand);
        let mut out: Vec<(u32, f32)> = self.cand.iter().map(|c| (c.id, c.p)).collect();
        out.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        out
    }

    /// Run penalties, top-k, top-p, min-p and temperature over `logits`, leaving the
    /// survivors in `self.cand`. Returns the token outright when no draw is needed
    /// (greedy, or an empty vocabulary → `0`).
    fn filter(&mut self, logits: &[f32]) -> Option<u32> {
        if logits.is_empty() {
            return Some(0);
        }
        let greedy = self.cfg.is_greedy();
        let k = if greedy { 1 } else { self.cfg.top_k };
        let n_penalised = if self.cfg.penalties_enabled() {
            self.counts.len()
        } else {
            0
        };
        if k > 0 && k.saturating_add(n_penalised) < logits.len() {
            // Penalties only move the tokens in the history, so the best `k` after them
            // are among the best `k + n_penalised` before them plus the penalised ones.
            collect_top(logits, k + n_penalised, &mut self.cand);
            self.penalise_collected(logits);
        } else {
            self.cand.clear();
            self.cand
                .extend(logits.iter().enumerate().map(|(i, &l)| Candidate {
                    id: i as u32,
                    logit: sanitize(l),
                    p: 0.0,
                }));
            self.penalise_all();
        }
        if greedy {
            return Some(greedy_pick(&self.cand));
        }
        // `sorted` = how many leading candidates are known to be in final descending order.
        let mut sorted = 0usize;
        if k > 0 && k < self.cand.len() {
            sort_prefix(&mut self.cand, k);
            self.cand.truncate(k);
            sorted = k;
        }
        if self.cfg.top_p < 1.0 {
            apply_top_p(&mut self.cand, &mut sorted, self.cfg.top_p);
        }
        if self.cfg.min_p > 0.0 {
            apply_min_p(&mut self.cand, sorted > 0, self.cfg.min_p);
        }
        let t = self.cfg.temperature;
        if t != 1.0 {
            for c in &mut self.cand {
                c.logit /= t;
            }
        }
        None
    }

    /// Apply llama.cpp's penalty formula to one logit seen `count` times.
    fn penalise(&self, logit: f32, count: u32) -> f32 {
        let l = if logit <= 0.0 {
            logit * self.cfg.repeat_penalty
        } else {
            logit / self.cfg.repeat_penalty
        };
        sanitize(l - (count as f32 * self.cfg.frequency_penalty + self.cfg.presence_penalty))
    }

    /// Penalties over the full buffer (still in id order, so index = id).
    fn penalise_all(&mut self) {
        if !self.cfg.penalties_enabled() {
            return;
        }
        for (&tok, &count) in &self.counts {
            let new = match self.cand.get(tok as usize) {
                Some(c) => self.penalise(c.logit, count),
                None => continue,
            };
            self.cand[tok as usize].logit = new;
        }
    }

    /// Penalties over a collected subset: penalise the members that are in the history
    /// and add the history tokens that were not collected, with their penalised logits.
    fn penalise_collected(&mut self, logits: &[f32]) {
        if !self.cfg.penalties_enabled() || self.counts.is_empty() {
            return;
        }
        let mut present = std::mem::take(&mut self.present);
        present.clear();
        for i in 0..self.cand.len() {
            let id = self.cand[i].id;
            if let Some(&count) = self.counts.get(&id) {
                self.cand[i].logit = self.penalise(self.cand[i].logit, count);
                present.insert(id);
            }
        }
        for (&tok, &count) in &self.counts {
            if present.contains(&tok) {
                continue;
            }
            if let Some(&l) = logits.get(tok as usize) {
                let logit = self.penalise(sanitize(l), count);
                self.cand.push(Candidate {
                    id: tok,
                    logit,
                    p: 0.0,
                });
            }
        }
        self.present = present;
    }
}
