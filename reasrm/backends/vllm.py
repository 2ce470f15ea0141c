"""vLLM: the settings every use of it shares, and the backend (offline ``vllm.LLM`` with automatic prefix
caching; GPU extra ``reasrm[vllm]``, imported only when chosen).

The same :class:`VLLMSettings` section configures GRPO's rollouts (``reasrm rl``, through TRL's vLLM
integration: ``colocate`` inside each training process, or ``server``, a ``trl vllm-serve`` on GPUs of its
own) and the ``vllm`` backend of the teacher, ``reasrm judge`` and ``reasrm eval`` (an engine in the
process, ``colocate`` only; a served model is the ``openai`` backend).
"""

from __future__ import annotations

import importlib.util
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from reasrm.backends.generation import Generation, GenerationConfig
from reasrm.config import Problem, option
from reasrm.errors import ReasrmError
from reasrm.models import resolve

VLLM_MODES = ("colocate", "server")


@dataclass
class VLLMSettings:
    mode: str = option(
        "colocate: an engine inside each process, on its GPU; server: a `trl vllm-serve` on GPUs of "
        "its own (GRPO rollouts only).",
        "colocate",
    )
    server_url: str | None = option("server mode: the `trl vllm-serve` address, e.g. http://10.0.0.5:8000.", None)
    gpu_memory_utilization: float | None = option(
        "Share of each GPU's memory the engine takes; null: vLLM's own "
        "default (0.9) for a judge or teacher, TRL's (0.3) for colocated "
        "rollouts, which leaves the rest to training.",
        None,
        gt=0,
        le=1,
    )
    tensor_parallel_size: int = option("GPUs one engine spans (colocate: a divisor of the processes).", 1, ge=1)

    def check(self, prefix: str, server: bool = True) -> list[Problem]:
        """The settings' problems; ``server``: whether ``mode: server`` is allowed here."""
        problems = []
        if self.mode not in VLLM_MODES:
            problems.append((f"{prefix}mode", f"must be one of {', '.join(VLLM_MODES)}, got {self.mode!r}"))
        elif self.mode == "server" and not server:
            problems.append(
                (
                    f"{prefix}mode",
                    "server is for GRPO rollouts; to judge with a served model use "
                    "backend=openai and base_url=http://HOST:PORT/v1 (a `vllm serve` server)",
                )
            )
        elif self.mode == "server" and not self.server_url:
            problems.append(
                (
                    f"{prefix}server_url",
                    "required with mode=server: the address of `trl vllm-serve "
                    "--model MODEL` running on GPUs of its own, e.g. http://10.0.0.5:8000",
                )
            )
        return problems

    def machine_problems(self, prefix: str, processes: int = 1) -> list[Problem]:
        """What this machine lacks to run vLLM with these settings in a launch of ``processes``."""
        problems = []
        if importlib.util.find_spec("vllm") is None:
            problems.append((prefix.rstrip("."), "vLLM is not installed: pip install 'reasrm[vllm]' (CUDA GPUs only)"))
        gpus = gpu_count()
        if not gpus:
            problems.append(
                (
                    prefix.rstrip("."),
                    "vLLM needs CUDA GPUs and this machine has none: generate with "
                    "TRL's own generate (rollouts=trl) or the hf backend",
                )
            )
        elif self.mode == "colocate" and self.tensor_parallel_size > gpus:
            problems.append(
                (
                    f"{prefix}tensor_parallel_size",
                    f"{self.tensor_parallel_size} is more than the {gpus} GPUs this process sees",
                )
            )
        elif self.mode == "colocate" and processes % self.tensor_parallel_size:
            problems.append(
                (
                    f"{prefix}tensor_parallel_size",
                    f"must divide the {processes} processes of the "
                    f"launch (each engine spans that many of them), got {self.tensor_parallel_size}",
                )
            )
        return problems

    def engine_kwargs(self) -> dict:
        kwargs = {"tensor_parallel_size": self.tensor_parallel_size}
        if self.gpu_memory_utilization is not None:
            kwargs["gpu_memory_utilization"] = self.gpu_memory_utilization
        return kwargs


def gpu_count() -> int:
    """CUDA GPUs this process sees (torch is imported only here, by configs that choose vLLM)."""
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


class VLLMBackend:
    def __init__(self, llm):
        self.llm = llm

    @classmethod
    def load(cls, model: str | None, settings: VLLMSettings | None = None, **engine_kwargs) -> VLLMBackend:
        try:
            from vllm import LLM
        except ImportError:
            raise ReasrmError("the vllm backend needs the vllm extra: pip install 'reasrm[vllm]'") from None
        where, gguf = resolve(model)
        path = f"{where}/{gguf}" if gguf else where
        engine_kwargs = {"enable_prefix_caching": True, **(settings or VLLMSettings()).engine_kwargs(), **engine_kwargs}
        return cls(LLM(model=path, **engine_kwargs))

    def generate(
        self,
        conversations: Sequence[list[dict]],
        settings: GenerationConfig,
        on_batch: Callable[[int], None] | None = None,
        on_reply: Callable[[int, Generation], None] | None = None,
        keep: Callable[[int], bool] | None = None,  # a call in flight is not stopped here
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
