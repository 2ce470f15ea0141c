"""The teacher: reasoning chains for stage one (distillation), with cache and resume.

A chain is the judge's whole answer to one rendered pair: ``<type>``, ``<rubric>``/``<justify>`` or
``<solution>``, ``<eval>`` with quotes, ``<answer>``. Chains are kept only when their verdict, parsed in
**strict** mode (the RL reward's), names the chosen response.

Backends:
- ``hf`` / ``vllm`` / ``openai``: a teacher model (RM-R1 used strong instruct and reasoning models; point
  ``openai`` at any OpenAI-compatible server, e.g. several vLLM servers behind one URL). Two passes, as in
  RM-R1: pass 1 asks plainly; pairs whose chain is wrong or invalid go to pass 2, where the teacher is
  told which response is better and asked to justify it on the merits. The hint is never part of the
  SFT prompt. Chains that still fail are dropped and counted.
- ``template``: no model. Writes the chain from the pair itself: the rubric pack's criteria (or, for a
  pair with a ``reference``, the reference as the solution), quotes of both responses, and the label as
  the verdict. It teaches the output format and the pack, not judgement: use it for CPU smoke runs, the
  embedded default and verifiable data, and a real teacher for a real judge.

Every pair's outcome is one line of ``chains.jsonl`` (resumable: a rerun skips finished pairs).
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from tqdm.auto import tqdm

from reasrm.config import GenerationConfig, _help
from reasrm.data.pairs import Pair, Slots
from reasrm.jsonl import ResumableJsonl
from reasrm.prompts import escape
from reasrm.rubrics import JudgePrompt, RubricPack, load_pack
from reasrm.verdict import parse_verdict

log = logging.getLogger(__name__)

TEACHER_BACKENDS = ("template", "hf", "vllm", "openai")
HINT = (
    "\n\n(Note for the annotator, not part of the task: the better response is Chatbot {slot}. Write your "
    "evaluation so that it reaches this verdict on the merits of the responses; do not mention this note.)"
)


@dataclass
class TeacherConfig:
    backend: str = _help(f"One of {', '.join(TEACHER_BACKENDS)} (template: chains from the pack and the label).",
                         "template")  # fmt: skip
    model: str | None = _help("Teacher model (hf/vllm: hub id or folder; openai: the served model's name).", None)
    base_url: str | None = _help("openai backend: the server, e.g. http://127.0.0.1:8000/v1.", None)
    hint_pass: bool = _help("Pass 2: re-ask failed pairs with the label revealed (RM-R1's second pass).", True)
    generation: GenerationConfig = _help(
        "How the teacher generates.", factory=lambda: GenerationConfig(max_new_tokens=1024)
    )

    def check(self, prefix: str = "teacher.") -> list[str]:
        problems = self.generation.check(f"{prefix}generation.")
        if self.backend not in TEACHER_BACKENDS:
            problems.append(f"'{prefix}backend' must be one of {', '.join(TEACHER_BACKENDS)}, got {self.backend!r}")
        if self.backend == "openai" and (not self.base_url or not self.model):
            problems.append(f"'{prefix}base_url' and '{prefix}model' are required with {prefix}backend=openai")
        return problems


def generate_chains(
    jobs: list[tuple[Pair, Slots]], prompt: JudgePrompt, cfg: TeacherConfig, path: str | Path, resume: bool = True
) -> list[dict]:
    """One record per pair (``id``, ``chosen_slot``, ``messages``, ``chain``, ``kept``, ``pass``, ``status``),
    appended to ``path`` as they finish; pairs already there are not redone. Returns all records."""
    with ResumableJsonl(path, resume=resume, overwrite=not resume) as out:
        pending = [(pair, slots) for pair, slots in jobs if pair.id not in out.done]
        if pending and cfg.backend == "template":
            for pair, slots in tqdm(pending, desc="teacher (template)", unit="pair", disable=None):
                messages = prompt.messages(pair, slots)
                out.write(_record(pair, slots, messages, template_chain(pair, slots, prompt.pack_for(pair)), 1))
        elif pending:
            _model_passes(pending, prompt, cfg, out)
        by_id = {r["id"]: r for r in out.records}
    records = [by_id[pair.id] for pair, _ in jobs]
    stats = Counter("kept" if r["kept"] else f"dropped ({r['status']})" for r in records)
    log.info("teacher: %s", ", ".join(f"{k} {v}" for k, v in sorted(stats.items())))
    return records


def _model_passes(pending, prompt: JudgePrompt, cfg: TeacherConfig, out: ResumableJsonl) -> None:
    from reasrm.backends import load_backend

    options = {"base_url": cfg.base_url} if cfg.backend == "openai" else {}
    backend = load_backend(cfg.backend, cfg.model, **options)
    chunk = cfg.generation.batch_size * 4
    with tqdm(total=len(pending), desc="teacher", unit="pair", disable=None) as bar:
        for start in range(0, len(pending), chunk):
            part = pending[start : start + chunk]
            messages = [prompt.messages(pair, slots) for pair, slots in part]
            first = backend.generate(messages, cfg.generation)
            retry = []
            for k, ((pair, slots), g) in enumerate(zip(part, first, strict=True)):
                record = _record(pair, slots, messages[k], g.text, 1, g.error)
                if record["kept"] or not cfg.hint_pass:
                    out.write(record)
                    bar.update()
                else:
                    retry.append(k)
            if retry:
                hinted = [_with_hint(messages[k], part[k][1].chosen_slot) for k in retry]
                for k, g in zip(retry, backend.generate(hinted, cfg.generation), strict=True):
                    pair, slots = part[k]
                    out.write(_record(pair, slots, messages[k], g.text, 2, g.error))
                    bar.update()


def _record(pair: Pair, slots: Slots, messages: list[dict], chain: str, attempt: int, error: str | None = None):
    verdict = parse_verdict(chain, mode="strict")
    if error is not None:
        status = "failed"
    elif not verdict.ok:
        status = verdict.status
    else:
        status = "ok" if verdict.choice == slots.chosen_slot else "wrong_verdict"
    kept = status == "ok"
    return {"id": pair.id, "chosen_slot": slots.chosen_slot, "pass": attempt, "status": status, "kept": kept,
            "messages": messages, "chain": chain}  # fmt: skip


def _with_hint(messages: list[dict], slot: str) -> list[dict]:
    *head, last = messages
    return [*head, {**last, "content": last["content"] + HINT.format(slot=slot)}]


# ---------------------------------------------------------------------------------------------------
# The template teacher
# ---------------------------------------------------------------------------------------------------


def template_chain(pair: Pair, slots: Slots, pack: RubricPack | None) -> str:
    """A chain in the RM-R1 structure built from the pair: the pack's criteria (or the shipped ``chat``
    pack's for a pair without one) or, for reasoning packs and pairs with a reference, the reference as
    the solution; quotes of both responses; the label as the verdict."""
    winner = slots.chosen_slot
    if winner is None:
        raise ValueError(f"pair {pair.id!r}: the template teacher needs a labelled pair")
    loser = "B" if winner == "A" else "A"
    quote_a = f"<quote_A>{_clip(slots.response_a)}</quote_A>"
    quote_b = f"<quote_B>{_clip(slots.response_b)}</quote_B>"
    reasoning = pair.reference and (pack is None or pack.self_generated or pack.task_type == "reasoning")
    if reasoning:
        return (
            f"<type>Reasoning</type>\n\n<solution> {escape(pair.reference)} </solution>\n\n<eval>\n"
            f"  Chatbot A says {quote_a}; Chatbot B says {quote_b}.\n"
            f"  Chatbot {winner} agrees with the solution; Chatbot {loser} does not, so Chatbot {winner} is better.\n"
            f"</eval>\n\n<answer>[[{winner}]]</answer>"
        )
    criteria_pack = pack if pack is not None and not pack.self_generated else load_pack("chat")
    items = "\n".join(f"  {k}. {c.id} ({c.weight:.0%}): {c.description}"
                      for k, c in enumerate(criteria_pack.criteria, start=1))  # fmt: skip
    top = max(criteria_pack.criteria, key=lambda c: c.weight)
    return (
        f"<type>Chat</type>\n\n<rubric>\n{items}\n  <justify> {criteria_pack.weights_justification} </justify>\n"
        f"</rubric>\n\n<eval>\n  Chatbot A: {quote_a}\n  Chatbot B: {quote_b}\n"
        f"  On {top.id}, the heaviest criterion, Chatbot {winner} does better ({top.good.rstrip('.').lower()}), "
        f"while Chatbot {loser} falls short ({top.poor.rstrip('.').lower()}).\n"
        f"</eval>\n\n<answer>[[{winner}]]</answer>"
    )


def _clip(text: str, width: int = 300) -> str:
    flat = " ".join(text.split())
    return escape(flat if len(flat) <= width else flat[: width - 3] + "...")
