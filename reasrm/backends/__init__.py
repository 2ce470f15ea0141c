"""Generation backends: turn judge conversations into completions.

``hf`` (transformers, batched, shared-prefix KV cache) runs anywhere; ``vllm`` (offline ``vllm.LLM``) is an
optional extra for GPUs and is imported only when chosen; ``openai`` talks to any chat-completions server
(``reasrm serve``, a vLLM server). Each returns one :class:`Generation` per input.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Generation:
    text: str
    prompt_tokens: int
    completion_tokens: int
    seconds: float  # this call's share of its batch's wall time
    error: str | None = None  # set when the backend gave up on this call (the judge reports it as failed)


def load_backend(name: str, model: str | None, **kwargs):
    """The backend ``name`` (``hf`` or ``vllm``) serving ``model`` (None = the embedded default)."""
    if name == "hf":
        from reasrm.backends.hf import HFBackend

        return HFBackend.load(model, **kwargs)
    if name == "vllm":
        from reasrm.backends.vllm import VLLMBackend

        return VLLMBackend.load(model, **kwargs)
    if name == "openai":
        from reasrm.backends.openai import OpenAIBackend

        return OpenAIBackend.load(model, **kwargs)
    from reasrm.errors import ReasrmConfigError

    raise ReasrmConfigError(f"unknown backend {name!r}: expected 'hf', 'vllm' or 'openai'")


def backend_options(cfg) -> dict:
    """Backend arguments from a judge or eval config (the server address for ``openai``)."""
    return {"base_url": cfg.base_url} if cfg.backend == "openai" else {}
