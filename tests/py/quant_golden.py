#!/usr/bin/env python3
"""Make the quantizer goldens in tests/golden/quant/ with llama.cpp's `llama-quantize`.

    python3 tests/py/quant_golden.py [--llama-quantize PATH] [--out tests/golden/quant]
                                     [--gemma-model PATH]

Writes, into --out:

  input-f32.gguf     a small all-F32 GGUF (arch llama, hyperparameters only) whose tensors
                     are the test data: random rows of many scales, edge cases (zeros,
                     constants, a single outlier, huge, tiny and subnormal values, exact
                     rounding ties, one-sided rows), a wide row of varying block scales, and
                     a few rows of real Gemma 3 270M weights (taken from --gemma-model,
                     dequantized with the `gguf` package) — see `tensors()` below
  imatrix.dat        an importance matrix for those tensors in llama.cpp's legacy format
                     (ncall 1, so llama-quantize uses the stored values as they are),
                     including zero weights
  <TYPE>.gguf        `llama-quantize --pure input-f32.gguf <TYPE>.gguf <FTYPE>` for every
                     type pith quantizes
  <TYPE>-imatrix.gguf  the same with `--imatrix imatrix.dat`, for the types whose ggml
                     quantizer uses an importance matrix (all but Q8_0, F16, BF16)

quantize/tests/quants_llama.rs quantizes every tensor of input-f32.gguf with pith and
compares the bytes with each output file's tensor (of whatever type llama-quantize chose:
a row length that is not a multiple of 256 falls back, e.g. Q4_K -> Q5_0). Deterministic:
the inputs come from a fixed-seed numpy PCG64 stream; rerunning rewrites the same files
with the same llama.cpp build.
"""
from __future__ import annotations

import argparse
import os
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np

try:
    import gguf
    from gguf.quants import dequantize
except ImportError as e:  # pragma: no cover
    raise SystemExit(f"quant_golden.py needs `gguf` and `numpy` (pip install gguf==0.19.0 numpy): {e}")

ROOT = Path(__file__).resolve().parents[2]

# pith type name -> llama-quantize ftype whose default (--pure) type it is.
FTYPES = {
    "Q4_0": "Q4_0",
    "Q4_1": "Q4_1",
    "Q5_0": "Q5_0",
    "Q5_1": "Q5_1",
    "Q8_0": "Q8_0",
    "Q2_K": "Q2_K",
    "Q3_K": "Q3_K_M",
    "Q4_K": "Q4_K_M",
    "Q5_K": "Q5_K_M",
    "Q6_K": "Q6_K",
    "F16": "F16",
    "BF16": "BF16",
}
NO_IMATRIX = {"Q8_0", "F16", "BF16"}


def edge_rows(rng: np.random.Generator, n: int) -> np.ndarray:
    """20 rows of edge cases, each `n` long."""
    rows = []
    z = np.zeros(n, np.float32)
    rows.append(z.copy())  # all zeros
    rows.append(np.full(n, 0.37, np.float32))  # positive constant
    rows.append(np.full(n, -1.25, np.float32))  # negative constant
    r = rng.normal(0, 0.01, n).astype(np.float32)
    r[77] = 3.0
    rows.append(r)  # small noise, one large positive outlier
    r = rng.normal(0, 1, n).astype(np.float32)
    r[200] = -40.0
    rows.append(r)  # one large negative outlier
    rows.append((rng.normal(0, 1, n) * 1000).astype(np.float32))  # huge
    rows.append(rng.uniform(-60000, 60000, n).astype(np.float32))  # near the f16 limit
    rows.append((rng.normal(0, 1, n) * 1e-20).astype(np.float32))  # below GROUP_MAX_EPS
    rows.append((rng.normal(0, 1, n) * 1e-6).astype(np.float32))  # f16-subnormal scales
    rows.append((rng.normal(0, 1, n) * 1e-40).astype(np.float32))  # f32 subnormals
    rows.append(rng.uniform(0.5, 1.5, n).astype(np.float32))  # all positive
    rows.append(rng.uniform(-2.0, -1.0, n).astype(np.float32))  # all negative
    rows.append(np.where(np.arange(n) % 2 == 0, 1.0, -1.0).astype(np.float32))  # +-1
    rows.append(((np.arange(n) % 16) - 8).astype(np.float32))  # integers -8..7
    rows.append((rng.integers(-8, 9, n) * 0.5).astype(np.float32))  # halves: rounding ties
    r = z.copy()
    r[131] = 1.0
    rows.append(r)  # a single non-zero
    r = rng.normal(0, 1, n).astype(np.float32)
    r[rng.uniform(0, 1, n) < 0.9] = 0.0
    rows.append(r)  # sparse
    r = rng.normal(0, 1, n).astype(np.float32)
    r[::32] = 8.0
    rows.append(r)  # the same maximum in every block
    rows.append(np.linspace(-1, 1, n).astype(np.float32))  # a ramp
    rows.append((rng.standard_cauchy(n) * 0.05).astype(np.float32))  # heavy tails
    return np.stack(rows)


def real_rows(model: Path | None) -> dict[str, np.ndarray]:
    """A few rows of real Gemma 3 270M weights, dequantized to f32 (none without a model)."""
    if model is None or not model.exists():
        print(f"note: no real model at {model}; golden has no real.* tensors", file=sys.stderr)
        return {}
    r = gguf.GGUFReader(model)
    out = {}
    for name, key, rows in [
        ("real.ffn_down.weight", "blk.0.ffn_down.weight", slice(0, 4)),
        ("real.attn_q.weight", "blk.3.attn_q.weight", slice(100, 106)),
        ("real.token_embd.weight", "token_embd.weight", slice(1000, 1004)),
    ]:
        t = next(t for t in r.tensors if t.name == key)
        data = dequantize(t.data, t.tensor_type).astype(np.float32)
        data = data.reshape([int(d) for d in reversed(t.shape)])
        out[name] = np.ascontiguousarray(data[rows])
    return out


def tensors(model: Path | None) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(20261129)
    n = 512
    scales = np.array([0.02, 1.0, 1e-3, 5.0, 0.1, 30.0, 0.5, 0.02], np.float32)
    rand = rng.normal(0, 1, (8, n)).astype(np.float32) * scales[:, None]
    rand[3] += 2.0  # shifted rows: the asymmetric types' minimum matters
    rand[6] -= 0.7
    wide = rng.normal(0, 1, (3, 1536)).astype(np.float32)
    wide *= (10.0 ** rng.uniform(-3, 1, (3, 1536 // 32))).repeat(32, axis=1).astype(np.float32)
    t = {
        "rand.weight": rand.astype(np.float32),
        "edge.weight": edge_rows(rng, 256),
        "wide.weight": wide.astype(np.float32),
    }
    t.update(real_rows(model))
    return t


def imatrix_for(rng: np.random.Generator, name: str, n: int) -> np.ndarray:
    v = (rng.uniform(0.1, 3.0, n) ** 2).astype(np.float32)
    if name == "edge.weight":
        v[rng.uniform(0, 1, n) < 0.2] = 0.0  # zero weights (columns never activated)
    if name == "wide.weight":
        v = (10.0 ** rng.uniform(-4, 2, n)).astype(np.float32)
    return v


def write_input(path: Path, ts: dict[str, np.ndarray]) -> None:
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_name("pith quantizer golden input")
    w.add_block_count(1)
    w.add_context_length(256)
    w.add_embedding_length(256)
    w.add_feed_forward_length(512)
    w.add_head_count(2)
    w.add_head_count_kv(2)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_file_type(gguf.LlamaFileType.ALL_F32)
    for name, data in ts.items():
        w.add_tensor(name, np.ascontiguousarray(data, dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def write_imatrix(path: Path, im: dict[str, np.ndarray]) -> None:
    """llama.cpp's legacy imatrix format (tools/imatrix, common/imatrix-loader.cpp)."""
    with open(path, "wb") as f:
        f.write(struct.pack("<i", len(im)))
        for name, v in im.items():
            b = name.encode()
            f.write(struct.pack("<i", len(b)))
            f.write(b)
            f.write(struct.pack("<ii", 1, len(v)))  # ncall 1: values used as stored
            f.write(v.astype("<f4").tobytes())
        f.write(struct.pack("<i", 1))  # chunk count
        ds = b"quant_golden.py"
        f.write(struct.pack("<i", len(ds)))
        f.write(ds)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument(
        "--llama-quantize",
        default=os.environ.get("LLAMA_QUANTIZE", os.path.expanduser("~/.cache/llama-cpp-anchor/bin/llama-quantize")),
    )
    ap.add_argument("--out", default=str(ROOT / "tests/golden/quant"))
    pith_home = Path(os.environ.get("PITH_HOME", os.path.expanduser("~/.cache/pith")))
    ap.add_argument("--gemma-model", default=str(pith_home / "models/gemma-3-270m-q4_k_m.gguf"))
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    ts = tensors(Path(args.gemma_model))
    src = out / "input-f32.gguf"
    write_input(src, ts)
    rng = np.random.default_rng(7)
    write_imatrix(out / "imatrix.dat", {k: imatrix_for(rng, k, v.shape[-1]) for k, v in ts.items()})

    # Run inside --out with relative names: llama-quantize records the imatrix path in the
    # output's metadata (quantize.imatrix.file), which then does not depend on the checkout.
    for ty, ftype in FTYPES.items():
        runs = [(f"{ty}.gguf", [])]
        if ty not in NO_IMATRIX:
            runs.append((f"{ty}-imatrix.gguf", ["--imatrix", "imatrix.dat"]))
        for dst, extra in runs:
            cmd = [args.llama_quantize, "--pure", *extra, src.name, dst, ftype, "2"]
            p = subprocess.run(cmd, capture_output=True, text=True, cwd=out)
            if p.returncode != 0:
                sys.exit(f"{' '.join(cmd)} failed:\n{p.stdout[-3000:]}\n{p.stderr[-3000:]}")
            print(f"wrote {out / dst}")


if __name__ == "__main__":
    main()
