#!/usr/bin/env python3
"""Independent reader of llama.cpp importance-matrix files: prints, as JSON, what
llama-quantize would use (tools/quantize/quantize.cpp `load_imatrix`).

    python3 tests/py/imatrix_read_ref.py FILE

GGUF files are read with the `gguf` package (`<name>.in_sum2` / `<name>.counts`; the
importance is in_sum2 / round(counts) per matrix, 1 where a count is 0); legacy `.dat`
files with `struct`, following common/imatrix-loader.cpp (`values / ncall`). Output:
{"legacy", "chunk_count", "chunk_size", "datasets", "entries": {name: {"importance",
"sums", "counts"}}}.
"""
import json
import struct
import sys

import numpy as np


def read_gguf(path: str) -> dict:
    import gguf

    r = gguf.GGUFReader(path)

    def field(key):
        f = r.get_field(key)
        return None if f is None else f.contents()

    tensors = {t.name: np.array(t.data, dtype=np.float32).reshape(-1) for t in r.tensors}
    entries = {}
    for name, sums in tensors.items():
        if not name.endswith(".in_sum2"):
            continue
        base = name[: -len(".in_sum2")]
        counts = np.rint(tensors[base + ".counts"]).astype(np.int64)
        n_cols = len(sums) // len(counts)
        imp = np.empty_like(sums)
        for j, c in enumerate(counts):
            row = slice(j * n_cols, (j + 1) * n_cols)
            imp[row] = sums[row] / np.float32(c) if c > 0 else 1.0
        entries[base] = {"importance": imp.tolist(), "sums": sums.tolist(), "counts": counts.tolist()}
    return {
        "legacy": False,
        "chunk_count": field("imatrix.chunk_count"),
        "chunk_size": field("imatrix.chunk_size"),
        "datasets": field("imatrix.datasets"),
        "entries": entries,
    }


def read_dat(path: str) -> dict:
    data = open(path, "rb").read()
    off = 0

    def i32():
        nonlocal off
        (v,) = struct.unpack_from("<i", data, off)
        off += 4
        return v

    entries = {}
    for _ in range(i32()):
        n = i32()
        name = data[off: off + n].decode()
        off += n
        ncall, nval = i32(), i32()
        vals = np.frombuffer(data, dtype="<f4", count=nval, offset=off).copy()
        off += 4 * nval
        imp = vals / np.float32(ncall) if ncall > 0 else vals
        entries[name] = {"importance": imp.tolist(), "sums": vals.tolist(), "counts": [ncall]}
    out = {"legacy": True, "chunk_count": None, "chunk_size": 0, "datasets": [], "entries": entries}
    if off + 4 <= len(data):
        out["chunk_count"] = i32()
        if off + 4 <= len(data):
            n = i32()
            out["datasets"] = [data[off: off + n].decode()]
    return out


def main() -> None:
    path = sys.argv[1]
    with open(path, "rb") as f:
        magic = f.read(4)
    print(json.dumps(read_gguf(path) if magic == b"GGUF" else read_dat(path)))


if __name__ == "__main__":
    main()
