"""What the two judge-training stages (``distill``, ``rl``) share: their pairs, prompts, output folder and card."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

from reasrm.card import JudgeCard
from reasrm.config import check_resume, save_config, to_yaml
from reasrm.data.pairs import Pair, Slots
from reasrm.errors import ReasrmConfigError, ReasrmDataError
from reasrm.rubrics import JudgePrompt


def training_jobs(recipe: str, params: dict, limit: int | None, seed: int) -> list[tuple[Pair, Slots]]:
    """The recipe's training pairs (at most ``limit``), each in its slots: the chosen response is in slot
    A for half of every domain and in B for the other half (a seeded, balanced assignment)."""
    from reasrm.data.build import balanced_slots, collect, load_recipe

    train, _, _, _ = collect(load_recipe(recipe, [f"{k}={v}" for k, v in params.items()]))
    train = train[:limit] if limit is not None else train
    if not train:
        raise ReasrmDataError(f"recipe {recipe!r} gave no training pairs")
    slots = balanced_slots(train, seed)
    return [(pair, pair.slots(seed, slot=slots[pair.id])) for pair in train]


def prepare_output(cfg, name: str, result_keys: tuple[str, ...]) -> Path:
    """The stage's output folder: refuse to clobber a previous run unless resuming (same settings) or
    overwriting; save the resolved config as ``{name}.yaml``."""
    output = Path(cfg.output)
    saved = output / f"{name}.yaml"
    if cfg.resume and cfg.overwrite:
        raise ReasrmConfigError("'resume' and 'overwrite' exclude each other: set one of them")
    if saved.is_file() and cfg.resume:
        check_resume(saved, cfg, result_keys)
    elif output.exists() and any(output.iterdir()):
        if not cfg.overwrite:
            raise ReasrmConfigError(f"{output} holds a previous run: pass resume=true to continue it or "
                                    "overwrite=true to replace it")  # fmt: skip
        shutil.rmtree(output)
    output.mkdir(parents=True, exist_ok=True)
    save_config(cfg, saved)
    return output


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
        config_digest=hashlib.sha256(to_yaml(cfg).encode()).hexdigest()[:16],
    )
    card.save(folder)
    return card


def trainer_hardware() -> dict:
    """Trainer settings picked from the hardware. TRL defaults to bf16, 14x slower on a CPU without bf16
    instructions (measured); pinned memory only helps with a GPU."""
    import torch

    from reasrm.models import pick_device, pick_dtype

    device = pick_device()
    return {"bf16": pick_dtype(device) == torch.bfloat16, "dataloader_pin_memory": device == "cuda"}
