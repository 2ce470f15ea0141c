"""The hf backend's decode cache: buffers with room to grow (``RoomyLayer``) vs transformers' DynamicCache.

    python bench/decode_cache.py                         # the checkpoint make demo distils
    python bench/decode_cache.py --model runs/rl/final --runs compact:100 rm-r1-instruct:32

``DynamicCache`` appends each decoded token by concatenation, a copy of the whole KV cache per step;
``RoomyLayer`` writes it in place. Each run is a held-out validation of the demo recipe (greedy, both
orders, the stages' batch of 200 calls) in one prompt format, judged alternately with each cache
``--repeats`` times in one process, so the figures are side by side on the same (shared, noisy) machine.
Prints seconds per validation (best of the repeats), the ratio roomy/dynamic, and whether the verdicts
(one character per pair) came out identical.
"""

from __future__ import annotations

import argparse
import copy
import time

from transformers import DynamicCache

import reasrm.backends.hf as hf
from reasrm.card import judge_prompt, read_card
from reasrm.models import load_model, load_tokenizer
from reasrm.training.validation import heldout_jobs, validate


def dynamic_cache(config, prefix, rows: int, room: int) -> DynamicCache:
    """What the backend did before: the prefix's DynamicCache repeated for every row."""
    if prefix is None:
        return DynamicCache(config=config)
    cache = copy.deepcopy(prefix)
    cache.batch_repeat_interleave(rows)
    return cache


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="runs/demo/distill/final", help="a judge checkpoint")
    parser.add_argument(
        "--runs",
        nargs="+",
        default=["compact:100", "rm-r1-instruct:32"],
        help="FORMAT:PAIRS, each judged in both orders",
    )
    parser.add_argument("--max-new-tokens", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()

    model, tokenizer = load_model(args.model), load_tokenizer(args.model)
    card = read_card(args.model)
    caches = {"dynamic": dynamic_cache, "roomy": hf.roomy_cache}
    rows = []
    for run in args.runs:
        name, pairs = run.rsplit(":", 1)
        prompt = judge_prompt(args.model, card, name)
        jobs = heldout_jobs("demo", {}, int(pairs), 0)
        best, verdicts = {}, {}
        for _ in range(args.repeats):
            for kind, make in caches.items():
                hf.roomy_cache = make
                started = time.perf_counter()
                stats = validate(model, tokenizer, prompt, jobs, args.max_new_tokens)
                best[kind] = min(best.get(kind, float("inf")), time.perf_counter() - started)
                verdicts.setdefault(kind, set()).add(stats["right"] + f"/{stats['a_rate']}")
        same = len(verdicts["dynamic"] | verdicts["roomy"]) == 1
        tokens = stats["completion_tokens"]
        rows.append((name, 2 * len(jobs), tokens, best["dynamic"], best["roomy"], same))
    hf.roomy_cache = caches["roomy"]
    print(f"  model {args.model}, best of {args.repeats} validations per cache, greedy, both orders")
    print(f"  {'format':<18}{'calls':>6}{'tokens':>8}{'dynamic s':>11}{'roomy s':>9}{'ratio':>7}  same verdicts")
    for name, calls, tokens, dynamic, roomy, same in rows:
        print(f"  {name:<18}{calls:>6}{tokens:>8.0f}{dynamic:>11.1f}{roomy:>9.1f}{roomy / dynamic:>7.2f}  {same}")


if __name__ == "__main__":
    main()
