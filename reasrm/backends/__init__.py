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

__all__ = ["BACKENDS", "Generation", "GenerationConfig", "backend_machine_problems", "check_backend", "load_backend"]

BACKENDS = ("hf", "vllm", "openai")


def check_backend(
    backend: str, base_url: str | None, prefix: str = "", choices: tuple[str, ...] = BACKENDS, vllm=None
) -> list[Problem]:
    """A config's backend choice (keys ``{prefix}backend``, ``{prefix}base_url``): one of ``choices``;
    ``openai`` needs the server's address (``{prefix}base_url`` or ``$OPENAI_BASE_URL``); ``vllm`` its
    settings ``vllm`` (``{prefix}vllm``) in order."""
    if backend not in choices:
        return [(f"{prefix}backend", f"must be one of {', '.join(choices)}, got {backend!r}")]
    if backend == "openai" and not (base_url or os.environ.get("OPENAI_BASE_URL")):
        return [
            (
                f"{prefix}base_url",
                "required with the openai backend (or $OPENAI_BASE_URL): the server, e.g. http://127.0.0.1:8000/v1",
            )
        ]
    if backend == "vllm" and vllm is not None:
        return vllm.check(f"{prefix}vllm.", server=False)
    return []


def backend_machine_problems(backend: str, prefix: str = "", vllm=None) -> list[Problem]:
    """What this machine and launch lack for the backend: ``vllm`` needs CUDA GPUs and the extra, and runs as
    one process (its engine spans the GPUs itself)."""
    from reasrm import processes

    if backend != "vllm":
        return []
    if processes.launched():
        return [
            (
                f"{prefix}backend",
                "vllm runs one engine over the GPUs itself: run this command as one process "
                f"(not under accelerate launch or torchrun), with {prefix}vllm.tensor_parallel_size=N",
            )
        ]
    return vllm.machine_problems(f"{prefix}vllm.") if vllm is not None else []


def load_backend(name: str, model: str | None, base_url: str | None = None, vllm=None, **kwargs):
    """The backend ``name`` serving ``model`` (None = the embedded default); ``base_url`` is the server of
    the ``openai`` backend, ``vllm`` the ``VLLMSettings`` of the ``vllm`` one; each ignores the other's."""
    if name == "hf":
        from reasrm.backends.hf import HFBackend

        return HFBackend.load(model, **kwargs)
    if name == "vllm":
        from reasrm.backends.vllm import VLLMBackend

        return VLLMBackend.load(model, vllm, **kwargs)
    if name == "openai":
        from reasrm.backends.openai import OpenAIBackend

        return OpenAIBackend.load(model, base_url=base_url, **kwargs)
    raise ReasrmConfigError(f"unknown backend {name!r}: expected one of {', '.join(BACKENDS)}")
