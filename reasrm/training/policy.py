"""Train a policy with a reasoning judge as its reward: TRL's GRPOTrainer, used directly.

    reasrm policy stages/policy_grpo.yaml            # or: make policy
    reasrm policy stages/policy_grpo.yaml max_steps=2 judge=path/to/judge

The prompts (and, for the reference-anchored reward, the reference answers) come from a data recipe.
The reward is a pairwise judge turned into one score per completion (``reasrm.downstream``): a
round robin within each group of ``num_generations`` completions, or wins against the reference. The
judge can be a local model or a judge server (``judge_backend: openai``). The resolved config and the
trained policy are written to ``output``.

Where this departs from RM-R1: RM-R1 trains the judge; this stage uses a trained judge to train a
policy, the downstream use the judge exists for.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from reasrm.backends import BACKENDS, GenerationConfig, check_backend
from reasrm.config import Problem, option
from reasrm.data.build import collect, load_recipe
from reasrm.downstream import ReferenceReward, RoundRobinReward
from reasrm.judge import Judge
from reasrm.models import load_tokenizer
from reasrm.runs import output_problems, prepare_output
from reasrm.training.common import last_checkpoint, trainable, trainer_args

log = logging.getLogger(__name__)

REWARDS = ("round_robin", "reference")
RESULT_KEYS = (
    "policy",
    "judge",
    "judge_backend",
    "judge_base_url",
    "judge_prompt_format",
    "judge_generation",
    "reward",
    "opponents",
    "recipe",
    "recipe_params",
    "num_generations",
    "learning_rate",
    "beta",
    "seed",
)


@dataclass
class PolicyConfig:
    stage: str = option("Names this schema.", "policy")
    policy: str | None = option(
        "The policy to train: hub id, local folder or .gguf; null = the embedded default.", None
    )
    judge: str | None = option("The judge: a model, or the served model's name with judge_backend=openai.", None)
    judge_backend: str = option(f"One of {', '.join(BACKENDS)}.", "hf")
    judge_base_url: str | None = option("openai judge backend: the server, e.g. http://127.0.0.1:8000/v1.", None)
    judge_prompt_format: str | None = option("The judge's prompt format; null = its judge card.", None)
    judge_generation: GenerationConfig = option(
        "How the judge generates.", factory=lambda: GenerationConfig(max_new_tokens=128)
    )
    reward: str = option(f"One of {', '.join(REWARDS)}.", "round_robin")
    opponents: int | None = option("round_robin: opponents per completion (null = all of its group).", None, ge=1)
    recipe: str = option("Data recipe giving the prompts (a name in data_recipes/ or a path).", "demo")
    recipe_params: dict = option("Parameters of the recipe.", factory=lambda: {"n": 64})
    output: str = option("Output folder: the trained policy and the resolved config.", "runs/policy")
    resume: bool = option("Continue a previous run from its last checkpoint.", False)
    overwrite: bool = option("Replace a previous run in the output folder.", False)
    num_generations: int = option("Completions per prompt (GRPO's group).", 4, ge=2)
    per_device_train_batch_size: int = option("Completions per step: a multiple of num_generations.", 4, ge=1)
    max_completion_length: int = option("Most tokens per completion.", 48, ge=1)
    max_steps: int = option("Optimizer steps.", 4, ge=1, also=(-1,))
    learning_rate: float = option("Learning rate.", 1e-6, gt=0)
    beta: float = option("KL coefficient (0 = no reference model, as TRL's default).", 0.0, ge=0)
    seed: int = option("Seed.", 0, ge=0)
    save_steps: int = option("Save a resumable checkpoint every this many steps.", 50, ge=1)

    def check(self) -> list[Problem]:
        problems = self.judge_generation.check("judge_generation.")
        problems += check_backend(self.judge_backend, self.judge_base_url, "judge_")
        if self.reward not in REWARDS:
            problems.append(("reward", f"must be one of {', '.join(REWARDS)}, got {self.reward!r}"))
        if self.num_generations >= 2 and self.per_device_train_batch_size % self.num_generations:
            problems.append(
                (
                    "per_device_train_batch_size",
                    f"must be a multiple of num_generations "
                    f"({self.num_generations}), got {self.per_device_train_batch_size}",
                )
            )
        return problems + output_problems(self)


def run(cfg: PolicyConfig) -> Path:
    """Build the prompts, the judge and its reward, then fit with GRPOTrainer. Returns ``output/final``."""
    from datasets import Dataset  # datasets and trl take seconds to import: only a run pays for them
    from trl import GRPOConfig, GRPOTrainer

    where = trainable(cfg.policy, "policy")
    output = prepare_output(cfg.output, Path(cfg.output) / "policy.yaml", cfg, RESULT_KEYS, cfg.resume, cfg.overwrite)
    train, _, _, _ = collect(load_recipe(cfg.recipe, [f"{k}={v}" for k, v in cfg.recipe_params.items()]))
    rows = {"prompt": [[dict(m) for m in p.context] for p in train]}
    if cfg.reward == "reference":
        rows["reference"] = [p.reference or p.chosen for p in train]  # verifiable data has a worked reference
    dataset = Dataset.from_dict(rows)

    judge = Judge.from_pretrained(
        cfg.judge, cfg.judge_backend, cfg.judge_prompt_format, cfg.judge_generation, base_url=cfg.judge_base_url
    )
    if cfg.reward == "round_robin":
        reward = RoundRobinReward(judge, cfg.num_generations, opponents=cfg.opponents, seed=cfg.seed)
    else:
        reward = ReferenceReward(judge, seed=cfg.seed)

    args = GRPOConfig(
        num_generations=cfg.num_generations,
        per_device_train_batch_size=cfg.per_device_train_batch_size,
        max_completion_length=cfg.max_completion_length,
        max_steps=cfg.max_steps,
        learning_rate=cfg.learning_rate,
        beta=cfg.beta,
        **trainer_args(output, cfg),
    )
    trainer = GRPOTrainer(
        model=where,
        reward_funcs=[reward],
        args=args,
        train_dataset=dataset,
        processing_class=load_tokenizer(cfg.policy),
    )
    trainer.train(resume_from_checkpoint=last_checkpoint(output) if cfg.resume else None)
    trainer.save_model(str(output / "final"))
    log.info("trained policy saved to %s", output / "final")
    return output / "final"
