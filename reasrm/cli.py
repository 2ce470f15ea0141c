"""The ``reasrm`` command. User errors print one clean message per problem and exit with code 2."""

from __future__ import annotations

import argparse
import logging
import sys
import textwrap

from reasrm.errors import ReasrmError

log = logging.getLogger("reasrm")

# `reasrm judge` flags: each is sugar for a `key=value` override of the judge config.
_JUDGE_FLAGS = {
    "model": ("--model", str, "hub id, local HF folder or .gguf file (default: the embedded default)"),
    "pairs": ("--pairs", str, "input JSONL of pairs"),
    "output": ("--output", str, "output JSONL, one line per pair"),
    "prompt_format": ("--prompt-format", str, "prompt format name or .yaml path (default: the judge card's)"),
    "backend": ("--backend", str, "hf (default), vllm, or openai (with --base-url)"),
    "base_url": ("--base-url", str, "openai backend: the server, e.g. http://127.0.0.1:8000/v1"),
    "generation.batch_size": ("--batch-size", int, "judge calls generated together"),
    "generation.max_new_tokens": ("--max-new-tokens", int, "most tokens the judge may write per call"),
    "generation.temperature": ("--temperature", float, "0 = greedy (default)"),
    "seed": ("--seed", int, "seeds the slot of the chosen response"),
}
_JUDGE_SWITCHES = {
    "both_orders": ("--both-orders", "judge (A,B) and (B,A) and aggregate"),
    "resume": ("--resume", "continue an interrupted run without redoing finished pairs"),
    "overwrite": ("--overwrite", "replace an existing output file"),
}


_EVAL_FLAGS = {
    "benchmark": ("--benchmark", str, "rewardbench, rm-bench, rmb or pairs"),
    **{k: v for k, v in _JUDGE_FLAGS.items() if k not in ("pairs", "output")},
    "data_dir": ("--data-dir", str, "local benchmark data, or for `pairs` a built dataset folder"),
    "domain": ("--domain", str, "evaluate only this domain"),
    "limit": ("--limit", int, "prompts / records / pairs to evaluate, drawn with the seed"),
    "output": ("--output", str, "output folder"),
}


def _add_flags(parser: argparse.ArgumentParser, flags: dict, switches: dict) -> None:
    """Flags that are sugar for `key=value` overrides of the command's config."""
    parser.add_argument("args", nargs="*", metavar="[CONFIG.yaml] [key=value]", help="config file and overrides")
    for key, (flag, kind, text) in flags.items():
        parser.add_argument(flag, dest=key, type=kind, help=text)
    for key, (flag, text) in switches.items():
        parser.add_argument(flag, dest=key, action="store_true", default=None, help=text)


def _overrides(args: argparse.Namespace, keys) -> tuple[str | None, list[str]]:
    path, overrides = _split(args.args)
    overrides += [f"{key}={getattr(args, key)}" for key in keys if getattr(args, key) is not None]
    return path, overrides


def _quiet_transformers() -> None:
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        return args.func(args)
    except ReasrmError as e:
        for line in str(e).splitlines():
            print(f"reasrm: error: {line}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("reasrm: interrupted", file=sys.stderr)
        return 130


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="reasrm", description="Train and use reasoning reward models.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    judge = commands.add_parser(
        "judge",
        help="judge the pairs of a JSONL file",
        description="Judge every pair of a JSONL file; write one JSON line per pair (resumable).",
        epilog=textwrap.dedent("""\
            example: reasrm judge --pairs pairs.jsonl --output out.jsonl --both-orders
                     reasrm judge stages/judge.yaml generation.max_new_tokens=256"""),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_flags(judge, _JUDGE_FLAGS, _JUDGE_SWITCHES)
    judge.add_argument("--show", action="store_true", help="print each judgement readably as it lands")
    judge.set_defaults(func=_judge)

    evaluate = commands.add_parser(
        "eval",
        help="evaluate a judge on RewardBench, RM-Bench, RMB or a held-out split",
        description="Judge a benchmark and score it exactly as the benchmark does (resumable).",
        epilog="example: reasrm eval --benchmark rm-bench --data-dir ../shared/data/rm-bench --limit 20 "
        "--output runs/eval/rm-bench",
    )
    _add_flags(evaluate, _EVAL_FLAGS, _JUDGE_SWITCHES)
    evaluate.set_defaults(func=_eval)

    policy = commands.add_parser(
        "policy",
        help="train a policy with the judge as its GRPO reward",
        description="Train a policy with TRL's GRPOTrainer, the judge's pairwise verdicts as its reward.",
        epilog="example: reasrm policy stages/policy_grpo.yaml max_steps=2",
    )
    policy.add_argument("config", metavar="CONFIG.yaml")
    policy.add_argument("overrides", nargs="*", metavar="key=value")
    policy.set_defaults(func=_policy)

    serve = commands.add_parser(
        "serve",
        help="serve the judge over HTTP (OpenAI chat completions and /v1/judge)",
        description="Serve the judge over HTTP: /v1/chat/completions, /v1/judge, /v1/models, /health.",
        epilog="example: reasrm serve --model path/to/judge --port 8000 --api-key SECRET",
    )
    serve.add_argument("--model", help="hub id, local HF folder or .gguf file (default: the embedded default)")
    serve.add_argument("--prompt-format", help="prompt format name or .yaml path (default: the judge card's)")
    serve.add_argument("--backend", default="hf", help="hf (default) or vllm")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--api-key", help="require 'Authorization: Bearer KEY' (default: $REASRM_API_KEY if set)")
    serve.add_argument("--max-new-tokens", type=int, default=512, help="default for requests that give none")
    serve.add_argument("--batch-size", type=int, default=16, help="judge calls generated together")
    serve.set_defaults(func=_serve)

    data = commands.add_parser("data", help="build preference-pair datasets from recipes")
    data_commands = data.add_subparsers(dest="data_command", required=True, metavar="COMMAND")
    build = data_commands.add_parser(
        "build",
        help="run a recipe into a dataset folder",
        description="Run a recipe (data_recipes/*.yaml) into train/heldout parquet files and a report.",
        epilog="example: reasrm data build data_recipes/demo.yaml n=1000 seed=0 --output runs/data/demo",
    )
    build.add_argument("recipe", metavar="RECIPE.yaml")
    build.add_argument("overrides", nargs="*", metavar="key=value", help="recipe parameters and overrides")
    build.add_argument("--output", required=True, help="dataset folder to write")
    build.add_argument("--overwrite", action="store_true", help="replace an existing dataset folder")
    build.set_defaults(func=_data_build)

    for name, func, text in (
        ("validate", _validate, "check configs and report every problem at once"),
        ("print-config", _print_config, "print the resolved config"),
    ):
        sub = commands.add_parser(name, help=text, description=text)
        sub.add_argument("config", metavar="CONFIG.yaml")
        sub.add_argument("overrides", nargs="*", metavar="key=value")
        sub.set_defaults(func=func)
    return parser


def _split(args: list[str]) -> tuple[str | None, list[str]]:
    """An optional leading config path, then key=value overrides."""
    if args and "=" not in args[0]:
        return args[0], args[1:]
    return None, args


def _judge(args: argparse.Namespace) -> int:
    from reasrm.config import JudgeConfig, load_config

    cfg = load_config(*_overrides(args, [*_JUDGE_FLAGS, *_JUDGE_SWITCHES]), schema=JudgeConfig)
    from reasrm.judge import run, summarize

    _quiet_transformers()
    output = run(cfg, show=_show if args.show else None)

    import json

    records = [json.loads(line) for line in output.read_text(encoding="utf-8").splitlines()]
    stats = summarize(records)
    log.info("wrote %s (%d pairs; config beside it)", output, stats["pairs"])
    log.info("  status      %s", ", ".join(f"{k} {v}" for k, v in stats["statuses"].items()))
    if stats["a_rate"] is not None:
        log.info("  A-rate      %.3f of valid verdicts", stats["a_rate"])
    if "accuracy" in stats:
        log.info(
            "  accuracy    %.3f (invalid counts as wrong; label-prior baseline %.3f)",
            stats["accuracy"],
            stats["label_prior"],
        )
    if "flip_rate" in stats:
        log.info("  flip rate   %.3f of pairs judged validly in both orders", stats["flip_rate"])
    return 0


def _eval(args: argparse.Namespace) -> int:
    from reasrm.config import EvalConfig, load_config

    cfg = load_config(*_overrides(args, [*_EVAL_FLAGS, *_JUDGE_SWITCHES]), schema=EvalConfig)
    from reasrm.eval.run import run, table

    _quiet_transformers()
    result = run(cfg)
    b = result["bias"]
    print(table(result))
    log.info("%s: headline %.1f over %d pairs (%d invalid calls); A-rate %s, flip rate %s; report: %s/report.md",
             cfg.benchmark, 100 * result["headline"], result["pairs"], result["invalid"],
             "-" if b["a_rate"] is None else f"{b['a_rate']:.2f}",
             "-" if b["flip_rate"] is None else f"{b['flip_rate']:.2f}", cfg.output)  # fmt: skip
    return 0


def _show(judgement, pair) -> None:
    v = judgement.verdict
    call = judgement.calls[0]
    question = pair.context[-1]["content"]
    print(f"\n=== pair {pair.id}: {_clip(question, 100)}")
    if call.chosen_slot:
        print(f"  label       chosen response in slot {call.chosen_slot}")
    print(f"  task type   {v.task_type or '-'}")
    if v.rubric is not None:
        print(f"  rubric      {_clip(v.rubric, 300)}")
    if v.solution is not None:
        print(f"  solution    {_clip(v.solution, 300)}")
    if v.rubric is None and v.solution is None:
        print(f"  judge wrote {_clip(judgement.text, 300)}")
    winner = f" -> {judgement.winner}" if judgement.winner else ""
    print(f"  verdict     {v.choice or '-'} (status {v.status}){winner}")


def _clip(text: str, width: int) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 3] + "..."


def _policy(args: argparse.Namespace) -> int:
    from reasrm.config import load_config
    from reasrm.policy import PolicyConfig, run

    cfg = load_config(args.config, args.overrides, schema=PolicyConfig)
    _quiet_transformers()
    log.info("trained policy: %s", run(cfg))
    return 0


def _serve(args: argparse.Namespace) -> int:
    import os

    from reasrm.config import GenerationConfig
    from reasrm.judge import Judge
    from reasrm.serve import serve

    _quiet_transformers()
    generation = GenerationConfig(max_new_tokens=args.max_new_tokens, batch_size=args.batch_size)
    judge = Judge.from_pretrained(args.model, args.backend, args.prompt_format, generation)
    name = args.model or "reasrm-embedded-default"
    serve(judge, name, args.host, args.port, args.api_key or os.environ.get("REASRM_API_KEY"))
    return 0


def _data_build(args: argparse.Namespace) -> int:
    from pathlib import Path

    from reasrm.data.build import build, load_recipe

    recipe = load_recipe(args.recipe, args.overrides)
    output = Path(args.output)
    if (output / "train.parquet").exists() and not args.overwrite:
        raise ReasrmError(f"{output} already holds a dataset: pass --overwrite to replace it")
    report = build(recipe, output)
    log.info("wrote %s: %d train and %d held-out pairs", output, report["splits"]["train"], report["splits"]["heldout"])
    for name, source in report["sources"].items():
        dropped = ", ".join(f"{k} {v}" for k, v in source["dropped"].items()) or "none"
        log.info("  %-16s read %d, kept %d, dropped: %s", name, source["read"], source["kept"], dropped)
    hits = report["contamination"]["hits"]
    if report["contamination"]["checked"]:
        action = "dropped" if report["contamination"]["dropped"] else "kept, flagged in report.json"
        log.info("  contamination: %d of %d pairs share an n-gram with an evaluation prompt (%s)",
                 len(hits), report["contamination"]["checked"], action)  # fmt: skip
    return 0


def _validate(args: argparse.Namespace) -> int:
    from reasrm.config import load_config

    cfg = load_config(args.config, args.overrides)
    print(f"{args.config}: ok ({cfg.stage})")
    return 0


def _print_config(args: argparse.Namespace) -> int:
    from reasrm.config import load_config, to_yaml

    print(to_yaml(load_config(args.config, args.overrides)), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
