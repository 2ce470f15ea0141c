"""Stage two's GRPO step vs a plain TRL `GRPOTrainer` script, side by side in one run.

    python bench/rl_step.py --model runs/demo/distill/final [--steps 3] [--generations 8] [--batch 32]

One model (a distilled judge writes realistic chains; the embedded default rambles to the length limit),
the same rows (the demo recipe's training pairs in both slot orders, rendered with the judge card's
prompt), the same reward (``verdict``), generations, lengths, learning rate and loss, two ways:

  (a) plain TRL: ``GRPOTrainer(model, reward_funcs=verdict_reward, args=GRPOConfig(...))``, nothing else;
  (b) the stage (``reasrm.training.rl.grpo_trainer``, TRL's own generation, ``rollouts: trl``), with the
      shipped ``shared_prefix: true`` (the loss runs each group's prompt once;
      ``reasrm.training.shared_prefix``), which shrinks the policy column; ``--no-shared-prefix`` turns it off.

Each trains a fresh copy of the model for ``--steps`` steps after one warm-up step. Printed per way: the
median seconds per step (timed by a trainer callback), the mean completion length (sampling differs, so
read the ratio next to it), and the ratio (b)/(a) (target <= 1.10).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from transformers import TrainerCallback

from reasrm.card import judge_prompt, read_card
from reasrm.config import load_config
from reasrm.models import load_model, load_tokenizer
from reasrm.training.common import trainer_args, training_jobs
from reasrm.training.rewards import verdict_reward
from reasrm.training.rl import RLConfig, grpo_args, grpo_rows, grpo_trainer

ROOT = Path(__file__).resolve().parents[1]


class StepTimes(TrainerCallback):
    """Seconds per optimizer step, from the trainer's public callbacks."""

    def __init__(self):
        self.steps: list[float] = []

    def on_step_begin(self, args, state, control, **kwargs):
        self._started = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        self.steps.append(time.perf_counter() - self._started)


def plain_trl(cfg: RLConfig, model, tokenizer, rows, output: Path):
    """What a user would write with TRL alone: the same settings, the verdict reward, no reasrm code."""
    from datasets import Dataset
    from trl import GRPOConfig, GRPOTrainer

    args = GRPOConfig(
        num_generations=cfg.num_generations,
        per_device_train_batch_size=cfg.per_device_train_batch_size,
        max_completion_length=cfg.max_completion_length,
        temperature=cfg.temperature,
        max_steps=cfg.max_steps,
        learning_rate=cfg.learning_rate,
        beta=cfg.beta,
        loss_type=cfg.loss_type,
        shuffle_dataset=False,
        **trainer_args(output, cfg),
    )
    return GRPOTrainer(
        model=model.train(),
        reward_funcs=verdict_reward,
        args=args,
        train_dataset=Dataset.from_list(rows),
        processing_class=tokenizer,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=None, help="a judge checkpoint (default: the embedded default)")
    parser.add_argument("--steps", type=int, default=3, help="timed steps per way (after one warm-up step)")
    parser.add_argument("--generations", type=int, default=8)
    parser.add_argument("--batch", type=int, default=32, help="completions per step")
    parser.add_argument("--max-completion-length", type=int, default=128)
    parser.add_argument("--ways", default="a,b", help="which of a, b to run")
    parser.add_argument("--no-shared-prefix", action="store_true", help="the stage's loss as TRL's (each row whole)")
    args = parser.parse_args()

    tokenizer = load_tokenizer(args.model)
    prompt = judge_prompt(args.model, read_card(args.model), None, None)
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for way in args.ways.split(","):
            cfg = load_config(
                ROOT / "stages" / "rl.yaml",
                [
                    f"num_generations={args.generations}",
                    f"per_device_train_batch_size={args.batch}",
                    "gradient_accumulation_steps=1",
                    f"max_completion_length={args.max_completion_length}",
                    f"max_steps={args.steps + 1}",
                    "rewards=[verdict]",
                    "reward_weights=null",
                    f"output={tmp}/{way}",
                    "save_steps=1000",
                    f"shared_prefix={not args.no_shared_prefix}",
                ],
                schema=RLConfig,
            )
            rows = grpo_rows(prompt, training_jobs(cfg.recipe, cfg.recipe_params, cfg.limit, cfg.seed), True, cfg.seed)
            model = load_model(args.model)
            if way == "a":
                trainer = plain_trl(cfg, model, tokenizer, rows, Path(tmp, way))
            else:
                trainer = grpo_trainer(cfg, grpo_args(cfg, Path(tmp, way)), model, tokenizer, rows, [])
            times = StepTimes()
            trainer.add_callback(times)
            trainer.train()
            lengths = [
                h["completions/mean_length"] for h in trainer.state.log_history if "completions/mean_length" in h
            ]
            results[way] = {"total": statistics.median(times.steps[1:]), "length": statistics.mean(lengths[1:])}

    names = {"a": "(a) plain TRL GRPOTrainer", "b": "(b) reasrm rl"}
    print(
        f"model {args.model or 'embedded default'}; {args.batch} completions per step ({args.generations} per "
        f"prompt), <= {args.max_completion_length} tokens; median of {args.steps} steps after a warm-up"
    )
    print(f"  {'':<32} {'s/step':>8} {'tokens':>7}")
    for way, r in results.items():
        print(f"  {names[way]:<32} {r['total']:8.1f} {r['length']:7.1f}")
    if "a" in results:
        for way, target in (("b", 1.10),):
            if way in results:
                ratio = results[way]["total"] / results["a"]["total"]
                print(f"  ratio {way}/a: {ratio:.2f} (target <= {target})")


if __name__ == "__main__":
    main()
