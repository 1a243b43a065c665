//! Continuous batching must not change results: sequences run together through
//! `Model::forward_batch` (stacked rows, each with its own KV cache) give the logits and
//! greedy continuations they give when run alone, on the real default model.

use std::path::PathBuf;

use pith_runtime::model::{Logits, Model, ModelOptions, SeqBatch};
use pith_runtime::sampler::argmax;
use pith_runtime::tokenizer::Tokenizer;

fn model_path() -> PathBuf {
    let home = std::env::var_os("PITH_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(".cache/pith")
        });
    let p = home.join("models/gemma-3-270m-q4_k_m.gguf");
    assert!(
        p.exists(),
        "{} is missing: run `pith fetch` first",
        p.display()
    );
    p
}

const STEPS: usize = 8;

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

#[test]
#[allow(clippy::needless_range_loop)] // `step` indexes every sequence's recorded steps
fn batched_sequences_match_sequences_run_alone() {
    let model = Model::open(model_path(), &ModelOptions::default()).expect("load model");
    let tok = Tokenizer::from_gguf(model.file()).expect("tokenizer");
    let prompts = [
        "The capital of France is",
        "Water boils at a temperature of one hundred degrees",
        "Once upon a time, in a small village by the sea, there lived",
    ];
    let prompts: Vec<Vec<u32>> = prompts.iter().map(|p| tok.encode(p, true, false)).collect();

    // Alone: prefill, then greedy steps, recording every step's logits.
    let mut alone = Vec::new();
    for p in &prompts {
        let mut cache = model.new_cache(64);
        let mut logits = model.forward(&mut cache, p, Logits::Last).expect("prefill");
        let mut steps = vec![logits.clone()];
        for _ in 0..STEPS {
            let t = argmax(&logits).expect("token");
            logits = model.forward(&mut cache, &[t], Logits::Last).expect("step");
            steps.push(logits.clone());
        }
        alone.push(steps);
    }

    // Together: one batched prefill of all three prompts, then batched greedy steps.
    let mut caches: Vec<_> = prompts.iter().map(|_| model.new_cache(64)).collect();
    let mut seqs: Vec<SeqBatch> = caches
        .iter_mut()
        .zip(&prompts)
        .map(|(cache, p)| SeqBatch {
            cache,
            tokens: p,
            logits: Logits::Last,
        })
        .collect();
    let mut logits = model.forward_batch(&mut seqs).expect("batched prefill");
    drop(seqs);
    for step in 0..=STEPS {
        for (i, l) in logits.iter().enumerate() {
            let d = max_diff(l, &alone[i][step]);
            assert!(d <= 1e-3, "sequence {i}, step {step}: logits differ by {d}");
            assert_eq!(
                argmax(l),
                argmax(&alone[i][step]),
                "sequence {i}, step {step}: greedy token differs"
            );
        }
        if step == STEPS {
            break;
        }
        let next: Vec<[u32; 1]> = logits.iter().map(|l| [argmax(l).unwrap()]).collect();
        let mut seqs: Vec<SeqBatch> = caches
            .iter_mut()
            .zip(&next)
            .map(|(cache, t)| SeqBatch {
                cache,
                tokens: t,
                logits: Logits::Last,
            })
            .collect();
        logits = model.forward_batch(&mut seqs).expect("batched step");
    }
    for (c, p) in caches.iter().zip(&prompts) {
        assert_eq!(c.len(), p.len() + STEPS);
    }
}

#[test]
fn a_bad_sequence_fails_the_batch_without_touching_any_cache() {
    let model = Model::open(model_path(), &ModelOptions::default()).expect("load model");
    let mut a = model.new_cache(8);
    let mut b = model.new_cache(2);
    let mut seqs = [
        SeqBatch {
            cache: &mut a,
            tokens: &[2, 651],
            logits: Logits::Last,
        },
        SeqBatch {
            cache: &mut b,
            tokens: &[2, 651, 6037],
            logits: Logits::Last,
        },
    ];
    let err = model.forward_batch(&mut seqs).unwrap_err();
    assert!(err.to_string().contains("context is full"), "{err}");
    assert_eq!((a.len(), b.len()), (0, 0));
}
