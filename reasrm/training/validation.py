"""Held-out validation of a judge being trained: the one measurement both stages report.

A fixed, seeded subset of the recipe's **held-out** split (never its training pairs: RM-R1 validated on
its training set), judged greedily in **both slot orders** through reasrm's own ``hf`` backend (shared
prefix KV cache, early-finishing rows) on the model in memory, verdicts parsed in **strict** mode (the
reward's). Reported next to each other, because plain accuracy hides a judge that always answers "B":

- ``valid``: share of calls with a strict verdict; ``statuses``: calls per status;
- ``both_right``: share of pairs right in both orders (the headline; a position-constant judge scores 0),
  next to ``both_right_chance`` (what a judge blind to the content scores at these verdict rates);
- ``accuracy``: share of calls right, next to ``label_prior`` (always answering the commoner slot);
- ``a_rate``: share of valid verdicts that are "A"; ``flip_rate``: share of pairs validly judged in both
  orders whose verdict followed the slot; ``by_domain`` / ``by_family``: both-right accuracy per group;
- ``solution_right``: share of calls whose own ``<solution>`` names the chosen response, and ``follows``:
  share of those calls with a solution naming a response and a valid verdict whose verdict names it
  (:func:`solution_slot` reads which response a solution names); None for chains without solutions;
- ``completion_tokens``: mean completion length; ``right``: one character per pair ("1" right in both
  orders), for paired comparisons between checkpoints (``bench/learning.py``).

Both stages append one line per validation to ``validation.jsonl`` and log it to the trainer's loggers;
``eval.json`` holds the first and the last.
"""

from __future__ import annotations

import hashlib
import logging
import random
import re
from collections import defaultdict

from reasrm import processes
from reasrm.backends import GenerationConfig
from reasrm.data.build import collect, load_recipe
from reasrm.data.pairs import Pair, Shown, assign_slots
from reasrm.prompts import JudgePrompt
from reasrm.runs import Progress, right_in_both, summarize
from reasrm.verdict import parse_verdict

log = logging.getLogger(__name__)

# Calls decoded together: on a CPU a decode step's matrix products run faster per row in bigger batches.
BATCH = 200

COLUMNS = (
    ("valid", "valid"),
    ("both_right", "both-right"),
    ("both_right_chance", "chance"),
    ("accuracy", "per call"),
    ("label_prior", "prior"),
    ("a_rate", "A-rate"),
    ("flip_rate", "flip"),
    ("completion_tokens", "tokens"),
)


def heldout_jobs(recipe: str, params: dict, n: int, seed: int) -> list[tuple[Pair, Shown]]:
    """``n`` pairs of the recipe's held-out split (a subset drawn with ``seed``, in split order), each shown in
    the slots ``assign_slots`` gives its first order (as ``training_jobs`` shows the training pairs); none (and
    a warning) when the recipe holds nothing out."""
    _, heldout, _, _ = collect(load_recipe(recipe, [f"{k}={v}" for k, v in params.items()]))
    if not heldout:
        log.warning("recipe %r has no held-out split: no validation (give the recipe a heldout.fraction)", recipe)
        return []
    if n < len(heldout):
        keep = set(random.Random(seed).sample(range(len(heldout)), n))
        heldout = [p for k, p in enumerate(heldout) if k in keep]
    return [(pair, pair.shown(slot)) for pair, slot in zip(heldout, assign_slots(heldout, seed), strict=True)]


def jobs_digest(jobs: list[tuple[Pair, Shown]]) -> str:
    """Names a validation set: two results are comparable when their digests are equal."""
    return hashlib.sha256("\n".join(f"{p.id}:{s.chosen_slot}" for p, s in jobs).encode()).hexdigest()[:16]


def validate(
    model, tokenizer, prompt: JudgePrompt, jobs: list[tuple[Pair, Shown]], max_new_tokens: int, batch_size: int = BATCH
) -> dict:
    """Judge ``jobs`` greedily in both orders with ``model`` as it is now; the figures of the module doc.
    Under a launcher every rank judges its share of the pairs and every rank returns the same figures."""
    return figures(jobs, judge_heldout(model, tokenizer, prompt, jobs, max_new_tokens, batch_size), max_new_tokens)


def judge_heldout(
    model, tokenizer, prompt: JudgePrompt, jobs: list[tuple[Pair, Shown]], max_new_tokens: int, batch_size: int = BATCH
) -> list[list[dict]]:
    """Each pair's two calls (``order``, ``chosen_slot``, ``tokens``, the strict ``verdict``), for every pair
    of ``jobs`` on every rank: each rank judges its contiguous share, and the shares are gathered. The model
    must have its whole weights on each rank (``processes.full_weights``)."""
    from reasrm.backends.hf import HFBackend  # torch: only a run pays for it
    from reasrm.judge import Judge

    mine = processes.share(jobs)
    # A fresh backend each time: a cached prefix must not outlive the weights it was computed with.
    judge = Judge(
        HFBackend(model, tokenizer),
        prompt,
        GenerationConfig(max_new_tokens=max_new_tokens, temperature=0.0, batch_size=batch_size),
    )
    was_training = model.training
    model.eval()
    world = processes.world_size()
    try:
        with Progress(2 * len(jobs), "validating") as bar:
            judgements = (
                judge.judge(
                    [p for p, _ in mine],
                    both_orders=True,
                    slots=[s.chosen_slot for _, s in mine],
                    on_call=lambda n: bar.update(n * world),
                )
                if mine
                else []
            )
    finally:
        model.train(was_training)
    groups = [
        [
            {
                "order": c.order,
                "chosen_slot": c.chosen_slot,
                "tokens": c.completion_tokens,
                "verdict": parse_verdict(c.text, mode="strict").to_dict(),
            }
            for c in j.calls
        ]
        for j in judgements
    ]
    return processes.gather(groups)


_TOKEN = re.compile(r"-?\d+(?:\.\d+)?|\w+|[^\w\s]")


def solution_slot(solution: str | None, response_a: str, response_b: str) -> str | None:
    """The slot whose response a judge's ``<solution>`` agrees with: the one sharing the longer common token
    subsequence with it; None when there is no solution or neither shares more."""
    if solution is None:
        return None
    tokens = _TOKEN.findall(solution.lower())
    a, b = (_common(tokens, _TOKEN.findall(r.lower())) for r in (response_a, response_b))
    return "A" if a > b else "B" if b > a else None


def _common(a: list[str], b: list[str]) -> int:
    """Length of the longest common subsequence of two token lists."""
    previous = [0] * (len(b) + 1)
    for x in a:
        current = [0]
        for j, y in enumerate(b):
            current.append(previous[j] + 1 if x == y else max(previous[j + 1], current[j]))
        previous = current
    return previous[-1]


def solution_figures(shown: list[tuple[Shown, dict]]) -> dict:
    """``solution_right`` and ``follows`` (see the module doc) of calls, each with the pair as it was shown."""
    named = [(s, c, solution_slot(c["verdict"].get("solution"), s.response_a, s.response_b)) for s, c in shown]
    if all(c["verdict"].get("solution") is None for _, c, _ in named):
        return {"solution_right": None, "follows": None}
    decided = [(c, slot) for _, c, slot in named if slot is not None and c["verdict"]["choice"] is not None]
    return {
        "solution_right": sum(slot is not None and slot == s.chosen_slot for s, _, slot in named) / len(named),
        "follows": sum(c["verdict"]["choice"] == slot for c, slot in decided) / len(decided) if decided else None,
    }


def figures(jobs: list[tuple[Pair, Shown]], groups: list[list[dict]], max_new_tokens: int) -> dict:
    """The module doc's figures of ``groups``, the calls of each pair of ``jobs`` in order."""
    stats = summarize(groups)
    shown = [(pair.shown(c["chosen_slot"]), c) for (pair, _), g in zip(jobs, groups, strict=True) for c in g]
    stats.update(solution_figures(shown))
    right = [right_in_both(g) for g in groups]
    for name, key in (("by_domain", lambda p: p.domain), ("by_family", lambda p: (p.meta or {}).get("family"))):
        buckets = defaultdict(list)
        for (pair, _), ok in zip(jobs, right, strict=True):
            if key(pair) is not None:
                buckets[key(pair)].append(ok)
        stats[name] = {k: sum(v) / len(v) for k, v in sorted(buckets.items())}
    calls = [c for g in groups for c in g]
    stats["completion_tokens"] = sum(c["tokens"] for c in calls) / len(calls)
    stats["right"] = "".join("1" if ok else "0" for ok in right)
    stats["digest"] = jobs_digest(jobs)
    stats["max_new_tokens"] = max_new_tokens
    return stats


def table_lines(rows: list[tuple[str, dict]]) -> list[str]:
    """A one-screen table: one row per (name, validation stats)."""
    lines = [f"  {'':<26}" + "".join(f"{title:>11}" for _, title in COLUMNS)]
    for name, stats in rows:
        cells = [_cell(stats.get(key), ".0f" if key == "completion_tokens" else ".3f") for key, _ in COLUMNS]
        lines.append(f"  {name:<26}" + "".join(cells))
    return lines


def _cell(value, spec: str) -> str:
    return f"{'-':>11}" if value is None else f"{value:>11{spec}}"
