"""GRPO rollouts on reasrm's ``hf`` backend: TRL's ``rollout_func`` hook, for CPUs and GPUs without vLLM.

TRL's own generation pads the batch's prompts and decodes every row until the longest is done. Here each
generation batch goes to :class:`reasrm.backends.hf.HFBackend` instead:

- the prompt text every prompt shares (the system message) is prefilled once, in a KV cache;
- each distinct prompt is prefilled once and its cache repeated for its ``num_generations`` samples
  (a GRPO group shares its whole prompt);
- a finished completion leaves the batch (and the KV cache) at once.

Sampling uses the trainer's temperature and top-p, seeded by the step. The importance-sampling logprobs
are not returned (``logprobs: None``): rollouts and training run the same weights, as with TRL's own
generation. A new backend per call: the weights changed since the last one, so a cached prefix is stale.
"""

from __future__ import annotations

import json
import time

import torch

from reasrm.backends import GenerationConfig
from reasrm.backends.hf import HFBackend


class HFRollouts:
    """``rollout_func(prompts, trainer)`` for TRL's ``GRPOTrainer``. ``seconds`` accumulates the time spent
    generating (the step's split is reported from it)."""

    def __init__(self, tokenizer, batch_size: int = 64, seed: int = 0):
        self.tokenizer, self.batch_size, self.seed = tokenizer, batch_size, seed
        self.seconds = 0.0

    def __call__(self, prompts: list, trainer) -> dict:
        started = time.perf_counter()
        args = trainer.args
        groups = _groups(prompts)
        # TRL hands over each prompt num_generations times, adjacent (its RepeatSampler); a slice of unique
        # prompts gets num_generations samples of each.
        n = groups[0][1] if all(count == groups[0][1] for _, count in groups) else 1
        if n == 1 and len(groups) == len(prompts):
            n = trainer.num_generations if trainer.model.training else trainer.num_generations_eval
        unique = [prompt for prompt, _ in groups] if n > 1 else list(prompts)
        model = trainer.accelerator.unwrap_model(trainer.model)
        was_training = model.training
        model.eval()
        settings = GenerationConfig(max_new_tokens=args.max_completion_length, temperature=args.temperature,
                                    top_p=args.top_p, batch_size=self.batch_size,
                                    seed=self.seed + trainer.state.global_step)  # fmt: skip
        backend = HFBackend(model, self.tokenizer)
        try:
            with torch.no_grad():
                generations = backend.generate(unique, settings, n=n)
        finally:
            model.train(was_training)
        prompt_ids = [backend.prompt_ids(prompt) for prompt in unique for _ in range(n)]
        self.seconds += time.perf_counter() - started
        completion_ids = [list(g.completion_ids or ()) for g in generations]  # too_long: an empty completion
        return {"prompt_ids": prompt_ids, "completion_ids": completion_ids, "logprobs": None}


def _groups(prompts: list) -> list[tuple[object, int]]:
    """Runs of identical adjacent prompts: (prompt, count) in order."""
    groups: list[tuple[object, int]] = []
    last = None
    for prompt in prompts:
        key = json.dumps(prompt, sort_keys=True)
        if groups and key == last:
            groups[-1] = (groups[-1][0], groups[-1][1] + 1)
        else:
            groups.append((prompt, 1))
            last = key
    return groups
