#!/usr/bin/env python3
"""Reference outputs of the real Gemma 3 270M from Hugging Face transformers' own Gemma 3
implementation (`Gemma3ForCausalLM`, eager attention, float32 on CPU), run on the GGUF's
weights dequantized exactly by the `gguf` package.

This checks pith's decoder against an implementation no one here wrote, with exact
(unquantized) activations: llama.cpp, the other reference, rounds activations to 8 bits
inside its quantized matmuls, which moves this model's log-probs by up to ~0.3 nat.

    python3 tests/golden/hf/make_gemma3_hf_golden.py [MODEL.gguf]
    # needs: pip install torch transformers==5.24.0 gguf==0.19.0 numpy

The prompts (token ids) are those of tests/golden/logits/gemma3-270m.json (llama.cpp's
tokenization), so both references see identical inputs. Writes gemma3-270m.json beside this
script: per case the next-token top-10 [id, logprob] over the full vocabulary and the
32-token greedy continuation.
"""
from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path

import numpy as np
import torch
import transformers
from transformers import Gemma3ForCausalLM, Gemma3TextConfig

import gguf
from gguf.quants import dequantize

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent.parent
N_PREDICT = 32


def main() -> None:
    home = Path(os.environ.get("PITH_HOME") or Path.home() / ".cache/pith")
    model_path = Path(sys.argv[1]) if len(sys.argv) > 1 else home / "models/gemma-3-270m-q4_k_m.gguf"
    r = gguf.GGUFReader(model_path)
    kv = {k: f.contents() for k, f in r.fields.items() if not k.startswith("tokenizer.ggml.")}
    g = lambda k: kv[f"gemma3.{k}"]  # noqa: E731
    n_layer = g("block_count")
    vocab = len(r.fields["tokenizer.ggml.tokens"].data)
    cfg = Gemma3TextConfig(
        vocab_size=vocab,
        hidden_size=g("embedding_length"),
        intermediate_size=g("feed_forward_length"),
        num_hidden_layers=n_layer,
        num_attention_heads=g("attention.head_count"),
        num_key_value_heads=g("attention.head_count_kv"),
        head_dim=g("attention.key_length"),
        max_position_embeddings=g("context_length"),
        rms_norm_eps=g("attention.layer_norm_rms_epsilon"),
        sliding_window=g("attention.sliding_window"),
        query_pre_attn_scalar=g("attention.key_length"),
        rope_parameters={
            "sliding_attention": {"rope_type": "default", "rope_theta": 10000.0},
            "full_attention": {"rope_type": "default", "rope_theta": float(g("rope.freq_base"))},
        },
        tie_word_embeddings=True,
    )
    # GGUF name -> HF name; llama.cpp's converter stores Gemma's norm weights as 1 + w.
    names = {
        "token_embd.weight": "model.embed_tokens.weight",
        "output_norm.weight": "model.norm.weight",
    }
    per_layer = {
        "attn_norm": "input_layernorm",
        "post_attention_norm": "post_attention_layernorm",
        "ffn_norm": "pre_feedforward_layernorm",
        "post_ffw_norm": "post_feedforward_layernorm",
        "attn_q_norm": "self_attn.q_norm",
        "attn_k_norm": "self_attn.k_norm",
        "attn_q": "self_attn.q_proj",
        "attn_k": "self_attn.k_proj",
        "attn_v": "self_attn.v_proj",
        "attn_output": "self_attn.o_proj",
        "ffn_gate": "mlp.gate_proj",
        "ffn_up": "mlp.up_proj",
        "ffn_down": "mlp.down_proj",
    }
    for i in range(n_layer):
        for a, b in per_layer.items():
            names[f"blk.{i}.{a}.weight"] = f"model.layers.{i}.{b}.weight"
    state = {}
    for t in r.tensors:
        w = dequantize(t.data, t.tensor_type).astype(np.float32)
        w = w.reshape([int(d) for d in reversed(t.shape)])
        if t.name.endswith("norm.weight"):
            w = w - 1.0
        state[names[t.name]] = torch.from_numpy(np.ascontiguousarray(w))
    model = Gemma3ForCausalLM(cfg).eval()
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [m for m in missing if m != "lm_head.weight"]
    assert not missing and not unexpected, (missing, unexpected)
    model.tie_weights()
    model.config._attn_implementation = "eager"

    golden = json.loads((ROOT / "tests/golden/logits/gemma3-270m.json").read_text())
    cases = []
    with torch.no_grad():
        for c in golden["cases"]:
            ids = list(c["prompt_ids"])
            out = model(torch.tensor([ids]), use_cache=True)
            logits = out.logits[0, -1].float()
            lp = torch.log_softmax(logits.double(), dim=-1)
            top = torch.topk(lp, 10)
            past = out.past_key_values
            greedy = []
            nxt = int(torch.argmax(logits))
            for _ in range(N_PREDICT):
                greedy.append(nxt)
                out = model(torch.tensor([[nxt]]), past_key_values=past, use_cache=True)
                past = out.past_key_values
                nxt = int(torch.argmax(out.logits[0, -1]))
            cases.append({
                "name": c["name"],
                "prompt_ids": ids,
                "top": [[int(i), float(v)] for v, i in zip(top.values, top.indices)],
                "greedy_ids": greedy,
            })
            print(c["name"], cases[-1]["top"][:3], greedy[:8], flush=True)
    sha = hashlib.sha256(model_path.read_bytes()).hexdigest()
    doc = {
        "model_file": model_path.name,
        "model_sha256": sha,
        "reference": f"transformers {transformers.__version__} Gemma3ForCausalLM (eager attention, float32, CPU), "
                     f"torch {torch.__version__}, weights dequantized by gguf {getattr(gguf, '__version__', '0.19.0')}",
        "command": "python3 tests/golden/hf/make_gemma3_hf_golden.py",
        "logprob": "natural log of softmax(float32 logits) over the full vocabulary",
        "n_predict": N_PREDICT,
        "cases": cases,
    }
    (HERE / "gemma3-270m.json").write_text(json.dumps(doc, indent=1) + "\n")


if __name__ == "__main__":
    main()
