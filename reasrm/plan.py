"""``reasrm plan``: will a stage config fit on N GPUs, before anything is downloaded or launched?

From the model's ``config.json`` alone (an empty model is built on PyTorch's ``meta`` device to count its
parameters exactly, whatever the architecture), the memory per GPU of a training stage under each
sharding strategy, in the standard mixed-precision accounting (ZeRO, Rajbhandari et al. 2020):

- weights and gradients 2 bytes per parameter (bf16); AdamW 12 bytes per trained parameter (fp32 master
  weights and two moments). DDP keeps all three whole on every GPU; ZeRO-2 shards gradients and optimizer
  states over the GPUs; ZeRO-3 and FSDP shard the weights too. With LoRA only the adapters have gradients
  and optimizer states. Stage two with a KL term (``beta > 0``) holds a frozen reference model as well.
- activations of one loss pass (``per_device_train_batch_size`` sequences of the stage's length: distill's
  ``max_length``, rl's prompt + ``max_completion_length``), bf16, flash attention (no attention matrices):
  per layer and token the inputs of the q/k/v, o, gate/up and down projections and the attention output,
  ``2 x (4h + 2kv + 3i)`` bytes (h hidden, kv key/value width, i intermediate size); with gradient
  checkpointing a layer's input only (``2h``) plus one layer's activations recomputed in the backward; and
  for SFT the logits, 6 bytes per token and vocabulary entry (bf16 and their fp32 copy for the loss). TRL's
  GRPO loss takes log-probs from a fused LM head (``fused_lm_head``) that never holds whole logits.
- stage two with vLLM colocated: ``vllm.gpu_memory_utilization`` of each GPU is vLLM's (its copy of the
  weights and the KV cache); training gets the rest. In server mode vLLM's GPUs are others.
- 2 GB per GPU for the CUDA context and allocator slack.

Estimates, not measurements: they tell which strategy and which knob, and a run's own peak (``nvidia-smi``)
is the final word.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

from reasrm.errors import ReasrmConfigError

GB = 1024**3
STRATEGIES = ("ddp", "zero2", "zero3", "fsdp")
NAMES = {"ddp": "DDP", "zero2": "DeepSpeed ZeRO-2", "zero3": "DeepSpeed ZeRO-3", "fsdp": "FSDP2"}
OVERHEAD = 2 * GB
MODEL_CONFIG = "model_config.json"  # a preset's base-model architecture, shipped beside it


@dataclass
class Model:
    name: str
    source: str  # where its config.json came from
    parameters: int
    trained: int  # parameters with gradients and optimizer states (all, or the LoRA adapters)
    layers: int
    hidden: int
    intermediate: int
    kv_width: int  # key/value heads x head size
    vocab: int


def model_config(cfg, config_path: str | None, explicit: str | None) -> tuple[dict, str, str]:
    """(config.json as a dict, where it came from, the model's name): ``explicit`` (a file, a folder or a hub
    id), else the stage's model folder, else the ``model_config.json`` beside the stage config (presets ship
    their base model's), else the hub."""
    from reasrm.models import resolve

    model = getattr(cfg, "model", None)
    name = explicit or model or "the embedded default"
    candidates = []
    if explicit:
        candidates.append(Path(explicit))
    elif model is None:
        candidates.append(Path(resolve(None)[0]))
    else:
        candidates.append(Path(model))
        if config_path:
            candidates.append(Path(config_path).parent / MODEL_CONFIG)
    for path in candidates:
        found = path / "config.json" if path.is_dir() else path
        if found.is_file() and found.suffix == ".json":
            return json.loads(found.read_text(encoding="utf-8")), str(found), name
    hub = explicit or model
    try:
        from huggingface_hub import hf_hub_download

        found = hf_hub_download(hub, "config.json")
    except Exception as e:  # offline, or not a hub id
        raise ReasrmConfigError(
            f"cannot find {name}'s config.json ({type(e).__name__}): give it with --model-config FILE_OR_FOLDER"
        ) from None
    return json.loads(Path(found).read_text(encoding="utf-8")), found, name


def describe_model(config: dict, source: str, name: str, lora) -> Model:
    """Count the parameters of an empty model built from ``config`` (no memory, no weights)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    kind = config.get("model_type")
    try:
        hf_config = AutoConfig.for_model(**config)
        with torch.device("meta"):
            model = AutoModelForCausalLM.from_config(hf_config)
    except (ValueError, KeyError, TypeError) as e:
        raise ReasrmConfigError(f"{source}: not a causal LM config transformers knows ({kind!r}): {e}") from None
    parameters = sum(p.numel() for p in model.parameters())
    trained = parameters
    if lora is not None and lora.r:
        targets = None if lora.target_modules == "all-linear" else set(lora.target_modules.split(","))
        trained = sum(
            lora.r * (m.in_features + m.out_features)
            for path, m in model.named_modules()
            if isinstance(m, torch.nn.Linear)
            and not path.endswith("lm_head")
            and (targets is None or path.rsplit(".", 1)[-1] in targets)
        )
    text = getattr(hf_config, "text_config", hf_config)
    heads = text.num_attention_heads
    head_dim = getattr(text, "head_dim", None) or text.hidden_size // heads
    kv_heads = getattr(text, "num_key_value_heads", None) or heads
    return Model(
        name=name,
        source=source,
        parameters=parameters,
        trained=trained,
        layers=text.num_hidden_layers,
        hidden=text.hidden_size,
        intermediate=text.intermediate_size,
        kv_width=kv_heads * head_dim,
        vocab=text.vocab_size,
    )


def activations(model: Model, sequences: int, tokens: int, checkpointing: bool, logits: bool) -> float:
    """Bytes of one loss pass's activations on one GPU (see the module docstring)."""
    per_layer = 2 * (4 * model.hidden + 2 * model.kv_width + 3 * model.intermediate)  # per token
    kept = 2 * model.hidden * model.layers + per_layer if checkpointing else per_layer * model.layers
    return sequences * tokens * (kept + (6 * model.vocab if logits else 0))


def memory(model: Model, strategy: str, gpus: int, reference: bool) -> dict[str, float]:
    """Bytes per GPU of weights, gradients, optimizer states and the reference model."""
    shard = {"ddp": (1, 1, 1), "zero2": (1, gpus, gpus), "zero3": (gpus, gpus, gpus), "fsdp": (gpus, gpus, gpus)}
    w, g, o = shard[strategy]
    return {
        "weights": 2 * model.parameters / w,
        "gradients": 2 * model.trained / g,
        "optimizer": 12 * model.trained / o,
        "reference": 2 * model.parameters / w if reference else 0.0,
    }


def plan(
    cfg,
    config_path: str | None,
    gpus: int,
    gpu_memory: float,
    nodes: int = 1,
    strategy: str = "zero3",
    model_config_arg: str | None = None,
    prompt_tokens: int = 2048,
) -> dict:
    """The figures ``reasrm plan`` prints (bytes), for each strategy and the chosen one."""
    if gpus < 1 or gpu_memory <= 0 or nodes < 1 or gpus % nodes:
        raise ReasrmConfigError("--gpus and --gpu-memory must be positive and --gpus a multiple of --nodes")
    if strategy not in STRATEGIES:
        raise ReasrmConfigError(f"--strategy must be one of {', '.join(STRATEGIES)}, got {strategy!r}")
    config, source, name = model_config(cfg, config_path, model_config_arg)
    model = describe_model(config, source, name, getattr(cfg, "lora", None))
    rl = cfg.stage == "rl"
    tokens = prompt_tokens + cfg.max_completion_length if rl else cfg.max_length
    sequences = cfg.per_device_train_batch_size
    vllm_share = 0.0
    if rl and cfg.rollouts == "vllm" and cfg.vllm.mode == "colocate":
        vllm_share = cfg.vllm.gpu_memory_utilization or 0.3  # TRL's default
    capacity = gpu_memory * GB
    acts = {on: activations(model, sequences, tokens, on, logits=not rl) for on in (False, True)}
    rows = {}
    for name_ in STRATEGIES:
        parts = memory(model, name_, gpus, rl and cfg.beta > 0)
        parts["activations"] = acts[cfg.gradient_checkpointing]
        parts["overhead"] = OVERHEAD
        training = sum(parts.values())
        rows[name_] = {
            **parts,
            "training": training,
            "vllm": vllm_share * capacity,
            "fits": training <= (1 - vllm_share) * capacity,
        }
    out = {
        "model": model,
        "gpus": gpus,
        "nodes": nodes,
        "gpu_memory": capacity,
        "tokens": tokens,
        "sequences": sequences,
        "activations": acts,
        "rows": rows,
        "strategy": strategy,
        "rl": rl,
        "vllm_share": vllm_share,
    }
    if vllm_share:
        weights = 2 * model.parameters / cfg.vllm.tensor_parallel_size
        kv_per_token = 2 * 2 * model.layers * model.kv_width
        room = vllm_share * capacity - weights - OVERHEAD / 2
        out["vllm"] = {
            "weights": weights,
            "kv_room": room,
            "sequences": max(0, math.floor(room / (kv_per_token * tokens))),
        }
    out["knobs"] = knobs(cfg, out)
    return out


def knobs(cfg, out: dict) -> list[str]:
    """What to change, in order, when the chosen strategy does not fit."""
    row = out["rows"][out["strategy"]]
    advice = []
    if out.get("vllm") and out["vllm"]["sequences"] < 1:
        advice.append(
            f"vllm.gpu_memory_utilization={out['vllm_share']}: vLLM's share cannot hold the weights and "
            "one sequence's KV cache: raise it, or vllm.tensor_parallel_size, or vllm.mode=server"
        )
    if row["fits"]:
        return advice
    if out["strategy"] != "zero3" and out["rows"]["zero3"]["fits"]:
        advice.append("launch with DeepSpeed ZeRO-3 (stages/accelerate/zero3.yaml), which fits")
    if not cfg.gradient_checkpointing:
        advice.append(
            f"gradient_checkpointing=true: activations {gb(out['activations'][False])} -> "
            f"{gb(out['activations'][True])} GB per GPU"
        )
    if out["sequences"] > 1:
        advice.append(
            f"per_device_train_batch_size=1 and gradient_accumulation_steps x {out['sequences']}: the same "
            "global batch, 1/{0} of the activations".format(out["sequences"])
        )
    lora = getattr(cfg, "lora", None)
    if lora is not None and not lora.r:
        advice.append("lora.r=16: gradients and optimizer states for the adapters only")
    if out["vllm_share"]:
        advice.append(
            f"vllm.mode=server (trl vllm-serve on GPUs of its own) frees the {out['vllm_share']:.0%} vLLM "
            "takes of each training GPU"
        )
    fixed = row["training"] - row["weights"] - row["gradients"] - row["optimizer"] - row["reference"]
    sharded = row["weights"] + row["gradients"] + row["optimizer"] + row["reference"]
    room = (1 - out["vllm_share"]) * out["gpu_memory"] - fixed
    if room > 0 and out["strategy"] in ("zero3", "fsdp"):
        need = math.ceil(sharded * out["gpus"] / room)
        advice.append(f"{need} GPUs or more under {NAMES[out['strategy']]} (or offload the optimizer to the CPU)")
    return advice


def gb(value: float) -> str:
    return f"{value / GB:.1f}"


def lines(out: dict, config_path: str | None) -> list[str]:
    """The plan as the lines ``reasrm plan`` prints."""
    m = out["model"]
    trained = "full fine-tuning" if m.trained == m.parameters else f"{m.trained / 1e6:.1f} M in LoRA adapters"
    per_node = out["gpus"] // out["nodes"]
    head = [
        f"reasrm plan: {config_path or 'defaults'} on {out['nodes']} node{'s' if out['nodes'] > 1 else ''} x "
        f"{per_node} GPUs of {gb(out['gpu_memory'])} GB",
        f"model: {m.name} ({m.source}): {m.parameters / 1e9:.2f} B parameters; trained: {trained}",
        f"per GPU and loss pass: {out['sequences']} sequence(s) of {out['tokens']} tokens; activations "
        f"{gb(out['activations'][False])} GB, {gb(out['activations'][True])} GB with gradient checkpointing",
    ]
    columns = ("weights", "gradients", "optimizer", "reference", "activations", "overhead", "training", "vllm")
    table = [f"  {'GB per GPU':<20}" + "".join(f"{c:>12}" for c in columns) + f"{'fits':>8}"]
    for name, row in out["rows"].items():
        mark = "*" if name == out["strategy"] else " "
        table.append(
            f"{mark} {NAMES[name]:<20}"
            + "".join(f"{gb(row[c]):>12}" for c in columns)
            + f"{'yes' if row['fits'] else 'no':>8}"
        )
    tail = []
    if out.get("vllm"):
        v = out["vllm"]
        tail.append(
            f"vLLM colocated: {out['vllm_share']:.0%} of each GPU, {gb(v['weights'])} GB of it weights; its KV "
            f"cache holds about {v['sequences']} sequences of {out['tokens']} tokens"
        )
    chosen = out["rows"][out["strategy"]]
    verdict = "fits" if chosen["fits"] else "does NOT fit"
    tail.append(
        f"under {NAMES[out['strategy']]} (*) it {verdict}: {gb(chosen['training'])} GB of training state per "
        f"GPU, {gb((1 - out['vllm_share']) * out['gpu_memory'])} GB available to it"
    )
    tail += [f"  - {k}" for k in out["knobs"]]
    return [*head, *table, *tail]
