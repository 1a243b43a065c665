#!/usr/bin/env python3
"""Reference (de)quantization with gguf-py, for runtime/tests/dequant_vs_gguf_py.rs.

    python3 tests/py/dequant_ref.py JOBS.json

JOBS.json is a list of jobs; every file is raw little-endian bytes:

  {"op": "quantize",   "type": "Q4_0", "input": F32_IN, "raw": RAW_OUT, "output": F32_OUT}
      gguf.quants.quantize(input) -> RAW_OUT, then gguf.quants.dequantize(RAW_OUT) -> F32_OUT
  {"op": "dequantize", "type": "Q4_K", "raw": RAW_IN, "output": F32_OUT}
      gguf.quants.dequantize(RAW_IN) -> F32_OUT
  {"op": "tensor", "model": GGUF, "name": NAME, "rows": [START, COUNT] | null, "output": F32_OUT}
      rows START..START+COUNT (all when null) of tensor NAME, located by gguf.GGUFReader and
      dequantized by gguf.quants.dequantize -> F32_OUT

gguf-py has no dequantizer for the plain integer types and F64 (it reads them as numpy
arrays of that dtype); for those the reference is numpy's `astype(np.float32)`.

Needs `pip install gguf==0.19.0 numpy`. Exits with status 3 and says so when either is
missing.
"""

import json
import sys

try:
    import numpy as np
    import gguf
    from gguf import GGMLQuantizationType as T
except ImportError as e:  # pragma: no cover - the message is the point
    print(f"dequant_ref.py: {e}: run `pip install gguf==0.19.0 numpy`", file=sys.stderr)
    sys.exit(3)

# ggml type name (as pith's GgmlType::name prints it) -> gguf-py enum
TYPES = {t.name: t for t in T}

# types gguf-py stores as plain numpy arrays, with no dequantizer of its own
NUMPY_DTYPES = {
    T.I8: np.int8,
    T.I16: np.int16,
    T.I32: np.int32,
    T.I64: np.int64,
    T.F64: np.float64,
}


def dequantize_raw(raw: np.ndarray, qtype: T) -> np.ndarray:
    """raw: whole blocks, as uint8 (or already typed for GGUFReader's F32/F16/integer tensors)."""
    if qtype in NUMPY_DTYPES:
        with np.errstate(over="ignore"):  # F64 beyond f32 range becomes inf, as in C
            return raw.view(NUMPY_DTYPES[qtype]).astype(np.float32)
    return gguf.quants.dequantize(raw, qtype)


def write_f32(path: str, values: np.ndarray) -> None:
    np.ascontiguousarray(values, dtype=np.float32).tofile(path)


def main() -> None:
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    with open(sys.argv[1]) as f:
        jobs = json.load(f)
    readers: dict[str, gguf.GGUFReader] = {}
    for job in jobs:
        op = job["op"]
        if op == "quantize":
            qtype = TYPES[job["type"]]
            x = np.fromfile(job["input"], dtype=np.float32)
            raw = np.ascontiguousarray(gguf.quants.quantize(x, qtype)).view(np.uint8).reshape(-1)
            raw.tofile(job["raw"])
            write_f32(job["output"], dequantize_raw(raw, qtype))
        elif op == "dequantize":
            qtype = TYPES[job["type"]]
            raw = np.fromfile(job["raw"], dtype=np.uint8)
            write_f32(job["output"], dequantize_raw(raw, qtype))
        elif op == "tensor":
            model = job["model"]
            if model not in readers:
                readers[model] = gguf.GGUFReader(model)
            tensor = next((t for t in readers[model].tensors if t.name == job["name"]), None)
            if tensor is None:
                sys.exit(f"dequant_ref.py: no tensor {job['name']!r} in {model}")
            data = tensor.data
            if job.get("rows") is not None:
                # ggml rows (ne[0] elements each) are numpy's last axis, for any rank.
                start, count = job["rows"]
                data = data.reshape(-1, data.shape[-1])[start : start + count]
            # F32/F16 tensors come back typed, quantized ones as uint8 rows of whole blocks.
            values = dequantize_raw(np.asarray(data), tensor.tensor_type)
            write_f32(job["output"], values)
        else:
            sys.exit(f"dequant_ref.py: unknown op {op!r}")


if __name__ == "__main__":
    main()
