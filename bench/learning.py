"""Does stage two make the judge better? The stage-one checkpoint vs after RL, on held-out demo pairs.

    python bench/learning.py                     # ~110 min on a 2-core CPU in fp32; --help for the knobs
    python bench/learning.py --pairs 300 --steps 12 --skip-distill runs/bench/learning/distill/final
    python bench/learning.py --mix --chains 256  # the whole graded mix: five families, levels 1-3
    python bench/learning.py --families comparison:2,sorting:1,arithmetic:1 --levels 1,2  # a mix of your own
    python bench/learning.py --rl scale_rewards=none   # any `reasrm rl` override, for both RL runs
    python bench/learning.py --steps 24 --completions 32   # the earlier default: 2 pairs x both orders x 8
    python bench/learning.py --only ours --rl seed=1  # +28 to +40 on seeds 0-2 in fp32 (docs/findings.md)
    python bench/learning.py --only ours --rl seed=1 --validate-mix --reuse  # and on the whole mix

Through the project's own commands only: ``reasrm distill stages/distill.yaml both_orders=false
teacher.template_eval=joint`` (once; a start that leaves stage two work on this family), then two
``reasrm rl stages/rl.yaml`` runs from that checkpoint, on the same data, steps and completions per step:
  ours    both slot orders in every batch, rewards [verdict, consistency, format, solution] (the shipped default);
  rm-r1   one slot order per pair (balanced, shuffled), the verdict reward alone (RM-R1's way).
Each RL run validates the starting checkpoint and the trained judge on the same ``--pairs`` held-out pairs
in both orders (greedy, strict verdicts). Prints, per task family and for the whole mix: right in both
orders before and after, the gain with a paired-bootstrap 95% interval, the A-rate and the flip rate.
``--validate-mix`` also judges the starting checkpoint and each trained judge on held-out pairs of the whole
graded mix (five families, levels 1-3), whatever the runs trained on, with the RL stage's own validation.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from reasrm.runs import paired_gain

N = 4400  # the demo recipe size of these runs (10% held out)
WHOLE_MIX = "comparison:1,arithmetic:1,unit_conversion:1,sorting:1,python_expression:1"
RUNS = {
    "ours": [],
    "rm-r1": ["both_orders=false", "rewards=[verdict]", "reward_weights=null"],
}


def reasrm(*args: str) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "reasrm.cli", *args], check=True)
    return time.perf_counter() - started


def by_family(stats: dict, families: list[str]) -> dict:
    return {f: stats["by_family"].get(f) for f in families}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, default=300, help="held-out pairs validated in both orders")
    parser.add_argument("--n", type=int, default=N, help="demo recipe size (10%% held out: ~330 pairs)")
    parser.add_argument(
        "--chains",
        type=int,
        default=96,
        help="stage-one chains (the shipped 96; 256 already leave a judge right on ~98%% of two-digit pairs)",
    )
    parser.add_argument("--steps", type=int, default=16, help="GRPO steps per RL run (~45 min each here)")
    parser.add_argument(
        "--max-completion-length",
        type=int,
        help="RL completions and validations, in tokens (default 128; 256 with --mix, whose chains run longer)",
    )
    parser.add_argument(
        "--completions",
        type=int,
        default=64,
        help="completions per GRPO step: 64 = 4 pairs x both orders x 8 samples (ours), 8 pairs x 8 (rm-r1)",
    )
    parser.add_argument(
        "--accumulate",
        type=int,
        help="loss passes per GRPO step (default: one per 32 completions; two per 32 with --mix: 32 completions "
        "of 256 tokens in one pass peak at ~17 GB on a CPU, and the 24 GB host ran out of memory)",
    )
    parser.add_argument("--output", default="runs/bench/learning")
    parser.add_argument(
        "--mix",
        action="store_true",
        help="all five task families at levels 1-3 (default: the demo recipe's two-digit comparisons)",
    )
    parser.add_argument(
        "--families",
        help="family:weight,... (overrides --mix's five equal families), e.g. comparison:2,sorting:1,arithmetic:1",
    )
    parser.add_argument("--levels", help="difficulty levels, e.g. 1,2 (with --mix or --families; default 1,2,3)")
    parser.add_argument("--skip-distill", metavar="CHECKPOINT", help="start RL from this stage-one checkpoint")
    parser.add_argument("--only", choices=sorted(RUNS), help="run one RL variant")
    parser.add_argument(
        "--validate-mix",
        action="store_true",
        help="also judge the start and each trained judge on the whole mix (~8 min each)",
    )
    parser.add_argument(
        "--reuse", action="store_true", help="skip an RL run whose output already holds eval.json and use its figures"
    )
    parser.add_argument(
        "--rl",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="an override for both RL runs, e.g. --rl scale_rewards=none (repeatable)",
    )
    args = parser.parse_args()
    out = Path(args.output)
    args.mix = args.mix or bool(args.families)
    mix = f", families: {{{weights(args.families or WHOLE_MIX)}}}, levels: [{args.levels or '1, 2, 3'}]"
    mix = mix if args.mix else ""
    data = f"recipe_params={{n: {args.n}{mix}}}"
    length = args.max_completion_length or (256 if args.mix else 128)
    accumulate = args.accumulate or max(1, args.completions // 32) * (2 if args.mix else 1)
    if args.completions % (8 * accumulate):
        parser.error(f"--completions {args.completions}: not whole groups of 8 in {accumulate} loss passes")
    batch = [
        f"per_device_train_batch_size={args.completions // accumulate}",
        f"gradient_accumulation_steps={accumulate}",
    ]
    seconds = {}
    start = args.skip_distill or str(out / "distill" / "final")
    if not args.skip_distill:
        # Validated on the RL runs' pairs: both RL runs then start from these figures instead of measuring again.
        seconds["distill"] = reasrm(
            "distill",
            "stages/distill.yaml",
            data,
            f"limit={args.chains}",
            "both_orders=false",  # one order and the joint chain leave stage two something to teach here
            "teacher.template_eval=joint",
            f"validation_pairs={args.pairs}",
            f"validation_max_new_tokens={length}",
            f"output={out / 'distill'}",
            "overwrite=true",
        )
    results = {}
    for name, extra in RUNS.items():
        if args.only and name != args.only:
            continue
        if args.reuse and (out / name / "eval.json").exists():
            print(f"{name}: reusing {out / name} (--reuse)")
            results[name] = json.loads((out / name / "eval.json").read_text(encoding="utf-8"))
            continue
        seconds[name] = reasrm(
            "rl",
            "stages/rl.yaml",
            f"model={start}",
            data,
            f"max_steps={args.steps}",
            f"max_completion_length={length}",
            f"validation_pairs={args.pairs}",
            "eval_steps=0",
            f"output={out / name}",
            "overwrite=true",
            *batch,
            *extra,
            *args.rl,
        )
        results[name] = json.loads((out / name / "eval.json").read_text(encoding="utf-8"))

    first = next(iter(results.values()))["before"]
    families = sorted(first["by_family"])
    print(
        f"\nheld-out demo pairs: {first['pairs']}, both orders, greedy, strict verdicts; RL steps: {args.steps} "
        f"of {args.completions} completions"
    )
    print(f"{'':<16}{'family':<20}{'before':>8}{'after':>8}{'gain':>8}")
    for name, saved in results.items():
        before, after = saved["before"], saved["after"]
        for family in families:
            b, a = before["by_family"][family], after["by_family"][family]
            print(f"{name:<16}{family:<20}{b:>8.3f}{a:>8.3f}{a - b:>+8.3f}")
        gain, low, high = paired_gain(before["right"], after["right"])
        print(
            f"{name:<16}{'whole mix':<20}{before['both_right']:>8.3f}{after['both_right']:>8.3f}{gain:>+8.3f}"
            f"   95% CI [{low:+.3f}, {high:+.3f}]"
        )
        for key in ("valid", "a_rate", "flip_rate", "accuracy"):
            b, a = before.get(key), after.get(key)
            print(f"{name:<16}{key:<20}{_f(b):>8}{_f(a):>8}")
    if args.validate_mix:
        started = time.perf_counter()
        checkpoints = {"start": start, **{name: str(out / name / "final") for name in results}}
        whole = validate_mix(checkpoints, args.pairs, args.n, args.max_completion_length or 256)
        seconds["validate-mix"] = time.perf_counter() - started
        print(f"\nthe whole mix (five families, levels 1-3): {args.pairs} held-out pairs, both orders, greedy")
        print(f"{'':<16}{'family':<20}{'before':>8}{'after':>8}{'gain':>8}")
        before = whole.pop("start")
        for name, after in whole.items():
            for family in sorted(before["by_family"]):
                b, a = before["by_family"][family], after["by_family"].get(family, 0.0)
                print(f"{name:<16}{family:<20}{b:>8.3f}{a:>8.3f}{a - b:>+8.3f}")
            gain, low, high = paired_gain(before["right"], after["right"])
            print(
                f"{name:<16}{'whole mix':<20}{before['both_right']:>8.3f}{after['both_right']:>8.3f}{gain:>+8.3f}"
                f"   95% CI [{low:+.3f}, {high:+.3f}]"
            )
            for key in ("both_right_chance", "valid", "a_rate", "flip_rate", "accuracy"):
                print(f"{name:<16}{key:<20}{_f(before.get(key)):>8}{_f(after.get(key)):>8}")
    print("wall time (s): " + ", ".join(f"{k} {v:.0f}" for k, v in seconds.items()))


def weights(families: str) -> str:
    """``comparison:2,sorting:1`` as the recipe's mapping body, ``comparison: 2, sorting: 1``."""
    return ", ".join(f"{name}: {weight}" for name, weight in (item.split(":") for item in families.split(",")))


def mix_jobs(pairs: int, n: int = N) -> list:
    """``pairs`` held-out pairs of the whole mix (drawn with seed 0) from a demo recipe of ``n`` pairs."""
    from reasrm.data.synthetic import whole_mix
    from reasrm.training.validation import heldout_jobs

    return heldout_jobs("data_recipes/demo.yaml", whole_mix(n), pairs, 0)


def validate_mix(checkpoints: dict[str, str], pairs: int, n: int, max_new_tokens: int) -> dict[str, dict]:
    """Each checkpoint judged on ``pairs`` held-out pairs of the whole mix (drawn with seed 0, the same for
    all), greedy, both orders, by the RL stage's own validation. Each result is kept next to its checkpoint
    (``mix_validation.json``) and reused while the pairs, the token limit and the weights file are the same:
    the seeds' runs share one starting checkpoint, judged once."""
    from reasrm.card import judge_prompt, read_card
    from reasrm.models import load_model, load_tokenizer
    from reasrm.training.validation import jobs_digest, validate

    jobs = mix_jobs(pairs, n)
    results = {}
    for name, checkpoint in checkpoints.items():
        files = sorted(Path(checkpoint).glob("*.safetensors"))
        stamp = [[f.name, f.stat().st_size, f.stat().st_mtime_ns] for f in files]
        key = {"digest": jobs_digest(jobs), "max_new_tokens": max_new_tokens, "weights": stamp}
        saved = Path(checkpoint).parent / "mix_validation.json"
        if saved.exists() and (kept := json.loads(saved.read_text(encoding="utf-8"))).get("key") == key:
            print(f"{name}: reusing {saved}", file=sys.stderr, flush=True)
            results[name] = kept["stats"]
            continue
        print(f"validating {name} ({checkpoint}) on the whole mix", file=sys.stderr, flush=True)
        prompt = judge_prompt(checkpoint, read_card(checkpoint))
        model = load_model(checkpoint)
        results[name] = validate(model, load_tokenizer(checkpoint), prompt, jobs, max_new_tokens)
        saved.write_text(json.dumps({"key": key, "stats": results[name]}, indent=1) + "\n", encoding="utf-8")
    return results


def _f(value) -> str:
    return "-" if value is None else f"{value:.3f}"


if __name__ == "__main__":
    main()
