#!/usr/bin/env python3
"""Write a quantized copy of an all-F32 GGUF with the Python `gguf` package: every
metadata key copied verbatim (general.file_type set to the type), every 2-D tensor whose
rows divide into blocks quantized to TYPE (Q4_0 / Q8_0 / ...), 1-D tensors kept F32.

    python3 tests/py/kld_make_quant.py IN.gguf OUT.gguf [--type Q4_0]

The quantized model of the `pith eval kld` golden test (tests/golden/kld/README.md):
deterministic, so the same input gives the same bytes.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_arch_models import read_kv  # noqa: E402  (verbatim metadata reader)

import gguf  # noqa: E402
from gguf.quants import dequantize, quantize  # noqa: E402

FILE_TYPES = {"Q4_0": gguf.LlamaFileType.MOSTLY_Q4_0, "Q8_0": gguf.LlamaFileType.MOSTLY_Q8_0,
              "Q4_1": gguf.LlamaFileType.MOSTLY_Q4_1, "Q5_0": gguf.LlamaFileType.MOSTLY_Q5_0}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("src", type=Path)
    ap.add_argument("dst", type=Path)
    ap.add_argument("--type", default="Q4_0", choices=sorted(FILE_TYPES))
    a = ap.parse_args()
    qt = gguf.GGMLQuantizationType[a.type]
    block = gguf.GGML_QUANT_SIZES[qt][0]
    r = gguf.GGUFReader(a.src)
    kv = read_kv(a.src)
    w = gguf.GGUFWriter(str(a.dst), kv["general.architecture"][0].decode())
    for key, (val, t, sub) in kv.items():
        if key in ("general.architecture", "general.file_type") or key.startswith("GGUF."):
            continue
        w.add_key_value(key, val, t, sub)
    w.add_file_type(FILE_TYPES[a.type])
    for t in r.tensors:
        data = dequantize(t.data, t.tensor_type).astype(np.float32)
        shape = [int(d) for d in reversed(t.shape)]
        data = np.ascontiguousarray(data.reshape(shape))
        if len(shape) == 2 and shape[-1] % block == 0:
            q = quantize(data, qt)
            w.add_tensor(t.name, q, raw_shape=q.shape, raw_dtype=qt)
        else:
            w.add_tensor(t.name, data)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


if __name__ == "__main__":
    main()
