#!/usr/bin/env python3
"""llama.cpp on a GGUF written by pith, against a golden recorded by llama.cpp on the original.

    python3 tests/py/convert_llama_check.py MODEL.gguf GOLDEN.json [--tol 0.0]

Starts `llama-server` on MODEL (tests/py/llama_golden.py, same flags as the goldens: -t 2, -c 2048,
-fa off) and, for every case of GOLDEN (tests/golden/arch/<variant>.json or
tests/golden/logits/gemma3-270m.json), records llama.cpp's tokenization of the prompt, its
next-token top log-probs and greedy continuation, then requires: the same prompt ids, the same
greedy ids, and top log-probs within --tol (default 0: a file with the same weights and the
same metadata semantics gives llama.cpp's bit-identical numbers, llama-server is deterministic
at -t 2, see thread_check in the goldens). Prints one JSON line per case; exit 1 on a mismatch.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from llama_golden import LlamaServer, record  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("golden")
    ap.add_argument("--tol", type=float, default=0.0)
    a = ap.parse_args()
    g = json.load(open(a.golden))
    n_predict = g.get("n_predict", 16)
    ok = True
    with LlamaServer(a.model, threads=2, ctx=2048) as srv:
        for case in g["cases"]:
            got = record(srv, case["name"], case["prompt"], n_predict, len(case["top"]), 1)
            diff = max(abs(x[1] - y[1]) for x, y in zip(got["top"], case["top"]))
            same_ids = [x[0] for x in got["top"]] == [y[0] for y in case["top"]]
            res = {"name": case["name"], "prompt_ids_ok": got["prompt_ids"] == case["prompt_ids"],
                   "greedy_ok": got["greedy_ids"] == case["greedy_ids"], "top_ids_ok": same_ids,
                   "max_top_diff": diff}
            if not (res["prompt_ids_ok"] and res["greedy_ok"] and same_ids and diff <= a.tol):
                ok = False
                res["got_greedy"] = got["greedy_ids"]
            print(json.dumps(res))
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
