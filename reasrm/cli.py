"""The ``reasrm`` command. User errors print one clean message per problem and exit with code 2.

Each command parses its arguments, loads its config with its own schema (``SCHEMAS``: the one map from a
file's ``stage:`` to its schema) and calls the library. Library modules are imported by the command that
needs them, so no command pays for the imports of another.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
import textwrap
from pathlib import Path

from reasrm.config import load_config, read_layers, to_yaml
from reasrm.errors import ReasrmConfigError, ReasrmError

log = logging.getLogger("reasrm")

# The schema of each config file, by the name it gives in `stage:` (module, class).
SCHEMAS = {
    "judge": ("reasrm.judge_file", "JudgeConfig"),
    "eval": ("reasrm.eval.run", "EvalConfig"),
    "recipe": ("reasrm.data.recipe", "RecipeConfig"),
    "distill": ("reasrm.training.distill", "DistillConfig"),
    "rl": ("reasrm.training.rl", "RLConfig"),
    "policy": ("reasrm.training.policy", "PolicyConfig"),
}


def schema(stage: str) -> type:
    module, name = SCHEMAS[stage]
    return getattr(importlib.import_module(module), name)


def load(path: str | None, overrides: list[str], stage: str | None = None, machine: bool = True):
    """A config file (and overrides) read with the schema of ``stage``, else the one its ``stage:`` names;
    ``machine``: also what this machine and launch cannot run of it."""
    if stage is None:
        stage = read_layers(path)[0].get("stage")
        if stage not in SCHEMAS:
            raise ReasrmConfigError(f"{path}: stage: must name a schema, one of {', '.join(SCHEMAS)}; got {stage!r}")
    return load_config(path, overrides, schema=schema(stage), machine=machine)


# `reasrm judge` flags: each is sugar for a `key=value` override of the judge config.
_JUDGE_FLAGS = {
    "model": ("--model", str, "hub id, local HF folder or .gguf file (default: the embedded default)"),
    "pairs": ("--pairs", str, "input JSONL of pairs"),
    "output": ("--output", str, "output JSONL, one line per pair"),
    "prompt_format": ("--prompt-format", str, "prompt format name or .yaml path (default: the judge card's)"),
    "rubric": ("--rubric", str, "rubric pack for every pair (default: each pair's, else the judge card's)"),
    "backend": ("--backend", str, "hf (default), vllm, or openai (with --base-url)"),
    "base_url": ("--base-url", str, "openai backend: the server, e.g. http://127.0.0.1:8000/v1"),
    "generation.batch_size": ("--batch-size", int, "judge calls generated together"),
    "generation.max_new_tokens": ("--max-new-tokens", int, "most tokens the judge may write per call"),
    "generation.temperature": ("--temperature", float, "0 = greedy (default)"),
    "generation.max_prompt_tokens": (
        "--max-prompt-tokens",
        int,
        "longer judge prompts get status too_long (default: the model's context)",
    ),
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
    from reasrm import processes
    from reasrm.runs import set_quiet

    parser = _parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.func in _RUNS_MODELS:
        from reasrm.models import setup_process

        setup_process()  # no Hub kernels; a CPU process keeps freed memory (reasrm.models.setup_process)
    processes.quiet_other_ranks()  # under a launcher the main process logs; the others only warn
    set_quiet(args.quiet)
    try:
        code = args.func(args)
    except processes.ReportedOnMain:
        code = 2  # the main process printed why
    except ReasrmError as e:
        for line in str(e).splitlines():
            print(f"reasrm: error: {line}", file=sys.stderr)
        code = 2
    except KeyboardInterrupt:
        print("reasrm: interrupted", file=sys.stderr)
        return 130
    processes.close()  # an uncaught error leaves the group to the launcher: other ranks may be mid-collective
    return code


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
        epilog="example: reasrm eval --benchmark rm-bench --data-dir DATA/rm-bench --limit 20 "
        "--output runs/eval/rm-bench",
    )
    _add_flags(evaluate, _EVAL_FLAGS, _JUDGE_SWITCHES)
    evaluate.set_defaults(func=_eval)

    for name, func, text, example in (
        (
            "distill",
            _stage,
            "stage one: teacher chains, then SFT of the judge",
            "reasrm distill stages/distill.yaml recipe=support rubric=support max_steps=4",
        ),
        (
            "rl",
            _stage,
            "stage two: GRPO of the judge with verifiable rewards",
            "reasrm rl stages/rl.yaml model=runs/distill/final max_steps=2",
        ),
        (
            "teacher",
            _teacher,
            "only the teacher chains of a distill config (chains.jsonl, resumable)",
            "reasrm teacher stages/distill.yaml teacher.backend=openai teacher.base_url=URL teacher.model=NAME",
        ),
        (
            "policy",
            _stage,
            "train a policy with the judge's pairwise verdicts as its GRPO reward",
            "reasrm policy stages/policy_grpo.yaml max_steps=2",
        ),
    ):
        sub = commands.add_parser(name, help=text, description=text, epilog=f"example: {example}")
        sub.add_argument("config", metavar="CONFIG.yaml")
        sub.add_argument("overrides", nargs="*", metavar="key=value")
        sub.set_defaults(func=func, stage="distill" if name == "teacher" else name)

    rubric = commands.add_parser("rubric", help="author rubric packs: new, validate, show, try")
    rubric_commands = rubric.add_subparsers(dest="rubric_command", required=True, metavar="COMMAND")
    new = rubric_commands.add_parser(
        "new", help="write a commented skeleton pack", epilog="example: reasrm rubric new sql --domain sql"
    )
    new.add_argument("name", help="pack id (also the file name)")
    new.add_argument("--domain", required=True, help="the domain the pack judges")
    new.add_argument("--dir", default="rubrics", help="folder to write it in (default: ./rubrics)")
    new.set_defaults(func=_rubric_new)
    check = rubric_commands.add_parser(
        "validate",
        help="check packs; report every problem at once (exit 2 on problems)",
        epilog="example: reasrm rubric validate rubrics/",
    )
    check.add_argument("paths", nargs="+", metavar="PATH", help="pack files, or folders searched recursively")
    check.set_defaults(func=_rubric_validate)
    show = rubric_commands.add_parser(
        "show",
        help="print the judge conversation a pack renders",
        epilog="example: reasrm rubric show support --pair data_recipes/examples/support_pairs.jsonl:2",
    )
    show.add_argument("name", metavar="NAME", help="pack id or .yaml path")
    show.add_argument("--pair", metavar="FILE:LINE", help="render this pair (default: placeholders)")
    show.add_argument("--seed", type=int, default=0, help="seeds the slot of the chosen response")
    show.set_defaults(func=_rubric_show)
    try_ = rubric_commands.add_parser(
        "try",
        help="judge a few pairs with a pack; print verdicts and <eval> beside the labels",
        epilog="example: reasrm rubric try support --pairs data_recipes/examples/support_pairs.jsonl --limit 3",
    )
    try_.add_argument("name", metavar="NAME", help="pack id or .yaml path")
    try_.add_argument("--pairs", required=True, help="JSONL of pairs")
    try_.add_argument("--model", help="the judge (default: the embedded default)")
    try_.add_argument("--prompt-format", help="for a model without a judge card")
    try_.add_argument("--limit", type=int, default=5, help="pairs to judge (default 5)")
    try_.add_argument("--max-new-tokens", type=int, default=512)
    try_.add_argument("--both-orders", action="store_true", help="judge both slot orders")
    try_.set_defaults(func=_rubric_try)

    serve = commands.add_parser(
        "serve",
        help="serve the judge over HTTP (OpenAI chat completions and /v1/judge)",
        description="Serve the judge over HTTP: /v1/chat/completions, /v1/judge, /v1/models, /health.",
        epilog="example: reasrm serve --model path/to/judge --port 8000 --api-key SECRET",
    )
    serve.add_argument("--model", help="hub id, local HF folder or .gguf file (default: the embedded default)")
    serve.add_argument("--prompt-format", help="prompt format name or .yaml path (default: the judge card's)")
    serve.add_argument("--rubric", help="rubric pack forced on every request (default: the request's, else the card's)")
    serve.add_argument("--backend", default="hf", help="hf (default) or vllm")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument(
        "--api-key",
        help="require 'Authorization: Bearer KEY' (visible in `ps`: prefer $REASRM_API_KEY or --api-key-file)",
    )
    serve.add_argument("--api-key-file", help="read the API key from this file (its first line)")
    serve.add_argument(
        "--max-new-tokens",
        type=int,
        default=512,
        help="default for requests that give none, and the most any request gets",
    )
    serve.add_argument("--max-prompt-tokens", type=int, help="longer prompts get 413 (default: the model's context)")
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
    plan = commands.add_parser(
        "plan",
        help="memory per GPU of a training config, from the model's config.json alone",
        description="Will a distill or rl config fit? Parameters, and per GPU: weights, gradients, optimizer states, "
        "activations and vLLM's share under each strategy; which knob to turn if not.",
        epilog="example: reasrm plan stages/presets/rm-r1/qwen2.5-7b-instruct/rl.yaml --gpus 8 --gpu-memory 80",
    )
    plan.add_argument("config", metavar="CONFIG.yaml")
    plan.add_argument("overrides", nargs="*", metavar="key=value")
    plan.add_argument("--gpus", type=int, required=True, help="GPUs (processes) in all")
    plan.add_argument("--gpu-memory", type=float, required=True, help="memory of one GPU in GB, e.g. 80")
    plan.add_argument("--nodes", type=int, default=1, help="nodes the GPUs are on (default 1)")
    plan.add_argument("--strategy", default="zero3", help="ddp, zero2, zero3 (default) or fsdp: the one judged")
    plan.add_argument(
        "--model-config",
        help="the model's config.json, its folder or hub id (default: the config's "
        "model, else a preset's model_config.json)",
    )
    plan.add_argument("--prompt-tokens", type=int, default=2048, help="rl: prompt length planned for (default 2048)")
    plan.set_defaults(func=_plan)
    commands.choices["validate"].add_argument(
        "--config-only",
        action="store_true",
        help="check the config alone, not what this machine and launch lack (a GPU config on a laptop)",
    )
    _add_quiet(parser)
    return parser


def _add_quiet(parser: argparse.ArgumentParser) -> None:
    """``--quiet`` on every (sub)command: no progress bars or progress lines."""
    for action in parser._subparsers._group_actions if parser._subparsers else []:
        for sub in action.choices.values():
            if sub._subparsers is not None:
                _add_quiet(sub)
            else:
                sub.add_argument("-q", "--quiet", action="store_true", help="no progress bars or progress lines")


def _split(args: list[str]) -> tuple[str | None, list[str]]:
    """An optional leading config path, then key=value overrides."""
    if args and "=" not in args[0]:
        return args[0], args[1:]
    return None, args


def _judge(args: argparse.Namespace) -> int:
    import json

    from reasrm import processes
    from reasrm.judge_file import run
    from reasrm.runs import summarize, summary_lines

    cfg = load(*_overrides(args, [*_JUDGE_FLAGS, *_JUDGE_SWITCHES]), stage="judge")
    _quiet_transformers()
    output = run(cfg, show=_show if args.show and processes.is_main() else None)
    if not processes.is_main():
        return 0
    records = [json.loads(line) for line in output.read_text(encoding="utf-8").splitlines()]
    log.info("wrote %s (%d pairs; config beside it)", output, len(records))
    for line in summary_lines(summarize([r["calls"] for r in records])):
        log.info(line)
    return 0


def _eval(args: argparse.Namespace) -> int:
    from reasrm import processes
    from reasrm.eval.report import table
    from reasrm.eval.run import run

    cfg = load(*_overrides(args, [*_EVAL_FLAGS, *_JUDGE_SWITCHES]), stage="eval")
    _quiet_transformers()
    result = run(cfg)
    if not processes.is_main():
        return 0
    b = result["bias"]
    print(table(result))
    log.info(
        "%s: headline %.1f over %d pairs (%d invalid calls); A-rate %s, flip rate %s; report: %s/report.md",
        cfg.benchmark,
        100 * result["headline"],
        result["pairs"],
        result["invalid"],
        "-" if b["a_rate"] is None else f"{b['a_rate']:.2f}",
        "-" if b["flip_rate"] is None else f"{b['flip_rate']:.2f}",
        cfg.output,
    )
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


def _stage(args: argparse.Namespace) -> int:
    """``reasrm distill|rl|policy CONFIG key=value...``: the stage's ``run(cfg)``."""
    cfg = load(args.config, args.overrides, stage=args.stage)
    _quiet_transformers()
    final = importlib.import_module(SCHEMAS[args.stage][0]).run(cfg)
    log.info("%s: wrote %s", args.stage, final)
    return 0


def _teacher(args: argparse.Namespace) -> int:
    from reasrm.training.distill import prepare
    from reasrm.training.teacher import generate_chains

    cfg = load(args.config, args.overrides, stage=args.stage)
    _quiet_transformers()
    prompt, jobs, output = prepare(cfg)
    records = generate_chains(jobs, prompt, cfg.teacher, output / "chains.jsonl", resume=cfg.resume)
    log.info(
        "wrote %s: %d of %d chains kept (continue it with resume=true; `reasrm distill %s resume=true` trains on them)",
        output / "chains.jsonl",
        sum(r["kept"] for r in records),
        len(records),
        args.config,
    )
    return 0


def _rubric_new(args: argparse.Namespace) -> int:
    from reasrm.rubrics import write_skeleton

    path = write_skeleton(args.name, args.domain, args.dir)
    print(f"wrote {path}: fill in the TODOs, then run: reasrm rubric validate {path}")
    return 0


def _rubric_validate(args: argparse.Namespace) -> int:
    from reasrm.rubrics import find_packs, validate_file

    files = find_packs(args.paths)
    bad = 0
    for path in files:
        problems = validate_file(path)
        bad += bool(problems)
        for line in problems:
            print(line)
        if not problems:
            print(f"{path}: ok")
    print(f"{len(files)} pack(s) checked: {len(files) - bad} ok, {bad} with problems")
    return 2 if bad else 0


def _rubric_show(args: argparse.Namespace) -> int:
    from reasrm.data.pairs import Pair, assign_slots, pair_at
    from reasrm.prompts import JudgePrompt
    from reasrm.rubrics import load_pack, pack_path

    pack = load_pack(args.name)
    if args.pair:
        pair = pair_at(args.pair)
    else:
        pair = Pair(
            "example",
            ({"role": "user", "content": "(the client's question)"},),
            chosen="(the chosen response)",
            rejected="(the rejected response)",
            reference="(the reference answer)" if pack.reference != "ignore" else None,
        )
    prompt = JudgePrompt.create("rm-r1-instruct", forced_rubric=args.name)
    slots = pair.shown(*assign_slots([pair], args.seed))
    print(
        f"# rubric pack {pack.label} ({pack_path(args.name)}); prompt format {pack.format_id}; pair {pair.id}"
        + (f", chosen response in slot {slots.chosen_slot}" if slots.chosen_slot else "")
    )
    for message in prompt.messages(pair, slots):
        print(f"\n===== {message['role']} =====\n{message['content']}")
    return 0


def _rubric_try(args: argparse.Namespace) -> int:
    from reasrm.backends import GenerationConfig
    from reasrm.data.pairs import read_pairs
    from reasrm.judge import Judge
    from reasrm.rubrics import load_pack

    pack = load_pack(args.name)
    pairs = read_pairs(args.pairs)[: args.limit]
    _quiet_transformers()
    generation = GenerationConfig(max_new_tokens=args.max_new_tokens, batch_size=8)
    judge = Judge.from_pretrained(args.model, "hf", args.prompt_format, generation, rubric=args.name)
    judgements = judge.judge(pairs, both_orders=args.both_orders)
    right = 0
    for pair, j in zip(pairs, judgements, strict=True):
        call = j.calls[0]
        label = f"chosen in {call.chosen_slot}" if call.chosen_slot else "unlabelled"
        mark = {"chosen": "right", "rejected": "WRONG", None: "-"}[j.winner]
        right += j.winner == "chosen"
        print(f"\n=== {pair.id}: {_clip(pair.context[-1]['content'], 90)}")
        print(f"  label {label:<12} verdict {j.verdict.choice or '-'} ({j.status})  {mark}")
        evaluation = j.verdict.evaluation or j.text
        print(f"  {'eval' if j.verdict.evaluation else 'text'}  {_clip(evaluation, 400)}")
    labelled = sum(p.labelled for p in pairs)
    print(
        f"\n{pack.label}: {right} of {labelled} labelled pairs judged right; statuses: "
        + ", ".join(f"{s} {n}" for s, n in _count(j.status for j in judgements))
    )
    return 0


def _count(items) -> list[tuple[str, int]]:
    from collections import Counter

    return Counter(items).most_common()


def _serve(args: argparse.Namespace) -> int:
    import os

    from reasrm.backends import GenerationConfig
    from reasrm.config import range_problems
    from reasrm.judge import Judge
    from reasrm.serve import serve

    generation = GenerationConfig(
        max_new_tokens=args.max_new_tokens, batch_size=args.batch_size, max_prompt_tokens=args.max_prompt_tokens
    )
    flags = {
        "max_new_tokens": "--max-new-tokens",
        "batch_size": "--batch-size",
        "max_prompt_tokens": "--max-prompt-tokens",
    }
    problems = [f"{flags[key]}: {problem}" for key, problem in range_problems(generation) + generation.check()]
    if not 1 <= args.port <= 65535:
        problems.append(f"--port: must be between 1 and 65535, got {args.port}")
    api_key = args.api_key or os.environ.get("REASRM_API_KEY")
    if args.api_key_file:
        try:
            api_key = Path(args.api_key_file).read_text(encoding="utf-8").splitlines()[0].strip()
        except (OSError, IndexError, UnicodeDecodeError) as e:
            problems.append(f"--api-key-file: cannot read a key from {args.api_key_file} ({type(e).__name__})")
    if problems:
        raise ReasrmConfigError("\n".join(problems))
    _check_port(args.host, args.port)
    _quiet_transformers()
    judge = Judge.from_pretrained(args.model, args.backend, args.prompt_format, generation, args.rubric)
    name = args.model or "reasrm-embedded-default"
    serve(judge, name, args.host, args.port, api_key)
    return 0


def _check_port(host: str, port: int) -> None:
    """Refuse, in one line, an address the server could not bind (in use, or not this machine's)."""
    import socket

    try:
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind((host, port))
    except OSError as e:
        raise ReasrmConfigError(f"--host {host} --port {port}: cannot listen there ({e.strerror})") from None


def _data_build(args: argparse.Namespace) -> int:
    from reasrm.data.build import build, load_recipe

    report = build(load_recipe(args.recipe, args.overrides), args.output, overwrite=args.overwrite)
    log.info(
        "wrote %s: %d train and %d held-out pairs", args.output, report["splits"]["train"], report["splits"]["heldout"]
    )
    for name, source in report["sources"].items():
        dropped = ", ".join(f"{k} {v}" for k, v in source["dropped"].items()) or "none"
        log.info("  %-16s read %d, kept %d, dropped: %s", name, source["read"], source["kept"], dropped)
    hits = report["contamination"]["hits"]
    if report["contamination"]["checked"]:
        action = "dropped" if report["contamination"]["dropped"] else "kept, flagged in report.json"
        log.info(
            "  contamination: %d of %d pairs share an n-gram with an evaluation prompt (%s)",
            len(hits),
            report["contamination"]["checked"],
            action,
        )
    return 0


def _validate(args: argparse.Namespace) -> int:
    from reasrm import processes

    cfg = load(args.config, args.overrides, machine=not args.config_only)
    launch = getattr(cfg, "launch", None)
    where = "" if args.config_only else f"; {processes.launch_line(launch)}" if launch else ""
    print(f"{args.config}: ok ({cfg.stage}{where})")
    return 0


def _plan(args: argparse.Namespace) -> int:
    from reasrm.plan import lines, plan

    cfg = load(args.config, args.overrides, machine=False)
    if cfg.stage not in ("distill", "rl"):
        raise ReasrmConfigError(f"{args.config}: reasrm plan reads distill and rl configs, not {cfg.stage!r}")
    out = plan(
        cfg, args.config, args.gpus, args.gpu_memory, args.nodes, args.strategy, args.model_config, args.prompt_tokens
    )
    print("\n".join(lines(out, args.config)))
    return 0


def _print_config(args: argparse.Namespace) -> int:
    print(to_yaml(load(args.config, args.overrides)), end="")
    return 0


# The commands that load models get the process settings of reasrm.models.setup_process.
_RUNS_MODELS = {_judge, _eval, _stage, _teacher, _rubric_try, _serve}


if __name__ == "__main__":
    sys.exit(main())
