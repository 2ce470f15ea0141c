"""The judge: load a reasoning reward model and turn pairs into parsed verdicts.

``Judge.from_pretrained`` takes a hub id, a local HF folder, a GGUF file or a reasrm checkpoint (whose
judge card names its prompt format and rubric pack). ``Judge.judge`` renders each pair with the one
renderer (:class:`reasrm.rubrics.JudgePrompt`: a forced ``rubric``, else the pair's ``rubric`` field,
else the card's pack, else the bare prompt format), generates through a backend, and parses every
completion with the verdict grammar in lenient mode.

A call the backend gave up on (the openai backend, after its retries) has status ``failed``.

Labelled pairs (chosen/rejected) put the chosen response in a seeded slot, recorded per call; with
``both_orders=True`` each pair is also judged with the slots swapped, and the two verdicts aggregate:
the same response twice -> that verdict; different responses -> no verdict, status ``inconsistent``
(a position flip); an invalid verdict in either order -> no verdict, with that order's status.
"""

from __future__ import annotations

import dataclasses
import logging
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from tqdm.auto import tqdm

from reasrm.backends import Generation, backend_options, load_backend
from reasrm.card import CARD_FILE, JudgeCard
from reasrm.config import GenerationConfig, JudgeConfig, check_resume, save_config
from reasrm.data.pairs import Pair, Slots, pair_from_dict, read_pairs
from reasrm.errors import ReasrmConfigError, ReasrmDataError
from reasrm.jsonl import ResumableJsonl
from reasrm.models import resolve
from reasrm.prompts import PromptFormat, available_formats, load_format
from reasrm.rubrics import JudgePrompt
from reasrm.verdict import Verdict, parse_verdict

log = logging.getLogger(__name__)
EMBEDDED_FORMAT = "rm-r1-instruct"  # what the embedded default is prompted with when nothing else is named


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
        return _winner(self.verdict.choice, self.chosen_slot)

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
        return _winner(self.verdict.choice, self.calls[0].chosen_slot)

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
    jobs: list[tuple[bool, Slots]]
    conversations: list[list[dict]]


class Judge:
    def __init__(
        self,
        backend,
        prompt_format: PromptFormat,
        generation: GenerationConfig | None = None,
        card: JudgeCard | None = None,
        rubric: str | None = None,
    ):
        self.backend = backend
        self.prompt_format = prompt_format
        self.generation = generation or GenerationConfig()
        self.card = card
        self.prompt = JudgePrompt.create(prompt_format, card.rubric_pack if card else None, rubric)

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
        fmt = load_format(resolve_format(name_or_path, prompt_format, card))
        return cls(load_backend(backend, name_or_path, **backend_kwargs), fmt, generation, card, rubric)

    def judge(
        self,
        pairs: Iterable[Pair | dict],
        both_orders: bool = False,
        seed: int = 0,
        on_call: Callable[[int], None] | None = None,
    ) -> list[Judgement]:
        """Judge each pair; ``on_call(n)`` is told as each batch of ``n`` judge calls finishes."""
        batch = self.prepare(pairs, both_orders, seed)
        return self.finish(batch, self.backend.generate(batch.conversations, self.generation, on_batch=on_call))

    def prepare(self, pairs: Iterable[Pair | dict], both_orders: bool = False, seed: int = 0) -> Batch:
        """Validate and render: the judge conversations to generate for these pairs."""
        pairs = [p if isinstance(p, Pair) else pair_from_dict(p, f"pairs[{i}]") for i, p in enumerate(pairs)]
        self.prompt.check(pairs)
        check_pack_versions(self.prompt.packs(pairs), self.card)
        swaps = (False, True) if both_orders else (False,)
        jobs = [(swap, pair.slots(seed, swap)) for pair in pairs for swap in swaps]
        conversations = [self.prompt.messages(pairs[k // len(swaps)], slots) for k, (_, slots) in enumerate(jobs)]
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


def read_card(name_or_path: str | None) -> JudgeCard | None:
    """The judge card of a checkpoint (a local folder, a GGUF file's folder, or a hub repo), if it has one."""
    if name_or_path is None:
        return None
    path = Path(name_or_path).expanduser()
    folder = path.parent if path.suffix == ".gguf" else path
    if folder.is_dir():
        return JudgeCard.load(folder)
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import HfHubHTTPError

    try:  # a hub repo written by reasrm carries its card; offline or absent means "no card"
        return JudgeCard.load(Path(hf_hub_download(name_or_path, CARD_FILE)).parent)
    except (OSError, ValueError, HfHubHTTPError):
        return None


def resolve_format(name_or_path: str | None, prompt_format: str | None, card: JudgeCard | None) -> str:
    """The prompt format: named by the user, else the card's, else the embedded default's."""
    if prompt_format is not None:
        return prompt_format
    if card is not None:
        return card.prompt_format
    if name_or_path is None:
        return EMBEDDED_FORMAT
    raise ReasrmConfigError(
        f"{name_or_path} has no judge card (reasrm_judge.json), so its prompt format is unknown: "
        f"name it with --prompt-format / prompt_format= (one of {', '.join(available_formats())})"
    )


def check_pack_versions(used: dict[str, int], card: JudgeCard | None) -> None:
    """Warn (once per pack) when a pack's version differs from the one the checkpoint was trained with."""
    trained = (card.rubric_packs or {}) if card is not None else {}
    for pack, version in used.items():
        if pack in trained and trained[pack] != version and (pack, version) not in _warned:
            _warned.add((pack, version))
            log.warning("rubric pack %s is at version %d; this judge was trained with version %d",
                        pack, version, trained[pack])  # fmt: skip


_warned: set[tuple[str, int]] = set()


def _call(swap: bool, chosen_slot: str | None, generation: Generation) -> Call:
    failed = generation.error is not None  # reported, never dropped: no verdict, status "failed"
    return Call(
        order="BA" if swap else "AB",
        chosen_slot=chosen_slot,
        text=generation.text,
        verdict=Verdict(None, "failed") if failed else parse_verdict(generation.text, mode="lenient"),
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
    return Judgement(pair_id, dataclasses.replace(first.verdict, choice=None, status="inconsistent"), calls, flip=True)


def _winner(choice: str | None, chosen_slot: str | None) -> str | None:
    if choice is None or chosen_slot is None:
        return None
    return "chosen" if choice == chosen_slot else "rejected"


# ---------------------------------------------------------------------------------------------------
# Judging a file: `reasrm judge` (validate everything first, then judge chunk by chunk, appending lines)
# ---------------------------------------------------------------------------------------------------

# Settings that change the judgements: a resumed run must use the same ones.
_RESULT_KEYS = ("model", "backend", "base_url", "prompt_format", "rubric", "both_orders", "seed", "generation")


def run(cfg: JudgeConfig, show: Callable[[Judgement, Pair], None] | None = None) -> Path:
    """Judge ``cfg.pairs`` into ``cfg.output`` (resumable); returns the output path."""
    pairs = read_pairs(cfg.pairs)  # every row is checked before any model is loaded
    resolve(cfg.model)  # a missing model is one clear line, before any output is touched
    card = read_card(cfg.model)
    fmt = load_format(resolve_format(cfg.model, cfg.prompt_format, card))
    JudgePrompt.create(fmt, card.rubric_pack if card else None, cfg.rubric).check(pairs)
    config_path = Path(cfg.output).with_suffix(".config.yaml")
    if cfg.resume:
        check_resume(config_path, cfg, _RESULT_KEYS)
    with ResumableJsonl(cfg.output, resume=cfg.resume, overwrite=cfg.overwrite) as out:
        unknown = out.done - {p.id for p in pairs}
        if unknown:
            raise ReasrmDataError(
                f"{cfg.output}: cannot resume: it holds ids not in {cfg.pairs}, e.g. {sorted(unknown)[0]!r}"
            )
        if not cfg.resume or not config_path.is_file():
            save_config(cfg, config_path)
        pending = [p for p in pairs if p.id not in out.done]
        if not pending:
            return Path(cfg.output)
        judge = Judge(load_backend(cfg.backend, cfg.model, **backend_options(cfg)), fmt, cfg.generation, card,
                      cfg.rubric)  # fmt: skip
        calls_per_pair = 2 if cfg.both_orders else 1
        chunk = cfg.generation.batch_size * 4  # a few batches per chunk: room to sort by length, lines land often
        with tqdm(total=len(pending) * calls_per_pair, unit="call", desc="judging", disable=None) as bar:
            for start in range(0, len(pending), chunk):
                part = pending[start : start + chunk]
                for pair, judgement in zip(part, judge.judge(part, cfg.both_orders, cfg.seed, bar.update), strict=True):
                    out.write(judgement.to_dict())
                    if show is not None:
                        show(judgement, pair)
    return Path(cfg.output)


def summarize(records: list[dict]) -> dict:
    """Headline figures of a judgements file. Accuracy alone hides position collapse, so the label-prior
    baseline (always answering the commoner slot), the A-rate and the both-order flip rate come with it."""
    statuses = Counter(r["status"] for r in records)
    valid = [r for r in records if r["verdict"]["choice"] is not None]
    labelled = [r for r in records if r["calls"][0]["chosen_slot"] is not None]
    both = [r for r in records if r["flip"] is not None]
    out: dict = {"pairs": len(records), "statuses": dict(statuses.most_common())}
    out["a_rate"] = sum(r["verdict"]["choice"] == "A" for r in valid) / len(valid) if valid else None
    if labelled:
        slots = Counter(r["calls"][0]["chosen_slot"] for r in labelled)
        out["accuracy"] = sum(r["winner"] == "chosen" for r in labelled) / len(labelled)
        out["label_prior"] = max(slots.values()) / len(labelled)
    if both:
        out["flip_rate"] = sum(r["flip"] for r in both) / len(both)
    return out
