#!/usr/bin/env python3
"""Regenerate tests/golden/arch/<variant>.json: write the small random-weight models with
tests/py/make_arch_models.py, then record llama.cpp's outputs on them with llama-server.

    python3 tests/golden/arch/make_arch_golden.py [--models-dir DIR] [--only NAME ...] [--bin DIR]

--models-dir defaults to a temporary directory (the GGUFs are not committed; their sha256 is).
Each variant is recorded with -t 2 (the file's content) and again with -t 1; the comparison is
written into the file as "thread_check". See tests/py/llama_golden.py for the fields.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT / "tests/py"))
from llama_golden import (DEFAULT_BIN, compare_runs, dumps_golden, margin_stats, record_all,  # noqa: E402
                          server_args, sha256_file)
from make_arch_models import VARIANTS  # noqa: E402

N_PREDICT = 16
N_TOP = 10
N_STEP_TOP = 5
CTX = 512

CASES = [
    ("hello", "Hello, world!"),
    ("fox", "The quick brown fox jumps over the lazy dog, and then it runs back into the forest "
            "to find its friends before the sun goes down."),
    ("code_unicode", "def add(a, b):\n    return a + b\n\nprint(add(2, 3))  # → 5, naïve café ✓ 東京"),
]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models-dir", type=Path, default=None, help="where to write the GGUFs (default: temp dir)")
    ap.add_argument("--only", nargs="*", default=None)
    ap.add_argument("--bin", type=Path, default=DEFAULT_BIN)
    ap.add_argument("--out-dir", type=Path, default=Path(__file__).resolve().parent)
    ap.add_argument("--log-dir", type=Path, default=None, help="keep llama-server logs here")
    ap.add_argument("--skip-thread-check", action="store_true", help="skip the -t 1 and -fa on re-runs")
    a, rest = ap.parse_known_args()  # rest (e.g. --vocab-dir) goes to make_arch_models.py

    tmp = None
    models = a.models_dir
    if models is None:
        tmp = tempfile.TemporaryDirectory(prefix="pith-arch-")
        models = Path(tmp.name)
    gen = [sys.executable, str(ROOT / "tests/py/make_arch_models.py"), str(models), *rest]
    if a.only:
        gen += ["--only", *a.only]
    subprocess.run(gen, check=True)
    a.out_dir.mkdir(parents=True, exist_ok=True)
    if a.log_dir:
        a.log_dir.mkdir(parents=True, exist_ok=True)

    summary = []
    for v in VARIANTS:
        if a.only and v.name not in a.only:
            continue
        model = models / f"{v.name}.gguf"

        def log(tag: str) -> Path | None:
            return a.log_dir / f"{v.name}-{tag}.log" if a.log_dir else None

        rec = dict(model=model, cases=CASES, n_predict=N_PREDICT, n_top=N_TOP, n_step_top=N_STEP_TOP,
                   ctx=CTX, bin_dir=a.bin)
        cases2, props = record_all(threads=2, log_path=log("t2"), **rec)
        check = fa_check = None
        if not a.skip_thread_check:
            cases1, _ = record_all(threads=1, log_path=log("t1"), **rec)
            check = {"compared": "-t 2 (recorded) vs -t 1, both -fa off", **compare_runs(cases2, cases1)}
            cases_fa, _ = record_all(threads=2, fa="on", log_path=log("t2-fa"), **rec)
            fa_check = {"compared": "-fa off (recorded) vs -fa on, both -t 2: llama.cpp's own numerical spread",
                        **compare_runs(cases2, cases_fa)}
        margins = margin_stats(cases2)
        out = {
            "variant": v.name,
            "model_file": model.name,
            "model_sha256": sha256_file(model),
            "model_size": model.stat().st_size,
            "generator": "python3 tests/py/make_arch_models.py OUT_DIR  (gguf==0.19.0)",
            "arch": v.arch,
            "hparams": {"n_embd": v.n_embd, "n_layer": v.n_layer, "n_head": v.n_head, "n_head_kv": v.n_head_kv,
                        "head_dim": v.head_dim, "n_ff": v.n_ff, "rope_freq_base": v.rope_base,
                        "tied_embeddings": v.tied,
                        "tensor_types": {k: t.name for k, t in v.types.items()}},
            "llama_cpp_version": f"llama.cpp build {props.get('build_info', '?')} "
                                 "(vendored in llama-cpp-python 0.3.36, commit 0c1e570)",
            "command": " ".join(["llama-server", *server_args("MODEL", 2, CTX, "PORT")]),
            "request": "POST /tokenize {content, add_special: true, parse_special: true}; "
                       "POST /completion {prompt: <ids>, n_predict: %d, temperature: 0, samplers: [temperature], "
                       "n_probs: %d, post_sampling_probs: false, cache_prompt: false}" % (N_PREDICT, N_TOP),
            "logprob": "natural log of softmax(raw logits) over the full vocabulary (float32, from llama-server)",
            "n_predict": N_PREDICT,
            "thread_check": check,
            "flash_attn_check": fa_check,
            "margin_stats": margins,
            "cases": cases2,
        }
        path = a.out_dir / f"{v.name}.json"
        path.write_text(dumps_golden(out))
        summary.append((v.name, out["model_size"], out["model_sha256"][:12],
                        None if check is None else check["same_token_ids"],
                        None if check is None else check["max_abs_logprob_diff"],
                        None if fa_check is None else fa_check["max_abs_logprob_diff"], margins))
        print(f"wrote {path}", file=sys.stderr)

    print("variant | size | sha256 | -t1==-t2 ids | max|dlogprob| t1/t2 | max|dlogprob| fa off/on "
          "| margin min / median / frac<0.1")
    for name, size, sha, same, diff, fdiff, m in summary:
        print(f"{name} | {size} | {sha} | {same} | {diff} | {fdiff} | "
              f"{m['min']:.3f} / {m['median']:.3f} / {m['frac_below_0.1']:.3f}")
    if tmp:
        tmp.cleanup()


if __name__ == "__main__":
    main()
