"""Model loading: hardware-chosen dtype and attention, the embedded default, clear errors."""

import json
import os
import platform
import subprocess
import sys

import pytest
import torch

from reasrm.errors import ReasrmError
from reasrm.models import (
    embedded_default,
    load_model,
    load_tokenizer,
    pick_attention,
    pick_device,
    pick_dtype,
    resolve,
)


def test_dtype_and_attention_follow_the_hardware():
    assert pick_dtype("cpu") == torch.float32  # every CPU: a judge's verdicts must not depend on the host
    assert pick_attention("cpu") == "sdpa"  # flash-attn is GPU-only


def test_trainers_compute_in_the_dtype_judges_use(tmp_path):
    """A CPU trains in fp32, the dtype ``load_model`` judges in there: under bf16 autocast a distilled judge
    was right in both orders on 0.32 of held-out pairs and in fp32 on 0.09 (README). ``bf16=True`` stays
    accepted with ``use_cpu`` (once it crashed every stage on a bf16 CPU)."""
    from types import SimpleNamespace

    from trl import GRPOConfig, SFTConfig

    from reasrm.training.common import trainer_args

    args = trainer_args(tmp_path, SimpleNamespace(seed=0, save_steps=10))
    device = pick_device()
    assert args["use_cpu"] == (device == "cpu")
    assert args["bf16"] == (pick_dtype(device) == torch.bfloat16)  # never on a CPU; bf16 on a bf16 GPU
    for config in (SFTConfig, GRPOConfig):
        assert config(**args).bf16 == args["bf16"]
        assert config(**{**args, "bf16": True}).bf16  # a user's override: accepted, not a ValueError


def test_models_keep_their_own_layers_not_hub_kernels(tiny_model, tmp_path, monkeypatch):
    """transformers 5 swaps layers for kernels it fetches from the Hub wherever ``kernels`` is installed; on
    an H200 offline every GPU training run failed at ``model.train()``. After ``setup_process`` (the CLI's),
    neither the models reasrm loads nor those TRL loads itself (a reference model, a policy named by path)
    use them; a user's choice stays."""
    import importlib.util

    from transformers import AutoModelForCausalLM
    from trl.trainer.utils import create_model_from_path

    from reasrm.models import setup_process

    monkeypatch.delenv("USE_HUB_KERNELS", raising=False)
    if importlib.util.find_spec("kernels") is not None:
        assert AutoModelForCausalLM.from_pretrained(tiny_model).use_kernels  # transformers' default
    setup_process()
    assert not load_model(str(tiny_model), device="cpu").use_kernels
    assert not create_model_from_path(str(tiny_model)).use_kernels
    monkeypatch.setenv("USE_HUB_KERNELS", "YES")
    setup_process()
    assert os.environ["USE_HUB_KERNELS"] == "YES"


def test_embedded_default_is_a_cached_hf_folder():
    folder = embedded_default()
    assert (folder / "config.json").is_file() and (folder / "model.safetensors").is_file()
    config = json.loads((folder / "config.json").read_text())
    assert "quantization_config" not in config  # dequantised: trainable, not "a purely quantized model"
    assert embedded_default() == folder  # converted once, then reused
    tokenizer = load_tokenizer(None)
    assert tokenizer.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False).startswith(
        "<|im_start|>system"
    )


def test_tiny_folder_loads_in_eval_mode(tiny_model):
    model = load_model(str(tiny_model), device="cpu")
    assert not model.training
    assert model.dtype == pick_dtype("cpu")
    assert model.config._attn_implementation == "sdpa"


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("/no/such/folder", "model not found: /no/such/folder"),
        ("./missing-model", "model not found: ./missing-model"),
        ("weights.gguf", "model file not found: weights.gguf"),
    ],
)
def test_missing_models_give_one_clear_line(name, message):
    with pytest.raises(ReasrmError) as error:
        resolve(name)
    assert str(error.value).startswith(message)
    assert "\n" not in str(error.value)


def test_folder_without_config(tmp_path):
    with pytest.raises(ReasrmError, match=r"has no config\.json"):
        resolve(str(tmp_path))


def test_hub_ids_pass_through_unchanged():
    assert resolve("gaotang/RM-R1-Qwen2.5-Instruct-7B") == ("gaotang/RM-R1-Qwen2.5-Instruct-7B", None)


@pytest.mark.slow
def test_gguf_file_loads_and_matches_the_converted_folder(tmp_path, monkeypatch):
    """The GGUF path (dequantised by transformers) and a fresh conversion give the same weights."""
    from reasrm.models import embedded_gguf

    monkeypatch.setenv("REASRM_CACHE", str(tmp_path))
    converted = load_model(str(embedded_default()), device="cpu")
    assert str(embedded_default()).startswith(str(tmp_path))
    direct = load_model(str(embedded_gguf()), device="cpu")
    for (name, a), (_, b) in zip(converted.state_dict().items(), direct.state_dict().items(), strict=True):
        torch.testing.assert_close(a, b, msg=name)


MALLINFO = """
import ctypes, sys
import torch
from reasrm.models import keep_freed_memory

class Mallinfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks",
                 "keepcost")]

libc = ctypes.CDLL(None)
libc.mallinfo2.restype = Mallinfo2
kept = keep_freed_memory() if sys.argv[1] == "keep" else None
logits = torch.ones(64 * 2**20)  # 256 MB, an SFT step's logits are larger
print(kept, libc.mallinfo2().hblkhd >= logits.nbytes)  # hblkhd: bytes in blocks of their own mmap
"""


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's malloc only")
@pytest.mark.parametrize(
    ("how", "env", "printed"),
    [
        ("keep", {}, "True False"),  # from the heap: no page faults when the next step reuses it
        ("default", {}, "None True"),  # glibc's own: a fresh mmap, zero-filled page by page, unmapped on free
        ("keep", {"GLIBC_TUNABLES": "glibc.malloc.arena_max=4"}, "False True"),  # the user's tunables win
        ("keep", {"MALLOC_ARENA_MAX": "2"}, "False True"),
    ],
)
def test_cpu_processes_keep_freed_memory_for_reuse(how, env, printed):
    env = {k: v for k, v in os.environ.items() if k != "GLIBC_TUNABLES" and not k.startswith("MALLOC_")} | env
    out = subprocess.run([sys.executable, "-c", MALLINFO, how], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.split("\n")[0] == printed


def test_importing_the_library_and_loading_a_model_change_nothing_about_the_process(tiny_model):
    """No environment switches and no allocator settings on import or model load: the `reasrm` command
    applies them (reasrm.models.setup_process), and a library user may call it."""
    code = (
        "import os, reasrm, reasrm.models as m; from reasrm import Judge; "
        f"m.load_model({str(tiny_model)!r}); Judge.from_pretrained({str(tiny_model)!r}, prompt_format='compact'); "
        "print(os.environ.get('USE_HUB_KERNELS'), os.environ.get('TRL_EXPERIMENTAL_SILENCE'), "
        "m._FREED_MEMORY_KEPT); reasrm.setup_process(); print(os.environ.get('USE_HUB_KERNELS'))"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("USE_HUB_KERNELS", "TRL_EXPERIMENTAL_SILENCE")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True).stdout
    assert out.splitlines() == ["None None None", "NO"]
