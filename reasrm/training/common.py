"""What the training stages share: their pairs in slots, the judge card they write, hardware settings."""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path

from reasrm.card import JudgeCard
from reasrm.config import digest
from reasrm.data.build import collect, load_recipe
from reasrm.data.pairs import Pair, Slots, assign_slots
from reasrm.errors import ReasrmConfigError, ReasrmDataError
from reasrm.models import pick_device, pick_dtype, resolve
from reasrm.prompts import JudgePrompt

log = logging.getLogger(__name__)


def training_jobs(recipe: str, params: dict, limit: int | None, seed: int) -> list[tuple[Pair, Slots]]:
    """The recipe's training pairs (the first ``limit``), each in the slots :func:`assign_slots` gives:
    the chosen response in A for half of every domain and in B for the other half."""
    train, _, _, _ = collect(load_recipe(recipe, [f"{k}={v}" for k, v in params.items()]))
    train = train[:limit] if limit is not None else train
    if not train:
        raise ReasrmDataError(f"recipe {recipe!r} gave no training pairs")
    jobs = [(pair, pair.slots(slot)) for pair, slot in zip(train, assign_slots(train, seed), strict=True)]
    in_a = Counter(slots.chosen_slot for _, slots in jobs)["A"]
    log.info("%d training pairs; the chosen response in slot A for %d, in B for %d", len(jobs), in_a, len(jobs) - in_a)
    return jobs


def last_checkpoint(output: Path) -> str | None:
    """The newest ``checkpoint-N`` folder a trainer left in ``output`` (to resume from), if any."""
    found = sorted(output.glob("checkpoint-*"), key=lambda p: int(p.name.rsplit("-", 1)[1]))
    return str(found[-1]) if found else None


def write_card(folder: Path, prompt: JudgePrompt, pairs: list[Pair], base_model: str | None, cfg,
               inherited: JudgeCard | None = None) -> JudgeCard:  # fmt: skip
    """The judge card of a trained checkpoint: its prompt format, its rubric pack (the forced one, else the
    one every training pair used, else the inherited card's) and every pack it saw, with versions."""
    packs = {**((inherited.rubric_packs or {}) if inherited else {}), **prompt.packs(pairs)}
    default = prompt.forced_rubric or (next(iter(packs)) if len(prompt.packs(pairs)) == 1 else None)
    if default is None and inherited is not None:
        default = inherited.rubric_pack
    card = JudgeCard(
        prompt_format=prompt.prompt_format.id,
        rubric_pack=default,
        rubric_version=packs.get(default) if default else None,
        rubric_packs=packs or None,
        base_model=base_model or "embedded:SmolLM2-135M-Instruct",
        data_recipe=cfg.recipe,
        config_digest=digest(cfg),
    )
    card.save(folder)
    return card


def trainer_args(output: Path, cfg) -> dict:
    """The trainer settings every stage shares: where it saves and how often (``cfg.save_steps``, the last
    two checkpoints kept, so ``resume=true`` can continue), its seed, a log line per step, and what the
    hardware decides. TRL defaults to bf16, 14x slower on a CPU without bf16 instructions (measured);
    pinned memory only helps with a GPU."""
    import torch  # seconds to import: only a run pays for it, not `reasrm validate`

    device = pick_device()
    return {"output_dir": str(output), "seed": cfg.seed, "logging_steps": 1, "save_steps": cfg.save_steps,
            "save_total_limit": 2, "report_to": "none", "bf16": pick_dtype(device) == torch.bfloat16,
            "dataloader_pin_memory": device == "cuda"}  # fmt: skip


def trainable(model: str | None, key: str = "model") -> str:
    """The folder or hub id of a model a trainer can fine-tune (not a .gguf file)."""
    where, gguf = resolve(model)
    if gguf is not None:
        raise ReasrmConfigError(f"'{key}': training needs an HF model folder or hub id, not a .gguf file")
    return where
