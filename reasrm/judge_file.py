"""``reasrm judge``: judge every pair of a JSONL file and write one JSON line per pair (resumable).

    reasrm judge --pairs pairs.jsonl --output out.jsonl --both-orders
    reasrm judge stages/judge.yaml generation.max_new_tokens=256

Every row is checked before a model is loaded; the output follows the one output policy
(:mod:`reasrm.runs`), its resolved config saved beside it as ``OUTPUT.config.yaml``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from reasrm.backends import load_backend
from reasrm.card import judge_prompt, read_card
from reasrm.config import Problem, option
from reasrm.data.pairs import Pair, assign_slots, read_pairs
from reasrm.errors import ReasrmDataError
from reasrm.judge import Judge, Judgement, JudgingConfig
from reasrm.models import resolve
from reasrm.runs import ResumableJsonl, discard_output, judge_in_chunks, prepare_output


@dataclass
class JudgeConfig(JudgingConfig):
    """``reasrm judge``: judge every pair of a JSONL file and write one JSON line per pair."""

    stage: str = option("Names this schema.", "judge")
    pairs: str = option("Input JSONL: prompt|context, chosen/rejected or response_a/response_b, optional id.")
    output: str = option("Output JSONL, one line per pair; the resolved config is saved beside it.")

    def check(self) -> list[Problem]:
        problems = super().check()
        if self.output and self.pairs and Path(self.output).resolve() == Path(self.pairs).resolve():
            problems.append(("output", f"is the pairs file itself ({self.pairs}): an input is never overwritten"))
        return problems


# Settings that change the judgements: a resumed run must use the same ones.
RESULT_KEYS = ("model", "backend", "base_url", "prompt_format", "rubric", "both_orders", "seed", "generation")


def run(cfg: JudgeConfig, show: Callable[[Judgement, Pair], None] | None = None) -> Path:
    """Judge ``cfg.pairs`` into ``cfg.output`` (resumable); returns the output path."""
    pairs = read_pairs(cfg.pairs)  # every row is checked before any model is loaded
    slots = dict(zip((p.id for p in pairs), assign_slots(pairs, cfg.seed), strict=True))
    resolve(cfg.model)  # a missing model is one clear line, before any output is touched
    card = read_card(cfg.model)
    prompt = judge_prompt(cfg.model, card, cfg.prompt_format, cfg.rubric)
    prompt.check(pairs)
    output, saved = Path(cfg.output), Path(cfg.output).with_suffix(".config.yaml")
    fresh = not (cfg.resume and output.is_file() and output.stat().st_size)
    prepare_output(output, saved, cfg, RESULT_KEYS, cfg.resume, cfg.overwrite)
    try:
        _judge_into(cfg, output, pairs, slots, prompt, card, show)
    except Exception:
        if fresh and not (output.is_file() and output.stat().st_size):
            discard_output(output, saved)  # a run that failed before its first result leaves no files
        raise
    return output


def _judge_into(cfg: JudgeConfig, output: Path, pairs: list[Pair], slots: dict, prompt, card, show) -> None:
    with ResumableJsonl(output, resume=cfg.resume) as out:
        unknown = out.done - set(slots)
        if unknown:
            raise ReasrmDataError(
                f"{cfg.output}: cannot resume: it holds ids not in {cfg.pairs}, e.g. {sorted(unknown)[0]!r}"
            )
        pending = [p for p in pairs if p.id not in out.done]
        if not pending:
            return
        judge = Judge(load_backend(cfg.backend, cfg.model, cfg.base_url, cfg.vllm), prompt, cfg.generation, card)

        def step(part: list[Pair], on_calls) -> list[dict]:
            judgements = judge.judge(part, cfg.both_orders, on_call=on_calls, slots=[slots[p.id] for p in part])
            for pair, judgement in zip(part, judgements, strict=True):
                if show is not None:
                    show(judgement, pair)
            return [j.to_dict() for j in judgements]

        judge_in_chunks(pending, step, out, cfg.generation.batch_size, 2 if cfg.both_orders else 1)
