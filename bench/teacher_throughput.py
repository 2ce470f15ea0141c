"""Teacher throughput against `reasrm serve`: concurrency C vs 1, and a rerun over a complete reply cache.

    python bench/teacher_throughput.py [--model PATH] [--pairs 32] [--concurrency 8] [--max-new-tokens 96]

Starts `reasrm serve` on a free loopback port (default model: the embedded default) and runs the stage-one
teacher (``openai`` backend, the demo recipe, the shipped ``stages/distill.yaml`` prompt) over the same
pairs three times, each into a fresh folder, in one process so the runs are measured side by side:

1. concurrency 1, 2. concurrency C (the server batches concurrent requests), 3. concurrency C with the
reply cache of run 2 (``teacher.cache``): it must send zero requests. The server's ``/health`` counts the
requests it served, so the zero is the server's word, not the client's.

Prints pairs/s and requests for each run and the throughput ratio C vs 1.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import httpx2 as httpx
from serve_load import KEY, start

ROOT = Path(__file__).resolve().parents[1]


def served(url: str) -> int:
    return httpx.get(f"{url}/health", timeout=10).json()["served"]["chat"]


def run_teacher(url: str, output: Path, pairs: int, concurrency: int, max_new_tokens: int, cache: Path | None) -> dict:
    from reasrm.config import load_config
    from reasrm.training.distill import DistillConfig, prepare
    from reasrm.training.teacher import generate_chains

    overrides = [
        "teacher.backend=openai",
        f"teacher.base_url={url}/v1",
        "teacher.model=judge",
        f"teacher.concurrency={concurrency}",
        f"teacher.generation.max_new_tokens={max_new_tokens}",
        "teacher.hint_pass=false",
        f"limit={pairs}",
        f"output={output}",
    ]
    if cache is not None:
        overrides.append(f"teacher.cache={cache}")
    cfg = load_config(ROOT / "stages" / "distill.yaml", overrides, schema=DistillConfig)
    prompt, jobs, folder = prepare(cfg)
    before, started = served(url), time.perf_counter()
    records = generate_chains(jobs, prompt, cfg.teacher, folder / "chains.jsonl", resume=False)
    seconds = time.perf_counter() - started
    report = json.loads((folder / "teacher_report.json").read_text())
    return {
        "concurrency": concurrency,
        "pairs": len(records),
        "seconds": seconds,
        "pairs_per_s": len(records) / seconds,
        "server_requests": served(url) - before,
        "client_requests": report["this_run"]["requests"],
        "cache_hits": report["this_run"]["cache_hits"],
        "kept": report["pairs_kept"],
        "chains": (folder / "chains.jsonl").read_text(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="the teacher served (default: the embedded default)")
    parser.add_argument("--pairs", type=int, default=32)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--max-new-tokens", type=int, default=96)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    os.environ.setdefault("REASRM_API_KEY", KEY)

    process, url = start(args.model, "compact", args.max_new_tokens, "--batch-size", str(args.concurrency))
    try:
        with tempfile.TemporaryDirectory() as tmp:
            one = run_teacher(url, Path(tmp, "c1"), args.pairs, 1, args.max_new_tokens, None)
            many = run_teacher(url, Path(tmp, "cN"), args.pairs, args.concurrency, args.max_new_tokens, None)
            rerun = run_teacher(
                url,
                Path(tmp, "again"),
                args.pairs,
                args.concurrency,
                args.max_new_tokens,
                Path(tmp, "cN", "teacher_cache.sqlite"),
            )
    finally:
        process.terminate()
        process.wait(timeout=30)
    same = rerun["chains"] == many["chains"]
    runs = [{k: v for k, v in r.items() if k != "chains"} for r in (one, many, rerun)]
    summary = {"runs": runs, "ratio": many["pairs_per_s"] / one["pairs_per_s"], "rerun_same_chains": same}
    if args.json:
        print(json.dumps(summary))
        return
    for name, r in zip(("concurrency 1", f"concurrency {args.concurrency}", "rerun, full cache"), runs, strict=True):
        print(
            f"{name:<18} {r['pairs']} pairs in {r['seconds']:6.1f} s = {r['pairs_per_s']:6.2f} pairs/s; server "
            f"saw {r['server_requests']} requests, {r['cache_hits']} from the cache, {r['kept']} kept"
        )
    print(
        f"throughput ratio, concurrency {args.concurrency} vs 1: {summary['ratio']:.2f}x; "
        f"rerun over a complete cache: {rerun['server_requests']} requests, same chains.jsonl: {same}"
    )
    if rerun["server_requests"] != 0 or not same:
        sys.exit(1)


if __name__ == "__main__":
    main()
