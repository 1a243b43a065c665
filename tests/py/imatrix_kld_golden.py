#!/usr/bin/env python3
"""Make the llama.cpp goldens of `pith imatrix` and `pith eval kld` on the small test
models (see tests/golden/imatrix/README.md and tests/golden/kld/README.md).

    python3 tests/py/imatrix_kld_golden.py [--llama-bin DIR] [--models-dir DIR]

Needs llama.cpp's llama-imatrix and llama-perplexity (DIR, default
~/.cache/llama-cpp-anchor/bin; llama-imatrix is built with
`cmake --build build --target llama-imatrix` in the vendored llama.cpp sources). Writes:

* tests/golden/imatrix/<model>.imatrix.gguf and .dat: llama-imatrix on the model over
  tests/data/eval_text.txt, `-c 128 --chunks 4 -t 2 --no-ppl`;
* tests/golden/kld/llama2-f32-q4_0.json: llama-perplexity `--kl-divergence` of
  llama2-f32 quantized to Q4_0 (tests/py/kld_make_quant.py) against llama2-f32, `-c 128
  --chunks 8 -t 2`, parsed from its report, plus the base run's own perplexity.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TEXT = "tests/data/eval_text.txt"
IMATRIX_MODELS = ["llama2-f32", "gemma3-tiny-f32"]
IM_ARGS = ["-c", "128", "--chunks", "4", "-t", "2", "--no-ppl"]
KLD_ARGS = ["-c", "128", "--chunks", "8", "-t", "2"]


def run(cmd: list[str]) -> str:
    print("+", " ".join(cmd), file=sys.stderr)
    p = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit(f"failed ({p.returncode}): {' '.join(cmd)}\n{p.stdout}\n{p.stderr}")
    return p.stdout + p.stderr


def sha256(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def parse_kld(log: str) -> dict:
    def num(label: str) -> list[float]:
        m = re.search(re.escape(label) + r"\s*:\s*(-?[\d.]+)(?:\s*±\s*(-?[\d.]+))?", log)
        if not m:
            sys.exit(f"'{label}' not in the llama-perplexity report")
        return [float(x) for x in m.groups() if x is not None]

    return {
        "ppl_model": num("Mean PPL(Q)"),
        "ppl_base": num("Mean PPL(base)"),
        "kld_mean": num("Mean    KLD"),
        "kld_median": num("Median  KLD")[0],
        "kld_p99": num("99.0%   KLD")[0],
        "kld_max": num("Maximum KLD")[0],
        "same_top_percent": num("Same top p"),
        "rms_p_diff_percent": num("RMS Δp")[0],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--llama-bin", type=Path, default=Path.home() / ".cache/llama-cpp-anchor/bin")
    ap.add_argument("--models-dir", type=Path, default=None)
    a = ap.parse_args()
    imatrix_bin = a.llama_bin / "llama-imatrix"
    if not imatrix_bin.exists():
        alt = Path.home() / ".cache/llama-cpp-anchor/src/llama_cpp_python-0.3.36/vendor/llama.cpp/build/bin/llama-imatrix"
        imatrix_bin = alt
    with tempfile.TemporaryDirectory() as tmp:
        models = a.models_dir or Path(tmp)
        run([sys.executable, "tests/py/make_arch_models.py", str(models), "--only", *IMATRIX_MODELS])
        out = ROOT / "tests/golden/imatrix"
        out.mkdir(parents=True, exist_ok=True)
        for name in IMATRIX_MODELS:
            m = models / f"{name}.gguf"
            for ext, fmt in (("gguf", "gguf"), ("dat", "dat")):
                run([str(imatrix_bin), "-m", str(m), "-f", TEXT, "-o", str(out / f"{name}.imatrix.{ext}"),
                     "--output-format", fmt, *IM_ARGS])
        base = models / "llama2-f32.gguf"
        quant = models / "llama2-f32-q4_0.gguf"
        run([sys.executable, "tests/py/kld_make_quant.py", str(base), str(quant), "--type", "Q4_0"])
        kld_file = Path(tmp) / "base.kld"
        ppl = a.llama_bin / "llama-perplexity"
        base_log = run([str(ppl), "-m", str(base), "--kl-divergence-base", str(kld_file), "-f", TEXT, *KLD_ARGS])
        m = re.search(r"Final estimate: PPL = ([\d.e+]+) \+/- ([\d.e+]+)", base_log)
        if not m:
            sys.exit("no 'Final estimate' in the base run")
        log = run([str(ppl), "-m", str(quant), "--kl-divergence-base", str(kld_file), "--kl-divergence",
                   "-f", TEXT, *KLD_ARGS])
        golden = {
            "base": "llama2-f32",
            "base_sha256": sha256(base),
            "model": "llama2-f32-q4_0 (tests/py/kld_make_quant.py --type Q4_0)",
            "model_sha256": sha256(quant),
            "text": TEXT,
            "text_sha256": sha256(ROOT / TEXT),
            "ctx": 128,
            "chunks": 8,
            "commands": [
                f"llama-perplexity -m llama2-f32.gguf --kl-divergence-base base.kld -f {TEXT} {' '.join(KLD_ARGS)}",
                f"llama-perplexity -m llama2-f32-q4_0.gguf --kl-divergence-base base.kld --kl-divergence -f {TEXT} {' '.join(KLD_ARGS)}",
            ],
            "llama_cpp": "llama-cpp-python 0.3.36 vendored llama.cpp",
            # The base run's own perplexity (exact logits). The `ppl_base` of the
            # --kl-divergence report is computed from the 16-bit log-probabilities of the
            # .kld file, which clip log p below (max − 16): far off on these peaked models.
            "ppl_base_exact": [float(m.group(1)), float(m.group(2))],
            **parse_kld(log),
        }
        kd = ROOT / "tests/golden/kld"
        kd.mkdir(parents=True, exist_ok=True)
        (kd / "llama2-f32-q4_0.json").write_text(json.dumps(golden, indent=1, ensure_ascii=False) + "\n")
        print(json.dumps(golden, indent=1, ensure_ascii=False))


if __name__ == "__main__":
    main()
