"""`reasrm eval`: judge a benchmark, then score it exactly as the benchmark does.

    reasrm eval --benchmark rm-bench --data-dir DATA/rm-bench --limit 20 --output runs/eval/rm-bench

Pairs come from the benchmark's recipe (``data_recipes/{rm-bench,rmb,rewardbench}.yaml``) or, for
``pairs``, from the held-out split of a dataset built by ``reasrm data build``. Every judge call is one line
of ``samples.jsonl``, written as it finishes, so an interrupted run resumes without redoing or
duplicating a call. Then, from the samples alone: ``scores.json`` (the official numbers with invalid
verdicts scored 0 as in RM-R1 and 0.5 as upstream RewardBench, every sub-score, the invalid count and the
bias report), ``report.md`` and PNG figures.

With both orders, a pair's outcome is the mean of its two calls; a best-of-N record needs every
comparison won in every order.
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from reasrm import processes
from reasrm.config import Problem, option
from reasrm.data.build import collect, load_built, load_recipe
from reasrm.data.pairs import Pair, Slot, assign_slots
from reasrm.errors import ReasrmDataError, ReasrmError
from reasrm.eval import mean, rewardbench, rmb, rmbench
from reasrm.eval.report import write_report
from reasrm.judge import Judge, JudgingConfig
from reasrm.runs import (
    ResumableJsonl,
    discard_output,
    judge_in_chunks,
    prepare_output,
    summarize,
)

BENCHMARKS = ("rewardbench", "rm-bench", "rmb", "pairs")


@dataclass
class EvalConfig(JudgingConfig):
    """``reasrm eval``: judge a benchmark and score it exactly as the benchmark does."""

    stage: str = option("Names this schema.", "eval")
    benchmark: str = option(f"One of {', '.join(BENCHMARKS)}.")
    data_dir: str | None = option(
        "Local benchmark data (the benchmark's published file layout: docs/data.md), or for `pairs` a built dataset "
        "folder (its held-out split); null = the hub (rewardbench).",
        None,
    )
    domain: str | None = option("Evaluate only pairs of this domain.", None)
    limit: int | None = option(
        "Evaluate this many prompts (RM-Bench) / records (BoN) / pairs, drawn with the seed.", None, ge=1
    )
    output: str = option("Output folder: samples.jsonl, scores.json, report.md, figures.")

    def check(self) -> list[Problem]:
        problems = super().check()
        if self.benchmark not in BENCHMARKS:
            problems.append(("benchmark", f"must be one of {', '.join(BENCHMARKS)}, got {self.benchmark!r}"))
        if self.benchmark in ("rm-bench", "rmb", "pairs") and self.data_dir is None:
            problems.append(
                (
                    "data_dir",
                    f"required for {self.benchmark!r}: e.g. data_dir=DATA/rm-bench, "
                    "or for `pairs` a folder written by `reasrm data build`",
                )
            )
        return problems


# ---------------------------------------------------------------------------------------------------
# The pairs of a benchmark, and the unit that --limit counts (a prompt's 3x3 grid, a BoN record, a pair)
# ---------------------------------------------------------------------------------------------------


def benchmark_pairs(cfg: EvalConfig) -> list[tuple[Pair, Slot]]:
    """The pairs to judge, each with its chosen response's slot. Slots are assigned over the whole
    benchmark before ``domain`` and ``limit`` pick pairs, so a pair keeps its slot whatever is picked."""
    if cfg.benchmark == "pairs":
        pairs = load_built(cfg.data_dir, "heldout")
        if not pairs:
            raise ReasrmDataError(f"{cfg.data_dir}: the held-out split is empty; build with heldout.fraction > 0")
    else:
        params = {"rm-bench": "data_dir", "rmb": "data_dir", "rewardbench": "dataset"}[cfg.benchmark]
        recipe = load_recipe(cfg.benchmark, [f"{params}={cfg.data_dir}"] if cfg.data_dir else [])
        train, heldout, _, _ = collect(recipe)
        pairs = train + heldout
    chosen = list(zip(pairs, assign_slots(pairs, cfg.seed), strict=True))
    if cfg.domain is not None:
        chosen = [(p, s) for p, s in chosen if p.domain == cfg.domain]
        if not chosen:
            raise ReasrmDataError(f"{cfg.benchmark}: no pairs of domain {cfg.domain!r}")
    if cfg.limit is not None:
        units = sorted(
            {unit(p) for p, _ in chosen}, key=lambda u: hashlib.sha256(f"{cfg.seed}\x00{u}".encode()).digest()
        )
        keep = set(units[: cfg.limit])
        chosen = [(p, s) for p, s in chosen if unit(p) in keep]
    return chosen


def unit(pair: Pair) -> str:
    if "benchmark_id" in pair.meta:  # RM-Bench: the prompt whose nine pairs form one 3x3 matrix
        return f"{pair.source}/{pair.meta['benchmark_id']}"
    if "bon_uid" in pair.meta:  # RMB best-of-N: the record whose comparisons must all be won
        return f"{pair.source}/{pair.meta['bon_uid']}"
    return f"{pair.source}/{pair.id}"


def pair_key(pair: Pair) -> str:
    return f"{pair.source}/{pair.id}"


# ---------------------------------------------------------------------------------------------------
# Running
# ---------------------------------------------------------------------------------------------------

# Settings that change the samples: a resumed run must use the same ones (limit may grow).
RESULT_KEYS = (
    "benchmark",
    "model",
    "backend",
    "base_url",
    "prompt_format",
    "rubric",
    "data_dir",
    "domain",
    "both_orders",
    "seed",
    "generation",
)


def run(cfg: EvalConfig) -> dict:
    """Judge (resumably) and score; returns the scores, also written to ``scores.json``."""
    chosen = benchmark_pairs(cfg)
    saved = Path(cfg.output) / "eval.yaml"
    fresh = not (cfg.resume and (Path(cfg.output) / "samples.jsonl").is_file())
    output = prepare_output(cfg.output, saved, cfg, RESULT_KEYS, cfg.resume, cfg.overwrite)
    try:
        records = _judge_samples(cfg, chosen, output)
    except Exception:
        if fresh and not (output / "samples.jsonl").stat().st_size:
            discard_output(output, saved)  # a run that failed before its first sample leaves no files
        raise
    result = score(cfg, records)
    if processes.is_main():
        (output / "scores.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
        write_report(output, result)
    return result


def _judge_samples(cfg: EvalConfig, chosen: list, output: Path) -> list[dict]:
    orders = ("AB", "BA") if cfg.both_orders else ("AB",)
    with ResumableJsonl(output / "samples.jsonl", key="key", resume=cfg.resume) as samples:
        pending = [(p, s) for p, s in chosen if any(_key(p, o) not in samples.done for o in orders)]
        if pending:
            judge = Judge.from_pretrained(
                cfg.model,
                cfg.backend,
                cfg.prompt_format,
                cfg.generation,
                cfg.rubric,
                base_url=cfg.base_url,
                vllm=cfg.vllm,
            )

            def step(part, on_calls) -> list[dict]:
                pairs, slots = [p for p, _ in part], [s for _, s in part]
                judgements = judge.judge(pairs, cfg.both_orders, on_call=on_calls, slots=slots)
                return [
                    _sample(cfg.benchmark, pair, call)
                    for pair, j in zip(pairs, judgements, strict=True)
                    for call in j.calls
                    if _key(pair, call.order) not in samples.done
                ]

            judge_in_chunks(pending, step, samples, cfg.generation.batch_size, len(orders), f"eval {cfg.benchmark}")
        wanted = {pair_key(p) for p, _ in chosen}
        return [r for r in samples.records if r["pair"] in wanted]


def _key(pair: Pair, order: str) -> str:
    return f"{pair_key(pair)}|{order}"


def _sample(benchmark: str, pair: Pair, call) -> dict:
    winner = call.winner
    return {
        "key": _key(pair, call.order),
        "benchmark": benchmark,
        "pair": pair_key(pair),
        "id": pair.id,
        "unit": unit(pair),
        "source": pair.source,
        "domain": pair.domain,
        "subset": pair.meta.get("subset") or pair.meta.get("category_path"),
        "cell": [pair.meta["i"], pair.meta["j"]] if "i" in pair.meta else None,
        "order": call.order,
        "chosen_slot": call.chosen_slot,
        "chosen_longer": len(pair.chosen) > len(pair.rejected),
        "text": call.text,
        "verdict": call.verdict.to_dict(),
        "status": call.verdict.status,
        "outcome": None if winner is None else int(winner == "chosen"),
        "prompt_tokens": call.prompt_tokens,
        "completion_tokens": call.completion_tokens,
        "seconds": round(call.seconds, 4),
    }


# ---------------------------------------------------------------------------------------------------
# Scoring from the samples
# ---------------------------------------------------------------------------------------------------


def score(cfg: EvalConfig, records: list[dict]) -> dict:
    if not records:
        raise ReasrmError(f"{cfg.output}: no samples to score")
    by_pair: dict[str, list[dict]] = defaultdict(list)
    for r in records:
        by_pair[r["pair"]].append(r)
    result = {
        "benchmark": cfg.benchmark,
        "model": cfg.model or "embedded default (SmolLM2-135M-Instruct)",
        "both_orders": cfg.both_orders,
        "pairs": len(by_pair),
        "calls": len(records),
        "invalid": sum(r["status"] != "ok" for r in records),
    }
    for name, invalid in (("", 0.0), ("_invalid_half", 0.5)):
        outcomes = {k: mean(invalid if r["outcome"] is None else r["outcome"] for r in rs) for k, rs in by_pair.items()}
        result[f"accuracy{name}"] = mean(outcomes.values())
        result[f"scores{name}"] = _benchmark_scores(cfg.benchmark, by_pair, outcomes)
    result["headline"] = _headline(cfg.benchmark, result["scores"], result["accuracy"])
    result["bias"] = bias(list(by_pair.values()))
    return result


def _benchmark_scores(benchmark: str, by_pair: dict[str, list[dict]], outcomes: dict[str, float]) -> dict:
    first = {k: rs[0] for k, rs in by_pair.items()}
    if benchmark == "rewardbench":
        per_subset: dict[str, list[float]] = defaultdict(list)
        for k, r in first.items():
            per_subset[r["subset"]].append(outcomes[k])
        accuracy = rewardbench.subset_accuracy(per_subset)
        return {**rewardbench.section_scores(accuracy), "subsets": accuracy}
    if benchmark == "rm-bench":
        grids: dict[str, dict[str, list[list[float | None]]]] = defaultdict(dict)
        for k, r in first.items():
            grid = grids[r["domain"]].setdefault(r["unit"], [[None] * 3 for _ in range(3)])
            i, j = r["cell"]
            grid[i][j] = outcomes[k]
        incomplete = [u for d in grids.values() for u, g in d.items() if any(c is None for row in g for c in row)]
        if incomplete:
            raise ReasrmError(f"RM-Bench prompt {incomplete[0]} lacks some of its nine comparisons; resume the run")
        return rmbench.scores({d: list(g.values()) for d, g in grids.items()})
    if benchmark == "rmb":
        section = lambda r: "harmlessness" if r["domain"] == "safety" else "helpfulness"  # noqa: E731
        pairwise: dict[str, list[float]] = defaultdict(list)
        bon: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
        for k, r in first.items():
            if r["source"] == "bon":
                bon[section(r)][r["unit"]].append(outcomes[k])
            else:
                pairwise[section(r)].append(outcomes[k])
        return rmb.scores(pairwise, {s: list(records.values()) for s, records in bon.items()})
    per_domain: dict[str, list[float]] = defaultdict(list)
    for k, r in first.items():
        per_domain[str(r["domain"])].append(outcomes[k])
    return {domain: mean(values) for domain, values in sorted(per_domain.items())}


def _headline(benchmark: str, scores: dict, accuracy: float) -> float:
    key = {"rewardbench": "average", "rm-bench": "total", "rmb": "overall"}.get(benchmark)
    return scores.get(key, accuracy) if key else accuracy


def bias(by_pair: list[list[dict]]) -> dict:
    """Position and length bias, computed from the samples alone: the summary every command prints (A-rate,
    the chosen response's share of slot A, flip rate, right in both orders) and accuracy by length."""
    records = [r for rs in by_pair for r in rs]
    stats = summarize(by_pair)
    longer = [r["outcome"] or 0 for r in records if r["chosen_longer"]]
    shorter = [r["outcome"] or 0 for r in records if not r["chosen_longer"]]
    return {
        "a_rate": stats["a_rate"],
        "chosen_in_a": stats["chosen_in_a"],
        "flip_rate": stats.get("flip_rate"),
        "both_right": stats.get("both_right"),
        "accuracy_chosen_longer": mean(longer) if longer else None,
        "accuracy_chosen_shorter": mean(shorter) if shorter else None,
        "invalid_rate": {s: n / len(records) for s, n in stats["statuses"].items() if s != "ok"},
    }
