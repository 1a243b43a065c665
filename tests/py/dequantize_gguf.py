#!/usr/bin/env python3
"""Write an all-F32 copy of a GGUF file: every metadata key copied verbatim (minus
`general.file_type`, set to ALL_F32), every tensor dequantized with the `gguf` package.

    python3 tests/py/dequantize_gguf.py IN.gguf OUT.gguf

Used to check the decoder on the real Gemma 3 270M weights against llama.cpp without
ggml's activation quantization (llama.cpp multiplies F32 weights with F32 activations),
see tests/golden/logits/README.md. Deterministic: the same input gives the same bytes.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_arch_models import read_kv  # noqa: E402  (verbatim metadata reader)

import gguf  # noqa: E402
from gguf.quants import dequantize  # noqa: E402


def main() -> None:
    src, dst = Path(sys.argv[1]), Path(sys.argv[2])
    r = gguf.GGUFReader(src)
    kv = read_kv(src)
    arch = kv["general.architecture"][0]
    w = gguf.GGUFWriter(str(dst), arch)
    for key, (val, t, sub) in kv.items():
        if key in ("general.architecture", "general.file_type") or key.startswith("GGUF."):
            continue
        w.add_key_value(key, val, t, sub)
    w.add_file_type(gguf.LlamaFileType.ALL_F32)
    for t in r.tensors:
        data = dequantize(t.data, t.tensor_type).astype(np.float32)
        data = data.reshape([int(d) for d in reversed(t.shape)])
        w.add_tensor(t.name, np.ascontiguousarray(data))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


if __name__ == "__main__":
    main()
