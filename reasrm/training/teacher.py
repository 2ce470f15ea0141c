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

from reasrm.backends import BACKENDS, GenerationConfig, check_backend, load_backend
from reasrm.config import Problem, option
from reasrm.data.pairs import Pair, Slots, other_slot
from reasrm.prompts import JudgePrompt, escape
from reasrm.rubrics import RubricPack, load_pack
from reasrm.runs import ResumableJsonl, judge_in_chunks
from reasrm.verdict import EVAL, FAILED, JUSTIFY, RUBRIC, SOLUTION, TYPE, answer, element, parse_verdict, winner

log = logging.getLogger(__name__)

TEACHER_BACKENDS = ("template", *BACKENDS)
HINT = (
    "\n\n(Note for the annotator, not part of the task: the better response is Chatbot {slot}. Write your "
    "evaluation so that it reaches this verdict on the merits of the responses; do not mention this note.)"
)


@dataclass
class TeacherConfig:
    backend: str = option(f"One of {', '.join(TEACHER_BACKENDS)} (template: chains from the pack and the label).",
                         "template")  # fmt: skip
    model: str | None = option("Teacher model (hf/vllm: hub id or folder; openai: the served model's name).", None)
    base_url: str | None = option("openai backend: the server, e.g. http://127.0.0.1:8000/v1.", None)
    hint_pass: bool = option("Pass 2: re-ask failed pairs with the label revealed (RM-R1's second pass).", True)
    generation: GenerationConfig = option(
        "How the teacher generates.", factory=lambda: GenerationConfig(max_new_tokens=1024)
    )

    def check(self, prefix: str = "teacher.") -> list[Problem]:
        problems = self.generation.check(f"{prefix}generation.")
        problems += check_backend(self.backend, self.base_url, prefix, TEACHER_BACKENDS)
        if self.backend == "openai" and not self.model:
            problems.append((f"{prefix}model", "required with the openai backend: the served model's name"))
        return problems


def generate_chains(
    jobs: list[tuple[Pair, Slots]], prompt: JudgePrompt, cfg: TeacherConfig, path: str | Path, resume: bool = True
) -> list[dict]:
    """One record per pair (``id``, ``chosen_slot``, ``messages``, ``chain``, ``kept``, ``pass``, ``status``),
    appended to ``path`` as they finish; with ``resume``, pairs already there are not redone. Returns all
    records, in the order of ``jobs``."""
    with ResumableJsonl(path, resume=resume) as out:
        pending = [(pair, slots) for pair, slots in jobs if pair.id not in out.done]
        if pending and cfg.backend == "template":
            for pair, slots in tqdm(pending, desc="teacher (template)", unit="pair", disable=None):
                messages = prompt.messages(pair, slots)
                out.write(_record(pair, slots, messages, template_chain(pair, slots, prompt.pack_for(pair)), 1))
        elif pending:
            backend = load_backend(cfg.backend, cfg.model, cfg.base_url)

            def step(part, on_calls) -> list[dict]:
                return _model_passes(part, prompt, cfg, backend, on_calls)

            judge_in_chunks(pending, step, out, cfg.generation.batch_size, desc="teacher")
        by_id = {r["id"]: r for r in out.records}
    records = [by_id[pair.id] for pair, _ in jobs]
    stats = Counter("kept" if r["kept"] else f"dropped ({r['status']})" for r in records)
    log.info("teacher: %s", ", ".join(f"{k} {v}" for k, v in sorted(stats.items())))
    return records


def _model_passes(part, prompt: JudgePrompt, cfg: TeacherConfig, backend, on_calls) -> list[dict]:
    """Pass 1 for a chunk of pairs; pass 2 (the label revealed) for those whose chain failed."""
    messages = [prompt.messages(pair, slots) for pair, slots in part]
    first = backend.generate(messages, cfg.generation)
    records = [_record(pair, slots, messages[k], g.text, 1, g.error)
               for k, ((pair, slots), g) in enumerate(zip(part, first, strict=True))]  # fmt: skip
    on_calls(len(part))
    retry = [k for k, r in enumerate(records) if not r["kept"]] if cfg.hint_pass else []
    if retry:
        hinted = [_with_hint(messages[k], part[k][1].chosen_slot) for k in retry]
        for k, g in zip(retry, backend.generate(hinted, cfg.generation), strict=True):
            pair, slots = part[k]
            records[k] = _record(pair, slots, messages[k], g.text, 2, g.error)
    return records


def _record(pair: Pair, slots: Slots, messages: list[dict], chain: str, attempt: int, error: str | None = None):
    verdict = parse_verdict(chain, mode="strict")
    if error is not None:
        status = FAILED
    elif not verdict.ok:
        status = verdict.status
    else:
        status = "ok" if winner(verdict.choice, slots.chosen_slot) == "chosen" else "wrong_verdict"
    return {"id": pair.id, "chosen_slot": slots.chosen_slot, "pass": attempt, "status": status,
            "kept": status == "ok", "messages": messages, "chain": chain}  # fmt: skip


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
    best = slots.chosen_slot
    if best is None:
        raise ValueError(f"pair {pair.id!r}: the template teacher needs a labelled pair")
    worse = other_slot(best)
    quote_a, quote_b = element("quote_A", _clip(slots.response_a)), element("quote_B", _clip(slots.response_b))
    if pair.reference and (pack is None or pack.self_generated or pack.task_type == "reasoning"):
        evaluation = f"A: {quote_a} B: {quote_b} Chatbot {best} agrees with the solution; Chatbot {worse} does not."
        sections = [element(TYPE, "Reasoning"), element(SOLUTION, escape(pair.reference)), element(EVAL, evaluation)]
        return "\n".join([*sections, answer(best)])
    criteria_pack = pack if pack is not None and not pack.self_generated else load_pack("chat")
    items = "\n".join(f"  {k}. {c.id} ({c.weight:.0%}): {c.description}"
                      for k, c in enumerate(criteria_pack.criteria, start=1))  # fmt: skip
    top = max(criteria_pack.criteria, key=lambda c: c.weight)
    rubric = f"\n{items}\n  {element(JUSTIFY, f' {criteria_pack.weights_justification} ')}\n"
    evaluation = (f"\n  Chatbot A: {quote_a}\n  Chatbot B: {quote_b}\n  On {top.id}, the heaviest criterion, Chatbot "
                  f"{best} does better ({top.good.rstrip('.').lower()}), while Chatbot {worse} falls short "
                  f"({top.poor.rstrip('.').lower()}).\n")  # fmt: skip
    return "\n\n".join([element(TYPE, "Chat"), element(RUBRIC, rubric), element(EVAL, evaluation), answer(best)])


def _clip(text: str, width: int = 300) -> str:
    flat = " ".join(text.split())
    return escape(flat if len(flat) <= width else flat[: width - 3] + "...")
