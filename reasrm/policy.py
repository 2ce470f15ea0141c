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

from reasrm.config import GenerationConfig, _help, save_config

log = logging.getLogger(__name__)

REWARDS = ("round_robin", "reference")


@dataclass
class PolicyConfig:
    stage: str = _help("Names this schema.", "policy")
    policy: str | None = _help("The policy to train: hub id, local folder or .gguf; null = the embedded default.", None)
    judge: str | None = _help("The judge: a model, or the served model's name with judge_backend=openai.", None)
    judge_backend: str = _help("hf, vllm or openai.", "hf")
    judge_base_url: str | None = _help("openai judge backend: the server, e.g. http://127.0.0.1:8000/v1.", None)
    judge_prompt_format: str | None = _help("The judge's prompt format; null = its judge card.", None)
    judge_generation: GenerationConfig = _help("How the judge generates.", factory=GenerationConfig)
    reward: str = _help(f"One of {', '.join(REWARDS)}.", "round_robin")
    opponents: int | None = _help("round_robin: opponents per completion (null = all of its group).", None)
    recipe: str = _help("Data recipe giving the prompts (a name in data_recipes/ or a path).", "demo")
    recipe_params: dict = _help("Parameters of the recipe.", factory=dict)
    output: str = _help("Output folder: the trained policy and the resolved config.", "runs/policy")
    num_generations: int = _help("Completions per prompt (GRPO's group).", 4)
    per_device_train_batch_size: int = _help("Completions per step: a multiple of num_generations.", 4)
    max_completion_length: int = _help("Most tokens per completion.", 64)
    max_steps: int = _help("Optimizer steps.", 10)
    learning_rate: float = _help("Learning rate.", 1e-6)
    beta: float = _help("KL coefficient (0 = no reference model, as TRL's default).", 0.0)
    seed: int = _help("Seed.", 0)

    def check(self) -> list[str]:
        problems = self.judge_generation.check("judge_generation.")
        if self.stage != "policy":
            problems.append(f"'stage' must be 'policy' for this schema, got {self.stage!r}")
        if self.reward not in REWARDS:
            problems.append(f"'reward' must be one of {', '.join(REWARDS)}, got {self.reward!r}")
        if self.num_generations < 2:
            problems.append(
                f"'num_generations' must be >= 2 (the judge compares completions), got {self.num_generations}"
            )
        if self.per_device_train_batch_size % self.num_generations:
            problems.append(f"'per_device_train_batch_size' ({self.per_device_train_batch_size}) must be a multiple of "
                            f"'num_generations' ({self.num_generations})")  # fmt: skip
        if self.judge_backend == "openai" and not self.judge_base_url:
            problems.append("'judge_base_url' is required with judge_backend=openai")
        return problems


def run(cfg: PolicyConfig) -> Path:
    """Build the prompts, the judge and its reward, then fit with GRPOTrainer. Returns the output folder."""
    import torch
    from datasets import Dataset
    from trl import GRPOConfig, GRPOTrainer

    from reasrm.data.build import collect, load_recipe
    from reasrm.downstream import ReferenceReward, RoundRobinReward
    from reasrm.judge import Judge
    from reasrm.models import load_tokenizer, pick_device, pick_dtype, resolve

    output = Path(cfg.output)
    output.mkdir(parents=True, exist_ok=True)
    save_config(cfg, output / "policy.yaml")

    train, _, _, _ = collect(load_recipe(cfg.recipe, [f"{k}={v}" for k, v in cfg.recipe_params.items()]))
    rows = {"prompt": [[dict(m) for m in p.context] for p in train]}
    if cfg.reward == "reference":
        rows["reference"] = [p.reference or p.chosen for p in train]  # verifiable data has a worked reference
    dataset = Dataset.from_dict(rows)

    judge_options = {"base_url": cfg.judge_base_url} if cfg.judge_backend == "openai" else {}
    judge = Judge.from_pretrained(cfg.judge, cfg.judge_backend, cfg.judge_prompt_format, cfg.judge_generation,
                                  **judge_options)  # fmt: skip
    if cfg.reward == "round_robin":
        reward = RoundRobinReward(judge, cfg.num_generations, opponents=cfg.opponents, seed=cfg.seed)
    else:
        reward = ReferenceReward(judge, seed=cfg.seed)

    where, gguf = resolve(cfg.policy)
    if gguf is not None:
        from reasrm.errors import ReasrmConfigError

        raise ReasrmConfigError("'policy': GRPO needs an HF model folder or hub id, not a .gguf file")
    bf16 = pick_dtype(pick_device()) == torch.bfloat16
    args = GRPOConfig(
        output_dir=str(output),
        num_generations=cfg.num_generations,
        per_device_train_batch_size=cfg.per_device_train_batch_size,
        max_completion_length=cfg.max_completion_length,
        max_steps=cfg.max_steps,
        learning_rate=cfg.learning_rate,
        beta=cfg.beta,
        seed=cfg.seed,
        bf16=bf16,  # TRL defaults to bf16, 14x slower on a CPU without bf16 instructions (measured)
        logging_steps=1,
        save_strategy="no",
        report_to="none",
    )
    trainer = GRPOTrainer(model=where, reward_funcs=[reward], args=args, train_dataset=dataset,
                          processing_class=load_tokenizer(cfg.policy))  # fmt: skip
    trainer.train()
    trainer.save_model(str(output / "final"))
    log.info("trained policy saved to %s", output / "final")
    return output / "final"
