//! Sampler, log-probabilities and stop strings.
//!
//! Oracles: straightforward f64 re-computations of llama.cpp's definitions
//! (`src/llama-sampler.cpp`: penalties, top-k, top-p, min-p, temperature, dist) written
//! here with full sorts and no shortcuts, and the exact multinomial distribution for the
//! statistical tests.

use pith_runtime::sampler::{argmax, log_softmax_top_k, Sampler, SamplerConfig, StopMatcher};
use proptest::prelude::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::HashMap;

fn random_logits(n: usize, seed: u64, scale: f32) -> Vec<f32> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..n).map(|_| rng.random_range(-scale..scale)).collect()
}

fn cfg(temperature: f32, top_k: usize, top_p: f32, min_p: f32, seed: u64) -> SamplerConfig {
    SamplerConfig {
        temperature,
        top_k,
        top_p,
        min_p,
        seed: Some(seed),
        ..SamplerConfig::default()
    }
}

/// Reference: the probability of every token after llama.cpp's chain
/// (no penalties): full sort, top-k, top-p, min-p, temperature, softmax — in f64.
fn reference_distribution(logits: &[f32], c: &SamplerConfig) -> Vec<f64> {
    let mut idx: Vec<usize> = (0..logits.len()).collect();
    idx.sort_by(|&a, &b| logits[b].partial_cmp(&logits[a]).unwrap().then(a.cmp(&b)));
    if c.top_k > 0 && c.top_k < idx.len() {
        idx.truncate(c.top_k);
    }
    if c.top_p < 1.0 {
        let m = logits[idx[0]] as f64;
        let z: f64 = idx.iter().map(|&i| (logits[i] as f64 - m).exp()).sum();
        let mut cum = 0.0;
        let mut keep = idx.len();
        for (j, &i) in idx.iter().enumerate() {
            cum += (logits[i] as f64 - m).exp() / z;
            if cum >= c.top_p as f64 {
                keep = j + 1;
                break;
            }
        }
        idx.truncate(keep);
    }
    if c.min_p > 0.0 {
        let m = logits[idx[0]] as f64;
        idx.retain(|&i| ((logits[i] as f64) - m).exp() >= c.min_p as f64 * (1.0 - 1e-6));
    }
    let t = c.temperature as f64;
    let m = logits[idx[0]] as f64;
    let z: f64 = idx
        .iter()
        .map(|&i| ((logits[i] as f64 - m) / t).exp())
        .sum();
    let mut p = vec![0.0; logits.len()];
    for &i in &idx {
        p[i] = ((logits[i] as f64 - m) / t).exp() / z;
    }
    p
}

/// Draw `n` samples and check them against `expected` with Pearson's chi-square:
/// tokens the reference gives probability 0 must never appear; the statistic must stay
/// below a bound far in the tail (p ≈ 1e-6 for the given degrees of freedom).
fn check_distribution(logits: &[f32], c: SamplerConfig, n: usize) {
    let expected = reference_distribution(logits, &c);
    let mut s = Sampler::new(c);
    let mut counts = vec![0usize; logits.len()];
    for _ in 0..n {
        counts[s.sample(logits) as usize] += 1;
    }
    // Pearson's chi-square, pooling cells expected fewer than 5 times into one.
    let (mut chi2, mut dof) = (0.0, 0usize);
    let (mut pooled_obs, mut pooled_exp) = (0.0, 0.0);
    for (i, (&obs, &p)) in counts.iter().zip(&expected).enumerate() {
        if p == 0.0 {
            assert_eq!(
                obs, 0,
                "token {i} has probability 0 but was drawn {obs} times"
            );
            continue;
        }
        let e = p * n as f64;
        if e < 5.0 {
            pooled_obs += obs as f64;
            pooled_exp += e;
            continue;
        }
        chi2 += (obs as f64 - e).powi(2) / e;
        dof += 1;
    }
    if pooled_exp > 0.0 {
        chi2 += (pooled_obs - pooled_exp).powi(2) / pooled_exp.max(1.0);
        dof += 1;
    }
    let dof = dof.saturating_sub(1).max(1) as f64;
    // Wilson–Hilferty approximation of the 1 - 1e-6 quantile (z ≈ 4.75).
    let z = 4.75;
    let bound = dof * (1.0 - 2.0 / (9.0 * dof) + z * (2.0 / (9.0 * dof)).sqrt()).powi(3);
    assert!(
        chi2 < bound,
        "chi2 {chi2:.1} over bound {bound:.1} (dof {dof})"
    );
}

#[test]
fn defaults_match_llama_cpp() {
    let d = SamplerConfig::default();
    assert_eq!(
        (d.temperature, d.top_k, d.top_p, d.min_p),
        (0.8, 40, 0.95, 0.05)
    );
    assert_eq!(
        (
            d.repeat_penalty,
            d.repeat_last_n,
            d.presence_penalty,
            d.frequency_penalty
        ),
        (1.0, 64, 0.0, 0.0)
    );
    assert!(d.seed.is_none());
    assert!(SamplerConfig::greedy().is_greedy());
}

#[test]
fn greedy_is_argmax_with_lowest_id_on_ties() {
    let logits = random_logits(262_144, 1, 10.0);
    let want = logits
        .iter()
        .enumerate()
        .max_by(|a, b| a.1.partial_cmp(b.1).unwrap().then(b.0.cmp(&a.0)))
        .unwrap()
        .0 as u32;
    let mut s = Sampler::new(SamplerConfig::greedy());
    assert_eq!(s.sample(&logits), want);
    assert_eq!(argmax(&logits), Some(want));

    let tied = [1.0, 5.0, 2.0, 5.0, 5.0];
    assert_eq!(s.sample(&tied), 1);
    assert_eq!(argmax(&tied), Some(1));
    for t in [0.0, -1.0, f32::NAN] {
        let mut s = Sampler::new(SamplerConfig {
            temperature: t,
            ..SamplerConfig::default()
        });
        assert_eq!(s.sample(&tied), 1, "temperature {t}");
    }
    // NaN logits are never chosen.
    assert_eq!(s.sample(&[f32::NAN, 0.5, f32::NAN]), 1);
    assert_eq!(argmax(&[]), None);
}

#[test]
fn same_seed_same_sequence_different_seeds_differ() {
    let logits: Vec<Vec<f32>> = (0..64).map(|i| random_logits(5000, i, 3.0)).collect();
    let run = |seed| {
        let mut s = Sampler::new(cfg(1.0, 0, 1.0, 0.0, seed));
        logits.iter().map(|l| s.sample(l)).collect::<Vec<u32>>()
    };
    assert_eq!(run(7), run(7));
    assert_ne!(run(7), run(8));
}

#[test]
fn top_k_one_and_tiny_top_p_are_greedy() {
    for seed in 0..20 {
        let logits = random_logits(50_000, 100 + seed, 4.0);
        let want = argmax(&logits).unwrap();
        let mut k1 = Sampler::new(cfg(1.5, 1, 1.0, 0.0, seed));
        let mut p0 = Sampler::new(cfg(1.5, 0, 1e-9, 0.0, seed));
        let mut pk = Sampler::new(cfg(1.5, 40, 1e-9, 0.0, seed));
        for _ in 0..5 {
            assert_eq!(k1.sample(&logits), want);
            assert_eq!(p0.sample(&logits), want);
            assert_eq!(pk.sample(&logits), want);
        }
    }
}

#[test]
fn min_p_drops_unlikely_tokens() {
    // p ∝ e^logit: token 0 max; token 1 at ratio e^-1 ≈ 0.37; token 2 at e^-3 ≈ 0.05.
    let logits = [5.0f32, 4.0, 2.0, -10.0];
    let mut s = Sampler::new(cfg(1.0, 0, 1.0, 0.3, 3));
    let mut seen = [0usize; 4];
    for _ in 0..4000 {
        seen[s.sample(&logits) as usize] += 1;
    }
    assert!(seen[0] > 0 && seen[1] > 0, "{seen:?}");
    assert_eq!((seen[2], seen[3]), (0, 0), "{seen:?}");
    // Just under the ratio of token 2 keeps it; just over drops it.
    let r2 = (-3.0f32).exp();
    check_distribution(&logits, cfg(1.0, 0, 1.0, r2 * 0.99, 4), 20_000);
    check_distribution(&logits, cfg(1.0, 0, 1.0, r2 * 1.01, 5), 20_000);
}

#[test]
fn repetition_penalty_changes_the_choice() {
    // Token 2 leads, token 0 is close behind.
    let logits = [3.0f32, -1.0, 3.5, 0.5];
    let mut s = Sampler::new(SamplerConfig {
        repeat_penalty: 1.3,
        ..SamplerConfig::greedy()
    });
    assert_eq!(s.sample(&logits), 2);
    s.accept(2);
    // 3.5 / 1.3 ≈ 2.69 < 3.0.
    assert_eq!(s.sample(&logits), 0);
    s.accept(0);
    // 3.0 / 1.3 ≈ 2.31 < 2.69: back to token 2.
    assert_eq!(s.sample(&logits), 2);

    // Negative logits are multiplied: a penalised -1.0 becomes -1.2, below -1.1.
    let neg = [-1.0f32, -1.1];
    let mut s = Sampler::new(SamplerConfig {
        repeat_penalty: 1.2,
        ..SamplerConfig::greedy()
    });
    s.accept(0);
    assert_eq!(s.sample(&neg), 1);
}

#[test]
fn presence_and_frequency_penalties_subtract() {
    let logits = [2.0f32, 1.5, 0.0];
    // Frequency: two occurrences × 0.3 = 0.6 → 1.4 < 1.5.
    let mut s = Sampler::new(SamplerConfig {
        frequency_penalty: 0.3,
        ..SamplerConfig::greedy()
    });
    s.accept(0);
    assert_eq!(s.sample(&logits), 0, "one occurrence: 1.7 > 1.5");
    s.accept(0);
    assert_eq!(s.sample(&logits), 1);

    // Presence: counted once, whatever the number of occurrences.
    let mut s = Sampler::new(SamplerConfig {
        presence_penalty: 0.4,
        ..SamplerConfig::greedy()
    });
    for _ in 0..5 {
        s.accept(0);
    }
    assert_eq!(s.sample(&logits), 0, "2.0 - 0.4 = 1.6 > 1.5");
}

#[test]
fn penalty_window_forgets_old_tokens() {
    let logits = [3.0f32, 2.0, -5.0];
    let mut s = Sampler::new(SamplerConfig {
        repeat_penalty: 2.0,
        repeat_last_n: 3,
        ..SamplerConfig::greedy()
    });
    s.accept(0);
    assert_eq!(s.sample(&logits), 1, "3.0 / 2 = 1.5 < 2.0");
    s.accept(2);
    s.accept(2);
    assert_eq!(s.sample(&logits), 1, "0 is still within the last 3");
    s.accept(2);
    assert_eq!(s.sample(&logits), 0, "0 has left the window");
    s.accept(0);
    assert_eq!(s.sample(&logits), 1);
    s.reset();
    assert_eq!(s.sample(&logits), 0, "reset clears the history");

    // repeat_last_n = 0 disables penalties entirely.
    let mut s = Sampler::new(SamplerConfig {
        repeat_penalty: 2.0,
        repeat_last_n: 0,
        ..SamplerConfig::greedy()
    });
    s.accept(0);
    assert_eq!(s.sample(&logits), 0);
}

#[test]
fn penalties_on_large_vocab_match_manual_argmax() {
    // History holds the current leaders and some tail tokens; penalties both demote
    // (factor > 1, positive presence) and promote (factor < 1, negative presence) them.
    let logits = random_logits(100_000, 31, 6.0);
    let mut order: Vec<u32> = (0..logits.len() as u32).collect();
    order.sort_by(|&a, &b| logits[b as usize].partial_cmp(&logits[a as usize]).unwrap());
    let mut history: Vec<u32> = order[..10].to_vec();
    history.extend(order[50_000..50_030].iter());
    history.extend([order[0], order[0], order[99_999]]);
    for (rep, freq, pres) in [
        (1.5f32, 0.0f32, 0.0f32),
        (0.5, 0.0, 0.0),
        (1.0, 0.5, -9.0),
        (1.1, 1.0, 2.0),
    ] {
        let mut counts: HashMap<u32, u32> = HashMap::new();
        for &t in &history {
            *counts.entry(t).or_default() += 1;
        }
        let mut penalised = logits.clone();
        for (&t, &c) in &counts {
            let l = &mut penalised[t as usize];
            *l = if *l <= 0.0 { *l * rep } else { *l / rep };
            *l -= c as f32 * freq + pres;
        }
        let mut s = Sampler::new(SamplerConfig {
            repeat_penalty: rep,
            frequency_penalty: freq,
            presence_penalty: pres,
            ..SamplerConfig::greedy()
        });
        for &t in &history {
            s.accept(t);
        }
        assert_eq!(
            s.sample(&logits),
            argmax(&penalised).unwrap(),
            "{rep} {freq} {pres}"
        );
        // And with top-k 1 at a positive temperature (the sampling path).
        let mut s = Sampler::new(SamplerConfig {
            repeat_penalty: rep,
            frequency_penalty: freq,
            presence_penalty: pres,
            ..cfg(1.0, 1, 1.0, 0.0, 5)
        });
        for &t in &history {
            s.accept(t);
        }
        assert_eq!(
            s.sample(&logits),
            argmax(&penalised).unwrap(),
            "{rep} {freq} {pres}"
        );
    }
}

#[test]
fn penalised_sampling_matches_reference_distribution() {
    // Penalties apply before the filters: compare with the reference run on
    // hand-penalised logits (llama.cpp's formula, applied here independently).
    let logits = random_logits(64, 77, 2.0);
    let history = [3u32, 3, 10, 20, 3];
    let (rep, freq, pres) = (1.5f32, 0.2f32, 0.3f32);
    let mut counts: HashMap<u32, u32> = HashMap::new();
    for &t in &history {
        *counts.entry(t).or_default() += 1;
    }
    let mut penalised = logits.clone();
    for (&t, &c) in &counts {
        let l = &mut penalised[t as usize];
        *l = if *l <= 0.0 { *l * rep } else { *l / rep };
        *l -= c as f32 * freq + pres;
    }
    let c = SamplerConfig {
        repeat_penalty: rep,
        frequency_penalty: freq,
        presence_penalty: pres,
        ..cfg(0.9, 20, 0.9, 0.02, 11)
    };
    let expected = reference_distribution(&penalised, &c);
    let mut s = Sampler::new(c);
    for &t in &history {
        s.accept(t);
    }
    let n = 40_000;
    let mut hist = vec![0usize; logits.len()];
    for _ in 0..n {
        hist[s.sample(&logits) as usize] += 1;
    }
    for (i, (&obs, &p)) in hist.iter().zip(&expected).enumerate() {
        let e = p * n as f64;
        let sd = (n as f64 * p * (1.0 - p)).sqrt();
        assert!(
            (obs as f64 - e).abs() <= 5.0 * sd + 1.0,
            "token {i}: observed {obs}, expected {e:.1}"
        );
    }
}

#[test]
fn temperature_sampling_matches_softmax() {
    // Small vocabulary, no filters: the empirical distribution is softmax(logits / T).
    let logits = random_logits(20, 5, 2.0);
    for (t, seed) in [(1.0, 1u64), (0.5, 2), (2.0, 3)] {
        check_distribution(&logits, cfg(t, 0, 1.0, 0.0, seed), 50_000);
    }
}

#[test]
fn default_chain_matches_reference_distribution() {
    // Large vocabulary with a peaked head, default filters: exercises top-k selection,
    // top-p and min-p together.
    let mut logits = random_logits(262_144, 9, 3.0);
    for (i, l) in logits.iter_mut().take(60).enumerate() {
        *l = 12.0 - 0.15 * i as f32;
    }
    check_distribution(
        &logits,
        SamplerConfig {
            seed: Some(21),
            ..SamplerConfig::default()
        },
        20_000,
    );
    // Top-p alone over the whole vocabulary (no top-k), with a nucleus of several
    // hundred tokens: the first 256 hold about 65% of the mass, so the lazy sort must
    // extend past its first prefix.
    let mut logits = random_logits(32_768, 10, 5.0);
    for l in logits.iter_mut() {
        *l -= 15.0;
    }
    for i in 0..1000 {
        logits[(i * 257 + 3) % 32_768] = 5.0 - 0.004 * i as f32;
    }
    check_distribution(&logits, cfg(1.0, 0, 0.9, 0.0, 22), 10_000);
}

#[test]
fn no_vocab_sized_allocation_changes_results() {
    // Reusing the sampler across calls with different vocabulary sizes stays correct.
    let mut s = Sampler::new(SamplerConfig::greedy());
    for n in [10usize, 100_000, 3, 262_144, 1] {
        let l = random_logits(n, n as u64, 5.0);
        assert_eq!(s.sample(&l), argmax(&l).unwrap());
    }
    let mut s = Sampler::new(SamplerConfig::default());
    assert_eq!(s.sample(&[]), 0);
    // Degenerate inputs and settings never panic and pick the obvious token.
    assert_eq!(s.sample(&[0.0, f32::INFINITY, 1.0]), 1);
    let mut tiny_t = Sampler::new(cfg(1e-30, 0, 1.0, 0.0, 1));
    assert_eq!(tiny_t.sample(&[0.5, 3.0, 2.9]), 1);
    let mut huge_k = Sampler::new(cfg(1.0, usize::MAX, f32::NAN, f32::NAN, 1));
    assert!(huge_k.sample(&[0.5, 3.0, 2.9]) < 3);
    assert_eq!(s.sample(&[f32::NEG_INFINITY; 4]), 0);
    assert_eq!(s.sample(&[0.0]), 0);
}

/// Reference log-softmax in f64, full sort.
fn reference_log_softmax(logits: &[f32]) -> Vec<(u32, f64)> {
    let m = logits
        .iter()
        .cloned()
        .fold(f64::NEG_INFINITY, |a, b| a.max(b as f64));
    let z: f64 = logits.iter().map(|&l| (l as f64 - m).exp()).sum();
    let mut v: Vec<(u32, f64)> = logits
        .iter()
        .enumerate()
        .map(|(i, &l)| (i as u32, l as f64 - m - z.ln()))
        .collect();
    v.sort_by(|a, b| b.1.partial_cmp(&a.1).unwrap().then(a.0.cmp(&b.0)));
    v
}

#[test]
fn log_softmax_top_k_matches_f64_reference() {
    for (n, scale, seed) in [(10usize, 1.0f32, 1u64), (1000, 20.0, 2), (262_144, 8.0, 3)] {
        let logits = random_logits(n, seed, scale);
        let want = reference_log_softmax(&logits);
        let got = log_softmax_top_k(&logits, 25);
        assert_eq!(got.len(), 25.min(n));
        for ((gi, gl), (wi, wl)) in got.iter().zip(&want) {
            assert_eq!(gi, wi);
            assert!((*gl as f64 - wl).abs() < 1e-4, "{gl} vs {wl}");
        }
        // All of them: probabilities sum to 1.
        let all = log_softmax_top_k(&logits, n);
        let total: f64 = all.iter().map(|&(_, lp)| (lp as f64).exp()).sum();
        assert!((total - 1.0).abs() < 1e-4, "sum {total}");
    }
    // Numerically stable for huge logits; ties → lowest id first.
    let big = [1000.0f32, 1000.0, 999.0];
    let got = log_softmax_top_k(&big, 3);
    assert_eq!(got.iter().map(|g| g.0).collect::<Vec<_>>(), vec![0, 1, 2]);
    let want = reference_log_softmax(&big);
    for (g, w) in got.iter().zip(&want) {
        assert!(g.1.is_finite());
        assert!((g.1 as f64 - w.1).abs() < 1e-5);
    }
    assert!(log_softmax_top_k(&big, 0).is_empty());
    assert!(log_softmax_top_k(&[], 5).is_empty());
}

fn stops(s: &[&str]) -> StopMatcher {
    StopMatcher::new(s.iter().map(|s| s.to_string()).collect())
}

/// Push each chunk; returns (all emitted text including finish(), stopped).
fn run_chunks(m: &mut StopMatcher, chunks: &[&str]) -> (String, bool) {
    let mut out = String::new();
    for c in chunks {
        let (text, stopped) = m.push(c);
        out.push_str(&text);
        if stopped {
            return (out, true);
        }
    }
    out.push_str(&m.finish());
    (out, false)
}

#[test]
fn stop_split_across_chunks() {
    let mut m = stops(&["\n\nUser:"]);
    assert_eq!(m.push("Hello"), ("Hello".into(), false));
    assert_eq!(
        m.push(" world\n"),
        (" world".into(), false),
        "holds the newline"
    );
    assert_eq!(m.push("\nUs"), (String::new(), false));
    assert_eq!(m.push("er: hi"), (String::new(), true));
    assert_eq!(m.matched(), Some("\n\nUser:"));
    assert_eq!(m.push("more"), (String::new(), true));
    assert_eq!(m.finish(), "");
}

#[test]
fn held_back_text_is_released_when_it_diverges() {
    let mut m = stops(&["STOP"]);
    assert_eq!(m.push("a ST"), ("a ".into(), false));
    assert_eq!(m.push("OOP"), ("STOOP".into(), false));
    assert_eq!(m.push("x STO"), ("x ".into(), false));
    assert_eq!(m.finish(), "STO", "finish returns the held tail");
}

#[test]
fn overlapping_prefixes_and_multiple_stops() {
    // "aab" inside "aaab": a naive matcher that drops the held "aa" on mismatch misses it.
    assert_eq!(
        run_chunks(&mut stops(&["aab"]), &["a", "a", "a", "b", "c"]),
        ("a".into(), true)
    );
    // The earliest stop in the text wins, whichever is listed first.
    let mut m = stops(&["world", "lo w"]);
    assert_eq!(
        run_chunks(&mut m, &["hel", "lo wor", "ld"]),
        ("hel".into(), true)
    );
    assert_eq!(m.matched(), Some("lo w"));
    // A stop that is a prefix of another.
    assert_eq!(
        run_chunks(&mut stops(&["ab", "abc"]), &["xa", "bc"]),
        ("x".into(), true)
    );
    // Empty stops are ignored; no stops → pass-through.
    assert_eq!(
        run_chunks(&mut stops(&[""]), &["abc"]),
        ("abc".into(), false)
    );
    assert_eq!(stops(&[]).push("x"), ("x".into(), false));
}

#[test]
fn unicode_stops_and_text() {
    let mut m = stops(&["été", "🛑"]);
    assert_eq!(m.push("déj"), ("déj".into(), false));
    assert_eq!(m.push("à é"), ("à ".into(), false));
    assert_eq!(m.push("t"), (String::new(), false));
    assert_eq!(
        m.push("ai"),
        ("étai".into(), false),
        "'i' could start nothing"
    );
    assert_eq!(m.push("t 🛑 fin"), ("t ".into(), true));
    assert_eq!(m.matched(), Some("🛑"));
}

proptest! {
    #[test]
    fn chunking_does_not_change_output(
        text in "[ab\\nxé🛑]{0,40}",
        stop_list in prop::collection::vec("[ab\\né🛑]{1,4}", 0..3),
        cuts in prop::collection::vec(0usize..48, 0..12),
    ) {
        // Whole-text semantics: everything before the first occurrence of any stop.
        let first = stop_list
            .iter()
            .filter_map(|s| text.find(s.as_str()))
            .min();
        let expected = match first {
            Some(i) => (text[..i].to_string(), true),
            None => (text.clone(), false),
        };

        // Cut at char boundaries only (chunks are &str).
        let bounds: Vec<usize> = text.char_indices().map(|(i, _)| i).chain([text.len()]).collect();
        let mut at: Vec<usize> = cuts.iter().map(|&c| bounds[c % bounds.len()]).collect();
        at.push(0);
        at.push(text.len());
        at.sort_unstable();
        at.dedup();
        let chunks: Vec<&str> = at.windows(2).map(|w| &text[w[0]..w[1]]).collect();

        let mut m = StopMatcher::new(stop_list.clone());
        let mut emitted_so_far = String::new();
        let mut got = None;
        for c in &chunks {
            let (t, stopped) = m.push(c);
            emitted_so_far.push_str(&t);
            // Never emits anything that is not a prefix of the final answer.
            prop_assert!(expected.0.starts_with(&emitted_so_far));
            if stopped {
                got = Some((emitted_so_far.clone(), true));
                break;
            }
        }
        let got = got.unwrap_or_else(|| {
            emitted_so_far.push_str(&m.finish());
            (emitted_so_far, false)
        });
        prop_assert_eq!(got, expected);
    }
}

/// llama.cpp's own sampler chain as the oracle: `tests/golden/sampler/` holds, for real
/// Gemma 3 270M prompts, llama-server's top-200 pre-sampling log-probs (the logits up to
/// a constant) and its post-sampling candidate probabilities under several settings
/// (see `make_sampling_golden.py` there). Our filters on the same logits must keep the
/// same tokens with the same probabilities.
#[test]
fn post_sampling_probs_match_llama_server() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/golden/sampler/llama_server_sampling.json");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("golden file {} missing: {e}", path.display()));
    let golden: serde_json::Value = serde_json::from_str(&text).unwrap();
    let pairs = |v: &serde_json::Value| -> Vec<(u32, f64)> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|p| (p[0].as_u64().unwrap() as u32, p[1].as_f64().unwrap()))
            .collect()
    };
    let mut checked = 0;
    for case in golden["cases"].as_array().unwrap() {
        let mut logits = vec![f32::NEG_INFINITY; 262_144];
        for (id, lp) in pairs(&case["pre_sampling"]) {
            logits[id as usize] = lp as f32;
        }
        for st in case["settings"].as_array().unwrap() {
            let c = SamplerConfig {
                temperature: st["temperature"].as_f64().unwrap() as f32,
                top_k: st["top_k"].as_u64().unwrap() as usize,
                top_p: st["top_p"].as_f64().unwrap() as f32,
                min_p: st["min_p"].as_f64().unwrap() as f32,
                seed: Some(0),
                ..SamplerConfig::default()
            };
            let want = pairs(&st["post_sampling"]);
            let got = Sampler::new(c.clone()).probabilities(&logits);
            let ctx = format!("{:?} {c:?}", case["prompt"]);
            assert_eq!(
                got.iter().map(|g| g.0).collect::<Vec<_>>(),
                want.iter().map(|w| w.0).collect::<Vec<_>>(),
                "{ctx}"
            );
            for ((_, g), (id, w)) in got.iter().zip(&want) {
                assert!(
                    (*g as f64 - w).abs() < 2e-5,
                    "{ctx}: token {id}: {g} vs {w}"
                );
            }
            checked += 1;
        }
    }
    assert!(checked >= 20, "only {checked} settings in the golden file");
}

#[test]
fn probabilities_match_reference_chain() {
    // A head that falls off gradually, so each filter cuts somewhere different.
    let mut logits = random_logits(5000, 12, 4.0);
    for i in 0..300 {
        logits[i * 13 + 1] = 10.0 - 0.03 * i as f32;
    }
    for c in [
        SamplerConfig::default(),
        cfg(1.0, 0, 0.9, 0.0, 0),
        cfg(0.7, 100, 1.0, 0.02, 0),
        cfg(1.3, 0, 1.0, 0.0, 0),
    ] {
        let want = reference_distribution(&logits, &c);
        let got = Sampler::new(c.clone()).probabilities(&logits);
        let total: f64 = got.iter().map(|g| g.1 as f64).sum();
        assert!((total - 1.0).abs() < 1e-4, "{c:?}: sum {total}");
        assert!(got.windows(2).all(|w| w[0].1 >= w[1].1), "sorted");
        let nonzero = want.iter().filter(|&&p| p > 0.0).count();
        assert_eq!(got.len(), nonzero, "{c:?}");
        for (id, p) in got {
            assert!(
                (p as f64 - want[id as usize]).abs() < 1e-5,
                "{c:?} token {id}"
            );
        }
    }
    assert_eq!(
        Sampler::new(SamplerConfig::greedy()).probabilities(&logits),
        vec![(argmax(&logits).unwrap(), 1.0)]
    );
}
