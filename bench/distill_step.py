"""Stage one's SFT step vs a plain PyTorch loop over the same tokens, on the embedded default.

    python bench/distill_step.py [--steps 6] [--batch-size 8]

The stage's trainer is built exactly as `reasrm distill` builds it (``reasrm.training.distill.sft_trainer``:
TRL's SFTTrainer, completion-only loss, the dtype ``pick_dtype`` gives: fp32 on a CPU, bf16 on a GPU
that supports it) on template-teacher chains of the
demo recipe in the shipped ``compact`` prompt. The plain loop is ``model(**batch).loss.backward()`` and
``torch.optim.AdamW`` on a second copy of the same model, fed the very batches the trainer's data loader
yields. Both run in one process, alternating (plain, stage, plain), so the figures are side by side on
this shared machine; the first step of each phase is a warm-up and not counted. The stage runs twice, with
``shared_prefix`` off (TRL's own loss over every token of every example) and on (the shipped default: the
system text the batch shares runs once). Prints the median seconds per optimizer step of each and their
ratios (target: the stage <= 1.3x the plain loop).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch
from transformers import TrainerCallback

from reasrm.config import load_config
from reasrm.models import load_model, load_tokenizer
from reasrm.training.distill import DistillConfig, prepare, sft_args, sft_examples, sft_trainer
from reasrm.training.shared_prefix import loss_free_prefix
from reasrm.training.teacher import generate_chains

ROOT = Path(__file__).resolve().parents[1]


class StepTimes(TrainerCallback):
    def __init__(self):
        self.times: list[float] = []

    def on_step_begin(self, args, state, control, **kwargs):
        self._started = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        self.times.append(time.perf_counter() - self._started)


def plain_steps(model, batches: list[dict], lr: float, bf16: bool) -> list[float]:
    """Forward, backward and AdamW on each batch (under bf16 autocast where the trainer uses it); seconds per
    step."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr)
    model.train()
    times = []
    for batch in batches:
        started = time.perf_counter()
        with torch.autocast(model.device.type, dtype=torch.bfloat16, enabled=bf16):
            loss = model(
                input_ids=batch["input_ids"], attention_mask=batch.get("attention_mask"), labels=batch["labels"]
            ).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        times.append(time.perf_counter() - started)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=6, help="timed steps per phase (plus one warm-up)")
    parser.add_argument("--batch-size", type=int, default=8, help="examples per step (the shipped config's 8)")
    args = parser.parse_args()
    torch.manual_seed(0)

    with tempfile.TemporaryDirectory() as tmp:
        n = (args.steps + 1) * args.batch_size
        cfg = load_config(
            ROOT / "stages" / "distill.yaml",
            [
                f"limit={n}",
                f"output={tmp}/run",
                "validation_pairs=0",
                f"max_steps={args.steps + 1}",
                f"per_device_train_batch_size={args.batch_size}",
                "save_steps=1000",
            ],
            schema=DistillConfig,
        )
        prompt, jobs, output = prepare(cfg)
        examples = sft_examples(generate_chains(jobs, prompt, cfg.teacher, output / "chains.jsonl"))
        tokenizer = load_tokenizer(cfg.model)
        trainers = {}
        for shared in (False, True):
            way = replace(cfg, shared_prefix=shared)
            trainers[shared] = sft_trainer(
                way, sft_args(way, output / f"shared-{shared}"), load_model(cfg.model).train(), tokenizer, examples, []
            )
        batches = [dict(b) for b in trainers[True].get_train_dataloader()][: args.steps + 1]
        tokens = sum(int(b["attention_mask"].sum()) for b in batches) / len(batches)
        shared = statistics.median(loss_free_prefix(b) for b in batches)
        plain_model = load_model(cfg.model)
        bf16 = trainers[True].args.bf16

        before = plain_steps(plain_model, batches, cfg.learning_rate, bf16)[1:]
        stage = {}
        for key, trainer in trainers.items():
            timer = StepTimes()
            trainer.add_callback(timer)
            trainer.train()
            stage[key] = statistics.median(timer.times[1:])
        after = plain_steps(plain_model, batches, cfg.learning_rate, bf16)[1:]

    plain = statistics.median(before + after)
    compute = "bf16 autocast" if bf16 else "no autocast"
    print(
        f"model {type(plain_model).__name__}, weights {plain_model.dtype} ({compute}), "
        f"batch {args.batch_size} examples, {tokens:.0f} tokens per step on average ({shared:.0f} of each "
        f"example's shared by the batch), {args.steps} timed steps per phase"
    )
    rows = [
        ("(a) plain PyTorch loop (forward, backward, AdamW)", plain, len(before + after)),
        ("(b) reasrm distill, shared_prefix=false (TRL's loss)", stage[False], args.steps),
        ("(c) reasrm distill, shared_prefix=true (shipped)", stage[True], args.steps),
    ]
    for name, seconds, n in rows:
        print(f"  {name:<54}{seconds:6.2f} s/step  (median of {n})")
    print(
        f"  ratio b/a: {stage[False] / plain:.2f}, c/a: {stage[True] / plain:.2f} (target <= 1.3), "
        f"c/b: {stage[True] / stage[False]:.2f}"
    )


if __name__ == "__main__":
    main()
