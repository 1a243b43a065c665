#!/usr/bin/env python3
"""Regenerate tests/golden/logits/gemma3-270m.json with llama.cpp's llama-server.

    python3 tests/golden/logits/make_gemma3_golden.py [--model PATH] [--bin DIR] [--out FILE]

Defaults: model $PITH_HOME/models/gemma-3-270m-q4_k_m.gguf (PITH_HOME defaults to ~/.cache/pith),
llama.cpp tools in $LLAMA_CPP_HOME/bin (default ~/.cache/llama-cpp-anchor/bin).

The cases are recorded with -t 2 -fa off (the file's content), again with -t 1 ("thread_check")
and with -fa on ("flash_attn_check": llama.cpp's own numerical spread between its two attention
paths). See tests/py/llama_golden.py for exactly what each field means, and README.md here.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT / "tests/py"))
from llama_golden import DEFAULT_BIN, compare_runs, dumps_golden, margin_stats, record_all, server_args, sha256_file  # noqa: E402

N_PREDICT = 32
N_TOP = 10
N_STEP_TOP = 5
CTX = 2048
EXPECTED_SHA256 = "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818"


def long_prompt() -> str:
    """~700 tokens (over Gemma 3's 512-token sliding window): a fact at the start, a question at the end."""
    fish = ["herring", "cod", "mackerel", "sardines", "haddock", "plaice", "sole", "hake"]
    weather = ["calm", "windy", "foggy", "rainy", "bright", "cold", "stormy", "mild"]
    parts = ["The keeper of the lighthouse in Marrow Bay is a woman named Elsbeth Quill. "
             "She has kept the light burning for thirty-one years.\n\n"]
    for i in range(1, 17):
        parts.append(
            f"On day {i} the weather was {weather[i % len(weather)]}, and the fishing boats of Marrow Bay "
            f"brought back {7 * i % 40 + 3} crates of {fish[i % len(fish)]}, which the market in the old "
            f"square sold before noon.\n")
    parts.append("\nQuestion: What is the name of the keeper of the lighthouse in Marrow Bay?\n"
                 "Answer: The keeper of the lighthouse is named")
    return "".join(parts)


CASES = [
    ("capital_france", "The capital of France is"),
    ("capitals_3shot", "Country: Japan\nCapital: Tokyo\n\nCountry: Italy\nCapital: Rome\n\n"
                       "Country: Egypt\nCapital: Cairo\n\nCountry: Canada\nCapital:"),
    ("antonyms_3shot", "Word: hot\nAntonym: cold\n\nWord: tall\nAntonym: short\n\n"
                       "Word: happy\nAntonym: sad\n\nWord: early\nAntonym:"),
    ("code_fibonacci", "def fibonacci(n):"),
    ("unicode_multiline", "Café crème, naïve façade — 東京 and Zürich.\n\tIndented line with émojis 🙂🚀\n"
                          "Ελληνικά: καλημέρα! Русский: привет.\nSummary:"),
    ("long_sliding_window", long_prompt()),
]


def main() -> None:
    pith_home = Path(os.environ.get("PITH_HOME", Path.home() / ".cache/pith"))
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, default=pith_home / "models/gemma-3-270m-q4_k_m.gguf")
    ap.add_argument("--bin", type=Path, default=DEFAULT_BIN)
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "gemma3-270m.json")
    ap.add_argument("--log-dir", type=Path, default=None, help="keep llama-server logs here")
    a = ap.parse_args()
    if not a.model.is_file():
        raise SystemExit(f"model not found: {a.model}")
    sha = sha256_file(a.model)
    if sha != EXPECTED_SHA256:
        print(f"warning: model sha256 {sha} != expected {EXPECTED_SHA256}", file=sys.stderr)

    logs = a.log_dir
    if logs:
        logs.mkdir(parents=True, exist_ok=True)

    def log(tag: str) -> Path | None:
        return logs / f"gemma3-{tag}.log" if logs else None

    rec = dict(model=a.model, cases=CASES, n_predict=N_PREDICT, n_top=N_TOP, n_step_top=N_STEP_TOP,
               ctx=CTX, bin_dir=a.bin)
    cases2, props = record_all(threads=2, fa="off", log_path=log("t2"), **rec)
    cases1, _ = record_all(threads=1, fa="off", log_path=log("t1"), **rec)
    cases_fa, _ = record_all(threads=2, fa="on", log_path=log("t2-fa"), **rec)
    check = compare_runs(cases2, cases1)
    fa_check = compare_runs(cases2, cases_fa)
    out = {
        "model_file": a.model.name,
        "model_sha256": sha,
        "llama_cpp_version": f"llama.cpp build {props.get('build_info', '?')} "
                             "(vendored in llama-cpp-python 0.3.36, commit 0c1e570)",
        "command": " ".join(["llama-server", *server_args("MODEL", 2, CTX, "PORT")]),
        "request": "POST /tokenize {content, add_special: true, parse_special: true}; "
                   "POST /completion {prompt: <ids>, n_predict: %d, temperature: 0, samplers: [temperature], "
                   "n_probs: %d, post_sampling_probs: false, cache_prompt: false}" % (N_PREDICT, N_TOP),
        "logprob": "natural log of softmax(raw logits) over the full vocabulary (float32, from llama-server)",
        "n_predict": N_PREDICT,
        "thread_check": {"compared": "-t 2 (recorded) vs -t 1, both -fa off", **check},
        "flash_attn_check": {"compared": "-fa off (recorded) vs -fa on, both -t 2: llama.cpp's own "
                                         "numerical spread (its CPU flash attention accumulates in F16)",
                             **fa_check},
        "margin_stats": margin_stats(cases2),
        "cases": cases2,
    }
    a.out.write_text(dumps_golden(out))
    print(f"wrote {a.out}: {len(cases2)} cases")
    for tag, c in (("threads", check), ("flash-attn", fa_check)):
        print(f"  {tag}: same ids {c['same_token_ids']}, max |dlogprob| {c['max_abs_logprob_diff']:.3g}, "
              f"divergence {[(x['name'], x.get('greedy_first_divergence')) for x in c['cases']]}")
    print(f"  margins {out['margin_stats']}")
    for c in cases2:
        print(f"  {c['name']}: {len(c['prompt_ids'])} prompt tokens -> {c['greedy_text'][:60]!r}")


if __name__ == "__main__":
    main()
