"""GPU-only checks (`make test-gpu`): bf16/flash-attention selection, the vLLM backend, and one small step
of each stage on the embedded default under each shipped launch (DDP on 2 GPUs, DeepSpeed ZeRO-3, FSDP2)
and with vLLM rollouts colocated; each is skipped where its GPUs or packages are missing."""

import importlib.util
import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
]


def test_cuda_picks_bf16_and_flash_attention_when_installed():
    import importlib.util

    from reasrm.models import pick_attention, pick_dtype

    assert pick_dtype("cuda") == (torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float32)
    expected = "flash_attention_2" if importlib.util.find_spec("flash_attn") else "sdpa"
    assert pick_attention("cuda") == expected


def test_hf_backend_on_gpu_matches_vllm_greedy():
    """The same greedy judge outputs from both backends, on the real embedded default in fp32 (a random
    model's near-uniform logits would make ties, and a tie decided differently is not a bug)."""
    pytest.importorskip("vllm")
    from reasrm.backends import GenerationConfig
    from reasrm.backends.hf import HFBackend
    from reasrm.backends.vllm import VLLMBackend, VLLMSettings
    from reasrm.models import embedded_default, load_model, load_tokenizer
    from reasrm.prompts import render

    conversations = [
        render("rm-r1-instruct", ({"role": "user", "content": f"What is {i} + 1?"},), str(i + 1), str(i + 2))
        for i in range(4)
    ]
    settings = GenerationConfig(max_new_tokens=24)
    model = str(embedded_default())
    hf = HFBackend(load_model(model, device="cuda", dtype=torch.float32), load_tokenizer(model)).generate(
        conversations, settings
    )
    vllm = VLLMBackend.load(model, VLLMSettings(gpu_memory_utilization=0.3), dtype="float32").generate(
        conversations, settings
    )
    assert [g.prompt_tokens for g in vllm] == [h.prompt_tokens for h in hf]
    assert [g.text for g in vllm] == [h.text for h in hf]
    assert all(h.completion_tokens > 0 for h in hf)


def launch(config: str, processes: int, args: list[str]) -> subprocess.CompletedProcess:
    """`reasrm ARGS` under `accelerate launch` with a shipped config, on ``processes`` GPUs."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    accelerate = str(Path(sys.executable).parent / "accelerate")
    command = [
        accelerate,
        "launch",
        "--config_file",
        f"stages/accelerate/{config}",
        "--num_processes",
        str(processes),
        "--main_process_port",
        str(port),
        "-m",
        "reasrm.cli",
        *args,
    ]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=1800)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    return result


DISTILL = [
    "distill",
    "stages/distill.yaml",
    "limit=16",
    "max_steps=1",
    "per_device_train_batch_size=2",
    "validation_pairs=4",
    "validation_max_new_tokens=32",
]
RL = [
    "rl",
    "stages/rl.yaml",
    "limit=8",
    "max_steps=1",
    "num_generations=2",
    "per_device_train_batch_size=4",
    "gradient_accumulation_steps=1",
    "max_completion_length=32",
    "preflight=false",
    "validation_pairs=4",
    "prompt_format=compact",
]


@pytest.fixture(scope="module")
def judge(tmp_path_factory) -> Path:
    """A distilled judge of the embedded default (one process, one step): the start of the rl launches."""
    out = tmp_path_factory.mktemp("distilled") / "distill"
    result = subprocess.run(
        [sys.executable, "-m", "reasrm.cli", *DISTILL, "validation_pairs=0", f"output={out}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return out / "final"


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs 2 CUDA GPUs")
def test_distill_under_ddp_on_two_gpus(tmp_path):
    out = tmp_path / "distill"
    launch("ddp.yaml", 2, [*DISTILL, f"output={out}"])
    card = json.loads((out / "final" / "reasrm_judge.json").read_text())
    assert card["launch"]["processes"] == 2 and card["launch"]["strategy"] == "ddp"
    assert [json.loads(line)["step"] for line in (out / "validation.jsonl").read_text().splitlines()] == [0, 1]


@pytest.mark.skipif(importlib.util.find_spec("deepspeed") is None, reason="needs deepspeed")
def test_rl_under_deepspeed_zero3(judge, tmp_path):
    out = tmp_path / "rl"
    args = [*RL, f"model={judge}", "shared_prefix=false", f"output={out}"]
    launch("zero3.yaml", min(2, torch.cuda.device_count()), args)
    assert json.loads((out / "final" / "reasrm_judge.json").read_text())["launch"]["strategy"] == "zero3"
    assert (out / "eval.json").is_file()


def test_distill_under_fsdp2(tmp_path):
    out = tmp_path / "distill"
    launch(
        "fsdp2.yaml",
        min(2, torch.cuda.device_count()),
        [*DISTILL, "shared_prefix=false", "validation_pairs=0", f"output={out}"],
    )
    assert json.loads((out / "final" / "reasrm_judge.json").read_text())["launch"]["strategy"] == "fsdp"
    from transformers import AutoModelForCausalLM

    AutoModelForCausalLM.from_pretrained(out / "final")  # whole weights, loadable alone


@pytest.mark.skipif(importlib.util.find_spec("vllm") is None, reason="needs vllm")
def test_rl_with_vllm_rollouts_colocated(judge, tmp_path):
    out = tmp_path / "rl"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "reasrm.cli",
            *RL,
            f"model={judge}",
            "rollouts=vllm",
            "vllm.gpu_memory_utilization=0.3",
            f"output={out}",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert (out / "final" / "config.json").is_file()
