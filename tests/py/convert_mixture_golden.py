#!/usr/bin/env python3
"""Golden per-tensor types of llama.cpp's quantization mixtures (`llama_tensor_get_type`).

For each input GGUF and each file type, runs

    llama-quantize IN OUT TYPE 2

and records the type llama.cpp chose for every tensor of OUT (read back with the `gguf`
package), plus the input's tensor list (name, ggml dims, type) and the hyperparameters the
mixture depends on. `quantize/tests/mixture_golden.rs` runs pith's `mixture::plan` over the
same tensor lists and compares every type.

    python3 tests/py/convert_mixture_golden.py OUT.json --models A.gguf [B.gguf ...] \
        [--types Q4_K_M Q8_0 ...] [--llama-quantize PATH]

Inputs used for tests/golden/quantize/mixture.json:
  * gemma3-270m-f32: `python3 tests/py/dequantize_gguf.py $PITH_HOME/models/gemma-3-270m-q4_k_m.gguf gemma-f32.gguf`
  * the `-f32` twins of `python3 tests/py/make_arch_models.py DIR` (llama2/llama3/qwen2/qwen3/phi3/gemma3-tiny).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import gguf

ALL_TYPES = ["Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0", "Q2_K", "Q3_K_S", "Q3_K_M", "Q3_K_L",
             "Q4_K_S", "Q4_K_M", "Q5_K_S", "Q5_K_M", "Q6_K", "F16", "BF16"]


def tensor_types(path: Path) -> dict[str, str]:
    r = gguf.GGUFReader(path)
    return {t.name: t.tensor_type.name for t in r.tensors}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--models", nargs="+", required=True)
    ap.add_argument("--types", nargs="+", default=ALL_TYPES)
    ap.add_argument("--names", nargs="+", help="model names (default: file stems)")
    ap.add_argument("--llama-quantize", default=str(Path.home() / ".cache/llama-cpp-anchor/bin/llama-quantize"))
    a = ap.parse_args()
    out = {
        "generator": "tests/py/convert_mixture_golden.py",
        "command": "llama-quantize IN OUT TYPE 2 (llama-cpp-python 0.3.36 vendored llama.cpp, 0c1e570)",
        "models": {},
    }
    prev = Path(a.out)
    if prev.exists():
        out["models"] = json.loads(prev.read_text())["models"]
    names = a.names or [Path(m).stem for m in a.models]
    for name, m in zip(names, a.models):
        r = gguf.GGUFReader(m)
        arch = bytes(r.fields["general.architecture"].parts[-1]).decode()
        def u(k):
            f = r.fields.get(f"{arch}.{k}")
            return int(f.parts[-1][0]) if f else None
        entry = out["models"].setdefault(name, {})
        entry["arch"] = arch
        entry["shape"] = {"n_layer": u("block_count"), "n_head": u("attention.head_count"),
                          "n_head_kv": u("attention.head_count_kv") or u("attention.head_count")}
        entry["tensors"] = [[t.name, [int(d) for d in t.shape], t.tensor_type.name] for t in r.tensors]
        entry.setdefault("types", {})
        with tempfile.TemporaryDirectory() as td:
            for ty in a.types:
                dst = Path(td) / f"{ty}.gguf"
                t0 = time.time()
                p = subprocess.run([a.llama_quantize, m, str(dst), ty, "2"], capture_output=True, text=True)
                if p.returncode != 0:
                    sys.exit(f"llama-quantize {m} {ty} failed:\n{p.stderr[-2000:]}")
                entry["types"][ty] = tensor_types(dst)
                print(f"{name} {ty}: {time.time() - t0:.1f} s", file=sys.stderr)
                dst.unlink()
    Path(a.out).write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
