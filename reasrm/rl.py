"""Stage two: GRPO on preference pairs with a verifiable reward (TRL's GRPOTrainer, used directly).

    reasrm rl stages/rl.yaml                                 # or: make rl
    reasrm rl stages/rl.yaml model=runs/distill/final max_steps=2

Each prompt is the judge conversation of one training pair, rendered by the same
:class:`reasrm.rubrics.JudgePrompt` as every other stage (the stage's ``rubric``, else the pair's pack,
else the checkpoint's card pack, else its prompt format); the ``label`` column is the chosen response's
slot. The reward is :func:`reasrm.rewards.verdict_reward`: +1 when the strict verdict names the label,
else -1. Start from a distilled judge: an untrained model never writes a verdict, every reward is -1,
and GRPO learns nothing (DESIGN.md, CPU facts).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from reasrm.config import _help
from reasrm.rubrics import pack_error

log = logging.getLogger(__name__)

_RESULT_KEYS = ("model", "recipe", "recipe_params", "limit", "prompt_format", "rubric", "seed", "num_generations",
                "temperature", "beta", "learning_rate")  # fmt: skip


@dataclass
class RLConfig:
    stage: str = _help("Names this schema.", "rl")
    model: str | None = _help("The judge to train (a distilled checkpoint); null = the embedded default.",
                              "runs/distill/final")  # fmt: skip
    recipe: str = _help("Data recipe giving the training pairs (a name in data_recipes/ or a path).", "demo")
    recipe_params: dict = _help("Parameters of the recipe.", factory=dict)
    limit: int | None = _help("Use at most this many training pairs.", None)
    prompt_format: str | None = _help("Prompt format for pairs without a pack; null = the model's judge card.", None)
    rubric: str | None = _help("Rubric pack forced on every pair; null = each pair's, else the card's.", None)
    output: str = _help("Output folder: checkpoints and final/ (the judge).", "runs/rl")
    resume: bool = _help("Continue a previous run from its last checkpoint.", False)
    overwrite: bool = _help("Replace a previous run in the output folder.", False)
    seed: int = _help("Seeds the slot assignment and training.", 0)
    num_generations: int = _help("Completions per prompt (GRPO's group; RM-R1: 7).", 4)
    per_device_train_batch_size: int = _help("Completions per step: a multiple of num_generations.", 4)
    max_completion_length: int = _help("Most tokens per completion (RM-R1: 8192).", 512)
    temperature: float = _help("Sampling temperature of the rollouts.", 1.0)
    max_steps: int = _help("Optimizer steps (-1: num_train_epochs).", -1)
    num_train_epochs: float = _help("Epochs over the pairs (RM-R1: 1).", 1.0)
    learning_rate: float = _help("Learning rate (RM-R1: 1e-6, constant).", 1e-6)
    beta: float = _help("KL coefficient (RM-R1: 0.001).", 0.001)
    gradient_checkpointing: bool = _help("Trade compute for memory (large judges on GPUs).", False)
    use_vllm: bool = _help("Generate rollouts with vLLM (GPU, the `vllm` extra).", False)
    save_steps: int = _help("Save a resumable checkpoint every this many steps.", 50)

    def check(self) -> list[str]:
        problems = []
        if self.stage != "rl":
            problems.append(f"'stage' must be 'rl' for this schema, got {self.stage!r}")
        if self.num_generations < 2:
            problems.append(f"'num_generations' must be >= 2 (GRPO compares a group), got {self.num_generations}")
        elif self.per_device_train_batch_size % self.num_generations:
            problems.append(f"'per_device_train_batch_size' ({self.per_device_train_batch_size}) must be a multiple "
                            f"of 'num_generations' ({self.num_generations})")  # fmt: skip
        if self.rubric is not None and pack_error(self.rubric):
            problems.append(f"'rubric': {pack_error(self.rubric)}")
        if self.limit is not None and self.limit < 1:
            problems.append(f"'limit' must be >= 1, got {self.limit}")
        return problems


def grpo_rows(prompt, jobs) -> list[dict]:
    """GRPO examples: the judge conversation as the prompt, the chosen response's slot as ``label``."""
    return [{"prompt": prompt.messages(pair, slots), "label": slots.chosen_slot} for pair, slots in jobs]


def run(cfg: RLConfig) -> Path:
    """GRPO with the verdict reward; returns ``output/final`` (a judge checkpoint with its card)."""
    from datasets import Dataset
    from trl import GRPOConfig, GRPOTrainer

    from reasrm.errors import ReasrmConfigError
    from reasrm.judge import read_card, resolve_format
    from reasrm.models import load_model, load_tokenizer, resolve
    from reasrm.rewards import verdict_reward
    from reasrm.rubrics import JudgePrompt
    from reasrm.training import last_checkpoint, prepare_output, trainer_hardware, training_jobs, write_card

    where, gguf = resolve(cfg.model)
    if gguf is not None:
        raise ReasrmConfigError("'model': GRPO needs an HF model folder or hub id, not a .gguf file")
    card = read_card(cfg.model)
    fmt = resolve_format(cfg.model, cfg.prompt_format, card)
    prompt = JudgePrompt.create(fmt, card.rubric_pack if card else None, cfg.rubric)
    jobs = training_jobs(cfg.recipe, cfg.recipe_params, cfg.limit, cfg.seed)
    prompt.check([pair for pair, _ in jobs])
    output = prepare_output(cfg, "rl", _RESULT_KEYS)
    log.info("rl: %d prompts; training %s", len(jobs), where)

    args = GRPOConfig(
        output_dir=str(output),
        num_generations=cfg.num_generations,
        per_device_train_batch_size=cfg.per_device_train_batch_size,
        max_completion_length=cfg.max_completion_length,
        temperature=cfg.temperature,
        max_steps=cfg.max_steps,
        num_train_epochs=cfg.num_train_epochs,
        learning_rate=cfg.learning_rate,
        beta=cfg.beta,
        activation_checkpointing=cfg.gradient_checkpointing,  # transformers 5 name of gradient checkpointing
        use_vllm=cfg.use_vllm,
        seed=cfg.seed,
        logging_steps=1,
        log_completions=False,
        save_steps=cfg.save_steps,
        save_total_limit=2,
        report_to="none",
        **trainer_hardware(),
    )
    tokenizer = load_tokenizer(cfg.model)
    dataset = Dataset.from_list(grpo_rows(prompt, jobs))
    trainer = GRPOTrainer(model=load_model(cfg.model).train(), reward_funcs=[verdict_reward], args=args,
                          train_dataset=dataset, processing_class=tokenizer)  # fmt: skip
    trainer.train(resume_from_checkpoint=last_checkpoint(output) if cfg.resume else None)
    final = output / "final"
    trainer.save_model(str(final))
    tokenizer.save_pretrained(final)
    base = card.base_model if card else cfg.model
    new = write_card(final, prompt, [pair for pair, _ in jobs], base, cfg, inherited=card)
    log.info("trained judge: %s (prompt format %s, rubric pack %s)", final, new.prompt_format, new.rubric_pack)
    return final
