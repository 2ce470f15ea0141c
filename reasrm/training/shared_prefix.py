"""Both stages' losses with a shared prompt prefix run once: TRL's log-probs and gradients for fewer FLOPs.

TRL's ``GRPOTrainer`` scores a completion with a forward (and backward) pass over its whole sequence,
prompt and completion. The ``num_generations`` completions of a group share their prompt, so TRL runs
that prompt once per completion: with the judge's ~250-token prompts and ~100-token chains, most of the
policy's forward and backward is the same prompt again.

:class:`SharedPrefixGRPOTrainer` (``shared_prefix: true`` in the stage config) overrides the one method
that computes the per-token log-probs: each distinct prompt of a chunk runs once and fills a KV cache,
the cache rows are repeated for the prompt's completions, and the completions run on it. Gradients flow
back through the repeated cache into the prompt's one pass, summed over its group: the same log-probs,
entropies and gradients as TRL's own pass up to float rounding (tests/test_rl.py compares both), for
``P + G*C`` instead of ``G*(P + C)`` tokens per group. Positions count from the cache length, as they
count over the padded sequence in TRL's pass, and the attention mask is TRL's.

Falls back to TRL's method where a cache cannot stand in: multimodal inputs, MoE auxiliary losses,
gradient checkpointing (no cache), PEFT-wrapped models, or a chunk whose prompts are all different.

:class:`SharedPrefixSFTTrainer` (stage one, ``shared_prefix: true``) does the same for SFT, where every
example of a batch is a different pair but all start with the same system text (the prompt format's
instructions: about half of the demo's tokens per example, most of RM-R1's ~860-token prompt): the longest
prefix that every row of the batch shares and that carries no loss runs once, and the rest of each row runs
on its repeated KV cache. Same loss, metrics and gradients as TRL's pass (tests/test_stages.py).

**The TRL coupling.** The GRPO override mirrors TRL 1.16's ``_get_per_token_logps_and_entropies`` (its
``fused_lm_head`` forward, a ``(logps, entropies, aux_loss)`` 3-tuple, ``compute_aux_loss``), and the SFT one
TRL 1.16's ``compute_loss``; both were checked with the versions in :data:`CHECKED`, which ``pyproject.toml``
pins. With any other installed version the stages train with TRL's own trainers and say why in one log
line (:func:`trainer_class`).
"""

from __future__ import annotations

import logging
from importlib.metadata import version

import torch
from transformers import DynamicCache
from trl import GRPOTrainer, SFTTrainer

from reasrm.backends.hf import MIN_PREFIX  # a shorter shared prefix is not worth a second forward call
from reasrm.models import cache_arg

log = logging.getLogger(__name__)

# The versions the overrides were checked against: [low, high) per package.
CHECKED = {"trl": ((1, 16), (1, 17)), "transformers": ((5, 23), (5, 26))}


def unchecked_versions() -> str | None:
    """Why the overrides cannot be trusted with the installed packages, or None when they were checked."""
    for package, (low, high) in CHECKED.items():
        installed = tuple(int(part) for part in version(package).split(".")[:2])
        if not low <= installed < high:
            return (
                f"{package} {version(package)} is outside the versions the shared-prefix loss was checked with "
                f"({'.'.join(map(str, low))} to below {'.'.join(map(str, high))})"
            )
    return None


def trainer_class(shared: bool, fast: type, plain: type) -> type:
    """``fast`` (a shared-prefix trainer) when ``shared`` and the installed versions were checked, else
    ``plain`` (TRL's), with one log line saying why."""
    if not shared:
        return plain
    reason = unchecked_versions()
    if reason is not None:
        log.warning("shared_prefix: %s: training with TRL's own %s instead", reason, plain.__name__)
        return plain
    return fast


class SharedPrefixGRPOTrainer(GRPOTrainer):
    """TRL's ``GRPOTrainer``, each group's prompt run once in the loss (see the module docstring)."""

    def _get_per_token_logps_and_entropies(
        self,
        model,
        input_ids,
        attention_mask,
        logits_to_keep,
        batch_size=None,
        compute_entropy=False,
        compute_aux_loss=False,
        **extra,
    ):
        unwrapped = self.accelerator.unwrap_model(model)
        prompt_length = input_ids.size(1) - logits_to_keep
        starts, _ = _groups(input_ids[:, :prompt_length], attention_mask[:, :prompt_length])
        if (
            any(v is not None for v in extra.values())
            or compute_aux_loss
            or prompt_length < 2
            or unwrapped.is_activation_checkpointing
            or hasattr(unwrapped, "peft_config")
            or len(starts) == input_ids.size(0)
        ):
            return super()._get_per_token_logps_and_entropies(
                model,
                input_ids,
                attention_mask,
                logits_to_keep,
                batch_size=batch_size,
                compute_entropy=compute_entropy,
                compute_aux_loss=compute_aux_loss,
                **extra,
            )
        cache_kwarg = cache_arg()
        batch_size = batch_size or input_ids.size(0)
        logps, entropies = [], []
        for start in range(0, input_ids.size(0), batch_size):
            ids, mask = input_ids[start : start + batch_size], attention_mask[start : start + batch_size]
            starts, rows = _groups(ids[:, :prompt_length], mask[:, :prompt_length])
            cache = DynamicCache(config=unwrapped.config)
            # The prompt but its last token: that token's position scores the completion's first token.
            head = prompt_length - 1
            with self.accelerator.autocast():
                model(
                    input_ids=ids[starts, :head],
                    attention_mask=mask[starts, :head],
                    use_cache=True,
                    logits_to_keep=1,
                    **{cache_kwarg: cache},
                )
                cache.batch_select_indices(rows)  # each completion's row of its prompt's cache (differentiable)
                tail = ids[:, head:]
                labels = tail.masked_fill(mask[:, head:] == 0, -100)
                outputs = model(
                    input_ids=tail, attention_mask=mask, labels=labels, fused_lm_head=True, **{cache_kwarg: cache}
                )
            logps.append(outputs.log_probs[:, -logits_to_keep:])
            if compute_entropy:
                entropies.append(outputs.entropy[:, -logits_to_keep:])
        return torch.cat(logps), torch.cat(entropies) if compute_entropy else None, None


class SharedPrefixSFTTrainer(SFTTrainer):
    """TRL's ``SFTTrainer``, the prefix every example of a batch shares run once (see the module docstring)."""

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        unwrapped = self.accelerator.unwrap_model(model)
        head = loss_free_prefix(inputs) if set(inputs) <= {"input_ids", "attention_mask", "labels"} else 0
        if (
            head < MIN_PREFIX
            or self.aux_loss_enabled
            or unwrapped.is_activation_checkpointing
            or hasattr(unwrapped, "peft_config")
        ):
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        ids, cache_kwarg = inputs["input_ids"], cache_arg()
        cache = DynamicCache(config=unwrapped.config)
        model(input_ids=ids[:1, :head], use_cache=True, logits_to_keep=1, **{cache_kwarg: cache})
        cache.batch_select_indices(torch.zeros(ids.size(0), dtype=torch.long, device=ids.device))  # differentiable
        # TRL's own loss on the rest of each row; the full attention mask covers the cached prefix (and counts
        # the batch's tokens as TRL does); positions continue from the cache's length.
        tail = {
            "input_ids": ids[:, head:],
            "attention_mask": inputs["attention_mask"],
            "labels": inputs["labels"][:, head:],
            cache_kwarg: cache,
        }
        return super().compute_loss(model, tail, return_outputs, num_items_in_batch)


def loss_free_prefix(inputs: dict) -> int:
    """How many leading tokens every row of an SFT batch shares, unpadded, with no loss on them nor on the
    token after (its label is scored from the prefix's last position, which the tail pass does not run)."""
    ids, mask, labels = inputs["input_ids"], inputs.get("attention_mask"), inputs["labels"]
    if ids.size(0) < 2:
        return 0
    same = (ids == ids[:1]).all(0) & (labels == -100).all(0)
    if mask is not None:
        same &= (mask == 1).all(0)
    head = int(same.long().cumprod(0).sum())  # the run of positions where every row agrees from the start
    return max(0, min(head, ids.size(1)) - 1)


def _groups(prompt_ids: torch.Tensor, prompt_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The distinct prompts of a chunk: the first row of each, and for each row the index of its prompt.
    Rows of a group need not be adjacent: with gradient_accumulation_steps > 1 TRL shuffles the step's
    rows before it splits them into loss passes."""
    _, rows = torch.unique(torch.cat([prompt_ids, prompt_mask], dim=1), dim=0, return_inverse=True)
    index = torch.arange(rows.numel(), device=rows.device)
    first = torch.full((int(rows.max()) + 1,), rows.numel(), dtype=torch.long, device=rows.device)
    return first.scatter_reduce(0, rows, index, reduce="amin"), rows
