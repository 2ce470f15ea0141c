"""GPU-only checks (`make test-gpu`): the vLLM backend and bf16/flash-attention selection on CUDA."""

import pytest
import torch

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
    from reasrm.backends.vllm import VLLMBackend
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
    vllm = VLLMBackend.load(model, gpu_memory_utilization=0.3, dtype="float32").generate(conversations, settings)
    assert [g.prompt_tokens for g in vllm] == [h.prompt_tokens for h in hf]
    assert [g.text for g in vllm] == [h.text for h in hf]
    assert all(h.completion_tokens > 0 for h in hf)
