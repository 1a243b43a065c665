#!/usr/bin/env python3
"""Load an HF directory written by `pith convert --to hf` with Hugging Face transformers and
compare it with a golden file of reference outputs.

    python3 tests/py/hf_transformers_check.py HF_DIR GOLDEN.json [--tol 0.06] [--steps N]

GOLDEN is either an arch golden (tests/golden/arch/<variant>-f32.json, llama.cpp's outputs on
the original GGUF) or tests/golden/hf/gemma3-270m.json (transformers' own outputs on the GGUF's
dequantized weights). For each case:
  * if the golden has the prompt text: transformers' tokenizer (AutoTokenizer over pith's
    tokenizer.json / tokenizer_config.json) must give exactly `prompt_ids` (llama.cpp's ids);
  * next-token log-probs of the golden's top ids within --tol of the golden's;
  * the greedy continuation equal to `greedy_ids` up to the first step where the golden's own
    top-2 margin is below 2*tol (a near-tie the reference itself cannot order reliably).
Prints one JSON line per case. Exit 0: all held; 1: a check failed; 3: transformers/torch
cannot be imported (the caller reports the test as skipped, with this reason).
"""
from __future__ import annotations

import argparse
import json
import sys

try:
    import torch
    import transformers
    from transformers import AutoModelForCausalLM, AutoTokenizer
except Exception as e:  # noqa: BLE001
    print(f"SKIP: transformers/torch not importable: {e}")
    sys.exit(3)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("hf_dir")
    ap.add_argument("golden")
    ap.add_argument("--tol", type=float, default=0.06)
    ap.add_argument("--steps", type=int, default=None, help="greedy steps to compare (default: all)")
    a = ap.parse_args()
    g = json.load(open(a.golden))
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(a.hf_dir, torch_dtype=torch.float32, attn_implementation="eager")
    model.eval()
    tok = AutoTokenizer.from_pretrained(a.hf_dir)
    ok = True
    for case in g["cases"]:
        res = {"name": case["name"]}
        ids = case["prompt_ids"]
        if "prompt" in case:
            got = tok(case["prompt"])["input_ids"]
            res["tokenizer_ok"] = got == ids
            if not res["tokenizer_ok"]:
                res["tokenizer_got"] = got[:40]
                ok = False
        steps = len(case["greedy_ids"]) if a.steps is None else min(a.steps, len(case["greedy_ids"]))
        with torch.no_grad():
            # An explicit mask: generate() would otherwise mask every prompt token equal to
            # pad_token_id (llama3's "!" is id 0).
            inp = torch.tensor([ids])
            out = model.generate(inp, attention_mask=torch.ones_like(inp), max_new_tokens=steps, do_sample=False,
                                 output_scores=False, output_logits=True, return_dict_in_generate=True,
                                 pad_token_id=tok.pad_token_id if tok.pad_token_id is not None else 0)
        greedy = out.sequences[0, len(ids):].tolist()
        lp0 = torch.log_softmax(out.logits[0][0].double(), -1)
        diffs = [abs(float(lp0[i]) - lp) for i, lp in case["top"]]
        res["max_top_diff"] = max(diffs)
        # Greedy: compare up to the first near-tie of the reference.
        limit = steps
        gt = case.get("greedy_top")
        if gt:
            for s, top in enumerate(gt[:steps]):
                if len(top) > 1 and top[0][1] - top[1][1] < 2 * a.tol:
                    limit = s
                    break
        res["greedy_compared"] = limit
        res["greedy_ok"] = greedy[:limit] == case["greedy_ids"][:limit]
        if not res["greedy_ok"]:
            res["greedy_got"] = greedy
            res["greedy_want"] = case["greedy_ids"][:steps]
        if res["max_top_diff"] > a.tol or not res["greedy_ok"]:
            ok = False
        print(json.dumps(res))
    print(json.dumps({"transformers": transformers.__version__, "torch": torch.__version__, "ok": ok}))
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
