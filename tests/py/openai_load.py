#!/usr/bin/env python3
"""A bounded load test of `pith serve` with the official `openai` client (async).

Usage: python3 tests/py/openai_load.py --base-url http://127.0.0.1:PORT/v1 \
           [--clients 32] [--requests 4] [--max-tokens 8]

`clients` concurrent clients each send `requests` requests in turn (chat and
completions, streamed and not, short outputs), without retries. Passes when every
request succeeds, every slot is free and the queue empty afterwards, and `/metrics`
moved by exactly what the clients saw: generations, prompt and completion tokens, and
HTTP 200s per endpoint. `/metrics` is read with the `prometheus-client` package's
parser.
"""

import argparse
import asyncio
import sys
import time
import urllib.request

try:
    import openai
except ImportError:  # pragma: no cover
    sys.exit("the `openai` package is missing: pip install openai")
try:
    from prometheus_client.parser import text_string_to_metric_families
except ImportError:  # pragma: no cover
    sys.exit("the `prometheus-client` package is missing: pip install prometheus-client")


def metrics(root):
    """`/metrics`, parsed by the official Prometheus client's text parser (which also
    checks the exposition format): {'name{label="v",...}': value}, labels sorted."""
    text = urllib.request.urlopen(root + "/metrics", timeout=30).read().decode()
    out = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            labels = ",".join(f'{k}="{v}"' for k, v in sorted(s.labels.items()))
            out[s.name + ("{" + labels + "}" if labels else "")] = s.value
    return out


def total(m, prefix):
    return sum(v for k, v in m.items() if k.startswith(prefix))


async def one(client, model, i, j, max_tokens):
    kind = (i + j) % 4
    prompt = f"Request {i}.{j}: the capital of France is"
    if kind == 0:
        r = await client.chat.completions.create(
            model=model, messages=[{"role": "user", "content": prompt}], max_tokens=max_tokens)
        return "/v1/chat/completions", r.usage.prompt_tokens, r.usage.completion_tokens
    if kind == 1:
        r = await client.completions.create(model=model, prompt=prompt, max_tokens=max_tokens)
        return "/v1/completions", r.usage.prompt_tokens, r.usage.completion_tokens
    if kind == 2:
        s = await client.chat.completions.create(
            model=model, messages=[{"role": "user", "content": prompt}], max_tokens=max_tokens,
            stream=True, stream_options={"include_usage": True})
        usage = None
        async for ch in s:
            if ch.usage is not None:
                usage = ch.usage
        return "/v1/chat/completions", usage.prompt_tokens, usage.completion_tokens
    s = await client.completions.create(model=model, prompt=prompt, max_tokens=max_tokens, stream=True,
                                        stream_options={"include_usage": True})
    usage = None
    async for ch in s:
        if ch.usage is not None:
            usage = ch.usage
    return "/v1/completions", usage.prompt_tokens, usage.completion_tokens


async def run(args):
    client = openai.AsyncOpenAI(base_url=args.base_url, api_key="unused", max_retries=0, timeout=300)
    model = (await client.models.list()).data[0].id
    root = args.base_url.rsplit("/v1", 1)[0]
    before = metrics(root)
    results, errors = [], []

    async def worker(i):
        for j in range(args.requests):
            try:
                results.append(await one(client, model, i, j, args.max_tokens))
            except Exception as e:  # noqa: BLE001 - every failure counts
                errors.append(f"client {i} request {j}: {type(e).__name__}: {e}")

    t0 = time.monotonic()
    await asyncio.gather(*(worker(i) for i in range(args.clients)))
    wall = time.monotonic() - t0
    await client.close()
    after = metrics(root)

    n = args.clients * args.requests
    if errors:
        sys.exit(f"openai_load: FAILED: {len(errors)} of {n} requests failed:\n" + "\n".join(errors[:10]))
    problems = []
    if len(results) != n:
        problems.append(f"{len(results)} results for {n} requests")
    if after.get("pith_slots_active") != 0:
        problems.append(f"slots still active: {after.get('pith_slots_active')}")
    if after.get("pith_queue_depth") != 0:
        problems.append(f"queue not empty: {after.get('pith_queue_depth')}")

    def delta(key):
        return total(after, key) - total(before, key)

    checks = [
        ("pith_generations_total", n),
        ("pith_prompt_tokens_total", sum(r[1] for r in results)),
        ("pith_completion_tokens_total", sum(r[2] for r in results)),
        ('pith_generations_total{reason="cancelled"}', 0),
        ('pith_generations_total{reason="error"}', 0),
    ]
    for ep in ("/v1/chat/completions", "/v1/completions"):
        checks.append((f'pith_http_requests_total{{endpoint="{ep}",status="200"}}',
                       sum(1 for r in results if r[0] == ep)))
    for key, want in checks:
        got = delta(key)
        if got != want:
            problems.append(f"/metrics {key} moved by {got}, clients saw {want}")
    non_200 = [k for k in after if k.startswith("pith_http_requests_total") and 'status="200"' not in k
               and after[k] != before.get(k, 0)]
    if non_200:
        problems.append(f"non-200 responses during the load: {non_200}")
    if problems:
        sys.exit("openai_load: FAILED:\n" + "\n".join(problems))
    tokens = sum(r[2] for r in results)
    print(f"openai_load: {n} requests from {args.clients} clients, 0 errors, {tokens} tokens "
          f"in {wall:.1f} s ({tokens / wall:.1f} tok/s aggregate); slots free, metrics match")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--base-url", required=True)
    ap.add_argument("--clients", type=int, default=32)
    ap.add_argument("--requests", type=int, default=4)
    ap.add_argument("--max-tokens", type=int, default=8)
    asyncio.run(run(ap.parse_args()))


if __name__ == "__main__":
    main()
