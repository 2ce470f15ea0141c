"""Does stage two teach beyond one family? Stage one, then stage two on three seeds, per task family.

    python bench/families.py                              # five families x 3 seeds (~12 h on 2 cores)
    python bench/families.py --families minimum --seeds 0 # one family, one seed
    python bench/families.py --stage-one-only             # what stage one leaves on each family (~11 min each)
    python bench/families.py --distill both_orders=false  # a stage-one variant, the same RL after it

Each family is one question whose worked reference the 135M student copies into its ``<solution>``
(``comparison``: which is larger; ``minimum``: which is smaller; ``successor``: the number after n;
``tens_digit``: the tens digit of n; ``parity``: even or odd). The two-number families use two-digit numbers
(level 1); the one-number families three-digit numbers (level 2): two-digit numbers give them 68-170
distinct questions, 6-13 held out, too few to validate on (``FAMILIES``). Whether a family is within the
student's reach is measured, not assumed: stage one's ``solution`` figure. Through the project's own commands
only, with the shipped defaults: ``reasrm distill stages/distill.yaml`` on the family (its held-out
validation before and after SFT), then ``reasrm rl stages/rl.yaml`` from that checkpoint on each seed. Every
validation holds the family's pairs alone (checked), up to 100 held out, in both orders, greedy, and
reports the judge's ``<solution>`` naming the chosen response (``solution``), its verdict following its own solution
(``follows``), right in both orders, the A-rate and the flip rate (``reasrm.training.validation``). The
table: per family the stage-one figures, and per seed the gain in right-in-both-orders with a paired
bootstrap 95% interval, the A-rate and flip rate before -> after, and whether the issue's target is met
(after >= 0.60 or gain >= +0.30 with the interval above 0; A-rate within 0.5 +/- 0.15; flip lower, or 0);
``trained``: the pairs stage two trained on (all, or those the difficulty filter kept: ``strong_start``
switches it on for a start the preflight samples right in over 90% of calls).
``--reuse`` takes a run whose folder already holds ``eval.json``; ``--report`` runs nothing and prints the
table of the runs already there (and which are missing). A finished run (stage one or two) keeps ``final/``,
``eval.json`` and its per-step log (``trainer_state.json``); its resumable ``checkpoint-*`` folders (model and
optimizer, 1.6 GB each at 135M) are removed unless ``--keep-checkpoints``: twenty runs would fill a small disk.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

from reasrm.runs import paired_gain

FAMILIES = {"comparison": 1, "minimum": 1, "successor": 2, "tens_digit": 2, "parity": 2}  # family -> level


def reasrm(*args: str) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "reasrm.cli", *args], check=True)
    return time.perf_counter() - started


def measured(folder: Path) -> dict:
    return json.loads((folder / "eval.json").read_text(encoding="utf-8"))


def drop_checkpoints(run: Path) -> None:
    """Keep the last checkpoint's ``trainer_state.json`` (the per-step log) in ``run``, remove the checkpoints."""
    checkpoints = sorted(run.glob("checkpoint-*"), key=lambda c: int(c.name.split("-")[-1]))
    if checkpoints and (checkpoints[-1] / "trainer_state.json").exists():
        shutil.copy2(checkpoints[-1] / "trainer_state.json", run / "trainer_state.json")
    for checkpoint in checkpoints:
        shutil.rmtree(checkpoint)


def trained_on(run: Path) -> str:
    """The training pairs stage two kept: all, or the difficulty filter's count (``filter_pass_rate``, or
    ``strong_start`` switching it on)."""
    report = run / "filter.json"
    if not report.exists():
        return "all"
    counts = json.loads(report.read_text(encoding="utf-8"))
    return f"{counts['kept']}/{counts['pairs']}"


def fmt(value, spec: str = ".3f") -> str:
    return "-" if value is None else format(value, spec)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--families", default=",".join(FAMILIES), help="comma-separated family names")
    parser.add_argument("--seeds", default="0,1,2", help="RL seeds, comma-separated")
    parser.add_argument("--n", type=int, default=1500, help="pairs per family (10%% held out)")
    parser.add_argument("--output", default="runs/bench/families")
    parser.add_argument("--stage-one-only", action="store_true", help="distill and validate, no RL")
    parser.add_argument("--distill", action="append", default=[], metavar="KEY=VALUE", help="a distill override")
    parser.add_argument("--rl", action="append", default=[], metavar="KEY=VALUE", help="an rl override")
    parser.add_argument("--reuse", action="store_true", help="keep runs whose folder already holds eval.json")
    parser.add_argument("--report", action="store_true", help="run nothing: the table of the runs already there")
    parser.add_argument("--keep-checkpoints", action="store_true", help="keep each run's resumable checkpoints")
    args = parser.parse_args()
    out = Path(args.output)
    seconds: dict[str, float] = {}
    rows, missing = [], []
    for family in args.families.split(","):
        data = f"recipe_params={{n: {args.n}, families: {{{family}: 1}}, levels: [{FAMILIES[family]}]}}"
        distilled = out / family / "distill"
        if args.report and not (distilled / "eval.json").exists():
            missing.append(f"{family} distill")
            continue
        if not (args.reuse and (distilled / "eval.json").exists()) and not args.report:
            seconds[f"{family} distill"] = reasrm(
                "distill", "stages/distill.yaml", data, f"output={distilled}", "overwrite=true", *args.distill
            )
            if not args.keep_checkpoints:
                drop_checkpoints(distilled)
        start = measured(distilled)
        if set(start["after"].get("by_family") or {family: 0}) != {family}:
            sys.exit(f"{distilled}: validated on {sorted(start['after']['by_family'])}, not {family} alone")
        rows.append((family, "stage one", "-", start["before"], start["after"]))
        if args.stage_one_only:
            continue
        for seed in args.seeds.split(","):
            run = out / family / f"rl-s{seed}"
            if args.report and not (run / "eval.json").exists():
                missing.append(f"{family} rl s{seed}")
                continue
            if not (args.reuse and (run / "eval.json").exists()) and not args.report:
                seconds[f"{family} rl s{seed}"] = reasrm(
                    "rl",
                    "stages/rl.yaml",
                    f"model={distilled / 'final'}",
                    data,
                    f"seed={seed}",
                    "eval_steps=0",
                    f"output={run}",
                    "overwrite=true",
                    *args.rl,
                )
                if not args.keep_checkpoints:
                    drop_checkpoints(run)
            after = measured(run)
            rows.append((family, f"rl seed {seed}", trained_on(run), after["before"], after["after"]))
    print(f"\n{len(rows)} runs; per family its held-out pairs (up to 100) in both orders, greedy")
    print(
        f"  {'family':<12} {'run':<12} {'trained':>7} {'pairs':>5} {'solution':>9} {'follows':>15} {'both-right':>15} "
        f"{'gain, 95% CI':>26} {'A-rate':>15} {'flip':>15}  target"
    )
    for family, name, trained, before, after in rows:
        gain, low, high = paired_gain(before["right"], after["right"])
        flip_after = after.get("flip_rate") or 0
        flip_lower = flip_after < (before.get("flip_rate") or 1) or flip_after == 0  # none left to lower
        a_rate = after.get("a_rate")
        met = (after["both_right"] >= 0.60 or (gain >= 0.30 and low > 0)) and a_rate is not None
        met = met and abs(a_rate - 0.5) <= 0.15 and flip_lower
        target = "-" if name == "stage one" else "met" if met else "not met"
        print(
            f"  {family:<12} {name:<12} {trained:>7} {after['pairs']:>5} {fmt(after.get('solution_right')):>9} "
            f"{fmt(before.get('follows'))} -> {fmt(after.get('follows'))} "
            f"{fmt(before['both_right'])} -> {fmt(after['both_right'])} "
            f"{gain:+.3f} [{low:+.3f}, {high:+.3f}] "
            f"{fmt(before.get('a_rate'))} -> {fmt(a_rate)} {fmt(before.get('flip_rate'))} -> "
            f"{fmt(after.get('flip_rate'))}  {target}"
        )
    for name, s in seconds.items():
        print(f"  {name}: {s:.0f} s")
    if missing:
        print(f"  not run: {', '.join(missing)}")


if __name__ == "__main__":
    main()
