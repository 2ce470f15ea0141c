"""The report of an evaluation: ``report.md``, a terminal table, and PNG figures, from the scores alone."""

from __future__ import annotations

from pathlib import Path


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
    for key in (
        "a_rate",
        "chosen_in_a",
        "flip_rate",
        "both_right",
        "accuracy_chosen_longer",
        "accuracy_chosen_shorter",
    ):
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
            ax.set(
                title=f"{domain} (total {d['total']:.2f})",
                xlabel="rejected style",
                ylabel="chosen style",
                xticks=range(3),
                yticks=range(3),
                xticklabels=["concise", "plain", "md"],
                yticklabels=["concise", "plain", "md"],
            )
        paths.append(_save(fig, output / "rmbench_matrix.png"))
    flat = {k: v for k, v in _flat(scores).items() if "matrix" not in k and not k.startswith("subsets.")}
    fig, ax = plt.subplots(figsize=(max(4, 0.6 * len(flat) + 2), 3.4))
    ax.bar(range(len(flat)), [100 * v for v in flat.values()], color="tab:blue")
    ax.set(xticks=range(len(flat)), ylim=(0, 100), ylabel="score", title=f"{result['benchmark']} scores")
    ax.set_xticklabels(list(flat), rotation=45, ha="right")
    paths.append(_save(fig, output / "sections.png"))
    b = result["bias"]
    panel = {
        "A-rate": b["a_rate"],
        "chosen in A": b["chosen_in_a"],
        "flip rate": b["flip_rate"],
        "acc. chosen longer": b["accuracy_chosen_longer"],
        "acc. chosen shorter": b["accuracy_chosen_shorter"],
        "invalid rate": sum(b["invalid_rate"].values()),
    }
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
