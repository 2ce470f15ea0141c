"""What does the judge's ``<solution>`` say, and does its verdict follow it? Per task family, per checkpoint.

    python bench/solutions.py runs/demo/distill/final runs/rl/final      # 100 whole-mix pairs, ~4 min each
    python bench/solutions.py CHECKPOINT --pairs 300 --max-new-tokens 256

A Reasoning judge solves the question in ``<solution>``, then names the response that agrees with it. Where
its own solution is right the verdict can only be as good as that solution and the following of it; where
the question is out of its reach, a solution that copies one slot's answer makes the verdict follow the
slot. Each checkpoint judges held-out pairs of the whole graded mix (the pairs ``bench/learning.py
--validate-mix`` judges, drawn with seed 0, the first ``--pairs``), greedy, in both orders. Which response
a solution names is read by token overlap: the response sharing the longer common token subsequence with
the solution (``tie`` when neither does more, e.g. no solution). Prints per family and call: the verdict
right, the solution naming the chosen response, naming the response in slot A, tied, the verdict following
the solution (among calls whose solution names one and whose verdict is valid), and the verdicts' A-rate.
"""

from __future__ import annotations

import argparse
import sys
from collections import defaultdict

from reasrm.backends import GenerationConfig
from reasrm.backends.hf import HFBackend
from reasrm.card import judge_prompt, read_card
from reasrm.data.synthetic import whole_mix
from reasrm.judge import Judge
from reasrm.models import load_model, load_tokenizer
from reasrm.training.validation import heldout_jobs, solution_slot

COLUMNS = ("right", "solution right", "solution = slot A", "solution tie", "verdict follows", "A-rate")


def tally(jobs, judgements) -> dict[str, dict[str, float]]:
    counts: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for (pair, _), judgement in zip(jobs, judgements, strict=True):
        for family in (pair.meta["family"], "whole mix"):
            for call in judgement.calls:
                c, v = counts[family], call.verdict
                shown = (pair.chosen, pair.rejected) if call.chosen_slot == "A" else (pair.rejected, pair.chosen)
                slot = solution_slot(v.solution, *shown) or "tie"
                c["calls"] += 1
                c["right"] += v.ok and v.choice == call.chosen_slot
                c["solution right"] += slot == call.chosen_slot
                c["solution = slot A"] += slot == "A"
                c["solution tie"] += slot == "tie"
                c["valid"] += v.ok
                c["A"] += v.ok and v.choice == "A"
                if v.ok and slot != "tie":
                    c["decided"] += 1
                    c["verdict follows"] += v.choice == slot
    table = {}
    for family, c in counts.items():
        row = {k: c[k] / c["calls"] for k in COLUMNS[:4]}
        row["verdict follows"] = c["verdict follows"] / c["decided"] if c["decided"] else None
        row["A-rate"] = c["A"] / c["valid"] if c["valid"] else None
        table[family] = row | {"calls": c["calls"]}
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoints", nargs="+", help="judge checkpoints (folders with a judge card)")
    parser.add_argument("--pairs", type=int, default=100, help="whole-mix held-out pairs, judged in both orders")
    parser.add_argument("--max-new-tokens", type=int, default=256)
    args = parser.parse_args()

    jobs = heldout_jobs("data_recipes/demo.yaml", whole_mix(), max(300, args.pairs), 0)[: args.pairs]
    for checkpoint in args.checkpoints:
        print(f"judging {len(jobs)} pairs in both orders with {checkpoint}", file=sys.stderr, flush=True)
        generation = GenerationConfig(max_new_tokens=args.max_new_tokens, temperature=0.0, batch_size=200)
        judge = Judge(
            HFBackend(load_model(checkpoint).eval(), load_tokenizer(checkpoint)),
            judge_prompt(checkpoint, read_card(checkpoint)),
            generation,
        )
        judgements = judge.judge([p for p, _ in jobs], both_orders=True, slots=[s.chosen_slot for _, s in jobs])
        table = tally(jobs, judgements)
        print(f"\n{checkpoint}: per call, {len(jobs)} whole-mix pairs in both orders, greedy")
        print(f"  {'family':18}{'calls':>6}" + "".join(f"{name:>{len(name) + 2}}" for name in COLUMNS))
        for family in sorted(table, key=lambda f: (f == "whole mix", f)):
            row = table[family]
            cells = "".join(f"{'-' if row[k] is None else f'{row[k]:.3f}':>{len(k) + 2}}" for k in COLUMNS)
            print(f"  {family:18}{row['calls']:>6}{cells}")


if __name__ == "__main__":
    main()
