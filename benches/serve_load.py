#!/usr/bin/env python3
"""Side-by-side load comparison: `pith serve` vs llama.cpp's `llama-server`.

Usage:
    cargo build --release
    python3 benches/serve_load.py [--model PATH] [--threads 2] [--parallel 4] [--tokens 128]
        [--pith target/release/pith] [--llama-server ~/.cache/llama-cpp-anchor/bin/llama-server]
        [--repeat 3] [--json OUT]

For each server, on the same model, threads and parallel slots (each slot `--ctx`
tokens: pith `--ctx C --parallel P`, llama-server `-c C*P -np P`), it measures

- **ready**: seconds from process start to the first `GET /health` answering 200;
- **single**: generation tok/s of one stream (`POST /v1/completions`, streamed,
  `ignore_eos`, greedy, `--tokens` tokens): tokens after the first / time from the first
  to the last token, best of `--repeat`;
- **aggregate@P**: tokens per second of `--parallel` concurrent streams of `--tokens`
  tokens each, wall clock from sending to the last token (prefill included), best of
  `--repeat`.

Only the standard library is used. The machine should be otherwise idle: the figures
are absolute; compare the two servers as ratios from one run.
"""

import argparse
import http.client
import json
import os
import socket
import subprocess
import sys
import threading
import time

PROMPT = "Once upon a time, in a small village by the sea, there lived"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def health(port):
    try:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
        c.request("GET", "/health")
        return c.getresponse().status
    except OSError:
        return 0


def stream(port, tokens, out):
    """One streamed completion; appends (t_send, [token arrival times], n_tokens) to out."""
    body = json.dumps({"prompt": PROMPT, "max_tokens": tokens, "temperature": 0, "ignore_eos": True,
                       "stream": True, "stream_options": {"include_usage": True}})
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    t_send = time.monotonic()
    c.request("POST", "/v1/completions", body, {"Content-Type": "application/json"})
    r = c.getresponse()
    if r.status != 200:
        raise RuntimeError(f"HTTP {r.status}: {r.read()[:200]!r}")
    times, n_usage = [], None
    for raw in r:
        line = raw.decode("utf-8", "replace").strip()
        if not line.startswith("data: "):
            continue
        data = line[6:]
        if data == "[DONE]":
            break
        msg = json.loads(data)
        if msg.get("usage"):
            n_usage = msg["usage"]["completion_tokens"]
        if msg.get("choices") and msg["choices"][0].get("text"):
            times.append(time.monotonic())
    out.append((t_send, times, n_usage if n_usage is not None else len(times)))


def measure(name, cmd, port, args):
    print(f"\n== {name}: {' '.join(cmd)}", flush=True)
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while health(port) != 200:
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited with {proc.returncode}")
            if time.monotonic() - t0 > 120:
                raise RuntimeError(f"{name} not ready after 120 s")
            time.sleep(0.01)
        ready = time.monotonic() - t0
        print(f"ready in {ready:.2f} s", flush=True)
        # Warm-up (page cache, first-request allocations).
        stream(port, 8, [])

        single = 0.0
        for _ in range(args.repeat):
            out = []
            stream(port, args.tokens, out)
            _, times, n = out[0]
            if len(times) >= 2:
                single = max(single, (len(times) - 1) / (times[-1] - times[0]))
        print(f"single stream: {single:.1f} tok/s", flush=True)

        agg = 0.0
        for _ in range(args.repeat):
            out = []
            threads = [threading.Thread(target=stream, args=(port, args.tokens, out))
                       for _ in range(args.parallel)]
            t_start = time.monotonic()
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            if len(out) != args.parallel:
                raise RuntimeError(f"{name}: {args.parallel - len(out)} streams failed")
            t_end = max(times[-1] for _, times, _ in out if times)
            total = sum(n for _, _, n in out)
            agg = max(agg, total / (t_end - t_start))
        print(f"aggregate at {args.parallel} streams: {agg:.1f} tok/s", flush=True)
        return {"ready_s": ready, "single_tps": single, "aggregate_tps": agg}
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def main():
    home = os.environ.get("PITH_HOME", os.path.expanduser("~/.cache/pith"))
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=os.path.join(home, "models/gemma-3-270m-q4_k_m.gguf"))
    ap.add_argument("--pith", default="target/release/pith")
    ap.add_argument("--llama-server", default=os.path.expanduser("~/.cache/llama-cpp-anchor/bin/llama-server"))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--parallel", type=int, default=4)
    ap.add_argument("--ctx", type=int, default=1024, help="context per slot")
    ap.add_argument("--tokens", type=int, default=128)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--only", choices=["pith", "llama"], help="measure one server only")
    ap.add_argument("--json", help="write the figures here")
    args = ap.parse_args()
    for p in (args.model, args.pith) + (() if args.only == "pith" else (args.llama_server,)):
        if not os.path.exists(p):
            sys.exit(f"missing: {p}")

    results = {}
    if args.only != "llama":
        port = free_port()
        results["pith"] = measure("pith serve", [
            args.pith, "serve", "-m", args.model, "--port", str(port), "--threads", str(args.threads),
            "--parallel", str(args.parallel), "--ctx", str(args.ctx)], port, args)
    if args.only != "pith":
        port = free_port()
        results["llama-server"] = measure("llama-server", [
            args.llama_server, "-m", args.model, "--host", "127.0.0.1", "--port", str(port),
            "-t", str(args.threads), "-tb", str(args.threads), "-np", str(args.parallel),
            "-c", str(args.ctx * args.parallel), "--no-cache-prompt"], port, args)

    print(f"\n| {args.threads} threads, {args.parallel} slots, {args.tokens} tokens | ready (s) | single (tok/s) "
          f"| aggregate@{args.parallel} (tok/s) |")
    print("|---|---|---|---|")
    for name, r in results.items():
        print(f"| {name} | {r['ready_s']:.2f} | {r['single_tps']:.1f} | {r['aggregate_tps']:.1f} |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"args": vars(args), "results": results}, f, indent=1)


if __name__ == "__main__":
    main()
