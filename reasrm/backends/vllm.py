"""The vLLM backend: offline ``vllm.LLM`` with automatic prefix caching (GPU extra ``reasrm[vllm]``)."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from reasrm.backends.generation import Generation, GenerationConfig
from reasrm.errors import ReasrmError
from reasrm.models import resolve


class VLLMBackend:
    def __init__(self, llm):
        self.llm = llm

    @classmethod
    def load(cls, model: str | None, **engine_kwargs) -> VLLMBackend:
        try:
            from vllm import LLM
        except ImportError:
            raise ReasrmError("the vllm backend needs the vllm extra: pip install 'reasrm[vllm]'") from None
        where, gguf = resolve(model)
        path = f"{where}/{gguf}" if gguf else where
        engine_kwargs.setdefault("enable_prefix_caching", True)
        return cls(LLM(model=path, **engine_kwargs))

    def generate(
        self,
        conversations: Sequence[list[dict]],
        settings: GenerationConfig,
        on_batch: Callable[[int], None] | None = None,
        on_reply: Callable[[int, Generation], None] | None = None,
    ) -> list[Generation]:
        from vllm import SamplingParams

        params = SamplingParams(
            temperature=settings.temperature,
            top_p=settings.top_p if settings.temperature > 0 else 1.0,
            max_tokens=settings.max_new_tokens,
            seed=settings.seed,
        )
        started = time.perf_counter()
        outputs = self.llm.chat(list(conversations), params, use_tqdm=False)
        seconds = (time.perf_counter() - started) / max(len(outputs), 1)
        generations = [
            Generation(o.outputs[0].text, len(o.prompt_token_ids), len(o.outputs[0].token_ids), seconds)
            for o in outputs
        ]
        for i, generation in enumerate(generations):
            if on_reply is not None:
                on_reply(i, generation)
        if on_batch is not None:
            on_batch(len(outputs))
        return generations
