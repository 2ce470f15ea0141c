"""Stage two: GRPO on preference pairs with a verifiable reward (TRL's GRPOTrainer, used directly).

    reasrm rl stages/rl.yaml                                 # or: make rl
    reasrm rl stages/rl.yaml model=runs/distill/final max_steps=2

Each prompt is the judge conversation of one training pair in the slots ``assign_slots`` gives,
rendered by the same :class:`reasrm.prompts.JudgePrompt` as every other stage (the stage's ``rubric``,
else the pair's pack, else the checkpoint's card pack, else its prompt format); the ``label`` column is
the chosen response's slot. The rewards are chosen by name (``rewards``, from
:data:`reasrm.training.rewards.REWARDS`); the default, ``verdict``, is +1 when the strict verdict names the
label, else -1. Start from a distilled judge: an untrained model never writes a verdict, every reward is -1,
and GRPO learns nothing (DESIGN.md, CPU facts).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from reasrm.card import judge_prompt, read_card
from reasrm.config import Problem, option
from reasrm.models import load_model, load_tokenizer
from reasrm.rubrics import pack_error
from reasrm.runs import output_problems, prepare_output
from reasrm.training.common import last_checkpoint, trainable, trainer_args, training_jobs, write_card
from reasrm.training.rewards import REWARDS

log = logging.getLogger(__name__)

RESULT_KEYS = ("model", "recipe", "recipe_params", "limit", "prompt_format", "rubric", "seed", "rewards",
               "num_generations", "temperature", "beta", "learning_rate")  # fmt: skip


@dataclass
class RLConfig:
    stage: str = option("Names this schema.", "rl")
    model: str | None = option("The judge to train (a distilled checkpoint); null = the embedded default.",
                              "runs/distill/final")  # fmt: skip
    recipe: str = option("Data recipe giving the training pairs (a name in data_recipes/ or a path).", "demo")
    recipe_params: dict = option("Parameters of the recipe.", factory=dict)
    limit: int | None = option("Use at most this many training pairs.", None)
    prompt_format: str | None = option("Prompt format for pairs without a pack; null = the model's judge card.", None)
    rubric: str | None = option("Rubric pack forced on every pair; null = each pair's, else the card's.", None)
    rewards: list[str] = option(f"Reward functions by name: any of {', '.join(REWARDS)}.", factory=lambda: ["verdict"])
    output: str = option("Output folder: checkpoints and final/ (the judge).", "runs/rl")
    resume: bool = option("Continue a previous run from its last checkpoint.", False)
    overwrite: bool = option("Replace a previous run in the output folder.", False)
    seed: int = option("Seeds the slot assignment and training.", 0)
    num_generations: int = option("Completions per prompt (GRPO's group; RM-R1: 7).", 4)
    per_device_train_batch_size: int = option("Completions per step: a multiple of num_generations.", 4)
    max_completion_length: int = option("Most tokens per completion (RM-R1: 8192).", 512)
    temperature: float = option("Sampling temperature of the rollouts.", 1.0)
    max_steps: int = option("Optimizer steps (-1: num_train_epochs).", -1)
    num_train_epochs: float = option("Epochs over the pairs (RM-R1: 1).", 1.0)
    learning_rate: float = option("Learning rate (RM-R1: 1e-6, constant).", 1e-6)
    beta: float = option("KL coefficient (RM-R1: 0.001).", 0.001)
    gradient_checkpointing: bool = option("Trade compute for memory (large judges on GPUs).", False)
    use_vllm: bool = option("Generate rollouts with vLLM (GPU, the `vllm` extra).", False)
    save_steps: int = option("Save a resumable checkpoint every this many steps.", 50)

    def check(self) -> list[Problem]:
        problems = []
        if self.num_generations < 2:
            problems.append(("num_generations", f"must be >= 2 (GRPO compares a group), got {self.num_generations}"))
        elif self.per_device_train_batch_size % self.num_generations:
            problems.append(("per_device_train_batch_size", f"must be a multiple of num_generations "
                             f"({self.num_generations}), got {self.per_device_train_batch_size}"))  # fmt: skip
        if self.rubric is not None and pack_error(self.rubric):
            problems.append(("rubric", pack_error(self.rubric)))
        if self.limit is not None and self.limit < 1:
            problems.append(("limit", f"must be >= 1, got {self.limit}"))
        valid = f"valid names: {', '.join(REWARDS)}"
        if not self.rewards:
            problems.append(("rewards", f"is empty; {valid}"))
        problems += [("rewards", f"unknown reward {name!r}; {valid}") for name in self.rewards if name not in REWARDS]
        return problems + output_problems(self)


def grpo_rows(prompt, jobs) -> list[dict]:
    """GRPO examples: the judge conversation as the prompt, the chosen response's slot as ``label``."""
    return [{"prompt": prompt.messages(pair, slots), "label": slots.chosen_slot} for pair, slots in jobs]


def run(cfg: RLConfig) -> Path:
    """GRPO with the configured rewards; returns ``output/final`` (a judge checkpoint with its card)."""
    from datasets import Dataset  # datasets and trl take seconds to import: only a run pays for them
    from trl import GRPOConfig, GRPOTrainer

    where = trainable(cfg.model)
    card = read_card(cfg.model)
    prompt = judge_prompt(cfg.model, card, cfg.prompt_format, cfg.rubric)
    jobs = training_jobs(cfg.recipe, cfg.recipe_params, cfg.limit, cfg.seed)
    prompt.check([pair for pair, _ in jobs])
    output = prepare_output(cfg.output, Path(cfg.output) / "rl.yaml", cfg, RESULT_KEYS, cfg.resume, cfg.overwrite)
    log.info("rl: %d prompts; training %s", len(jobs), where)

    args = GRPOConfig(
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
        log_completions=False,
        **trainer_args(output, cfg),
    )
    tokenizer = load_tokenizer(cfg.model)
    dataset = Dataset.from_list(grpo_rows(prompt, jobs))
    trainer = GRPOTrainer(model=load_model(cfg.model).train(), reward_funcs=[REWARDS[name] for name in cfg.rewards],
                          args=args, train_dataset=dataset, processing_class=tokenizer)  # fmt: skip
    trainer.train(resume_from_checkpoint=last_checkpoint(output) if cfg.resume else None)
    final = output / "final"
    trainer.save_model(str(final))
    tokenizer.save_pretrained(final)
    base = card.base_model if card else cfg.model
    new = write_card(final, prompt, [pair for pair, _ in jobs], base, cfg, inherited=card)
    log.info("trained judge: %s (prompt format %s, rubric pack %s)", final, new.prompt_format, new.rubric_pack)
    return final
