#!/usr/bin/env python3
"""Make llama_server_sampling.json: llama.cpp's sampler chain on real Gemma 3 logits.

For each prompt, llama-server is asked for one token twice:
  * `post_sampling_probs: false`: the top-N tokens by raw logit with their log-probs
    under the full softmax (`get_token_probabilities`), i.e. logits up to a constant;
  * `post_sampling_probs: true` under several sampler settings: the candidates left by
    llama.cpp's default chain (penalties -> top_k -> top_p -> min_p -> temperature ->
    dist) with their final probabilities.
pith's test feeds the first into its own sampler and compares with the second. Every
setting uses top_k <= N, so only the top-N logits matter.

Run (from the repo root), with llama.cpp's tools built into ~/.cache/llama-cpp-anchor/bin:
    python3 tests/golden/sampler/make_sampling_golden.py \
        ~/.cache/pith/models/gemma-3-270m-q4_k_m.gguf \
        tests/golden/sampler/llama_server_sampling.json
"""
import json
import os
import subprocess
import sys
import time
import urllib.request

N_PROBS = 200
PROMPTS = [
    "The capital of France is",
    "Once upon a time, in a small village,",
    "def fibonacci(n):\n",
    "Les fleurs du jardin sont",
]
# (temperature, top_k, top_p, min_p)
SETTINGS = [
    (0.8, 40, 0.95, 0.05),  # llama.cpp defaults
    (1.0, 100, 0.9, 0.0),
    (1.5, 200, 0.99, 0.01),
    (0.5, 20, 1.0, 0.1),
    (1.2, 50, 0.5, 0.0),
    (2.0, 200, 1.0, 0.0),
]


def post(port, body):
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}/completion",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=120) as r:
        return json.load(r)


def main():
    model, out = sys.argv[1], sys.argv[2]
    server = os.path.expanduser("~/.cache/llama-cpp-anchor/bin/llama-server")
    port = 18097
    proc = subprocess.Popen(
        [server, "-m", model, "--port", str(port), "-t", "2", "-c", "1024", "-np", "1"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(120):
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except Exception:
                time.sleep(0.5)
        cases = []
        for prompt in PROMPTS:
            base = {"prompt": prompt, "n_predict": 1, "n_probs": N_PROBS, "cache_prompt": False,
                    "seed": 1, "repeat_penalty": 1.0}
            pre = post(port, dict(base, post_sampling_probs=False, temperature=1.0))
            top = pre["completion_probabilities"][0]["top_logprobs"]
            case = {
                "prompt": prompt,
                "pre_sampling": [[t["id"], t["logprob"]] for t in top],
                "settings": [],
            }
            for (t, k, p, m) in SETTINGS:
                r = post(port, dict(base, post_sampling_probs=True, temperature=t, top_k=k,
                                    top_p=p, min_p=m))
                probs = r["completion_probabilities"][0]["top_probs"]
                case["settings"].append({
                    "temperature": t, "top_k": k, "top_p": p, "min_p": m,
                    "post_sampling": [[x["id"], x["prob"]] for x in probs],
                })
            cases.append(case)
        meta = {
            "made_by": "tests/golden/sampler/make_sampling_golden.py",
            "llama_server": subprocess.run([server, "--version"], capture_output=True,
                                           text=True).stderr.strip().splitlines()[-2:],
            "model": os.path.basename(model),
            "n_probs": N_PROBS,
        }
        with open(out, "w") as f:
            json.dump({"meta": meta, "cases": cases}, f, indent=1)
            f.write("\n")
    finally:
        proc.terminate()
        proc.wait()


if __name__ == "__main__":
    main()
