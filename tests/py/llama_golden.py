"""Shared helper: record reference outputs from llama.cpp's `llama-server`.

Used by tests/golden/logits/make_gemma3_golden.py and tests/golden/arch/make_arch_golden.py.
Only the Python standard library is needed here (urllib, subprocess).

What is recorded for one prompt (all from llama.cpp, nothing computed here):
  * prompt_ids   -- POST /tokenize {"content": prompt, "add_special": true} (BOS added as the
                    model's metadata says; llama.cpp's own tokenizer)
  * top          -- next-token top-k after the prompt: [[token_id, logprob], ...] where logprob is
                    the natural-log softmax of the RAW logits over the full vocabulary
                    (server `get_token_probabilities`, `post_sampling_probs: false`)
  * greedy_ids   -- greedy continuation: the sampler chain is only `temperature` with temp 0,
                    which llama.cpp implements as argmax of the logits (first index on ties);
                    no penalties, no top-k/p, no DRY. Generation stops early at an end-of-generation
                    token (then `stop_eos` is true and greedy_ids is shorter than n_predict; the
                    EOG token itself is the last element of greedy_ids).
  * greedy_top   -- for each greedy step, the top-k [[id, logprob], ...] of that step's raw logits.
                    llama-server leaves out of completion_probabilities any token that ends the text
                    in an incomplete UTF-8 sequence (a byte-fallback / partial-character token); such
                    steps are re-queried over prompt + greedy_ids[:i] in one batch (see
                    _requery_step) and listed in `greedy_top_requeried_steps` (key absent if none).

The prompt is sent to /completion as the token-id array from /tokenize, so the evaluated
prompt is exactly `prompt_ids` (the server does not add BOS to an id array).
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

DEFAULT_BIN = Path(os.environ.get("LLAMA_CPP_HOME", Path.home() / ".cache/llama-cpp-anchor")) / "bin"


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def server_args(model: str | Path, threads: int, ctx: int, port: int | str, fa: str = "off") -> list[str]:
    """The exact llama-server flags used for every golden file (printed into the JSON).

    Flash attention is OFF for the recorded goldens: llama.cpp's CPU flash-attention kernel
    accumulates V in F16 and splits the KV range across threads for single-token decode, so
    with long contexts its results depend on -t (measured: up to ~0.4 nat on a tail log-prob
    and a flipped greedy choice on Gemma 3 at ~700 tokens). With -fa off the results were
    bit-identical for -t 1 and -t 2."""
    return [
        "-m", str(model),
        "-t", str(threads), "-tb", str(threads),
        "-c", str(ctx),
        "-fa", fa,
        "-np", "1",               # one slot: the whole context belongs to our single request
        "--no-cache-prompt",      # never reuse KV from a previous request
        "-cram", "0",             # no host-memory prompt cache either
        "--temp", "0",
        "--host", "127.0.0.1", "--port", str(port),
    ]


def _post(url: str, body: dict, timeout: float = 600.0) -> dict:
    data = json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return json.loads(r.read())


class LlamaServer:
    """A llama-server child process; use as a context manager."""

    def __init__(self, model: str | Path, threads: int = 2, ctx: int = 2048, bin_dir: Path = DEFAULT_BIN,
                 log_path: str | Path | None = None, fa: str = "off"):
        self.port = free_port()
        self.exe = str(Path(bin_dir) / "llama-server")
        self.args = server_args(model, threads, ctx, self.port, fa)
        self.base = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        self.proc: subprocess.Popen | None = None
        self.log_text = ""

    def __enter__(self) -> "LlamaServer":
        if not os.access(self.exe, os.X_OK):
            raise SystemExit(f"llama-server not found at {self.exe} (build it with shared/tools/build-llama-cpp.sh)")
        self._log = open(self.log_path, "w") if self.log_path else subprocess.DEVNULL
        self.proc = subprocess.Popen([self.exe, *self.args], stdout=self._log, stderr=subprocess.STDOUT)
        deadline = time.time() + 300
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"llama-server exited with {self.proc.returncode}; see {self.log_path}")
            try:
                with urllib.request.urlopen(self.base + "/health", timeout=5) as r:
                    if r.status == 200:
                        return self
            except (urllib.error.URLError, ConnectionError, OSError):
                pass
            time.sleep(0.3)
        raise RuntimeError("llama-server did not become healthy in 300 s")

    def __exit__(self, *exc) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.log_path:
            self._log.close()

    def props(self) -> dict:
        with urllib.request.urlopen(self.base + "/props", timeout=30) as r:
            return json.loads(r.read())

    def tokenize(self, text: str) -> list[int]:
        return _post(self.base + "/tokenize", {"content": text, "add_special": True, "parse_special": True})["tokens"]

    def detokenize(self, ids: list[int]) -> str:
        return _post(self.base + "/detokenize", {"tokens": ids})["content"]

    def complete(self, ids: list[int], n_predict: int, n_probs: int, **extra) -> dict:
        body = {
            "prompt": ids,
            "n_predict": n_predict,
            "temperature": 0.0,
            "samplers": ["temperature"],  # temp 0 => argmax; nothing else in the chain
            "n_probs": n_probs,
            "post_sampling_probs": False,  # logprobs of the raw logits, full vocabulary
            "cache_prompt": False,
            "return_tokens": True,
            "stream": False,
            "seed": 0,
            **extra,
        }
        return _post(self.base + "/completion", body)


def _requery_step(srv: LlamaServer, name: str, ctx_ids: list[int], want: int, n_probs: int) -> list[dict]:
    """Distribution of the raw logits after `ctx_ids`, for a step whose probabilities the server
    dropped (it drops tokens that leave an incomplete UTF-8 sequence in the text). The greedy token
    is banned with logit_bias so that a complete token gets sampled and reported; the reported
    top_logprobs come from the raw logits (bias is applied only in the sampler), so the banned
    token is still listed first with its true log-prob; checked."""
    banned = [want]
    for _ in range(8):
        body_extra = {"logit_bias": [[t, False] for t in banned]}
        res = srv.complete(ctx_ids, 1, n_probs, **body_extra)
        steps = res["completion_probabilities"]
        if steps:
            top = steps[0]["top_logprobs"]
            if top[0]["id"] != want:
                raise RuntimeError(f"{name}: re-query: raw top-1 {top[0]['id']} != greedy {want}")
            return top
        banned.append(res["tokens"][0])  # that one was incomplete UTF-8 too
    raise RuntimeError(f"{name}: re-query for {want} kept sampling incomplete UTF-8 tokens")


def record(srv: LlamaServer, name: str, prompt: str, n_predict: int, n_top: int, n_step_top: int) -> dict:
    """Record one golden case (see module docstring)."""
    ids = srv.tokenize(prompt)
    n_probs = max(n_top, n_step_top)
    res = srv.complete(ids, n_predict, n_probs)
    evaluated = res.get("tokens_evaluated", res.get("timings", {}).get("prompt_n"))
    if evaluated is not None and evaluated != len(ids):
        raise RuntimeError(f"{name}: server evaluated {evaluated} prompt tokens, expected {len(ids)}")
    steps = res["completion_probabilities"]
    greedy_ids = list(res["tokens"])  # every generated token, in order (return_tokens)
    # completion_probabilities is a subsequence of greedy_ids: align, re-query the gaps
    tops: list[list[dict] | None] = []
    j = 0
    for t in greedy_ids:
        if j < len(steps) and steps[j]["id"] == t:
            tops.append(steps[j]["top_logprobs"])
            j += 1
        else:
            tops.append(None)
    if j != len(steps):
        raise RuntimeError(f"{name}: probs ids {[s['id'] for s in steps]} are not a subsequence of {greedy_ids}")
    requeried = [i for i, t in enumerate(tops) if t is None]
    for i in requeried:
        tops[i] = _requery_step(srv, name, ids + greedy_ids[:i], greedy_ids[i], n_probs)
    for i, (t, top) in enumerate(zip(greedy_ids, tops)):
        # greedy = argmax of the raw logits: the chosen id must be the raw top-1
        if top[0]["id"] != t:
            raise RuntimeError(f"{name}: step {i}: sampled {t} but raw top-1 is {top[0]['id']}")

    def pairs(top: list[dict], k: int) -> list[list]:
        return [[x["id"], x["logprob"]] for x in top[:k]]

    case = {
        "name": name,
        "prompt": prompt,
        "prompt_ids": ids,
        "top": pairs(tops[0], n_top),
        "greedy_ids": greedy_ids,
        "greedy_text": srv.detokenize(greedy_ids),
        "stop_eos": res.get("stop_type") == "eos",
        "greedy_top": [pairs(top, n_step_top) for top in tops],
    }
    if requeried:
        # these steps' distributions came from a fresh request over prompt + greedy_ids[:i]
        # (one batch) instead of the incremental decode; see _requery_step
        case["greedy_top_requeried_steps"] = requeried
    return case


def record_all(model: str | Path, cases: list[tuple[str, str]], n_predict: int, n_top: int, n_step_top: int,
               threads: int, ctx: int, bin_dir: Path = DEFAULT_BIN, fa: str = "off",
               log_path: str | Path | None = None) -> tuple[list[dict], dict]:
    """Start one server, record every (name, prompt) case; returns (cases, /props)."""
    with LlamaServer(model, threads=threads, ctx=ctx, bin_dir=bin_dir, log_path=log_path, fa=fa) as srv:
        out = [record(srv, name, prompt, n_predict, n_top, n_step_top) for name, prompt in cases]
        return out, srv.props()


def compare_runs(a: list[dict], b: list[dict]) -> dict:
    """Compare two recordings of the same cases (e.g. -t 1 vs -t 2).

    Log-prob differences are measured only over steps whose context is identical in both runs
    (up to and including the first step where the greedy choice differs)."""
    per_case = []
    for ca, cb in zip(a, b, strict=True):
        if ca["prompt_ids"] != cb["prompt_ids"]:
            per_case.append({"name": ca["name"], "same_prompt_ids": False})
            continue
        ga, gb = ca["greedy_ids"], cb["greedy_ids"]
        diverge = next((i for i, (x, y) in enumerate(zip(ga, gb)) if x != y), None)
        if diverge is None and len(ga) != len(gb):
            diverge = min(len(ga), len(gb))
        n_cmp = len(ga) if diverge is None else diverge + 1
        max_diff, top_ids_same = 0.0, True
        for ta, tb in zip(ca["greedy_top"][:n_cmp], cb["greedy_top"][:n_cmp]):
            top_ids_same &= [t[0] for t in ta] == [t[0] for t in tb]
            for x, y in zip(ta, tb):
                if x[0] == y[0]:
                    max_diff = max(max_diff, abs(x[1] - y[1]))
        first = [t[0] for t in ca["top"]] == [t[0] for t in cb["top"]]
        for x, y in zip(ca["top"], cb["top"]):
            if x[0] == y[0]:
                max_diff = max(max_diff, abs(x[1] - y[1]))
        per_case.append({"name": ca["name"], "same_prompt_ids": True, "same_next_top": first,
                         "greedy_first_divergence": diverge, "same_step_top_ids": top_ids_same,
                         "max_abs_logprob_diff": max_diff})
    same = all(c.get("same_prompt_ids") and c["same_next_top"] and c["greedy_first_divergence"] is None
               for c in per_case)
    return {"same_token_ids": same,
            "max_abs_logprob_diff": max((c.get("max_abs_logprob_diff", 0.0) for c in per_case), default=0.0),
            "cases": per_case}


def margin_stats(cases: list[dict]) -> dict:
    """top-1 minus top-2 log-prob over every recorded step (how peaked the distributions are)."""
    margins = []
    for c in cases:
        for t in [c["top"], *c["greedy_top"]]:
            if len(t) >= 2:
                margins.append(t[0][1] - t[1][1])
    margins.sort()
    n = len(margins)
    return {
        "steps": n,
        "min": margins[0],
        "median": margins[n // 2],
        "frac_below_0.1": sum(m < 0.1 for m in margins) / n,
        "frac_below_0.01": sum(m < 0.01 for m in margins) / n,
    }


def dumps_golden(obj: dict) -> str:
    """JSON text with one line per top-level key and per case field (readable diffs, valid JSON)."""
    def one(v) -> str:
        return json.dumps(v, ensure_ascii=False)

    lines = ["{"]
    keys = list(obj)
    for i, k in enumerate(keys):
        comma = "," if i + 1 < len(keys) else ""
        v = obj[k]
        if k == "cases":
            lines.append(f' {one(k)}: [')
            for j, c in enumerate(v):
                lines.append("  {")
                ck = list(c)
                for m, f in enumerate(ck):
                    lines.append(f"   {one(f)}: {one(c[f])}" + ("," if m + 1 < len(ck) else ""))
                lines.append("  }" + ("," if j + 1 < len(v) else ""))
            lines.append(" ]" + comma)
        else:
            lines.append(f" {one(k)}: {one(v)}{comma}")
    lines.append("}")
    text = "\n".join(lines) + "\n"
    assert json.loads(text) == json.loads(json.dumps(obj))
    return text
