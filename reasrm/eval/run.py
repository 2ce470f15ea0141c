"""`reasrm eval`: judge a benchmark, then score it exactly as the benchmark does.

    reasrm eval --benchmark rm-bench --data-dir ../shared/data/rm-bench --limit 20 --output runs/eval/rm-bench

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
from collections import Counter, defaultdict
from pathlib import Path

from tqdm.auto import tqdm

from reasrm.backends import backend_options
from reasrm.config import EvalConfig, check_resume, save_config
from reasrm.data.build import collect, load_built, load_recipe
from reasrm.data.pairs import Pair
from reasrm.errors import ReasrmDataError, ReasrmError
from reasrm.eval import mean, rewardbench, rmb, rmbench
from reasrm.jsonl import ResumableJsonl

# ---------------------------------------------------------------------------------------------------
# The pairs of a benchmark, and the unit that --limit counts (a prompt's 3x3 grid, a BoN record, a pair)
# ---------------------------------------------------------------------------------------------------


def benchmark_pairs(cfg: EvalConfig) -> list[Pair]:
    if cfg.benchmark == "pairs":
        pairs = load_built(cfg.data_dir, "heldout")
        if not pairs:
            raise ReasrmDataError(f"{cfg.data_dir}: the held-out split is empty; build with heldout.fraction > 0")
    else:
        params = {"rm-bench": "data_dir", "rmb": "data_dir", "rewardbench": "dataset"}[cfg.benchmark]
        recipe = load_recipe(cfg.benchmark, [f"{params}={cfg.data_dir}"] if cfg.data_dir else [])
        train, heldout, _, _ = collect(recipe)
        pairs = train + heldout
    if cfg.domain is not None:
        pairs = [p for p in pairs if p.domain == cfg.domain]
        if not pairs:
            raise ReasrmDataError(f"{cfg.benchmark}: no pairs of domain {cfg.domain!r}")
    if cfg.limit is not None:
        units = sorted({unit(p) for p in pairs}, key=lambda u: hashlib.sha256(f"{cfg.seed}\x00{u}".encode()).digest())
        keep = set(units[: cfg.limit])
        pairs = [p for p in pairs if unit(p) in keep]
    return pairs


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
_RESULT_KEYS = ("benchmark", "model", "backend", "base_url", "prompt_format", "rubric", "data_dir", "domain",
                "both_orders", "seed", "generation")  # fmt: skip


def run(cfg: EvalConfig) -> dict:
    """Judge (resumably) and score; returns the scores, also written to ``scores.json``."""
    from reasrm.judge import Judge

    pairs = benchmark_pairs(cfg)
    output = Path(cfg.output)
    output.mkdir(parents=True, exist_ok=True)
    calls_per_pair = 2 if cfg.both_orders else 1
    if cfg.resume:
        check_resume(output / "eval.yaml", cfg, _RESULT_KEYS)
    with ResumableJsonl(output / "samples.jsonl", key="key", resume=cfg.resume, overwrite=cfg.overwrite) as samples:
        save_config(cfg, output / "eval.yaml")
        pending = [p for p in pairs if any(_key(p, o) not in samples.done for o in ("AB", "BA")[:calls_per_pair])]
        if pending:
            judge = Judge.from_pretrained(cfg.model, cfg.backend, cfg.prompt_format, cfg.generation, cfg.rubric,
                                          **backend_options(cfg))  # fmt: skip
            chunk = cfg.generation.batch_size * 4
            with tqdm(
                total=len(pending) * calls_per_pair, unit="call", desc=f"eval {cfg.benchmark}", disable=None
            ) as bar:
                for start in range(0, len(pending), chunk):
                    part = pending[start : start + chunk]
                    for pair, judgement in zip(
                        part, judge.judge(part, cfg.both_orders, cfg.seed, bar.update), strict=True
                    ):
                        for call in judgement.calls:
                            if _key(pair, call.order) not in samples.done:
                                samples.write(_sample(cfg.benchmark, pair, call))
        wanted = {pair_key(p) for p in pairs}
        records = [r for r in samples.records if r["pair"] in wanted]
    result = score(cfg, records)
    (output / "scores.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    write_report(output, result)
    return result


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
    statuses = Counter(r["status"] for r in records)
    result = {
        "benchmark": cfg.benchmark,
        "model": cfg.model or "embedded default (SmolLM2-135M-Instruct)",
        "both_orders": cfg.both_orders,
        "pairs": len(by_pair),
        "calls": len(records),
        "invalid": sum(n for status, n in statuses.items() if status != "ok"),
    }
    for name, invalid in (("", 0.0), ("_invalid_half", 0.5)):
        outcomes = {k: mean(invalid if r["outcome"] is None else r["outcome"] for r in rs) for k, rs in by_pair.items()}
        result[f"accuracy{name}"] = mean(outcomes.values())
        result[f"scores{name}"] = _benchmark_scores(cfg.benchmark, by_pair, outcomes)
    result["headline"] = _headline(cfg.benchmark, result["scores"], result["accuracy"])
    result["bias"] = bias(records, by_pair, statuses)
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


def bias(records: list[dict], by_pair: dict[str, list[dict]], statuses: Counter) -> dict:
    """Position and length bias, computed from the samples alone."""
    valid = [r for r in records if r["verdict"]["choice"] is not None]
    both = [rs for rs in by_pair.values() if len(rs) == 2 and all(r["outcome"] is not None for r in rs)]
    longer = [r["outcome"] or 0 for r in records if r["chosen_longer"]]
    shorter = [r["outcome"] or 0 for r in records if not r["chosen_longer"]]
    return {
        "a_rate": mean(r["verdict"]["choice"] == "A" for r in valid) if valid else None,
        "chosen_in_a": mean(r["chosen_slot"] == "A" for r in records),
        "flip_rate": mean(rs[0]["outcome"] != rs[1]["outcome"] for rs in both) if both else None,
        "accuracy_chosen_longer": mean(longer) if longer else None,
        "accuracy_chosen_shorter": mean(shorter) if shorter else None,
        "invalid_rate": {s: n / len(records) for s, n in statuses.most_common() if s != "ok"},
    }


# ---------------------------------------------------------------------------------------------------
# Report and figures
# ---------------------------------------------------------------------------------------------------


def write_report(output: Path, result: dict) -> None:
    figures = plot(output, result)
    b = result["bias"]
    orders = "both orders" if result["both_orders"] else "one order"
    accuracy, half = 100 * result["accuracy"], 100 * result["accuracy_invalid_half"]
    lines = [
        f"# {result['benchmark']}: {result['model']}",
        "",
        f"{result['pairs']} pairs, {result['calls']} judge calls ({orders}), {result['invalid']} invalid verdicts.",
        "",
        f"**Headline: {100 * result['headline']:.1f}** (invalid verdicts scored 0; accuracy {accuracy:.1f}, "
        f"with invalid as 0.5: {half:.1f})",
        "",
        "| score | invalid = 0 | invalid = 0.5 |",
        "|---|---|---|",
    ]
    for key, value in _flat(result["scores"]).items():
        lines.append(f"| {key} | {100 * value:.1f} | {100 * _flat(result['scores_invalid_half'])[key]:.1f} |")
    lines += ["", "## Bias", "", "| measure | value |", "|---|---|"]
    for key in ("a_rate", "chosen_in_a", "flip_rate", "accuracy_chosen_longer", "accuracy_chosen_shorter"):
        lines.append(f"| {key} | {'-' if b[key] is None else f'{b[key]:.3f}'} |")
    for status, rate in b["invalid_rate"].items():
        lines.append(f"| invalid: {status} | {rate:.3f} |")
    lines += ["", *[f"![{f.stem}]({f.name})" for f in figures], ""]
    (output / "report.md").write_text("\n".join(lines), encoding="utf-8")


def _flat(scores: dict, prefix: str = "") -> dict[str, float]:
    out = {}
    for key, value in scores.items():
        if isinstance(value, dict):
            out.update(_flat(value, f"{prefix}{key}."))
        elif isinstance(value, (int, float)):
            out[f"{prefix}{key}"] = value
    return out


def table(result: dict) -> str:
    """The scores as a plain-text table for the terminal."""
    rows = [(k, v, _flat(result["scores_invalid_half"])[k]) for k, v in _flat(result["scores"]).items()]
    width = max(len(k) for k, _, _ in rows)
    lines = [f"{'score'.ljust(width)}  invalid=0  invalid=0.5"]
    lines += [f"{k.ljust(width)}  {100 * a:9.1f}  {100 * h:11.1f}" for k, a, h in rows]
    return "\n".join(lines)


def plot(output: Path, result: dict) -> list[Path]:
    """PNG figures: the RM-Bench 3x3 matrix per domain, the sections as bars, and the bias panel."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = []
    scores = result["scores"]
    if result["benchmark"] == "rm-bench":
        domains = scores["domains"]
        fig, axes = plt.subplots(1, len(domains), figsize=(3.6 * len(domains), 3.4), squeeze=False)
        for ax, (domain, d) in zip(axes[0], domains.items(), strict=True):
            ax.imshow(d["matrix"], vmin=0, vmax=1, cmap="viridis")
            for i in range(3):
                for j in range(3):
                    ax.text(j, i, f"{d['matrix'][i][j]:.2f}", ha="center", va="center", color="w")
            ax.set(title=f"{domain} (total {d['total']:.2f})", xlabel="rejected style", ylabel="chosen style",
                   xticks=range(3), yticks=range(3), xticklabels=["concise", "plain", "md"],
                   yticklabels=["concise", "plain", "md"])  # fmt: skip
        paths.append(_save(fig, output / "rmbench_matrix.png"))
    flat = {k: v for k, v in _flat(scores).items() if "matrix" not in k and not k.startswith("subsets.")}
    fig, ax = plt.subplots(figsize=(max(4, 0.6 * len(flat) + 2), 3.4))
    ax.bar(range(len(flat)), [100 * v for v in flat.values()], color="tab:blue")
    ax.set(xticks=range(len(flat)), ylim=(0, 100), ylabel="score", title=f"{result['benchmark']} scores")
    ax.set_xticklabels(list(flat), rotation=45, ha="right")
    paths.append(_save(fig, output / "sections.png"))
    b = result["bias"]
    panel = {"A-rate": b["a_rate"], "chosen in A": b["chosen_in_a"], "flip rate": b["flip_rate"],
             "acc. chosen longer": b["accuracy_chosen_longer"], "acc. chosen shorter": b["accuracy_chosen_shorter"],
             "invalid rate": sum(b["invalid_rate"].values())}  # fmt: skip
    fig, ax = plt.subplots(figsize=(6, 3.4))
    ax.bar(range(len(panel)), [0 if v is None else v for v in panel.values()], color="tab:orange")
    ax.axhline(0.5, color="grey", lw=0.8, ls="--")
    ax.set(xticks=range(len(panel)), ylim=(0, 1), title="bias (n/a shown as 0)")
    ax.set_xticklabels(list(panel), rotation=30, ha="right")
    paths.append(_save(fig, output / "bias.png"))
    return paths


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    import matplotlib.pyplot as plt

    plt.close(fig)
    return path
