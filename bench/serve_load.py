"""Load on `reasrm serve`: N `/v1/judge` requests at concurrency C and at concurrency 1, loopback only.

    python bench/serve_load.py --model path/to/judge --requests 200 --concurrency 16 [--json]

Starts the server on a free 127.0.0.1 port, sends each request once (bounded in count and time), and
checks every reply: no errors, one reply per request, and (greedy decoding) each request's reply is the
same whether it was batched with 15 others or sent alone, so no reply went to the wrong request. Prints
p50/p95 latency and requests/s at both concurrencies, and their ratio: the batching gain.
"""

from __future__ import annotations

import argparse
import json
import socket
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import httpx2 as httpx

KEY = "load-test"


def start(model: str | None, prompt_format: str, max_new_tokens: int, *extra: str) -> tuple[subprocess.Popen, str]:
    """`reasrm serve` on a free loopback port (``model`` None: the embedded default); returns it and its URL."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "reasrm.cli",
            "serve",
            *(["--model", model] if model else []),
            "--prompt-format",
            prompt_format,
            "--port",
            str(port),
            "--api-key",
            KEY,
            "--max-new-tokens",
            str(max_new_tokens),
            *extra,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/health", headers={"Authorization": f"Bearer {KEY}"}, timeout=1).status_code == 200:
                return process, url
        except httpx.HTTPError:
            time.sleep(0.3)
    process.kill()
    raise SystemExit("the server did not start within 180 s")


def load(url: str, requests: int, concurrency: int) -> dict:
    """Send ``requests`` judge requests ``concurrency`` at a time; check that each reply is its own."""
    headers = {"Authorization": f"Bearer {KEY}"}

    def one(i: int) -> tuple[int, int, float, str | None]:
        body = {"prompt": f"Request {i}: which answer is better?", "response_a": f"answer {i}", "response_b": "none"}
        started = time.perf_counter()
        try:
            reply = httpx.post(f"{url}/v1/judge", json=body, headers=headers, timeout=300)
        except httpx.HTTPError as e:
            return i, -1, time.perf_counter() - started, str(e)
        latency = time.perf_counter() - started
        return i, reply.status_code, latency, reply.json()["orders"][0]["text"] if reply.status_code == 200 else None

    started = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        results = list(pool.map(one, range(requests)))
    wall = time.perf_counter() - started
    latencies = sorted(r[2] for r in results)
    return {
        "concurrency": concurrency,
        "requests": requests,
        "errors": sum(r[1] != 200 for r in results),
        "replies": len({r[0] for r in results if r[1] == 200}),
        "p50_s": statistics.median(latencies),
        "p95_s": latencies[min(len(latencies) - 1, int(0.95 * len(latencies)))],
        "requests_per_s": requests / wall,
        "texts": {r[0]: r[3] for r in results},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="a local judge folder (a small one keeps this quick)")
    parser.add_argument("--prompt-format", default="rm-r1-instruct")
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--max-new-tokens", type=int, default=8)
    parser.add_argument("--json", action="store_true", help="print one JSON object (for tests)")
    args = parser.parse_args()

    process, url = start(args.model, args.prompt_format, args.max_new_tokens)
    try:
        busy = load(url, args.requests, args.concurrency)
        single = load(url, args.requests, 1)
    finally:
        process.terminate()
        process.wait(timeout=30)
    # Greedy decoding: the same request must get the same reply whether it was batched or alone.
    mismatched = sum(busy["texts"][i] != single["texts"][i] for i in range(args.requests))
    summary = {
        "busy": {k: v for k, v in busy.items() if k != "texts"},
        "single": {k: v for k, v in single.items() if k != "texts"},
        "batched_reply_mismatches": mismatched,
        "gain": busy["requests_per_s"] / single["requests_per_s"],
    }
    if args.json:
        print(json.dumps(summary))
        return
    for r in (busy, single):
        print(
            f"concurrency {r['concurrency']:2d}: {r['requests']} requests, {r['errors']} errors, "
            f"{r['replies']} distinct replies, p50 {1000 * r['p50_s']:.0f} ms, p95 {1000 * r['p95_s']:.0f} ms, "
            f"{r['requests_per_s']:.1f} requests/s"
        )
    print(
        f"batching gain (requests/s at {args.concurrency} vs 1): {summary['gain']:.2f}x; "
        f"replies differing between batched and alone: {mismatched}"
    )


if __name__ == "__main__":
    main()
