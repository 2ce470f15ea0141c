"""The judge: load a reasoning reward model and turn pairs into parsed verdicts (a library; the
``reasrm judge`` command is :mod:`reasrm.judge_file`).

``Judge.from_pretrained`` takes a hub id, a local HF folder, a GGUF file or a reasrm checkpoint (whose
judge card names its prompt format and rubric pack: :func:`reasrm.card.judge_prompt`). ``Judge.judge``
renders each pair with the one renderer (:class:`reasrm.prompts.JudgePrompt`), generates through a
backend, and parses every completion with the verdict grammar in lenient mode.

A call the backend gave up on (the openai backend, after its retries) has status ``failed``. A judge prompt
longer than ``generation.max_prompt_tokens`` or the model's context (less ``max_new_tokens``) is not
generated: status ``too_long`` (hf backend; counted in summaries like any other status).

Labelled pairs (chosen/rejected) put the chosen response in the slot :func:`reasrm.data.pairs.assign_slots`
gives (recorded per call); with ``both_orders=True`` each pair is also judged with the slots swapped,
and the two verdicts aggregate: the same response twice -> that verdict; different responses -> no
verdict, status ``inconsistent`` (a position flip); an invalid verdict in either order -> no verdict,
with that order's status.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from reasrm.backends import (
    BACKENDS,
    Generation,
    GenerationConfig,
    backend_machine_problems,
    check_backend,
    load_backend,
)
from reasrm.backends.vllm import VLLMSettings
from reasrm.card import JudgeCard, check_pack_versions, judge_prompt, read_card
from reasrm.config import Problem, option
from reasrm.data.pairs import Pair, Shown, Slot, assign_slots, pair_from_dict
from reasrm.prompts import JudgePrompt
from reasrm.verdict import FAILED, INCONSISTENT, TOO_LONG, Verdict, parse_verdict, winner


@dataclass
class JudgingConfig:
    """The judge's settings, shared by the configs of ``reasrm judge`` and ``reasrm eval`` (each adds its input
    and output)."""

    stage: str = option("Names this schema.", "")
    model: str | None = option("Hub id, local HF folder or .gguf file; null = the embedded default.", None)
    backend: str = option(f"Generation backend: one of {', '.join(BACKENDS)}.", "hf")
    prompt_format: str | None = option(
        "Prompt format name or .yaml path; null = the checkpoint's judge card (required without one).", None
    )
    rubric: str | None = option(
        "Rubric pack forced on every pair; null = each pair's `rubric` field, else the judge card's pack.", None
    )
    base_url: str | None = option(
        "openai backend: the server, e.g. http://127.0.0.1:8000/v1 (key: $REASRM_API_KEY).", None
    )
    both_orders: bool = option("Judge each pair as (A,B) and (B,A): the flip rate, and both-right.", False)
    seed: int = option("Seeds the slot of the chosen response in labelled pairs (and eval's --limit draw).", 0, ge=0)
    resume: bool = option("Continue an interrupted run without redoing or duplicating a call.", False)
    overwrite: bool = option("Replace an existing output (one reasrm wrote).", False)
    generation: GenerationConfig = option("Generation settings.", factory=GenerationConfig)
    vllm: VLLMSettings = option(
        "The vllm backend's engine (GPU memory share, tensor parallel size).", factory=VLLMSettings
    )

    def machine_check(self) -> list[Problem]:
        return backend_machine_problems(self.backend, vllm=self.vllm)

    def check(self) -> list[Problem]:
        from reasrm.runs import output_problems

        problems = self.generation.check("generation.") + check_backend(self.backend, self.base_url, vllm=self.vllm)
        return problems + output_problems(self)


@dataclass(frozen=True)
class Call:
    """One judge call: one pair in one slot order."""

    order: str  # "AB": the pair's first slot assignment; "BA": swapped
    chosen_slot: str | None  # slot of the chosen response (labelled pairs)
    text: str
    verdict: Verdict
    prompt_tokens: int
    completion_tokens: int
    seconds: float
    error: str | None = None  # the backend gave up on this call (status "failed")

    @property
    def winner(self) -> str | None:
        return winner(self.verdict.choice, self.chosen_slot)

    def to_dict(self) -> dict:
        return {
            "order": self.order,
            "chosen_slot": self.chosen_slot,
            "text": self.text,
            "verdict": self.verdict.to_dict(),
            "winner": self.winner,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "seconds": round(self.seconds, 4),
            "error": self.error,
        }


@dataclass(frozen=True)
class Judgement:
    """The judge's decision on one pair. ``verdict`` letters refer to the first call's slots."""

    pair_id: str
    verdict: Verdict
    calls: tuple[Call, ...]
    flip: bool | None  # both orders, both valid: True when they named different responses

    @property
    def text(self) -> str:
        return self.calls[0].text

    @property
    def status(self) -> str:
        return self.verdict.status

    @property
    def winner(self) -> str | None:
        """``"chosen"`` / ``"rejected"`` for labelled pairs with a valid verdict, else None."""
        return winner(self.verdict.choice, self.calls[0].chosen_slot)

    def to_dict(self) -> dict:
        return {
            "id": self.pair_id,
            "orders": [c.order for c in self.calls],
            "verdict": self.verdict.to_dict(),
            "status": self.status,
            "winner": self.winner,
            "flip": self.flip,
            "text": self.text,
            "calls": [c.to_dict() for c in self.calls],
            "seconds": round(sum(c.seconds for c in self.calls), 4),
        }


@dataclass(frozen=True)
class Batch:
    """Pairs rendered for judging: one conversation per (pair, slot order)."""

    pairs: list[Pair]
    calls_per_pair: int
    jobs: list[tuple[bool, Shown]]
    conversations: list[list[dict]]


class Judge:
    def __init__(
        self, backend, prompt: JudgePrompt, generation: GenerationConfig | None = None, card: JudgeCard | None = None
    ):
        self.backend = backend
        self.prompt = prompt
        self.generation = generation or GenerationConfig()
        self.card = card

    @classmethod
    def from_pretrained(
        cls,
        name_or_path: str | None = None,
        backend: str = "hf",
        prompt_format: str | None = None,
        generation: GenerationConfig | None = None,
        rubric: str | None = None,
        **backend_kwargs,
    ) -> Judge:
        """Load a judge. ``name_or_path=None`` is the embedded default; ``prompt_format`` overrides the card;
        ``rubric`` forces one rubric pack for every pair (else a pair's own, else the card's).
        With ``backend="openai"`` the name is the served model's, which has no card to read."""
        card = read_card(name_or_path) if backend != "openai" else None
        prompt = judge_prompt(name_or_path, card, prompt_format, rubric)
        return cls(load_backend(backend, name_or_path, **backend_kwargs), prompt, generation, card)

    def judge(
        self,
        pairs: Iterable[Pair | dict],
        both_orders: bool = False,
        seed: int = 0,
        on_call: Callable[[int], None] | None = None,
        slots: Sequence[Slot | None] | None = None,
    ) -> list[Judgement]:
        """Judge each pair; ``on_call(n)`` is told as each batch of ``n`` judge calls finishes. The chosen
        responses go in ``slots`` when given (a caller judging a long list in chunks assigns them once),
        else in the slots ``assign_slots(pairs, seed)`` gives."""
        batch = self.prepare(pairs, both_orders, seed, slots)
        return self.finish(batch, self.backend.generate(batch.conversations, self.generation, on_batch=on_call))

    def prepare(
        self,
        pairs: Iterable[Pair | dict],
        both_orders: bool = False,
        seed: int = 0,
        slots: Sequence[Slot | None] | None = None,
    ) -> Batch:
        """Validate and render: the judge conversations to generate for these pairs."""
        pairs = [p if isinstance(p, Pair) else pair_from_dict(p, f"pairs[{i}]") for i, p in enumerate(pairs)]
        self.prompt.check(pairs)
        check_pack_versions(self.prompt.packs(pairs), self.card)
        slots = assign_slots(pairs, seed) if slots is None else slots
        swaps = (False, True) if both_orders else (False,)
        jobs = [(swap, pair.shown(slot, swap)) for pair, slot in zip(pairs, slots, strict=True) for swap in swaps]
        conversations = [self.prompt.messages(pairs[k // len(swaps)], shown) for k, (_, shown) in enumerate(jobs)]
        return Batch(pairs, len(swaps), jobs, conversations)

    def finish(self, batch: Batch, generations: list[Generation]) -> list[Judgement]:
        """Parse the generations of a prepared batch into judgements."""
        calls = [_call(swap, slots.chosen_slot, g) for (swap, slots), g in zip(batch.jobs, generations, strict=True)]
        step = batch.calls_per_pair
        return [_aggregate(p.id, tuple(calls[k * step : (k + 1) * step])) for k, p in enumerate(batch.pairs)]

    def select_best(self, prompt, candidates: list[str], strategy: str = "knockout", seed: int = 0):
        """Best-of-N with this judge: see :func:`reasrm.downstream.select_best` (cost and tie rules)."""
        from reasrm.downstream import select_best

        return select_best(self, prompt, candidates, strategy=strategy, seed=seed)


def _call(swap: bool, chosen_slot: str | None, generation: Generation) -> Call:
    # reported, never dropped: no verdict, status "failed" or "too_long"
    if generation.error is not None or generation.too_long:
        verdict = Verdict(None, FAILED if generation.error is not None else TOO_LONG)
    else:
        verdict = parse_verdict(generation.text, mode="lenient")
    return Call(
        order="BA" if swap else "AB",
        chosen_slot=chosen_slot,
        text=generation.text,
        verdict=verdict,
        prompt_tokens=generation.prompt_tokens,
        completion_tokens=generation.completion_tokens,
        seconds=generation.seconds,
        error=generation.error,
    )


def _aggregate(pair_id: str, calls: tuple[Call, ...]) -> Judgement:
    first = calls[0]
    if len(calls) == 1:
        return Judgement(pair_id, first.verdict, calls, flip=None)
    second = calls[1]
    for call in calls:
        if not call.verdict.ok:
            return Judgement(
                pair_id, dataclasses.replace(first.verdict, choice=None, status=call.verdict.status), calls, flip=None
            )
    # The second call saw the slots swapped: its letter names the other slot of the first call.
    second_in_first_letters = "B" if second.verdict.choice == "A" else "A"
    if second_in_first_letters == first.verdict.choice:
        return Judgement(pair_id, first.verdict, calls, flip=False)
    return Judgement(pair_id, dataclasses.replace(first.verdict, choice=None, status=INCONSISTENT), calls, flip=True)
