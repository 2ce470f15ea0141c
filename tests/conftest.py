"""Shared fixtures. The fast suite needs no real weights: a tiny random model with the SmolLM2 tokenizer."""

import json
import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the suite never reaches for a hub
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")


def pytest_sessionstart(session):
    """The process settings the `reasrm` command runs with (tests call the stages in this process)."""
    from reasrm.models import setup_process

    setup_process()


ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "data"  # a few records of each benchmark file (tests/data/README.md)
FULL_DATA = Path(os.environ.get("REASRM_SHARED", ROOT.parent / "shared")) / "data"


@pytest.fixture(scope="session")
def benchmark_data() -> Path:
    """The benchmark files the fast suite reads: the fixtures in the repository (the published layout)."""
    return FIXTURES


@pytest.fixture(scope="session")
def full_benchmark_data() -> Path:
    """The full public benchmark data (slow tests): ``$REASRM_SHARED/data``, else ``../shared/data``."""
    if not (FULL_DATA / "rm-bench").is_dir():
        pytest.skip(f"the full benchmark data is not at {FULL_DATA}: set REASRM_SHARED to the folder holding data/")
    return FULL_DATA


@pytest.fixture(scope="session")
def rm_r1_reference() -> dict:
    return json.loads((FIXTURES / "rm_r1_prompts.json").read_text())


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    """A 2-layer random Llama with the real SmolLM2 tokenizer, saved as an HF folder."""
    import torch
    from transformers import AutoTokenizer, GenerationConfig, LlamaConfig, LlamaForCausalLM

    from reasrm.models import embedded_default

    tokenizer = AutoTokenizer.from_pretrained(embedded_default())
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=4096,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(0)
    model = LlamaForCausalLM(config)
    model.generation_config = GenerationConfig(
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id
    )
    path = tmp_path_factory.mktemp("tiny-model")
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture
def write_jsonl(tmp_path):
    def write(rows, name="pairs.jsonl") -> Path:
        path = tmp_path / name
        lines = (r if isinstance(r, bytes) else (r if isinstance(r, str) else json.dumps(r)).encode() for r in rows)
        path.write_bytes(b"".join(line + b"\n" for line in lines))
        return path

    return write


VERDICT_CHAIN = "OK <type>Reasoning</type><solution>1</solution><eval>A</eval><answer>[[A]]</answer>"


@pytest.fixture(scope="session")
def verdict_model(tmp_path_factory) -> Path:
    """A small random Llama (the SmolLM2 tokenizer) trained for a few seconds to answer every judge prompt of
    the demo recipe in the `compact` format with :data:`VERDICT_CHAIN`: a real model whose chains pass the
    teacher's check for the pairs whose chosen response is in slot A, and whose verdicts give GRPO a valid
    (constant "A") reward. Greedy, it writes exactly that chain (checked here)."""
    import random

    import torch
    from transformers import AutoTokenizer, GenerationConfig, LlamaConfig, LlamaForCausalLM

    from reasrm.data.build import collect, load_recipe
    from reasrm.models import embedded_default
    from reasrm.prompts import JudgePrompt

    tokenizer = AutoTokenizer.from_pretrained(embedded_default())
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=128,
        intermediate_size=256,
        num_hidden_layers=2,
        num_attention_heads=8,
        num_key_value_heads=4,
        max_position_embeddings=4096,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(0)
    rng = random.Random(0)
    model = LlamaForCausalLM(config)
    model.generation_config = GenerationConfig(
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id
    )
    prompt = JudgePrompt.create("compact")
    train, heldout, _, _ = collect(load_recipe("demo", ["n=200"]))
    pairs = train + heldout

    def ids():
        pair = rng.choice(pairs)
        messages = prompt.messages(pair, pair.shown(rng.choice("AB")))
        return tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True, return_dict=False)

    tail = [*tokenizer(VERDICT_CHAIN, add_special_tokens=False).input_ids, tokenizer.eos_token_id]
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    for _ in range(300):  # left-padded batches of 4; the loss on the chain only
        heads = [ids() for _ in range(4)]
        width = max(map(len, heads))
        input_ids = torch.tensor([[tokenizer.pad_token_id] * (width - len(h)) + h + tail for h in heads])
        mask = torch.tensor([[0] * (width - len(h)) + [1] * (len(h) + len(tail)) for h in heads])
        logits = model(input_ids=input_ids, attention_mask=mask, logits_to_keep=len(tail) + 1).logits[:, :-1]
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.size(-1)), torch.tensor(tail * len(heads)))
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    test = torch.tensor([ids()])
    out = model.generate(test, attention_mask=torch.ones_like(test), max_new_tokens=len(tail) + 4, do_sample=False)
    assert tokenizer.decode(out[0, test.size(1) :], skip_special_tokens=True) == VERDICT_CHAIN
    path = tmp_path_factory.mktemp("verdict-model")
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path
