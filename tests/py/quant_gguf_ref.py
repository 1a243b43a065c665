#!/usr/bin/env python3
"""Quantize raw f32 rows with the Python `gguf` package, for quantize/tests/quants_gguf_py.rs.

    python3 tests/py/quant_gguf_ref.py IN.f32 N_PER_ROW OUT_DIR TYPE [TYPE ...]

IN.f32 is little-endian float32, a whole number of rows of N_PER_ROW; for each TYPE (a
GGMLQuantizationType name: F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, ...) writes
OUT_DIR/TYPE.bin = gguf.quants.quantize(rows, TYPE) as raw bytes, or OUT_DIR/TYPE.err with
the exception text when the package does not implement the type.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

try:
    from gguf import GGMLQuantizationType
    from gguf.quants import quantize
except ImportError as e:  # pragma: no cover
    raise SystemExit(f"quant_gguf_ref.py needs `gguf` and `numpy` (pip install gguf==0.19.0 numpy): {e}")


def main() -> None:
    src, n, out = Path(sys.argv[1]), int(sys.argv[2]), Path(sys.argv[3])
    rows = np.fromfile(src, dtype="<f4").reshape(-1, n)
    out.mkdir(parents=True, exist_ok=True)
    for name in sys.argv[4:]:
        qtype = GGMLQuantizationType[name]
        try:
            with np.errstate(all="ignore"):
                q = quantize(rows, qtype)
        except NotImplementedError as e:
            (out / f"{name}.err").write_text(str(e))
            continue
        (out / f"{name}.bin").write_bytes(np.ascontiguousarray(q).tobytes())


if __name__ == "__main__":
    main()
