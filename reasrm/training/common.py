"""What the training stages share: their pairs in slots, the judge card they write, hardware settings."""

from __future__ import annotations

import dataclasses
import importlib.util
import logging
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from reasrm import processes
from reasrm.card import JudgeCard
from reasrm.config import Problem, digest, option
from reasrm.data.build import collect, load_recipe
from reasrm.data.pairs import Pair, Shown, assign_slots
from reasrm.errors import ReasrmConfigError, ReasrmDataError
from reasrm.models import EMBEDDED_NAME, pick_device, pick_dtype, resolve
from reasrm.prompts import JudgePrompt

log = logging.getLogger(__name__)


@dataclass
class LoraSettings:
    """LoRA / QLoRA through peft: train low-rank adapters instead of every weight (r: 0 = off)."""

    r: int = option("Adapter rank; 0 trains every weight (full fine-tuning).", 0, ge=0)
    alpha: int = option("LoRA alpha (the update is scaled by alpha / r).", 16, ge=1)
    dropout: float = option("Dropout on the adapter's input.", 0.05, ge=0, lt=1)
    target_modules: str = option("Modules given adapters: all-linear, or names, e.g. q_proj,v_proj.", "all-linear")
    merge: bool = option("final/ holds merged weights (true) or the adapter alone, loadable the same way.", True)
    quantization: str | None = option("QLoRA: 4bit or 8bit base weights (bitsandbytes, a CUDA GPU); null = none.", None)

    def check(self, prefix: str = "lora.") -> list[Problem]:
        problems = []
        if self.quantization not in (None, "4bit", "8bit"):
            problems.append((f"{prefix}quantization", f"must be 4bit, 8bit or null, got {self.quantization!r}"))
        elif self.quantization and not self.r:
            problems.append((f"{prefix}quantization", "QLoRA trains adapters: set lora.r > 0 (e.g. 16)"))
        elif self.quantization and self.merge:
            problems.append(
                (
                    f"{prefix}merge",
                    "must be false with QLoRA: merging into quantized weights loses "
                    "precision; final/ then holds the adapter, loaded onto the unquantized base",
                )
            )
        return problems

    def peft_config(self):
        """peft's LoraConfig for a causal LM, or None when LoRA is off."""
        if not self.r:
            return None
        from peft import LoraConfig

        modules = self.target_modules if self.target_modules == "all-linear" else self.target_modules.split(",")
        return LoraConfig(
            r=self.r, lora_alpha=self.alpha, lora_dropout=self.dropout, target_modules=modules, task_type="CAUSAL_LM"
        )

    def machine_problems(self, prefix: str = "lora.") -> list[Problem]:
        """What this machine lacks for the settings: QLoRA needs a CUDA GPU and bitsandbytes."""
        if not self.quantization:
            return []
        if not cuda_present():
            return [
                (
                    f"{prefix}quantization",
                    f"{self.quantization} (QLoRA) needs a CUDA GPU; on this machine use "
                    "lora.r alone (LoRA on full-precision weights) and quantization=null",
                )
            ]
        if importlib.util.find_spec("bitsandbytes") is None:  # else transformers' ImportError, mid-load
            return [
                (f"{prefix}quantization", f"{self.quantization} (QLoRA) needs bitsandbytes: pip install bitsandbytes")
            ]
        return []

    def model_kwargs(self) -> dict:
        """What ``load_model`` needs for QLoRA: a bitsandbytes quantization config (CUDA only)."""
        if not self.quantization:
            return {}
        import torch
        from transformers import BitsAndBytesConfig

        if self.quantization == "8bit":
            return {"quantization_config": BitsAndBytesConfig(load_in_8bit=True)}
        return {
            "quantization_config": BitsAndBytesConfig(
                load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=torch.bfloat16
            )
        }

    def describe(self) -> dict | None:
        """What the judge card records (None when LoRA is off)."""
        if not self.r:
            return None
        return {
            "r": self.r,
            "alpha": self.alpha,
            "target_modules": self.target_modules,
            "merged": self.merge,
            "quantization": self.quantization,
        }


def training_jobs(recipe: str, params: dict, limit: int | None, seed: int) -> list[tuple[Pair, Shown]]:
    """The recipe's training pairs (the first ``limit``), each in the slots :func:`assign_slots` gives:
    the chosen response in A for half of every domain and in B for the other half."""
    train, _, _, _ = collect(load_recipe(recipe, [f"{k}={v}" for k, v in params.items()]))
    train = train[:limit] if limit is not None else train
    if not train:
        raise ReasrmDataError(f"recipe {recipe!r} gave no training pairs")
    jobs = [(pair, pair.shown(slot)) for pair, slot in zip(train, assign_slots(train, seed), strict=True)]
    in_a = Counter(slots.chosen_slot for _, slots in jobs)["A"]
    log.info("%d training pairs; the chosen response in slot A for %d, in B for %d", len(jobs), in_a, len(jobs) - in_a)
    return jobs


def in_both_orders(jobs: list[tuple[Pair, Shown]]) -> list[tuple[Pair, Shown]]:
    """Each pair as shown, then again in the other slot order, under an id of its own (``ID~swapped``)."""
    out = []
    for pair, shown in jobs:
        twin = dataclasses.replace(pair, id=f"{pair.id}~swapped")
        out += [(pair, shown), (twin, twin.shown(shown.chosen_slot, swap=True))]
    return out


def last_checkpoint(output: Path) -> str | None:
    """The newest complete ``checkpoint-N`` folder a trainer left in ``output`` (to resume from), if any.
    The trainer writes ``trainer_state.json`` last (after the weights, the optimizer, the scheduler and the
    random states of every rank): a newer folder without it was cut off mid-save, and is skipped."""
    found = sorted(
        (p for p in output.glob("checkpoint-*") if p.name.rsplit("-", 1)[1].isdigit()),
        key=lambda p: int(p.name.rsplit("-", 1)[1]),
    )
    while found and not (found[-1] / "trainer_state.json").is_file():
        log.warning("%s was cut off while it was saved (no trainer_state.json): not resuming from it", found.pop())
    return str(found[-1]) if found else None


def write_card(
    folder: Path,
    prompt: JudgePrompt,
    pairs: list[Pair],
    base_model: str | None,
    cfg,
    inherited: JudgeCard | None = None,
    lora: dict | None = None,
    launch: dict | None = None,
) -> JudgeCard:
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
        base_model=base_model or f"embedded:{EMBEDDED_NAME}",
        data_recipe=cfg.recipe,
        config_digest=digest(cfg),
        lora=lora,
        launch=launch,
    )
    card.save(folder)
    return card


def trainer_args(output: Path, cfg) -> dict:
    """The trainer settings every stage shares: where it saves and how often (``cfg.save_steps``, the last
    two checkpoints kept, so ``resume=true`` can continue), its seed, a log line per step, and the dtype
    ``pick_dtype`` gives the device: TRL defaults to bf16, which a CPU never gets (fp32 there: the judge
    then trains in the numerics it is judged in); ``use_cpu`` without a GPU, pinned memory only with one."""
    import torch  # seconds to import: only a run pays for it, not `reasrm validate`

    device = pick_device()
    return {
        "output_dir": str(output),
        "seed": cfg.seed,
        "logging_steps": 1,
        "save_steps": cfg.save_steps,
        "save_total_limit": 2,
        "report_to": "none",
        "bf16": pick_dtype(device) == torch.bfloat16,
        "use_cpu": device == "cpu",
        "dataloader_pin_memory": device == "cuda",
    }


def trainable(model: str | None, key: str = "model") -> str:
    """The folder or hub id of a model a trainer can fine-tune (not a .gguf file)."""
    where, gguf = resolve(model)
    if gguf is not None:
        raise ReasrmConfigError(f"'{key}': training needs an HF model folder or hub id, not a .gguf file")
    return where


# ---------------------------------------------------------------------------------------------------
# The launch: processes, strategy, global batch
# ---------------------------------------------------------------------------------------------------

TESTED_WITH_SHARED_PREFIX = ("single", "ddp")  # the strategies its tests run under (tests/test_processes.py)


def cuda_present() -> bool:
    import torch  # only configs that ask about a GPU pay for the import

    return torch.cuda.is_available()


def launch_problems(cfg, validates: bool, samples: bool = False) -> list[Problem]:
    """What the launch this process belongs to cannot run of ``cfg`` (``reasrm validate`` under the same
    launcher reports them too): a process count other than the config's ``launch_processes``; FSDP on a
    CPU (accelerate then runs each process alone, without a word); the shared-prefix loss under a sharding
    strategy it was not tested with; held-out validation (``validates``) or sampling before training
    (``samples``: the preflight and the difficulty filter) under FSDP, where every rank would have to
    decode in lockstep."""
    problems = []
    size, how = processes.world_size(), processes.strategy()
    if cfg.launch_processes is not None and cfg.launch_processes != size:
        problems.append(
            (
                "launch_processes",
                f"this config's batch is set for {cfg.launch_processes} processes, but "
                f"this launch has {size}: launch {cfg.launch_processes} (accelerate launch --num_processes "
                f"{cfg.launch_processes}), or set launch_processes={size} and check the batch sizes",
            )
        )
    if how == "fsdp" and not cuda_present():
        problems.append(
            (
                "launch",
                "FSDP needs CUDA GPUs: on a CPU accelerate runs each process alone. Launch with "
                "stages/accelerate/cpu-ddp.yaml or cpu-zero3.yaml instead",
            )
        )
    if cfg.shared_prefix and how not in TESTED_WITH_SHARED_PREFIX:
        problems.append(
            (
                "shared_prefix",
                f"is tested with one process and DDP, not under {processes.STRATEGY_NAMES[how]} "
                "(its sharded weights need the same forward calls on every rank): set shared_prefix=false",
            )
        )
    if how == "fsdp" and validates:
        problems.append(
            (
                "validation_pairs",
                "held-out validation is not supported under FSDP (each rank decodes "
                "its own pairs; FSDP needs every rank in every forward): set validation_pairs=0, or "
                "launch with DeepSpeed ZeRO-3, which gathers the weights for it",
            )
        )
    if how == "fsdp" and samples:
        problems.append(
            (
                "preflight",
                "sampling before training (preflight, filter_pass_rate) is not supported "
                "under FSDP: set preflight=false and filter_pass_rate=null, or launch with DeepSpeed",
            )
        )
    return problems
