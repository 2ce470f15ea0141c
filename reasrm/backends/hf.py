"""The transformers backend: batched ``model.generate`` with a shared-prefix KV cache.

Judge prompts share a long prefix (the chat template and the format's system prompt: ~600 of ~860
tokens for ``rm-r1-instruct``). On a CPU, prefill of that prefix dominates, so batching alone gained
only 1.22x (measured). Here the prefix is run through the model once, its KV cache is copied into
every batch, and only each prompt's own suffix is prefilled. Rows are laid out as
``[prefix][padding][suffix]``: ``generate`` derives position ids from the attention mask's cumulative
sum, so every suffix token gets exactly the position it has without padding, and greedy outputs match
one-pair-at-a-time generation.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Sequence

import torch
from transformers import DynamicCache
from transformers import GenerationConfig as HFGenerationConfig

from reasrm.backends import Generation
from reasrm.config import GenerationConfig
from reasrm.models import load_model, load_tokenizer

MIN_PREFIX = 16  # shorter shared prefixes are not worth a cache


class HFBackend:
    def __init__(self, model, tokenizer, prefix_cache: bool = True):
        self.model = model
        self.tokenizer = tokenizer
        self.prefix_cache = prefix_cache
        self._prefix: tuple[int, ...] = ()
        self._cache: DynamicCache | None = None

    @classmethod
    def load(cls, model: str | None, device: str | None = None, prefix_cache: bool = True) -> HFBackend:
        return cls(load_model(model, device=device), load_tokenizer(model), prefix_cache=prefix_cache)

    def prompt_ids(self, conversation: list[dict]) -> list[int]:
        text = self.tokenizer.apply_chat_template(conversation, tokenize=False, add_generation_prompt=True)
        return self.tokenizer(text, add_special_tokens=False).input_ids

    @torch.inference_mode()
    def generate(
        self,
        conversations: Sequence[list[dict]],
        settings: GenerationConfig,
        on_batch: Callable[[int], None] | None = None,
    ) -> list[Generation]:
        ids = [self.prompt_ids(c) for c in conversations]
        prefix_len = self._use_prefix(ids) if self.prefix_cache else 0
        order = sorted(range(len(ids)), key=lambda i: len(ids[i]))  # similar lengths share a batch
        results: list[Generation | None] = [None] * len(ids)
        for start in range(0, len(order), settings.batch_size):
            batch = order[start : start + settings.batch_size]
            for i, generation in zip(
                batch, self._generate_batch([ids[i] for i in batch], prefix_len, settings), strict=True
            ):
                results[i] = generation
            if on_batch is not None:
                on_batch(len(batch))
        return results

    def _use_prefix(self, ids: list[list[int]]) -> int:
        """Make the cache hold a prefix shared by every prompt (and the last cached one); return its length."""
        limit = min(len(x) for x in ids) - 1  # leave each prompt at least one token to prefill
        shared = _common_prefix([self._prefix, *ids]) if self._cache is not None else 0
        if MIN_PREFIX <= shared == len(self._prefix) <= limit:
            return shared
        target = min(_common_prefix(ids), limit)
        if self._cache is not None and shared >= MIN_PREFIX:
            target = min(target, shared, limit)  # shrink to what this call shares with the cached prefix
        if target < MIN_PREFIX:
            return 0
        self._prefix = tuple(ids[0][:target])
        self._cache = DynamicCache(config=self.model.config)
        prefix = torch.tensor([self._prefix], device=self.model.device)
        self.model(input_ids=prefix, past_key_values=self._cache, use_cache=True)
        return target

    def _generate_batch(self, batch: list[list[int]], prefix_len: int, settings: GenerationConfig):
        pad = self.tokenizer.pad_token_id
        width = max(len(x) for x in batch)
        rows, masks = [], []
        for x in batch:
            gap = width - len(x)  # padding goes between the cached prefix and the suffix
            rows.append(x[:prefix_len] + [pad] * gap + x[prefix_len:])
            masks.append([1] * prefix_len + [0] * gap + [1] * (len(x) - prefix_len))
        input_ids = torch.tensor(rows, device=self.model.device)
        kwargs = {}
        if prefix_len:
            cache = copy.deepcopy(self._cache)
            cache.batch_repeat_interleave(len(batch))
            kwargs["past_key_values"] = cache
        if settings.temperature > 0:
            torch.manual_seed(settings.seed)
        config = HFGenerationConfig(
            max_new_tokens=settings.max_new_tokens,
            do_sample=settings.temperature > 0,
            temperature=settings.temperature if settings.temperature > 0 else None,
            top_p=settings.top_p if settings.temperature > 0 else None,
            pad_token_id=pad,
            eos_token_id=self.model.generation_config.eos_token_id,
        )
        started = time.perf_counter()
        output = self.model.generate(
            input_ids=input_ids,
            attention_mask=torch.tensor(masks, device=self.model.device),
            generation_config=config,
            **kwargs,
        )
        seconds = (time.perf_counter() - started) / len(batch)
        eos = config.eos_token_id if isinstance(config.eos_token_id, list) else [config.eos_token_id]
        generations = []
        for x, row in zip(batch, output[:, width:].tolist(), strict=True):
            stop = next((k + 1 for k, token in enumerate(row) if token in eos), len(row))
            text = self.tokenizer.decode(row[:stop], skip_special_tokens=True)
            generations.append(Generation(text, len(x), stop, seconds))
        return generations


def _common_prefix(seqs: Sequence[Sequence[int]]) -> int:
    first = seqs[0]
    n = min(len(s) for s in seqs)
    for k in range(n):
        token = first[k]
        if any(s[k] != token for s in seqs):
            return k
    return n
