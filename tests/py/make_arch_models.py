#!/usr/bin/env python3
"""Write small random-weight GGUF models of the Llama family, deterministically.

    python3 tests/py/make_arch_models.py OUT_DIR [--only NAME ...] [--gemma-model PATH] [--vocab-dir DIR]

One file per variant, OUT_DIR/<variant>.gguf:

  llama2       arch llama,  SPM tokenizer (ggml-vocab-llama-spm.gguf), GQA 4/2, untied output
  llama3       arch llama,  BPE tokenizer (ggml-vocab-llama-bpe.gguf), rope_freqs.weight (Llama 3
               rope scaling: factor 8, low 1, high 4, original context 8192), freq_base 500000, tied
  qwen2        arch qwen2,  q/k/v bias tensors, tokenizer ggml-vocab-qwen2.gguf, tied
  qwen3        arch qwen3,  attn_q_norm/attn_k_norm, head_dim*n_head != n_embd, qwen2 tokenizer, tied
  phi3         arch phi3,   fused attn_qkv, ffn_up carrying [gate; up], ggml-vocab-phi-3.gguf, untied
  gemma3-tiny  arch gemma3, sliding window 8 with the default pattern (6 layers: 0-4 local, 5 global),
               the Gemma 3 tokenizer copied from the real model file, tied
  <name>-f32   the same six with every weight F32 (a tied embedding F16) and a smaller n_embd:
               llama.cpp is within ~0.02 nat of exact arithmetic on these (tight tolerances),
               while the mixed-type ones exercise the quantized paths (llama.cpp's own error
               there is up to ~1 nat on top-10 log-probs, see tests/golden/arch/README.md)

Weights come from a counter-based generator (splitmix64 of the element index, seeded by the sha256
of "<variant>/<tensor name>"), implemented with numpy uint64 arithmetic: the bytes do not depend on
the numpy version's random-number streams. Quantization uses the `gguf` package's own quantizers
(gguf.quants.quantize), so the same gguf version gives the same bytes. Tokenizer metadata
(every `tokenizer.*` key) is copied verbatim from llama.cpp's vocab files (looked up in
--vocab-dir, default tests/golden/vocab/) or, for Gemma, from the real model file.

Scales: every linear layer has std 1/sqrt(fan_in) (unit-variance outputs), so each layer adds
O(1) to the residual stream; the final norm's weight is set so that the logits have a standard
deviation of about LOGIT_STD over the vocabulary, which makes the next-token distribution peaked
(top-1 clearly above the runner-up in most steps), so top-k comparisons are meaningful.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import math
import os
import struct
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

try:
    import gguf
    from gguf import GGMLQuantizationType as Q
    from gguf import GGUFValueType as VT
    from gguf.quants import quantize
except ImportError as e:  # pragma: no cover
    raise SystemExit(f"make_arch_models.py needs the `gguf` and `numpy` packages (pip install gguf==0.19.0 numpy): {e}")

ROOT = Path(__file__).resolve().parents[2]
LOGIT_STD = 16.0
CONTEXT_LENGTH = 2048


@dataclass
class Variant:
    name: str
    arch: str
    vocab: str  # file name in the vocab dir, or "GEMMA" for the real model's tokenizer
    n_embd: int
    n_layer: int
    n_head: int
    n_head_kv: int
    head_dim: int
    n_ff: int
    rope_base: float
    tied: bool
    types: dict[str, Q]  # tensor role -> type
    rms_eps: float = 1e-5
    emb_rms: float = 1.0  # rms of token_embd entries
    llama3_rope: bool = False  # write rope_freqs.weight (Llama 3 rope scaling)
    extra_kv: dict[str, tuple] = field(default_factory=dict)  # suffix after "<arch>." -> (value, VT)


F32, F16, BF16 = Q.F32, Q.F16, Q.BF16

VARIANTS: list[Variant] = [
    Variant("llama2", "llama", "ggml-vocab-llama-spm.gguf", n_embd=128, n_layer=2, n_head=4, n_head_kv=2,
            head_dim=32, n_ff=320, rope_base=10000.0, tied=False,
            types=dict(embd=F16, output=Q.Q8_0, q=Q.Q4_0, k=Q.Q4_0, v=Q.Q8_0, o=Q.Q4_0,
                       gate=Q.Q8_0, up=Q.Q4_1, down=Q.Q8_0)),
    Variant("llama3", "llama", "ggml-vocab-llama-bpe.gguf", n_embd=64, n_layer=3, n_head=2, n_head_kv=1,
            head_dim=32, n_ff=192, rope_base=500000.0, tied=True, emb_rms=0.4, llama3_rope=True,
            types=dict(embd=Q.Q8_0, q=Q.Q5_0, k=Q.Q5_0, v=Q.Q5_1, o=Q.Q8_0, gate=Q.Q5_1, up=Q.Q5_1,
                       down=Q.Q8_0)),
    Variant("qwen2", "qwen2", "ggml-vocab-qwen2.gguf", n_embd=64, n_layer=2, n_head=4, n_head_kv=2,
            head_dim=16, n_ff=160, rope_base=1000000.0, tied=True, rms_eps=1e-6, emb_rms=0.4,
            types=dict(embd=Q.Q8_0, q=F16, k=F16, v=F16, o=F16, gate=Q.Q4_0, up=Q.Q4_0, down=Q.Q8_0)),
    Variant("qwen3", "qwen3", "ggml-vocab-qwen2.gguf", n_embd=64, n_layer=3, n_head=4, n_head_kv=2,
            head_dim=32, n_ff=192, rope_base=1000000.0, tied=True, rms_eps=1e-6, emb_rms=0.4,
            types=dict(embd=Q.Q8_0, q=BF16, k=BF16, v=F32, o=Q.Q8_0, gate=F32, up=Q.Q4_1, down=Q.Q5_0)),
    Variant("phi3", "phi3", "ggml-vocab-phi-3.gguf", n_embd=128, n_layer=2, n_head=4, n_head_kv=2,
            head_dim=32, n_ff=256, rope_base=10000.0, tied=False,
            types=dict(embd=F16, output=Q.Q8_0, qkv=Q.Q8_0, o=Q.Q5_0, up=Q.Q4_1, down=Q.Q5_0),
            extra_kv={"rope.scaling.original_context_length": (CONTEXT_LENGTH, VT.UINT32)}),
    Variant("gemma3-tiny", "gemma3", "GEMMA", n_embd=64, n_layer=6, n_head=2, n_head_kv=1,
            head_dim=32, n_ff=128, rope_base=1000000.0, tied=True, rms_eps=1e-6, emb_rms=0.4 / 8.0,
            types=dict(embd=Q.Q4_0, q=Q.Q8_0, k=Q.Q5_0, v=Q.Q8_0, o=Q.Q4_0, gate=Q.Q4_0, up=Q.Q4_0,
                       down=F16),
            # the real model has no sliding_window_pattern key (llama.cpp's default is 6) and no
            # rope.freq_base_swa key (llama.cpp's default is 10000): mirror that.
            extra_kv={"attention.sliding_window": (8, VT.UINT32)}),
]



def _exact(v: Variant, **kw) -> Variant:
    """An "-f32" twin of `v`: every weight F32 except a tied embedding (F16, to stay small).

    llama.cpp quantizes activations inside quantized matmuls (and rounds them to F16 for F16
    weights), which moves log-probs by up to ~1 nat on the mixed-type variants; with F32 weights
    its results are within ~0.02 nat of exact arithmetic, so these twins allow tight tolerances."""
    types = {k: F32 for k in v.types}
    if v.tied:
        types["embd"] = F16
    return dataclasses.replace(v, name=v.name + "-f32", types=types, **kw)


VARIANTS += [
    _exact(VARIANTS[0], n_embd=64),                    # llama2-f32: untied, F32 embd + output
    _exact(VARIANTS[1], n_embd=48),                    # llama3-f32
    _exact(VARIANTS[2], n_embd=48, n_head=3, n_head_kv=1),  # qwen2-f32 (qwen2 needs n_head*head_dim == n_embd)
    _exact(VARIANTS[3], n_embd=48),                    # qwen3-f32
    _exact(VARIANTS[4], n_embd=64, n_head=2, n_head_kv=1),  # phi3-f32: untied, F32 embd + output
    _exact(VARIANTS[5], n_embd=32, n_ff=96),           # gemma3-tiny-f32
]
# gemma3 with final logit soft-capping (Gemma 2 style `final_logit_softcapping`, which
# llama.cpp's gemma3 graph applies when the key is present); a small cap so it matters.
VARIANTS.append(dataclasses.replace(
    VARIANTS[-1], name="gemma3-softcap-f32",
    extra_kv={**VARIANTS[-1].extra_kv, "final_logit_softcapping": (200.0, VT.FLOAT32)}))

# ---------------------------------------------------------------------------------------------
# deterministic weights

def _mix64(z: np.ndarray) -> np.ndarray:
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def uniform(tag: str, shape: tuple[int, ...]) -> np.ndarray:
    """float32 values uniform in [-1, 1), a pure function of (tag, element index)."""
    seed = int.from_bytes(hashlib.sha256(tag.encode()).digest()[:8], "little")
    n = int(np.prod(shape))
    with np.errstate(over="ignore"):
        z = np.arange(n, dtype=np.uint64) * np.uint64(0x9E3779B97F4A7C15) + np.uint64(seed)
        z = _mix64(z)
    u = (z >> np.uint64(11)).astype(np.float64) * (1.0 / (1 << 53))
    return (2.0 * u - 1.0).astype(np.float32).reshape(shape)


SQRT3 = math.sqrt(3.0)


def linear(tag: str, n_out: int, n_in: int, gain: float = 1.0) -> np.ndarray:
    """numpy shape (n_out, n_in) == GGUF ne [n_in, n_out]; std gain/sqrt(n_in)."""
    return uniform(tag, (n_out, n_in)) * np.float32(gain * SQRT3 / math.sqrt(n_in))


def norm_w(tag: str, n: int, center: float = 1.0) -> np.ndarray:
    return (np.float32(center) + np.float32(0.1 * center) * uniform(tag, (n,))).astype(np.float32)


def llama3_rope_freqs(base: float, dim: int, factor: float = 8.0, low_freq_factor: float = 1.0,
                      high_freq_factor: float = 4.0, old_context_len: int = 8192) -> np.ndarray:
    """Same computation as llama.cpp's convert_hf_to_gguf.py LlamaModel.generate_extra_tensors
    (conversion/llama.py) for rope_type "llama3"; float32 like torch there."""
    freqs = 1.0 / (np.float32(base) ** (np.arange(0, dim, 2, dtype=np.float32) / np.float32(dim)))
    low_freq_wavelen = old_context_len / low_freq_factor
    high_freq_wavelen = old_context_len / high_freq_factor
    out = []
    for freq in freqs.astype(np.float32):
        wavelen = 2 * math.pi / float(freq)
        if wavelen < high_freq_wavelen:
            out.append(1.0)
        elif wavelen > low_freq_wavelen:
            out.append(factor)
        else:
            smooth = (old_context_len / wavelen - low_freq_factor) / (high_freq_factor - low_freq_factor)
            out.append(1.0 / ((1 - smooth) / factor + smooth))
    return np.array(out, dtype=np.float32)


# ---------------------------------------------------------------------------------------------
# writing

_SCALAR = {VT.UINT8: "<B", VT.INT8: "<b", VT.UINT16: "<H", VT.INT16: "<h", VT.UINT32: "<I", VT.INT32: "<i",
           VT.FLOAT32: "<f", VT.BOOL: "<?", VT.UINT64: "<Q", VT.INT64: "<q", VT.FLOAT64: "<d"}
_NP = {VT.UINT8: "<u1", VT.INT8: "<i1", VT.UINT16: "<u2", VT.INT16: "<i2", VT.UINT32: "<u4", VT.INT32: "<i4",
       VT.FLOAT32: "<f4", VT.BOOL: "?", VT.UINT64: "<u8", VT.INT64: "<i8", VT.FLOAT64: "<f8"}


def read_kv(path: Path) -> dict[str, tuple]:
    """Minimal GGUF v2/v3 metadata reader: {key: (value, type, sub_type)}; strings stay bytes.

    (gguf.GGUFReader builds numpy views per array element and takes ~20 s on a 262k-token
    vocabulary; this takes well under a second.)"""
    data = memoryview(path.read_bytes())
    if bytes(data[:4]) != b"GGUF":
        raise SystemExit(f"{path}: not a GGUF file")
    version, _n_tensors, n_kv = struct.unpack_from("<IQQ", data, 4)
    if version not in (2, 3):
        raise SystemExit(f"{path}: unsupported GGUF version {version}")
    off = 24
    out: dict[str, tuple] = {}

    def string() -> bytes:
        nonlocal off
        (n,) = struct.unpack_from("<Q", data, off)
        s = bytes(data[off + 8: off + 8 + n])
        off += 8 + n
        return s

    for _ in range(n_kv):
        key = string().decode()
        (t,) = struct.unpack_from("<I", data, off)
        off += 4
        t = VT(t)
        if t == VT.STRING:
            out[key] = (string(), t, None)
        elif t == VT.ARRAY:
            sub, n = struct.unpack_from("<IQ", data, off)
            off += 12
            sub = VT(sub)
            if sub == VT.STRING:
                out[key] = ([string() for _ in range(n)], t, sub)
            elif sub in _NP:
                arr = np.frombuffer(data, dtype=_NP[sub], count=n, offset=off)
                off += arr.nbytes
                out[key] = (arr.tolist(), t, sub)
            else:
                raise SystemExit(f"{path}: {key}: nested arrays are not supported")
        else:
            (v,) = struct.unpack_from(_SCALAR[t], data, off)
            off += struct.calcsize(_SCALAR[t])
            out[key] = (v, t, None)
    return out


def copy_tokenizer(w: gguf.GGUFWriter, src: Path) -> int:
    """Copy every tokenizer.* key of `src` into `w` verbatim; returns the vocabulary size."""
    n_vocab = None
    for key, (val, t, sub) in read_kv(src).items():
        if not key.startswith("tokenizer."):
            continue
        w.add_key_value(key, val, t, sub)
        if key == "tokenizer.ggml.tokens":
            n_vocab = len(val)
    if n_vocab is None:
        raise SystemExit(f"{src}: no tokenizer.ggml.tokens")
    return n_vocab


def add(w: gguf.GGUFWriter, name: str, data: np.ndarray, qtype: Q) -> None:
    data = np.ascontiguousarray(data, dtype=np.float32)
    if qtype == F32:
        w.add_tensor(name, data)
    elif qtype == F16:
        w.add_tensor(name, data.astype(np.float16))
    else:
        w.add_tensor(name, quantize(data, qtype), raw_dtype=qtype)


def write_variant(v: Variant, out: Path, vocab_dir: Path, gemma_model: Path) -> Path:
    path = out / f"{v.name}.gguf"
    w = gguf.GGUFWriter(path, v.arch)
    a = v.arch
    w.add_string("general.name", f"pith-test-{v.name}")
    w.add_uint32(f"{a}.context_length", CONTEXT_LENGTH)
    w.add_uint32(f"{a}.embedding_length", v.n_embd)
    w.add_uint32(f"{a}.block_count", v.n_layer)
    w.add_uint32(f"{a}.feed_forward_length", v.n_ff)
    w.add_uint32(f"{a}.attention.head_count", v.n_head)
    w.add_uint32(f"{a}.attention.head_count_kv", v.n_head_kv)
    w.add_uint32(f"{a}.attention.key_length", v.head_dim)
    w.add_uint32(f"{a}.attention.value_length", v.head_dim)
    w.add_float32(f"{a}.attention.layer_norm_rms_epsilon", v.rms_eps)
    w.add_float32(f"{a}.rope.freq_base", v.rope_base)
    w.add_uint32(f"{a}.rope.dimension_count", v.head_dim)
    for k, (val, vt) in v.extra_kv.items():
        w.add_key_value(f"{a}.{k}", val, vt)

    src = gemma_model if v.vocab == "GEMMA" else vocab_dir / v.vocab
    if not src.is_file():
        hint = ("the real Gemma 3 270M model (CI fetches it)" if v.vocab == "GEMMA" else
                "llama.cpp's models/ directory (copied by tests/golden/tokenizer/make_golden.py); "
                "pass --vocab-dir to read it elsewhere")
        raise SystemExit(f"{v.name}: tokenizer source not found: {src} -- it comes from {hint}")
    n_vocab = copy_tokenizer(w, src)

    t = v.types
    E, H, KV, D, FF = v.n_embd, v.n_head, v.n_head_kv, v.head_dim, v.n_ff
    tag = lambda name: f"{v.name}/{name}"  # noqa: E731

    emb = uniform(tag("token_embd.weight"), (n_vocab, E)) * np.float32(v.emb_rms * SQRT3)
    add(w, "token_embd.weight", emb, t["embd"])
    if v.tied:
        out_rms = v.emb_rms
    else:
        out_w = linear(tag("output.weight"), n_vocab, E)
        out_rms = 1.0 / math.sqrt(E)
        add(w, "output.weight", out_w, t["output"])
    # logits = W_out . (norm(x) * g): std over the vocab ~ sqrt(E) * out_rms * g
    g = LOGIT_STD / (math.sqrt(E) * out_rms)
    add(w, "output_norm.weight", norm_w(tag("output_norm.weight"), E, g), F32)

    if v.llama3_rope:
        add(w, "rope_freqs.weight", llama3_rope_freqs(v.rope_base, D), F32)

    for i in range(v.n_layer):
        b = f"blk.{i}."
        add(w, b + "attn_norm.weight", norm_w(tag(b + "attn_norm.weight"), E), F32)
        if a == "phi3":
            qkv = np.concatenate([linear(tag(b + "attn_q"), H * D, E, 1.5), linear(tag(b + "attn_k"), KV * D, E, 1.5),
                                  linear(tag(b + "attn_v"), KV * D, E)], axis=0)
            add(w, b + "attn_qkv.weight", qkv, t["qkv"])
        else:
            add(w, b + "attn_q.weight", linear(tag(b + "attn_q.weight"), H * D, E, 1.5), t["q"])
            add(w, b + "attn_k.weight", linear(tag(b + "attn_k.weight"), KV * D, E, 1.5), t["k"])
            add(w, b + "attn_v.weight", linear(tag(b + "attn_v.weight"), KV * D, E), t["v"])
        if a == "qwen2":
            for n, d in (("attn_q.bias", H * D), ("attn_k.bias", KV * D), ("attn_v.bias", KV * D)):
                add(w, b + n, np.float32(0.5) * uniform(tag(b + n), (d,)), F32)
        if a in ("qwen3", "gemma3"):
            add(w, b + "attn_q_norm.weight", norm_w(tag(b + "attn_q_norm.weight"), D), F32)
            add(w, b + "attn_k_norm.weight", norm_w(tag(b + "attn_k_norm.weight"), D), F32)
        add(w, b + "attn_output.weight", linear(tag(b + "attn_output.weight"), E, H * D), t["o"])
        if a == "gemma3":
            add(w, b + "post_attention_norm.weight", norm_w(tag(b + "post_attention_norm.weight"), E), F32)
        add(w, b + "ffn_norm.weight", norm_w(tag(b + "ffn_norm.weight"), E), F32)
        if a == "phi3":
            up = np.concatenate([linear(tag(b + "ffn_gate"), FF, E), linear(tag(b + "ffn_up"), FF, E)], axis=0)
            add(w, b + "ffn_up.weight", up, t["up"])  # rows [0, FF) = gate (silu), [FF, 2FF) = up
        else:
            add(w, b + "ffn_gate.weight", linear(tag(b + "ffn_gate.weight"), FF, E), t["gate"])
            add(w, b + "ffn_up.weight", linear(tag(b + "ffn_up.weight"), FF, E), t["up"])
        add(w, b + "ffn_down.weight", linear(tag(b + "ffn_down.weight"), E, FF, 2.0), t["down"])
        if a == "gemma3":
            add(w, b + "post_ffw_norm.weight", norm_w(tag(b + "post_ffw_norm.weight"), E), F32)

    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def main() -> None:
    pith_home = Path(os.environ.get("PITH_HOME", Path.home() / ".cache/pith"))
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out_dir", type=Path)
    ap.add_argument("--only", nargs="*", default=None, help="variant names (default: all)")
    ap.add_argument("--vocab-dir", type=Path, default=ROOT / "tests/golden/vocab")
    ap.add_argument("--gemma-model", type=Path, default=pith_home / "models/gemma-3-270m-q4_k_m.gguf")
    a = ap.parse_args()
    a.out_dir.mkdir(parents=True, exist_ok=True)
    names = {v.name for v in VARIANTS}
    for n in a.only or []:
        if n not in names:
            raise SystemExit(f"unknown variant {n!r}; known: {sorted(names)}")
    for v in VARIANTS:
        if a.only and v.name not in a.only:
            continue
        p = write_variant(v, a.out_dir, a.vocab_dir, a.gemma_model)
        print(f"{p}  {p.stat().st_size} bytes", file=sys.stderr)


if __name__ == "__main__":
    main()
