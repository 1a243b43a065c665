#!/usr/bin/env python3
"""The real-model round trip of issue 5's Targets, as one documented run.

    cargo build --release
    python3 tests/py/convert_real_roundtrip.py WORKDIR [--pith target/release/pith] [--threads 2]
        [--text FILE] [--chunks 4] [--transformers]

Steps (all files under WORKDIR; ~3 GB of disk):
  1. F32 GGUF of the default model: tests/py/dequantize_gguf.py (the `gguf` package's dequantizer).
  2. `pith convert MODEL.gguf hf --to hf` (f32 safetensors + tokenizer files).
  3. `pith quantize hf X.gguf --type T` for F32, Q4_K_M, Q8_0.
  4. `llama-quantize F32.gguf llama-Q4_K_M.gguf Q4_K_M THREADS`, and `pith quantize F32.gguf
     pith-Q4_K_M.gguf` (the same job), twice each, alternating: wall time and peak RSS
     (/usr/bin/time).
  5. Checks: HF → F32 equals the F32 GGUF bit for bit (every tensor, every tokenizer key);
     HF → Q4_K_M has exactly llama-quantize's tensor bytes; pith's F32 → Q4_K_M file is
     byte-identical to llama-quantize's.
  6. `pith eval kld --base F32.gguf` for pith's Q4_K_M, pith's Q8_0 and llama.cpp's Q4_K_M.
  7. With --transformers: tests/py/hf_transformers_check.py on the HF directory against
     tests/golden/hf/gemma3-270m.json.
Prints a JSON summary on stdout.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

import gguf
from gguf.quants import dequantize

ROOT = Path(__file__).resolve().parent.parent.parent
LLAMA_BIN = Path(os.environ.get("LLAMA_CPP_HOME", Path.home() / ".cache/llama-cpp-anchor")) / "bin"


def run(cmd: list, timed: bool = False) -> dict:
    full = (["/usr/bin/time", "-f", "%e %M"] if timed else []) + [str(c) for c in cmd]
    p = subprocess.run(full, capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit(f"failed: {' '.join(full)}\n{p.stdout[-3000:]}\n{p.stderr[-3000:]}")
    out = {"stdout": p.stdout}
    if timed:
        wall, rss = p.stderr.strip().splitlines()[-1].split()
        out.update(wall_s=float(wall), max_rss_mib=int(rss) / 1024)
    return out


def same_tensors(a: Path, b: Path, raw: bool) -> list[str]:
    ra, rb = gguf.GGUFReader(a), gguf.GGUFReader(b)
    tb = {t.name: t for t in rb.tensors}
    bad = []
    for t in ra.tensors:
        u = tb.get(t.name)
        if u is None:
            bad.append(t.name)
        elif raw:
            if t.tensor_type != u.tensor_type or not np.array_equal(np.asarray(t.data).view(np.uint8), np.asarray(u.data).view(np.uint8)):
                bad.append(t.name)
        else:
            x = dequantize(t.data, t.tensor_type).astype(np.float32)
            y = dequantize(u.data, u.tensor_type).astype(np.float32)
            if x.shape != y.shape or not np.array_equal(x.view(np.uint32), y.view(np.uint32)):
                bad.append(t.name)
    for k, f in ra.fields.items():
        if k.startswith("tokenizer.") and (k not in rb.fields or rb.fields[k].contents() != f.contents()):
            bad.append(k)
    return bad


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("workdir")
    ap.add_argument("--pith", default=str(ROOT / "target/release/pith"))
    ap.add_argument("--model", default=str(Path(os.environ.get("PITH_HOME", Path.home() / ".cache/pith")) / "models/gemma-3-270m-q4_k_m.gguf"))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--text", default=str(ROOT / "README.md"))
    ap.add_argument("--chunks", type=int, default=4)
    ap.add_argument("--transformers", action="store_true")
    a = ap.parse_args()
    w = Path(a.workdir)
    w.mkdir(parents=True, exist_ok=True)
    pith, t = a.pith, str(a.threads)
    f32 = w / "f32.gguf"
    if not f32.exists():
        run([sys.executable, ROOT / "tests/py/dequantize_gguf.py", a.model, f32])
    hf = w / "hf"
    summary: dict = {"model": a.model, "threads": a.threads}
    r = run([pith, "convert", a.model, hf, "--force", "--quiet"], timed=True)
    summary["convert"] = {k: v for k, v in r.items() if k != "stdout"}
    for ty in ["F32", "Q4_K_M", "Q8_0"]:
        r = run([pith, "quantize", hf, w / f"hf-{ty}.gguf", "--type", ty, "--threads", t, "--force", "--quiet"], timed=True)
        summary[f"hf_to_{ty}"] = {k: v for k, v in r.items() if k != "stdout"}
    timing = {"pith": [], "llama": []}
    for _ in range(2):
        for who in ["pith", "llama"]:
            out = w / f"{who}-Q4_K_M.gguf"
            out.unlink(missing_ok=True)
            cmd = ([pith, "quantize", f32, out, "--type", "Q4_K_M", "--threads", t, "--quiet"] if who == "pith"
                   else [LLAMA_BIN / "llama-quantize", f32, out, "Q4_K_M", t])
            r = run(cmd, timed=True)
            timing[who].append({"wall_s": r["wall_s"], "max_rss_mib": r["max_rss_mib"]})
    summary["f32_to_Q4_K_M"] = timing
    summary["check_hf_f32_bit_exact"] = same_tensors(f32, w / "hf-F32.gguf", raw=False) == []
    summary["check_hf_q4km_tensors_equal_llama"] = same_tensors(w / "llama-Q4_K_M.gguf", w / "hf-Q4_K_M.gguf", raw=True) == []
    summary["check_f32_q4km_file_identical"] = (w / "pith-Q4_K_M.gguf").read_bytes() == (w / "llama-Q4_K_M.gguf").read_bytes()
    kld = {}
    for name in ["hf-Q4_K_M.gguf", "hf-Q8_0.gguf", "llama-Q4_K_M.gguf"]:
        r = run([pith, "eval", "kld", "--base", f32, "-m", w / name, "-f", a.text, "-c", "512",
                 "--chunks", str(a.chunks), "-t", t, "--json", "-q"])
        j = json.loads(r["stdout"].strip().splitlines()[-1])
        kld[name] = {k: j[k] for k in ["kld_mean", "kld_p99", "same_top", "ppl_base", "ppl_model", "tokens"]}
    summary["kld"] = kld
    if a.transformers:
        p = subprocess.run([sys.executable, ROOT / "tests/py/hf_transformers_check.py", hf,
                            ROOT / "tests/golden/hf/gemma3-270m.json", "--tol", "0.001"], capture_output=True, text=True)
        summary["transformers"] = {"exit": p.returncode, "last": p.stdout.strip().splitlines()[-1:] }
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
