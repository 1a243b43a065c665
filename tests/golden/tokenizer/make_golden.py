#!/usr/bin/env python3
"""Regenerates pith's tokenizer golden files with llama.cpp (the reference).

Outputs (next to this script, and in ../vocab):
  gemma3.jsonl   one JSON object per line: text, add_special, parse_special, ids (from
                 llama.cpp's `llama-tokenize`), detok / detok_special (llama.cpp's
                 common_detokenize of those ids with special = false / true).
  ../vocab/ggml-vocab-*.gguf{,.inp,.out}  copied from llama.cpp's models/ directory.
  ../vocab/ggml-vocab-*.gguf.detok        common_detokenize of each .out line, one JSON
                 object per line: {"detok": ..., "detok_special": ...}.

Texts are passed on stdin with `--no-escape`, so they reach the tokenizer byte for byte:
  llama-tokenize -m MODEL --stdin --ids --log-disable --no-escape [--no-bos] [--no-parse-special]
`--no-bos` gives add_special = false (llama-tokenize passes add_special = model_add_bos &&
!no_bos to common_tokenize); parse_special defaults to true in llama-tokenize.

Detokenization uses detok.cpp, compiled here against llama.cpp's static libraries.

  bpe_special.jsonl  like gemma3.jsonl plus "vocab", for chat-template text (special
                 tokens, BOS) on the gpt-2, llama-bpe and qwen2 vocabularies.

  vocab_meta.json  per vocabulary, from llama-tokenize's verbose load log (-v): the special
                 ids it prints (BOS, EOS, EOT, EOM, UNK, SEP, PAD), the EOG set, and the
                 size of the special-token cache.

Usage: python3 tests/golden/tokenizer/make_golden.py [gemma] [vocab] [bpe-special] [meta]
       (no argument: all)
Environment: LLAMA_CPP_BIN (default ~/.cache/llama-cpp-anchor/bin),
             LLAMA_CPP_SRC (default ~/.cache/llama-cpp-anchor/src/llama_cpp_python-0.3.36/vendor/llama.cpp),
             PITH_HOME (default ~/.cache/pith; the model is $PITH_HOME/models/gemma-3-270m-q4_k_m.gguf).
"""
import json
import os
import shutil
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
VOCAB_DIR = os.path.normpath(os.path.join(HERE, "..", "vocab"))
BIN = os.environ.get("LLAMA_CPP_BIN", os.path.expanduser("~/.cache/llama-cpp-anchor/bin"))
SRC = os.environ.get("LLAMA_CPP_SRC", os.path.expanduser(
    "~/.cache/llama-cpp-anchor/src/llama_cpp_python-0.3.36/vendor/llama.cpp"))
PITH_HOME = os.environ.get("PITH_HOME", os.path.expanduser("~/.cache/pith"))
MODEL = os.path.join(PITH_HOME, "models", "gemma-3-270m-q4_k_m.gguf")
TOKENIZE = os.path.join(BIN, "llama-tokenize")
DETOK = os.path.join("/tmp", "pith-golden-detok")

# Vocabularies whose llama.cpp test vectors pith must reproduce.
VOCABS = ["gpt-2", "llama-bpe", "qwen2", "llama-spm", "phi-3", "starcoder", "falcon",
          "deepseek-llm", "deepseek-coder", "mpt", "refact", "qwen35"]

GEMMA_TEXTS = [
    "",
    "Hello world",
    " Hello world",
    "Hello world ",
    "  two leading spaces",
    "trailing spaces   ",
    "multiple     spaces    inside",
    "     ",
    "a",
    "tab\tseparated\tvalues\t",
    "line one\nline two\n\nline four",
    "\n\n\n",
    "\r\nWindows line\r\n",
    "日本語のテキストです。",
    "中文分词测试：你好，世界！",
    "한국어 문장입니다.",
    "I love 🦙 and 🐍!",
    "👨\u200d👩\u200d👧\u200d👦 family",
    "🇫🇷🇯🇵 flags",
    "👍🏽 thumbs",
    "café naïve façade résumé Ångström",
    "decomposed e\u0301 and a\u0308",
    "مرحبا بالعالم",
    "שלום עולם",
    "fn main() {\n    println!(\"Hello, {}!\", name);\n}",
    "def f(x):\n\treturn x**2  # square",
    "1234567890",
    "3.14159 -42 1e10 0x1F 1,000,000",
    "<start_of_turn>user\nWhat is 2+2?<end_of_turn>\n<start_of_turn>model\n",
    "<bos>Hello",
    "<bos>",
    "<eos>",
    "text with <unused0> inside",
    "<start_of_image> and <end_of_image>",
    "[multimodal] tag",
    "<start_of_turn",
    "<end_of_turn><end_of_turn>",
    "Pneumonoultramicroscopicsilicovolcanoconiosis" + "supercalifragilisticexpialidocious" * 3,
    "a" * 300,
    "https://example.com/path?query=1&b=2#frag",
    "**bold** _italic_ `code` # Heading",
    "∑_{i=1}^{n} x_i ≤ ∞ ± √2",
    "Привет, как дела?",
    "Γειά σου Κόσμε",
    "สวัสดีครับ",
    "नमस्ते दुनिया",
    "Hello世界мир🌍",
    "bell\u0007 ctrl \u0001 del\u007f",
    "zero\u200bwidth\u200cnon\u200djoiner",
    "non\u00a0breaking\u3000ideographic",
    "“smart quotes” ‘single’ «guillemets» — dash…",
    "I'm can't won't y'all 'tis",
    "<div class=\"x\">text</div>",
    "{\"key\": [1, 2, 3], \"nested\": {\"a\": null}}",
    "𝔘𝔫𝔦𝔠𝔬𝔡𝔢 𓀀 𠜎 \U000F0000",
    "▁ literal lower one eighth block ▁▁",
    "C:\\path\\to\\file \\n not a newline",
]
# Chat-template text on BPE vocabularies (special tokens, BOS): bpe_special.jsonl.
BPE_SPECIAL = {
    "llama-bpe": ["<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHi there!<|eot_id|>",
                  "Hello<|eot_id|> world", "<|begin_of_text|>", "  spaced <|end_of_text|>\n"],
    "qwen2": ["<|im_start|>user\nWhat's 2+2?<|im_end|>\n<|im_start|>assistant\n",
              "<|endoftext|>", "x<|im_end|>y", " <|im_start|> "],
    "gpt-2": ["Hello<|endoftext|>World", "<|endoftext|>", " a <|endoftext|> b "],
}
# (add_special, parse_special) combinations run for every text.
MODES = [(True, True), (False, True), (True, False), (False, False)]


def need(path, what):
    if not os.path.exists(path):
        sys.exit(f"missing {what}: {path}")


def tokenize(model, text, add_special, parse_special):
    cmd = [TOKENIZE, "-m", model, "--stdin", "--ids", "--log-disable", "--no-escape"]
    if not add_special:
        cmd.append("--no-bos")
    if not parse_special:
        cmd.append("--no-parse-special")
    r = subprocess.run(cmd, input=text.encode("utf-8"), capture_output=True, check=True)
    line = r.stdout.decode().strip().splitlines()[-1]
    return json.loads(line)


def build_detok():
    cmd = ["g++", "-O1", "-std=c++17", os.path.join(HERE, "detok.cpp"),
           "-I", os.path.join(SRC, "include"), "-I", os.path.join(SRC, "ggml", "include"),
           os.path.join(SRC, "build", "src", "libllama.a"),
           os.path.join(SRC, "build", "ggml", "src", "libggml.a"),
           os.path.join(SRC, "build", "ggml", "src", "libggml-cpu.a"),
           os.path.join(SRC, "build", "ggml", "src", "libggml-base.a"),
           "-lpthread", "-fopenmp", "-ldl", "-lm", "-o", DETOK]
    subprocess.run(cmd, check=True)


def detokenize(model, id_lists):
    inp = "".join(" ".join(str(i) for i in ids) + "\n" for ids in id_lists)
    r = subprocess.run([DETOK, model], input=inp.encode(), capture_output=True, check=True)
    out = []
    for line in r.stdout.decode().splitlines():
        a, b = line.split(" ")
        dec = lambda h: "" if h == "-" else bytes.fromhex(h).decode("utf-8", errors="replace")
        out.append((dec(a), dec(b)))
    assert len(out) == len(id_lists)
    return out


def vocab_meta(model):
    """Special ids, EOG set and special-token count from llama.cpp's verbose load log."""
    r = subprocess.run([TOKENIZE, "-m", model, "--stdin", "--ids", "-v"], input=b"x",
                       capture_output=True, check=True)
    meta = {"eog": [], "special": {}}
    in_eog = False
    for line in r.stderr.decode("utf-8", errors="replace").splitlines():
        if "printing all EOG tokens" in line:
            in_eog = True
            continue
        if in_eog and "load:   - " in line:
            meta["eog"].append(int(line.split("load:   - ")[1].split()[0]))
            continue
        in_eog = False
        if "special tokens cache size = " in line:
            meta["special_cache_size"] = int(line.split("= ")[1])
        if "print_info: " in line and " token " in line and "= " in line:
            name = line.split("print_info: ")[1].split(" token")[0].strip()
            if name in ("BOS", "EOS", "EOT", "EOM", "UNK", "SEP", "PAD"):
                meta["special"][name.lower()] = int(line.split("= ")[1].split()[0])
    return meta


def make_meta():
    meta = {"gemma3": vocab_meta(MODEL)}
    for name in VOCABS:
        meta[name] = vocab_meta(os.path.join(SRC, "models", f"ggml-vocab-{name}.gguf"))
    with open(os.path.join(HERE, "vocab_meta.json"), "w", encoding="utf-8") as f:
        json.dump(meta, f, indent=1, sort_keys=True)
        f.write("\n")
    print(f"vocab_meta.json: {len(meta)} vocabularies")


def make_bpe_special():
    rows = []
    for name, texts in BPE_SPECIAL.items():
        path = os.path.join(SRC, "models", f"ggml-vocab-{name}.gguf")
        need(path, "llama.cpp vocab fixture")
        for text in texts:
            for add_special, parse_special in MODES:
                ids = tokenize(path, text, add_special, parse_special)
                rows.append({"vocab": name, "text": text, "add_special": add_special,
                             "parse_special": parse_special, "ids": ids})
        for row, (d, ds) in zip([r for r in rows if r["vocab"] == name],
                                detokenize(path, [r["ids"] for r in rows if r["vocab"] == name])):
            row["detok"] = d
            row["detok_special"] = ds
    with open(os.path.join(HERE, "bpe_special.jsonl"), "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    print(f"bpe_special.jsonl: {len(rows)} cases")


def main():
    sections = sys.argv[1:] or ["gemma", "vocab", "bpe-special", "meta"]
    need(TOKENIZE, "llama-tokenize")
    build_detok()
    if "bpe-special" in sections:
        make_bpe_special()
    if "gemma" in sections:
        make_gemma()
    if "vocab" in sections:
        make_vocab()
    if "meta" in sections:
        make_meta()


def make_gemma():
    need(MODEL, "Gemma 3 270M model")
    rows = []
    for text in GEMMA_TEXTS:
        for add_special, parse_special in MODES:
            ids = tokenize(MODEL, text, add_special, parse_special)
            rows.append({"text": text, "add_special": add_special, "parse_special": parse_special, "ids": ids})
    for row, (d, ds) in zip(rows, detokenize(MODEL, [r["ids"] for r in rows])):
        row["detok"] = d
        row["detok_special"] = ds
    with open(os.path.join(HERE, "gemma3.jsonl"), "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    print(f"gemma3.jsonl: {len(rows)} cases")


def make_vocab():
    os.makedirs(VOCAB_DIR, exist_ok=True)
    for name in VOCABS:
        base = f"ggml-vocab-{name}.gguf"
        src = os.path.join(SRC, "models", base)
        for ext in ("", ".inp", ".out"):
            need(src + ext, "llama.cpp vocab fixture")
            shutil.copyfile(src + ext, os.path.join(VOCAB_DIR, base + ext))
        with open(src + ".out", encoding="utf-8") as f:
            id_lists = [[int(t) for t in line.split()] for line in f.read().split("\n")[:-1]]
        with open(os.path.join(VOCAB_DIR, base + ".detok"), "w", encoding="utf-8") as f:
            for d, ds in detokenize(src, id_lists):
                f.write(json.dumps({"detok": d, "detok_special": ds}, ensure_ascii=False) + "\n")
        print(f"{base}: {len(id_lists)} cases")


if __name__ == "__main__":
    main()
