#!/usr/bin/env python3
"""Diagnostic (not a golden, not used by tests): how far are llama.cpp's recorded log-probs from
exact arithmetic on the same dequantized weights?

    python3 tests/py/numpy_check.py MODEL.gguf GOLDEN.json [--cases N]
    # e.g. the real model:  ~/.cache/pith/models/gemma-3-270m-q4_k_m.gguf tests/golden/logits/gemma3-270m.json --cases 4
    #      an arch model:   /tmp/m/qwen2.gguf tests/golden/arch/qwen2.json   (after make_arch_models.py /tmp/m)

A float64 numpy forward pass (weights dequantized with gguf.quants.dequantize) over each golden
case's prompt_ids, for the archs llama, qwen2, qwen3, phi3, gemma3, written from llama.cpp's
src/models/*.cpp. Prints, per case, whether the top-1 token agrees and the golden's top-10
log-probs minus numpy's. llama.cpp is not exact: it quantizes activations inside quantized
matmuls (Q8_K / Q8_0 / Q8_1), rounds them to F16/BF16 for F16/BF16 weights and stores K/V in
F16; this measures the resulting spread, i.e. how close an f32 decoder can be expected to get.
"""
from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np

try:
    import gguf
    from gguf.quants import dequantize
except ImportError as e:  # pragma: no cover
    raise SystemExit(f"needs `gguf` and `numpy` (pip install gguf==0.19.0 numpy): {e}")


def forward_fn(path: Path):
    r = gguf.GGUFReader(path)
    T = {t.name: t for t in r.tensors}
    kv = {k: f.contents() for k, f in r.fields.items() if not k.startswith("tokenizer.")}
    a = kv["general.architecture"]
    g = lambda k, d=None: kv.get(f"{a}.{k}", d)  # noqa: E731
    E, L, H = g("embedding_length"), g("block_count"), g("attention.head_count")
    KV = g("attention.head_count_kv", H)
    D = g("attention.key_length", E // H)
    eps = g("attention.layer_norm_rms_epsilon")
    base = g("rope.freq_base", 10000.0)
    win = g("attention.sliding_window", 0) if a == "gemma3" else 0
    neox = a in ("qwen2", "qwen3", "phi3", "gemma3")

    def W(n: str) -> np.ndarray:
        t = T[n]
        return dequantize(t.data, t.tensor_type).reshape([int(x) for x in reversed(t.shape)]).astype(np.float64)

    def rms(x, w):
        return x / np.sqrt((x * x).mean(-1, keepdims=True) + eps) * w

    ff = W("rope_freqs.weight") if "rope_freqs.weight" in T else np.ones(D // 2)

    def rope(x, pos, b):
        half = D // 2
        ang = pos[:, None] * (b ** (-np.arange(half) * 2 / D) / ff)[None, :]
        c, s = np.cos(ang)[:, None, :], np.sin(ang)[:, None, :]
        if neox:
            x1, x2 = x[..., :half], x[..., half:]
            return np.concatenate([x1 * c - x2 * s, x1 * s + x2 * c], -1)
        x1, x2 = x[..., 0::2], x[..., 1::2]
        o = np.empty_like(x)
        o[..., 0::2], o[..., 1::2] = x1 * c - x2 * s, x1 * s + x2 * c
        return o

    def silu(x):
        return x / (1 + np.exp(-x))

    def gelu(x):
        return 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)))

    emb = W("token_embd.weight")
    out_w = W("output.weight") if "output.weight" in T else emb

    def forward(ids: list[int]) -> np.ndarray:
        n = len(ids)
        x = emb[np.array(ids)] * (math.sqrt(E) if a == "gemma3" else 1.0)
        pos = np.arange(n, dtype=np.float64)
        i, j = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
        for il in range(L):
            b = f"blk.{il}."
            swa = a == "gemma3" and win > 0 and il % 6 < 5
            h = rms(x, W(b + "attn_norm.weight"))
            if a == "phi3":
                qkv = h @ W(b + "attn_qkv.weight").T
                q, k, v = qkv[:, :H * D], qkv[:, H * D:(H + KV) * D], qkv[:, (H + KV) * D:]
            else:
                q, k, v = (h @ W(b + f"attn_{t}.weight").T for t in "qkv")
                if a == "qwen2":
                    q, k, v = q + W(b + "attn_q.bias"), k + W(b + "attn_k.bias"), v + W(b + "attn_v.bias")
            q, k, v = q.reshape(n, H, D), k.reshape(n, KV, D), v.reshape(n, KV, D)
            if a in ("qwen3", "gemma3"):
                q, k = rms(q, W(b + "attn_q_norm.weight")), rms(k, W(b + "attn_k_norm.weight"))
            rb = 10000.0 if swa else base
            q, k = rope(q, pos, rb) / math.sqrt(D), rope(k, pos, rb)
            mask = (j > i) | (swa & (i - j >= win))
            o = np.zeros((n, H, D))
            for hh in range(H):
                kh = hh // (H // KV)
                s = q[:, hh] @ k[:, kh].T
                s[mask] = -np.inf
                p = np.exp(s - s.max(-1, keepdims=True))
                o[:, hh] = (p / p.sum(-1, keepdims=True)) @ v[:, kh]
            att = o.reshape(n, H * D) @ W(b + "attn_output.weight").T
            x = x + (rms(att, W(b + "post_attention_norm.weight")) if a == "gemma3" else att)
            h = rms(x, W(b + "ffn_norm.weight"))
            if a == "phi3":
                u = h @ W(b + "ffn_up.weight").T
                f = silu(u[:, :u.shape[1] // 2]) * u[:, u.shape[1] // 2:]
            else:
                act = gelu if a == "gemma3" else silu
                f = act(h @ W(b + "ffn_gate.weight").T) * (h @ W(b + "ffn_up.weight").T)
            f = f @ W(b + "ffn_down.weight").T
            x = x + (rms(f, W(b + "post_ffw_norm.weight")) if a == "gemma3" else f)
        lg = out_w @ rms(x[-1], W("output_norm.weight"))
        m = lg.max()
        return lg - m - math.log(np.exp(lg - m).sum())

    return forward


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model", type=Path)
    ap.add_argument("golden", type=Path)
    ap.add_argument("--cases", type=int, default=None, help="first N cases only (long prompts are slow)")
    a = ap.parse_args()
    forward = forward_fn(a.model)
    gold = json.loads(a.golden.read_text())
    w1 = wk = 0.0
    for c in gold["cases"][: a.cases]:
        lp = forward(c["prompt_ids"])
        diffs = [round(l - float(lp[t]), 3) for t, l in c["top"]]
        w1, wk = max(w1, abs(diffs[0])), max(wk, max(map(abs, diffs)))
        same = int(np.argmax(lp)) == c["top"][0][0]
        print(f"{c['name']}: top-1 {'agrees' if same else 'DIFFERS'}; golden - numpy (top-10): {diffs}")
    print(f"max |golden - numpy|: top-1 logprob {w1:.3f}, top-10 logprobs {wk:.3f}")


if __name__ == "__main__":
    main()
