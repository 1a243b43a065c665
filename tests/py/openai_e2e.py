#!/usr/bin/env python3
"""End-to-end checks of `pith serve` with the official `openai` Python client.

Usage: python3 tests/py/openai_e2e.py --base-url http://127.0.0.1:PORT/v1 --golden FILE

Runs against a server on the real default model (Gemma 3 270M Q4_K_M): chat,
completions, streaming (with `stream_options.include_usage`), stop strings, seed
reproducibility, logprobs, and bad inputs as the client reports them. Greedy text and
log-probs are compared with llama.cpp's `llama-server` (the golden file
tests/golden/logits/gemma3-270m.json). Exits non-zero with a message on the first failure.
"""

import argparse
import json
import math
import sys

try:
    import openai
    from openai import OpenAI
except ImportError:  # pragma: no cover
    sys.exit("the `openai` package is missing: pip install openai")


def check(cond, msg):
    if not cond:
        raise AssertionError(msg)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--base-url", required=True)
    ap.add_argument("--golden", required=True)
    args = ap.parse_args()
    golden = json.load(open(args.golden))
    france = next(c for c in golden["cases"] if c["name"] == "capital_france")

    client = OpenAI(base_url=args.base_url, api_key="unused", max_retries=0, timeout=120)

    # Models.
    models = client.models.list()
    model = models.data[0].id
    check(model == "gemma-3-270m-q4_k_m", f"model id {model}")

    # Completions, greedy: a prefix of llama-server's greedy continuation.
    c = client.completions.create(model=model, prompt=france["prompt"], max_tokens=8, temperature=0)
    text = c.choices[0].text
    check(france["greedy_text"].startswith(text) and len(text) > 5,
          f"greedy completion {text!r} is not a prefix of llama.cpp's {france['greedy_text']!r}")
    check(c.choices[0].finish_reason == "length", c.choices[0].finish_reason)
    check(c.usage.prompt_tokens == len(france["prompt_ids"]), c.usage)
    check(c.usage.completion_tokens == 8 and c.usage.total_tokens == 8 + c.usage.prompt_tokens, c.usage)
    check(c.id.startswith("cmpl-") and c.object == "text_completion" and c.created > 1_700_000_000, c)

    # Completions logprobs: llama-server's first-step top token and log-prob (≤ 0.5 nat).
    c = client.completions.create(model=model, prompt=france["prompt"], max_tokens=3, temperature=0, logprobs=3)
    lp = c.choices[0].logprobs
    check(len(lp.tokens) == 3 and len(lp.token_logprobs) == 3 and len(lp.top_logprobs) == 3, lp)
    want = france["top"][0][1]
    check(abs(lp.token_logprobs[0] - want) <= 0.5, f"first logprob {lp.token_logprobs[0]} vs llama.cpp {want}")
    check(all(len(t) == 3 for t in lp.top_logprobs), lp.top_logprobs)
    check(lp.text_offset[0] == 0 and lp.text_offset[1] == len(lp.tokens[0]), lp.text_offset)

    # Chat, greedy, whole and streamed: the same text.
    msgs = [{"role": "system", "content": "You answer briefly."},
            {"role": "user", "content": "What is the capital of France?"}]
    r = client.chat.completions.create(model=model, messages=msgs, max_tokens=12, temperature=0)
    whole = r.choices[0].message.content
    check(r.object == "chat.completion" and r.id.startswith("chatcmpl-"), r)
    check(r.choices[0].message.role == "assistant", r)
    check(r.choices[0].finish_reason in ("stop", "length"), r.choices[0].finish_reason)
    check(r.usage.completion_tokens >= 1 and r.usage.prompt_tokens > 10, r.usage)
    stream = client.chat.completions.create(model=model, messages=msgs, max_tokens=12, temperature=0,
                                            stream=True, stream_options={"include_usage": True})
    parts, finish, usage, n_chunks, roles = [], None, None, 0, []
    for chunk in stream:
        n_chunks += 1
        check(chunk.object == "chat.completion.chunk", chunk)
        if chunk.usage is not None:
            usage = chunk.usage
            check(chunk.choices == [], chunk)
            continue
        d = chunk.choices[0].delta
        if d.role:
            roles.append(d.role)
        if d.content:
            parts.append(d.content)
        if chunk.choices[0].finish_reason:
            finish = chunk.choices[0].finish_reason
    check("".join(parts) == whole, f"streamed {''.join(parts)!r} != whole {whole!r}")
    check(roles == ["assistant"], roles)
    check(finish == r.choices[0].finish_reason, (finish, r.choices[0].finish_reason))
    check(usage is not None and usage.completion_tokens == r.usage.completion_tokens
          and usage.prompt_tokens == r.usage.prompt_tokens, usage)
    check(n_chunks >= 3, n_chunks)

    # Streamed completions: same text as the whole greedy completion.
    s = client.completions.create(model=model, prompt=france["prompt"], max_tokens=8, temperature=0, stream=True)
    streamed = "".join(ch.choices[0].text for ch in s if ch.choices)
    check(streamed == text, f"streamed completion {streamed!r} != {text!r}")

    # Stop: llama.cpp's greedy text is " the capital of ..."; stopping at " capital" leaves " the".
    c = client.completions.create(model=model, prompt=france["prompt"], max_tokens=12, temperature=0,
                                  stop=[" capital", "zzz"])
    check(c.choices[0].text == " the", f"stop: {c.choices[0].text!r}")
    check(c.choices[0].finish_reason == "stop", c.choices[0].finish_reason)

    # Seed reproducibility at temperature 1.
    def sample(seed):
        return client.completions.create(model=model, prompt="Once upon a time", max_tokens=16,
                                         temperature=1.0, top_p=1.0, seed=seed).choices[0].text
    a, b = sample(42), sample(42)
    check(a == b, f"same seed, different text: {a!r} vs {b!r}")
    others = [sample(s) for s in (43, 44, 45)]
    check(any(o != a for o in others), f"different seeds all gave {a!r}")

    # Chat logprobs.
    r = client.chat.completions.create(model=model, messages=msgs, max_tokens=5, temperature=0,
                                       logprobs=True, top_logprobs=3)
    content = r.choices[0].logprobs.content
    check(len(content) == r.usage.completion_tokens, (len(content), r.usage))
    for t in content:
        check(len(t.top_logprobs) == 3, t)
        check(t.token == t.top_logprobs[0].token, t)
        check(t.logprob <= 0 and math.isfinite(t.logprob), t)
        lps = [x.logprob for x in t.top_logprobs]
        check(lps == sorted(lps, reverse=True), lps)
        check(bytes(t.bytes).decode("utf-8", "replace") == t.token, t)

    # Bad inputs, as the client reports them.
    bad = [
        dict(messages=[], max_tokens=4),
        dict(messages=[{"role": "wizard", "content": "x"}], max_tokens=4),
        dict(messages=[{"role": "user", "content": "x"}], max_tokens=0),
        dict(messages=[{"role": "user", "content": "x"}], max_tokens=10**9),
        dict(messages=[{"role": "user", "content": "x"}], n=2),
        dict(messages=[{"role": "user", "content": "x"}], temperature=9),
        dict(messages=[{"role": "user", "content": "word " * 5000}]),
    ]
    for kw in bad:
        try:
            client.chat.completions.create(model=model, **kw)
        except openai.BadRequestError as e:
            check(e.status_code == 400, e)
            check(isinstance(e.body, dict) and e.body.get("message") and e.body.get("type"), e.body)
        else:
            raise AssertionError(f"no error for {str(kw)[:80]}")

    # The server is still fine.
    r = client.chat.completions.create(model=model, messages=[{"role": "user", "content": "Hi"}], max_tokens=2)
    check(r.usage.completion_tokens >= 1, r.usage)
    print("openai_e2e: all checks passed")


if __name__ == "__main__":
    try:
        main()
    except AssertionError as e:
        sys.exit(f"openai_e2e: FAILED: {e}")
