#!/usr/bin/env python3
"""Loads `pith serve`'s chat page in headless Chromium, sends a message, and watches the
streamed reply appear.

Usage: python3 tests/web/chat_page.py --url http://127.0.0.1:PORT/ [--chromium chromium]

Drives Debian's `chromium` over the Chrome DevTools Protocol (`--remote-debugging-port`,
the `websocket-client` package): types a message into the page's textarea, submits the
form, then samples the assistant bubble every 20 ms until the page marks the reply done.
Passes when the reply is non-empty, is not an error, arrived in several chunks, and was
seen on screen at two or more different lengths before it was complete (streamed, not
shown all at once).
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request

try:
    import websocket  # websocket-client
except ImportError:  # pragma: no cover
    sys.exit("the `websocket-client` package is missing: pip install websocket-client")


class Cdp:
    def __init__(self, ws_url):
        self.ws = websocket.create_connection(ws_url, timeout=30, suppress_origin=True)
        self.next_id = 0

    def call(self, method, **params):
        self.next_id += 1
        mid = self.next_id
        self.ws.send(json.dumps({"id": mid, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv())
            if msg.get("id") == mid:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg.get("result", {})

    def eval(self, expr):
        r = self.call("Runtime.evaluate", expression=expr, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in r:
            raise RuntimeError(f"{expr}: {r['exceptionDetails']}")
        return r["result"].get("value")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", required=True)
    ap.add_argument("--chromium", default=shutil.which("chromium") or shutil.which("chromium-browser"))
    ap.add_argument("--message", default="Tell me a story about a dragon.")
    args = ap.parse_args()
    if not args.chromium:
        sys.exit("chromium is missing: apt-get install -y chromium")

    profile = tempfile.mkdtemp(prefix="pith-chromium-")
    proc = subprocess.Popen(
        [args.chromium, "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
         "--disable-dev-shm-usage", "--remote-debugging-port=0", f"--user-data-dir={profile}",
         "about:blank"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        port_file = os.path.join(profile, "DevToolsActivePort")
        deadline = time.monotonic() + 60
        while not (os.path.exists(port_file) and open(port_file).read().strip()):
            if proc.poll() is not None or time.monotonic() > deadline:
                sys.exit("chat_page: FAILED: chromium did not start")
            time.sleep(0.1)
        port = int(open(port_file).read().split()[0])
        targets = json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10))
        page = next(t for t in targets if t["type"] == "page")
        cdp = Cdp(page["webSocketDebuggerUrl"])
        cdp.call("Page.enable")
        cdp.call("Page.navigate", url=args.url)
        deadline = time.monotonic() + 30
        while cdp.eval("document.readyState === 'complete' && !!document.getElementById('input')") is not True:
            if time.monotonic() > deadline:
                sys.exit("chat_page: FAILED: the page did not load")
            time.sleep(0.05)

        # Type a message and send it the way a user does (the form's submit).
        cdp.eval("document.getElementById('max_tokens').value = '48'")
        cdp.eval(f"document.getElementById('input').value = {json.dumps(args.message)}")
        cdp.eval("document.getElementById('send').click()")

        probe = """(() => {
            const b = document.querySelectorAll('#log .msg');
            const last = b[b.length - 1];
            if (!last || last.classList.contains('user')) return null;
            return {text: last.textContent, chunks: Number(last.dataset.chunks || 0),
                    done: last.dataset.done === 'true', cls: last.className};
        })()"""
        seen = []
        deadline = time.monotonic() + 120
        state = None
        while True:
            state = cdp.eval(probe)
            if state and state["text"] and (not seen or seen[-1] != state["text"]) and not state["done"]:
                seen.append(state["text"])
            if state and state["done"]:
                break
            if time.monotonic() > deadline:
                sys.exit(f"chat_page: FAILED: no complete reply after 120 s (last state {state})")
            time.sleep(0.02)
        user = cdp.eval("document.querySelector('#log .msg.user').textContent")
        problems = []
        if user != args.message:
            problems.append(f"user bubble shows {user!r}")
        if "error" in state["cls"]:
            problems.append(f"the page shows an error: {state['text']!r}")
        if not state["text"].strip():
            problems.append("empty reply")
        if state["chunks"] < 2:
            problems.append(f"reply arrived in {state['chunks']} chunk(s)")
        if len(seen) < 2:
            problems.append(f"the reply was seen at {len(seen)} partial length(s) before completion")
        if problems:
            sys.exit("chat_page: FAILED: " + "; ".join(problems))
        print(f"chat_page: reply of {len(state['text'])} chars in {state['chunks']} chunks, "
              f"seen growing through {len(seen)} partial states: {state['text'][:60]!r}")
        try:
            cdp.call("Browser.close")
        except Exception:  # noqa: BLE001 - closing is best effort
            pass
    finally:
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        shutil.rmtree(profile, ignore_errors=True)


if __name__ == "__main__":
    main()
