"""Generation backends: turn judge conversations into completions.

``hf`` (transformers, batched, shared-prefix KV cache) runs anywhere; ``vllm`` (offline ``vllm.LLM``) is an
optional extra for GPUs and is imported only when chosen; ``openai`` talks to any chat-completions server
(``reasrm serve``, a vLLM server). Each returns one :class:`Generation` per input, generated with the
settings of a :class:`GenerationConfig`.
"""

from __future__ import annotations

import os

from reasrm.backends.generation import Generation, GenerationConfig
from reasrm.config import Problem
from reasrm.errors import ReasrmConfigError

__all__ = ["BACKENDS", "Generation", "GenerationConfig", "check_backend", "load_backend"]

BACKENDS = ("hf", "vllm", "openai")


def check_backend(backend: str, base_url: str | None, prefix: str = "", choices: tuple[str, ...] = BACKENDS,
                  ) -> list[Problem]:  # fmt: skip
    """A config's backend choice (keys ``{prefix}backend``, ``{prefix}base_url``): one of ``choices``, and
    ``openai`` needs the server's address (``{prefix}base_url`` or ``$OPENAI_BASE_URL``)."""
    if backend not in choices:
        return [(f"{prefix}backend", f"must be one of {', '.join(choices)}, got {backend!r}")]
    if backend == "openai" and not (base_url or os.environ.get("OPENAI_BASE_URL")):
        return [(f"{prefix}base_url", "required with the openai backend (or $OPENAI_BASE_URL): the server, e.g. "
                 "http://127.0.0.1:8000/v1")]  # fmt: skip
    return []


def load_backend(name: str, model: str | None, base_url: str | None = None, **kwargs):
    """The backend ``name`` serving ``model`` (None = the embedded default); ``base_url`` is the server of
    the ``openai`` backend and ignored by the others."""
    if name == "hf":
        from reasrm.backends.hf import HFBackend

        return HFBackend.load(model, **kwargs)
    if name == "vllm":
        from reasrm.backends.vllm import VLLMBackend

        return VLLMBackend.load(model, **kwargs)
    if name == "openai":
        from reasrm.backends.openai import OpenAIBackend

        return OpenAIBackend.load(model, base_url=base_url, **kwargs)
    raise ReasrmConfigError(f"unknown backend {name!r}: expected one of {', '.join(BACKENDS)}")
