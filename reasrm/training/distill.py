"""Stage one: distill reasoning chains from a teacher into the judge (TRL's SFTTrainer, used directly).

    reasrm distill stages/distill.yaml                       # or: make distill
    reasrm distill stages/distill.yaml recipe=support max_steps=4 rubric=support

1. The recipe's training pairs, each in balanced slots (``assign_slots``), rendered by
   :class:`reasrm.prompts.JudgePrompt` (the stage's ``rubric``, else each pair's pack, else ``prompt_format``).
2. The teacher writes a chain per pair (``chains.jsonl``, resumable; ``reasrm teacher`` runs this step
   alone into the same folder, and ``reasrm distill ... resume=true`` then trains on its chains); chains
   whose strict verdict is wrong are dropped and counted.
3. SFT on prompt-completion examples: the judge conversation as the prompt, the chain as the completion
   (the loss covers the completion only).
4. ``output/final``: the model, its tokenizer and the judge card (prompt format, rubric pack and version,
   base model, recipe, config digest, launch and global batch), loadable with ``Judge.from_pretrained``.
5. ``validation.jsonl`` and ``eval.json``: the student before SFT and the judge after, on
   ``validation_pairs`` held-out pairs in both orders (:mod:`reasrm.training.validation`, the same
   measurement as stage two's), and the table in the log.

Under ``accelerate launch`` / ``torchrun`` (``stages/accelerate/``) every rank trains on its share of each
batch, judges its share of the teacher's pairs and of the held-out pairs; the main process alone claims
the output and writes every file (:mod:`reasrm.processes`).
"""

from __future__ import annotations

import json
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path

from reasrm import processes
from reasrm.config import Problem, option
from reasrm.errors import ReasrmConfigError, ReasrmDataError
from reasrm.models import load_model, load_tokenizer, pick_attention, pick_device
from reasrm.prompts import JudgePrompt
from reasrm.rubrics import pack_error
from reasrm.runs import output_problems, prepare_output
from reasrm.training.common import (
    LoraSettings,
    in_both_orders,
    last_checkpoint,
    launch_problems,
    trainable,
    trainer_args,
    training_jobs,
    write_card,
)
from reasrm.training.teacher import TeacherConfig, generate_chains
from reasrm.training.validation import heldout_jobs, table_lines

log = logging.getLogger(__name__)

# Settings that change the result: a resumed run must use the same ones.
RESULT_KEYS = ("model", "recipe", "recipe_params", "limit", "prompt_format", "rubric", "teacher", "seed", "both_orders")


@dataclass
class DistillConfig:
    stage: str = option("Names this schema.", "distill")
    model: str | None = option("The student: hub id or local HF folder; null = the embedded default.", None)
    recipe: str = option("Data recipe giving the training pairs (a name in data_recipes/ or a path).", "demo")
    recipe_params: dict = option("Parameters of the recipe.", factory=dict)
    limit: int | None = option("Use at most this many training pairs (null: all).", 192, ge=1)
    prompt_format: str = option(
        "Prompt format for pairs without a rubric pack (real students: rm-r1-instruct).", "compact"
    )
    rubric: str | None = option("Rubric pack forced on every pair; null = each pair's `rubric` field.", None)
    both_orders: bool = option(
        "Train on each pair in both slot orders (two chains per pair, the chosen response once in each slot): "
        "the same words then lead to A in one example and to B in the other.",
        True,
    )
    teacher: TeacherConfig = option("Where the chains come from.", factory=TeacherConfig)
    output: str = option("Output folder: chains.jsonl, checkpoints, final/ (the judge).", "runs/distill")
    resume: bool = option("Continue a previous run: keep its chains, resume from its last checkpoint.", False)
    overwrite: bool = option("Replace a previous run in the output folder.", False)
    seed: int = option("Seeds the slot assignment and training.", 0, ge=0)
    max_steps: int = option("Optimizer steps (-1: num_train_epochs).", -1, ge=1, also=(-1,))
    num_train_epochs: float = option("Epochs over the kept chains (RM-R1: 1).", 1.0, gt=0)
    learning_rate: float = option("Learning rate (RM-R1 used 5e-6 for 7B+ students).", 1e-4, gt=0)
    per_device_train_batch_size: int = option("Examples per device per step.", 8, ge=1)
    gradient_accumulation_steps: int = option("Steps accumulated per optimizer step.", 1, ge=1)
    max_length: int = option("Longest example in tokens (prompt + chain); longer ones are truncated.", 2048, ge=16)
    gradient_checkpointing: bool = option("Trade compute for memory (large students on GPUs).", False)
    packing: bool = option("Padding-free packed batches (TRL's bfd packing; needs flash-attn on a GPU).", False)
    shared_prefix: bool = option(
        "In the loss, run the prefix every example of a batch shares (the system text) "
        "once (TRL's loss and gradients, fewer FLOPs; reasrm.training.shared_prefix).",
        True,
    )
    lora: LoraSettings = option("LoRA / QLoRA adapters through peft (r: 0 = train every weight).", factory=LoraSettings)
    save_steps: int = option("Save a resumable checkpoint every this many steps.", 50, ge=1)
    validation_pairs: int = option("Held-out pairs judged in both orders before and after (0 = none).", 100, ge=0)
    validation_max_new_tokens: int = option("Room the judge gets per validation call.", 128, ge=1)
    launch_processes: int | None = option(
        "The process count (GPUs) the batch sizes were set for; a launch with another count is refused (null: any).",
        None,
        ge=1,
    )

    @property
    def launch(self) -> dict:
        """Processes, strategy and global batch (examples per optimizer step) of this process's launch."""
        return processes.describe_launch("examples", self.per_device_train_batch_size, self.gradient_accumulation_steps)

    def machine_check(self) -> list[Problem]:
        """What this machine and launch cannot run of the config (``reasrm validate`` reports it too)."""
        problems = self.teacher.machine_check() + self.lora.machine_problems()
        return problems + launch_problems(self, validates=self.validation_pairs > 0)

    def check(self) -> list[Problem]:
        problems = self.teacher.check() + self.lora.check()
        if self.rubric is not None and pack_error(self.rubric):
            problems.append(("rubric", pack_error(self.rubric)))
        return problems + output_problems(self)


def prepare(cfg: DistillConfig) -> tuple[JudgePrompt, list, Path]:
    """Stage one's pairs in their slots, its renderer, and its claimed output folder (``distill.yaml``
    saved in it): what ``reasrm teacher`` and ``reasrm distill`` both start with."""
    prompt = JudgePrompt.create(cfg.prompt_format, forced_rubric=cfg.rubric)
    jobs = training_jobs(cfg.recipe, cfg.recipe_params, cfg.limit, cfg.seed)
    jobs = in_both_orders(jobs) if cfg.both_orders else jobs
    prompt.check([pair for pair, _ in jobs])
    output = prepare_output(cfg.output, Path(cfg.output) / "distill.yaml", cfg, RESULT_KEYS, cfg.resume, cfg.overwrite)
    return prompt, jobs, output


def sft_examples(records: list[dict]) -> list[dict]:
    """Prompt-completion examples (TRL's conversational format), one per kept chain."""
    return [
        {"prompt": r["messages"], "completion": [{"role": "assistant", "content": chain}]}
        for r in records
        for chain in r["chains"]
    ]


def check_room(examples: list[dict], tokenizer, max_length: int) -> None:
    """Refuse a ``max_length`` that leaves no room for any chain (every example's prompt is that long: the
    trainer would drop them all); warn when it cuts some chains short."""
    prompts = [
        len(tokenizer.apply_chat_template(e["prompt"], add_generation_prompt=True, tokenize=True, return_dict=False))
        for e in examples
    ]
    cut = sum(p >= max_length for p in prompts)
    if cut == len(prompts):
        raise ReasrmConfigError(
            f"'max_length': {max_length} tokens leave no room for a chain: the shortest prompt has {min(prompts)} "
            f"tokens; set max_length above it by the chains' length (e.g. {min(prompts) + 512})"
        )
    if cut:
        log.warning(
            "max_length=%d: %d of %d examples' prompts fill it; they carry no chain and are dropped",
            max_length,
            cut,
            len(prompts),
        )


def sft_args(cfg: DistillConfig, output: Path):
    """TRL's SFTConfig for the stage. Made before the model is loaded: under DeepSpeed ZeRO-3 it is what
    makes ``from_pretrained`` load each rank's shard only."""
    from trl import SFTConfig  # trl takes seconds to import: only a run pays for it

    return SFTConfig(
        max_steps=cfg.max_steps,
        num_train_epochs=cfg.num_train_epochs,
        learning_rate=cfg.learning_rate,
        per_device_train_batch_size=cfg.per_device_train_batch_size,
        gradient_accumulation_steps=cfg.gradient_accumulation_steps,
        max_length=cfg.max_length,
        activation_checkpointing=cfg.gradient_checkpointing,  # transformers 5 name of gradient checkpointing
        completion_only_loss=True,
        packing=cfg.packing,  # best-fit packing without padding: attention must respect sequence boundaries
        **trainer_args(output, cfg),
    )


def sft_trainer(cfg: DistillConfig, args, model, tokenizer, examples: list[dict], callbacks: list):
    """TRL's SFTTrainer on prompt-completion examples: the loss covers the assistant reply only (the chain
    and its end-of-turn token; not the system and user turns, nor the assistant header), for any chat
    template, with or without generation markers (tests/test_stages.py checks it token by token)."""
    from datasets import Dataset  # datasets and trl take seconds to import: only a run pays for them
    from trl import SFTTrainer

    from reasrm.training.shared_prefix import SharedPrefixSFTTrainer, trainer_class

    trainer = trainer_class(cfg.shared_prefix, SharedPrefixSFTTrainer, SFTTrainer)
    return trainer(
        model=model,
        args=args,
        train_dataset=Dataset.from_list(examples),
        processing_class=tokenizer,
        peft_config=cfg.lora.peft_config(),
        callbacks=callbacks or None,
    )


ADAPTER_NOTE = """# A LoRA adapter, not a whole model

This folder holds a LoRA adapter trained by `reasrm distill` (see `reasrm_judge.json`: `lora`, and
`base_model`, the model it adapts). Load it as a judge like any checkpoint; the base model is loaded and
the adapter merged into it:

    from reasrm import Judge
    judge = Judge.from_pretrained("{folder}")

or with peft directly: `peft.AutoPeftModelForCausalLM.from_pretrained("{folder}")` (when `base_model` is
the embedded default, pass the base yourself: `PeftModel.from_pretrained(base, "{folder}")`).
"""


def save_judge(trainer, lora: LoraSettings, final: Path) -> None:
    """Save the trained judge in ``final`` (every rank calls it: the trainer gathers sharded weights and its
    main process writes): the whole model; with LoRA, the adapter alone with a note on loading it, or
    (``lora.merge``) merged weights, made by the main process from the saved adapter and its base."""
    trainer.save_model(str(final))
    if not lora.r or not processes.is_main():
        return
    if not lora.merge:
        (final / "README.md").write_text(ADAPTER_NOTE.format(folder=final), encoding="utf-8")
        return
    dtype = next(trainer.model.parameters()).dtype
    merged = load_model(str(final), device="cpu", dtype=dtype)  # the base model, the adapter merged into it
    adapter = final.with_name(f".{final.name}-adapter")
    final.rename(adapter)
    merged.save_pretrained(final)
    shutil.rmtree(adapter)


def run(cfg: DistillConfig) -> Path:
    """Chains, then SFT; returns ``output/final`` (a judge checkpoint with its card)."""
    from reasrm.training.callbacks import HeldOutValidation

    where = trainable(cfg.model)
    if cfg.packing and pick_attention(pick_device()) != "flash_attention_2":
        raise ReasrmConfigError(
            "'packing': padding-free packed batches need flash-attn (a CUDA GPU with the "
            "flash-attn extra); here batches are padded: set packing=false"
        )
    prompt, jobs, output = prepare(cfg)
    log.info("distill: %s", processes.launch_line(cfg.launch))
    records = generate_chains(jobs, prompt, cfg.teacher, output / "chains.jsonl", resume=cfg.resume)
    examples = sft_examples(records)
    if not examples:
        raise ReasrmDataError(f"the teacher kept no chains ({output / 'chains.jsonl'} says why): nothing to train on")
    log.info(
        "distill: %d chains kept from %d of %d pairs; training %s",
        len(examples),
        sum(r["kept"] for r in records),
        len(records),
        where,
    )

    tokenizer = load_tokenizer(cfg.model)
    check_room(examples, tokenizer, cfg.max_length)
    args = sft_args(cfg, output)
    model = load_model(cfg.model, **cfg.lora.model_kwargs())
    heldout = []
    if cfg.validation_pairs:
        heldout = heldout_jobs(cfg.recipe, cfg.recipe_params, cfg.validation_pairs, cfg.seed)
    validation = None
    if heldout:
        validation = HeldOutValidation(
            output / "validation.jsonl", heldout, prompt, tokenizer, cfg.validation_max_new_tokens, eval_steps=0
        )
    trainer = sft_trainer(cfg, args, model.train(), tokenizer, examples, [validation] if validation else [])
    if validation:
        validation.trainer = trainer
    resume = processes.on_main(lambda: last_checkpoint(output)) if cfg.resume else None
    trainer.train(resume_from_checkpoint=resume)
    final = output / "final"
    save_judge(trainer, cfg.lora, final)
    if processes.is_main():
        tokenizer.save_pretrained(final)
        card = write_card(
            final, prompt, [pair for pair, _ in jobs], cfg.model, cfg, lora=cfg.lora.describe(), launch=cfg.launch
        )
        log.info("distilled judge: %s (prompt format %s, rubric pack %s)", final, card.prompt_format, card.rubric_pack)
    if validation and processes.is_main():
        measured = {"before": validation.records[0], "after": validation.records[-1]}
        (output / "eval.json").write_text(json.dumps(measured, indent=2) + "\n", encoding="utf-8")
        rows = [("base model", measured["before"]), ("after distill", measured["after"])]
        log.info("held-out validation, %d pairs in both orders:\n%s", len(heldout), "\n".join(table_lines(rows)))
    processes.barrier()
    return final
