#!/usr/bin/env python3
"""Independent numpy reference for `pith_quantize::kld`: reads two logits matrices and
the next-token ids, prints the KL statistics as JSON.

    python3 tests/py/kld_numpy_ref.py BASE.f32 MODEL.f32 NEXT.u32 N_VOCAB

BASE.f32 / MODEL.f32: raw little-endian f32, rows of N_VOCAB logits; NEXT.u32: raw
little-endian u32, one next-token id per row. Definitions (llama.cpp
tools/perplexity/perplexity.cpp, `kl_divergence`): KL(base || model) per row over the full
vocabulary, perplexity = exp(mean NLL), percentiles by linear interpolation over the
sorted values (numpy's default "linear" method, the same as llama.cpp's), top-1 agreement
with ties resolved to the first index (np.argmax).
"""
import json
import sys

import numpy as np


def log_softmax(x: np.ndarray) -> np.ndarray:
    x = x.astype(np.float64)
    m = x.max(axis=1, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(axis=1, keepdims=True))


def main() -> None:
    base_p, model_p, next_p, n_vocab = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    base = np.fromfile(base_p, dtype="<f4").reshape(-1, n_vocab)
    model = np.fromfile(model_p, dtype="<f4").reshape(-1, n_vocab)
    nxt = np.fromfile(next_p, dtype="<u4").astype(np.int64)
    lb, lm = log_softmax(base), log_softmax(model)
    kld = np.maximum((np.exp(lb) * (lb - lm)).sum(axis=1), 0.0)
    rows = np.arange(len(nxt))
    nll_b, nll_m = -lb[rows, nxt], -lm[rows, nxt]
    n = len(kld)
    p_diff = np.exp(-nll_m) - np.exp(-nll_b)
    same = float((base.argmax(axis=1) == model.argmax(axis=1)).mean())
    out = {
        "n": n,
        "kld_mean": float(kld.mean()),
        "kld_stderr": float(kld.std(ddof=0) / np.sqrt(n - 1)),
        "kld_median": float(np.median(kld)),
        "kld_p90": float(np.percentile(kld, 90)),
        "kld_p99": float(np.percentile(kld, 99)),
        "kld_max": float(kld.max()),
        "ppl_base": float(np.exp(nll_b.mean())),
        "ppl_model": float(np.exp(nll_m.mean())),
        "same_top": same,
        "rms_p_diff": float(np.sqrt((p_diff ** 2).mean())),
    }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
