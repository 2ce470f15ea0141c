"""The transformers backend: batched generation with a shared-prefix KV cache.

Judge prompts share a long prefix (the chat template and the format's system prompt: nine tenths of an
``rm-r1-instruct`` prompt). On a CPU, prefill of that prefix dominates, so batching alone gains little.
Here the prefix is run through the model once, its KV cache is copied into
every batch, and only each prompt's own suffix is prefilled. Rows are laid out as
``[prefix][padding][suffix]`` and position ids are the attention mask's cumulative sum, so every suffix
token gets exactly the position it has without padding, and greedy outputs match one-pair-at-a-time
``model.generate`` (tested).

Decoding is a short loop over the model's forward rather than ``model.generate``: on a CPU a decode step
costs a fixed part (reading the weights) plus a part per row, and judge outputs vary from a few tokens to
the limit, so ``generate``'s static batch spends most of its time on rows that have already finished. Here
a row that emits EOS leaves the batch and the KV cache at once.

A batch's KV cache has room to grow (:class:`RoomyLayer`): transformers' ``DynamicCache`` appends each
decoded token by concatenation, which copies the whole cache every step; written in place instead, with
the same verdicts (``bench/decode_cache.py``; docs/performance.md).
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Sequence

import torch
from transformers import DynamicCache, TemperatureLogitsWarper, TopPLogitsWarper
from transformers.cache_utils import DynamicLayer

from reasrm.backends.generation import Generation, GenerationConfig
from reasrm.models import cache_arg, load_model, load_tokenizer

MIN_PREFIX = 16  # shorter shared prefixes are not worth a cache


class HFBackend:
    def __init__(self, model, tokenizer, prefix_cache: bool = True):
        self.model = model
        self.tokenizer = tokenizer
        self.prefix_cache = prefix_cache
        self._prefix: tuple[int, ...] = ()
        self._cache: DynamicCache | None = None
        self._cache_arg = cache_arg()

    @classmethod
    def load(cls, model: str | None, device: str | None = None, prefix_cache: bool = True) -> HFBackend:
        return cls(load_model(model, device=device), load_tokenizer(model), prefix_cache=prefix_cache)

    @property
    def cached_prefix_tokens(self) -> int:
        """Tokens of the prompt prefix whose KV cache the backend holds (0: none)."""
        return len(self._prefix) if self._cache is not None else 0

    def prompt_limit(self, settings: GenerationConfig) -> int:
        """The longest prompt generated: ``max_prompt_tokens``, and never past the model's context."""
        context = getattr(self.model.config, "max_position_embeddings", None)
        room = context - settings.max_new_tokens if context else None
        limits = [x for x in (settings.max_prompt_tokens, room) if x is not None]
        return min(limits) if limits else 2**62

    def prompt_ids(self, conversation: list[dict]) -> list[int]:
        text = self.tokenizer.apply_chat_template(conversation, tokenize=False, add_generation_prompt=True)
        return self.tokenizer(text, add_special_tokens=False).input_ids

    @torch.inference_mode()
    def generate(
        self,
        conversations: Sequence[list[dict]],
        settings: GenerationConfig,
        on_batch: Callable[[int], None] | None = None,
        on_reply: Callable[[int, Generation], None] | None = None,
        n: int = 1,
        keep: Callable[[int], bool] | None = None,
    ) -> list[Generation]:
        """One generation per conversation; with ``n`` > 1, ``n`` samples of each (``n`` adjacent results per
        conversation), its prompt prefilled once and its KV cache shared. ``on_reply(index, generation)`` is
        called as each result is done (a short row does not wait for its batch); ``keep(index)``, asked
        before every decode step, drops a row that is no longer wanted (a server's client gone): its result
        has ``error="cancelled"``."""
        if not conversations:
            return []
        ids = [self.prompt_ids(c) for c in conversations]
        limit = self.prompt_limit(settings)
        results: list[Generation | None] = [None] * (len(ids) * n)
        for i, x in enumerate(ids):  # over the limit: not generated (one long prompt would take the batch down)
            if len(x) > limit:
                results[i * n : (i + 1) * n] = [Generation("", len(x), 0, 0.0, too_long=True)] * n
        fits = [i for i in range(len(ids)) if results[i * n] is None]
        if not fits:
            return results
        prefix_len = self._use_prefix([ids[i] for i in fits]) if self.prefix_cache else 0
        order = sorted(fits, key=lambda i: len(ids[i]))  # similar lengths share a batch
        per_batch = max(1, settings.batch_size // n)
        for start in range(0, len(order), per_batch):
            batch = order[start : start + per_batch]
            indices = [batch[k // n] * n + k % n for k in range(len(batch) * n)]

            def done(k: int, generation: Generation, indices=indices) -> None:
                results[indices[k]] = generation
                if on_reply is not None:
                    on_reply(indices[k], generation)

            wanted = None if keep is None else lambda k, indices=indices: keep(indices[k])
            self._generate_batch([ids[i] for i in batch], prefix_len, settings, n, done, wanted)
            if on_batch is not None:
                on_batch(len(indices))
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
        self.model(input_ids=prefix, use_cache=True, **{self._cache_arg: self._cache})
        return target

    def _generate_batch(
        self, batch: list[list[int]], prefix_len: int, settings: GenerationConfig, n: int, done, keep=None
    ) -> None:
        """Decode one batch, ``n`` samples per prompt (each prompt is prefilled once, then its KV cache is
        repeated ``n`` times); a row that finishes (or that ``keep`` no longer wants) leaves the batch and the
        KV cache at once, and ``done(row, generation)`` gets it."""
        device = self.model.device
        width = max(len(x) for x in batch)
        rows, masks = [], []
        for x in batch:
            gap = width - len(x)  # padding goes between the cached prefix and the suffix
            rows.append(x[:prefix_len] + [self.tokenizer.pad_token_id] * gap + x[prefix_len:])
            masks.append([1] * prefix_len + [0] * gap + [1] * (len(x) - prefix_len))
        mask = torch.tensor(masks, device=device)
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        cache = roomy_cache(self.model.config, self._cache if prefix_len else None, len(batch), settings.max_new_tokens)
        step_ids = torch.tensor(rows, device=device)[:, prefix_len:]
        step_positions = positions[:, prefix_len:]
        pick = _picker(settings, device)
        eos = set(_as_list(self.model.generation_config.eos_token_id))
        active = list(range(len(batch) * n))  # rows still generating (n per prompt), in cache order
        generated: list[list[int]] = [[] for _ in active]
        started = time.perf_counter()

        def finish(row: int, error: str | None = None) -> None:
            out = generated[row]
            text = self.tokenizer.decode(out, skip_special_tokens=True)
            seconds = (time.perf_counter() - started) / len(generated)  # its share of the batch's time so far
            done(row, Generation(text, len(batch[row // n]), len(out), seconds, error=error, completion_ids=tuple(out)))

        for step in range(settings.max_new_tokens):
            logits = self.model(
                input_ids=step_ids,
                attention_mask=mask,
                position_ids=step_positions,
                use_cache=True,
                logits_to_keep=1,
                **{self._cache_arg: cache},
            ).logits[:, -1, :]
            if step == 0 and n > 1:  # the prompts are prefilled: now n rows of each
                logits, mask = logits.repeat_interleave(n, dim=0), mask.repeat_interleave(n, dim=0)
                cache.batch_repeat_interleave(n)
            tokens = pick(logits.float())
            going = []
            for k, (row, token) in enumerate(zip(active, tokens.tolist(), strict=True)):
                generated[row].append(token)
                if token in eos or len(generated[row]) >= settings.max_new_tokens:
                    finish(row)
                elif keep is not None and not keep(row):
                    finish(row, error="cancelled")
                else:
                    going.append(k)
            if not going:
                break
            if len(going) < len(active):
                index = torch.tensor(going, device=device)
                cache.batch_select_indices(index)
                mask, tokens = mask[index], tokens[index]
                active = [active[k] for k in going]
            mask = torch.cat([mask, mask.new_ones(len(active), 1)], dim=1)
            step_ids = tokens[:, None]
            step_positions = mask.sum(-1, keepdim=True) - 1


class RoomyLayer(DynamicLayer):
    """A ``DynamicLayer`` whose keys and values are views into buffers with ``room`` spare positions: an
    update writes the new positions in place, where ``DynamicLayer`` concatenates (a copy of the whole
    layer per decoded token). Same tensors to the attention, so the same numbers; a batch that changes size
    (rows leaving, samples repeated) gets new buffers once."""

    def __init__(self, room: int):
        super().__init__()
        self.room = room
        self._keys = self._values = None

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs):
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        old = self.get_seq_length()
        new = old + key_states.shape[-2]
        if not (self._in_buffers() and self.keys.shape[0] == key_states.shape[0] and new <= self._keys.shape[-2]):
            shape = (key_states.shape[0], key_states.shape[1], new + self.room, key_states.shape[-1])
            self._keys, self._values = key_states.new_empty(shape), value_states.new_empty(shape)
            if old:  # a one-row prefix broadcasts to every row
                self._keys[:, :, :old], self._values[:, :, :old] = self.keys, self.values
        self._keys[:, :, old:new], self._values[:, :, old:new] = key_states, value_states
        self.keys, self.values = self._keys[:, :, :new], self._values[:, :, :new]
        return self.keys, self.values

    def batch_select_indices(self, indices: torch.Tensor) -> None:
        if not self._in_buffers():
            return super().batch_select_indices(indices)
        length = self.get_seq_length()
        self._keys, self._values = self._keys[indices], self._values[indices]
        self.keys, self.values = self._keys[:, :, :length], self._values[:, :, :length]

    def _in_buffers(self) -> bool:
        """Whether keys and values are still views into this layer's buffers (not replaced by a repeat)."""
        return (
            self._keys is not None
            and self.keys.data_ptr() == self._keys.data_ptr()
            and self.keys.shape[0] == self._keys.shape[0]
        )


def roomy_cache(config, prefix: DynamicCache | None, rows: int, room: int) -> DynamicCache:
    """A cache for a batch of ``rows``: ``RoomyLayer`` with ``room`` spare positions for every plain layer
    (others, e.g. sliding windows, as transformers makes them), holding ``prefix`` (one row) for every row."""
    cache = DynamicCache(config=config)
    if prefix is None:
        cache.layers = [RoomyLayer(room) if type(x) is DynamicLayer else x for x in cache.layers]
        return cache
    for k, layer in enumerate(prefix.layers):
        if type(layer) is DynamicLayer:  # its one row is broadcast into the buffers on the first update
            roomy = RoomyLayer(room)
            roomy.lazy_initialization(layer.keys, layer.values)
            roomy.keys, roomy.values = layer.keys, layer.values
            cache.layers[k] = roomy
        else:
            cache.layers[k] = copy.deepcopy(layer)
            cache.layers[k].batch_repeat_interleave(rows)
    return cache


def _picker(settings: GenerationConfig, device) -> Callable[[torch.Tensor], torch.Tensor]:
    """Greedy (temperature 0) or seeded sampling with transformers' own temperature and top-p warpers."""
    if settings.temperature == 0:
        return lambda logits: logits.argmax(-1)
    warpers = [TemperatureLogitsWarper(settings.temperature)]
    if settings.top_p < 1:
        warpers.append(TopPLogitsWarper(settings.top_p))
    generator = torch.Generator(device=device).manual_seed(settings.seed)

    def sample(logits: torch.Tensor) -> torch.Tensor:
        for warp in warpers:
            logits = warp(None, logits)
        return torch.multinomial(logits.softmax(-1), 1, generator=generator)[:, 0]

    return sample


def _as_list(value) -> list[int]:
    return value if isinstance(value, list) else [value]


def _common_prefix(seqs: Sequence[Sequence[int]]) -> int:
    first = seqs[0]
    n = min(len(s) for s in seqs)
    for k in range(n):
        token = first[k]
        if any(s[k] != token for s in seqs):
            return k
    return n
