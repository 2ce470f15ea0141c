"""Launch configs, presets and `reasrm plan`: every shipped YAML loads; what a launch or machine cannot run is
refused by `reasrm validate` in one line naming the setting; the plan's figures for a 7B model by hand."""

import json
from pathlib import Path

import pytest
import yaml

from reasrm.cli import load, main
from reasrm.config import load_config
from reasrm.errors import ReasrmConfigError

ROOT = Path(__file__).resolve().parents[1]


def test_every_shipped_stage_config_and_preset_loads():
    """Recursively: the stage configs and the RM-R1 presets (overlays with `base:`), each with its schema."""
    configs = [p for p in sorted((ROOT / "stages").rglob("*.yaml")) if "accelerate" not in p.parts]
    presets = [p for p in configs if "presets" in p.parts]
    assert len(presets) == 12  # Qwen2.5-Instruct and DeepSeek-R1-Distill-Qwen, 7B/14B/32B, both stages
    for path in configs:
        cfg = load(str(path), [], machine=False)
        assert cfg.stage in ("distill", "rl", "judge", "policy")
    for path in presets:
        cfg = load(str(path), [], machine=False)
        assert cfg.launch_processes in (4, 8, 16, 32) and cfg.shared_prefix is False
        assert yaml.safe_load(path.read_text())["base"].startswith("../../../")  # an overlay, not a copy
        assert path.read_text().count("\n") < 60
        if cfg.stage == "rl":  # RM-R1: 128 prompts of 7 rollouts per optimizer step, 8 steps per rollout batch
            per_step = cfg.per_device_train_batch_size * cfg.gradient_accumulation_steps * cfg.launch_processes
            assert (per_step, cfg.num_generations, cfg.updates_per_generation) == (896, 7, 8)
        else:  # RM-R1's stage one: 128 examples per optimizer step
            per_step = cfg.per_device_train_batch_size * cfg.gradient_accumulation_steps * cfg.launch_processes
            assert per_step == 128


def test_every_shipped_accelerate_config_is_one_accelerate_reads():
    from accelerate.commands.config.config_args import ClusterConfig

    configs = sorted((ROOT / "stages" / "accelerate").glob("*.yaml"))
    assert {p.stem for p in configs} >= {"ddp", "zero2", "zero3", "fsdp2", "multinode", "cpu-ddp", "cpu-zero3"}
    for path in configs:
        config = ClusterConfig.from_yaml_file(path)
        assert config.num_processes >= 2 and path.read_text().startswith("#")
        assert "accelerate launch --config_file stages/accelerate/" in path.read_text()
    cpu = ClusterConfig.from_yaml_file(ROOT / "stages/accelerate/cpu-ddp.yaml")
    assert (cpu.distributed_type, cpu.use_cpu) == ("MULTI_GPU", False)  # MULTI_CPU would start one process


def test_an_overlay_replaces_only_what_it_names_and_errors_name_its_file(tmp_path):
    from reasrm.training.rl import RLConfig

    overlay = tmp_path / "mine.yaml"
    overlay.write_text(f"base: {ROOT / 'stages/rl.yaml'}\nlearning_rate: 1.0e-6\nnum_generations: 3\n")
    with pytest.raises(ReasrmConfigError) as error:
        load_config(overlay, schema=RLConfig, machine=False)
    # set in the base file, so its line is the base file's
    assert f"{ROOT / 'stages/rl.yaml'}:" in str(error.value) and "multiple of 2 x num_generations" in str(error.value)
    overlay.write_text(f"base: {ROOT / 'stages/rl.yaml'}\nlearning_rate: 1.0e-6\n")
    cfg = load_config(overlay, schema=RLConfig, machine=False)
    base = load_config(ROOT / "stages/rl.yaml", schema=RLConfig, machine=False)
    assert cfg.learning_rate == 1e-6 and cfg.max_steps == base.max_steps and cfg.rewards == base.rewards
    overlay.write_text(f"base: {ROOT / 'stages/rl.yaml'}\nlearnin_rate: 1.0e-6\n")
    with pytest.raises(ReasrmConfigError, match=f"{overlay}:2: learnin_rate: unknown key; did you mean"):
        load_config(overlay, schema=RLConfig, machine=False)
    overlay.write_text("base: mine.yaml\n")
    with pytest.raises(ReasrmConfigError, match="a cycle"):
        load_config(overlay, schema=RLConfig, machine=False)


CPU_RL = ["validate", "stages/rl.yaml"]
LAUNCH = {"WORLD_SIZE": "2"}
ZERO3 = {"WORLD_SIZE": "2", "ACCELERATE_USE_DEEPSPEED": "true", "ACCELERATE_DEEPSPEED_ZERO_STAGE": "3"}
FSDP = {"WORLD_SIZE": "2", "ACCELERATE_USE_FSDP": "true"}


@pytest.mark.parametrize(
    "env, args, expected",
    [
        ({}, [*CPU_RL, "rollouts=vllm", "vllm.mode=server"], "vllm.server_url: required with mode=server"),
        ({}, [*CPU_RL, "rollouts=vllm"], "vllm: vLLM needs CUDA GPUs and this machine has none"),
        (
            {},
            [*CPU_RL, "rollouts=vllm", "vllm.gpu_memory_utilization=1.5"],
            "utilization: must be > 0 and <= 1, got 1.5",
        ),
        ({}, [*CPU_RL, "rollouts=hf"], "rollouts: must be one of trl, vllm, got 'hf'"),
        ({}, [*CPU_RL, "launch_processes=8"], "this config's batch is set for 8 processes, but this launch has 1"),
        (LAUNCH, [*CPU_RL, "launch_processes=8"], "but this launch has 2: launch 8"),
        (FSDP, [*CPU_RL, "shared_prefix=false"], "launch: FSDP needs CUDA GPUs: on a CPU accelerate runs each"),
        (FSDP, [*CPU_RL, "shared_prefix=false"], "validation_pairs: held-out validation is not supported under FSDP"),
        (FSDP, [*CPU_RL, "shared_prefix=false", "validation_pairs=0"], "preflight: sampling before training"),
        (ZERO3, CPU_RL, "shared_prefix: is tested with one process and DDP, not under DeepSpeed ZeRO-3"),
        (ZERO3, ["validate", "stages/distill.yaml"], "shared_prefix: is tested with one process and DDP"),
        (LAUNCH, ["validate", "stages/distill.yaml", "teacher.backend=vllm"], "teacher.backend: vllm runs one engine"),
        ({}, ["validate", "stages/judge.yaml", "backend=vllm", "vllm.mode=server"], "vllm.mode: server is for GRPO"),
        (
            {},
            ["validate", "stages/distill.yaml", "lora.r=8", "lora.merge=false", "lora.quantization=4bit"],
            "lora.quantization: 4bit (QLoRA) needs a CUDA GPU",
        ),
    ],
)
def test_what_a_launch_or_machine_cannot_run_is_refused_in_one_line(monkeypatch, capsys, env, args, expected):
    import torch

    if torch.cuda.is_available():
        pytest.skip("the machine facts here are a CPU's")
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert main(args) == 2
    err = capsys.readouterr().err
    assert expected in err and all(line.startswith("reasrm: error: ") for line in err.splitlines())


@pytest.mark.parametrize(
    "gpus, processes, args, expected",
    [
        (2, 1, ["vllm.tensor_parallel_size=4"], "vllm.tensor_parallel_size: 4 is more than the 2 GPUs"),
        (8, 3, ["vllm.tensor_parallel_size=2", "launch_processes=3"], "must divide the 3 processes of the launch"),
    ],
)
def test_vllm_settings_are_checked_against_the_gpus(monkeypatch, capsys, gpus, processes, args, expected):
    """The GPU count is this machine's fact: stood in for, as on a node with GPUs and vLLM installed."""
    import importlib.util

    from reasrm.backends import vllm

    real = importlib.util.find_spec
    monkeypatch.setattr(vllm, "gpu_count", lambda: gpus)
    monkeypatch.setattr(vllm.importlib.util, "find_spec", lambda name: object() if name == "vllm" else real(name))
    monkeypatch.setenv("WORLD_SIZE", str(processes))
    assert main(["validate", "stages/rl.yaml", "rollouts=vllm", "shared_prefix=true", *args]) == 2
    assert expected in capsys.readouterr().err


def test_validate_prints_the_global_batch_of_the_launch(monkeypatch, capsys):
    monkeypatch.setenv("WORLD_SIZE", "4")
    assert main(["validate", "stages/rl.yaml"]) == 0
    out = capsys.readouterr().out
    assert "4 processes (DDP); global batch per optimizer step: 256 completions, 32 prompts, 16 pairs" in out
    assert "(32 per device x 2 accumulated x 4)" in out


def test_plan_of_a_7b_judge_matches_the_figures_by_hand(capsys):
    """Qwen2.5-7B (the preset's model_config.json): 28 layers, h 3584, kv 4 x 128, i 18944, vocab 152064,
    untied: 2 x 152064 x 3584 embeddings + 28 x (q 3584^2+3584, k and v 3584x512+512 each, o 3584^2,
    mlp 3 x 3584 x 18944, 2 norms x 3584) + 3584 = 7,615,616,512 parameters."""
    from reasrm.plan import GB, plan
    from reasrm.training.rl import RLConfig

    path = ROOT / "stages/presets/rm-r1/qwen2.5-7b-instruct/rl.yaml"
    cfg = load_config(path, schema=RLConfig, machine=False)
    out = plan(cfg, str(path), gpus=8, gpu_memory=80, strategy="zero3", prompt_tokens=4096)
    p = 7_615_616_512
    assert out["model"].parameters == p and out["model"].trained == p
    zero3 = out["rows"]["zero3"]
    assert zero3["weights"] == 2 * p / 8 and zero3["gradients"] == 2 * p / 8 and zero3["optimizer"] == 12 * p / 8
    assert zero3["reference"] == 2 * p / 8  # beta 0.001: a reference model, sharded too
    # 4 sequences of 4096 + 8192 tokens; checkpointed: per token 2 x 3584 x 28 + 2 x (4 x 3584 + 2 x 512 + 3 x 18944)
    assert zero3["activations"] == 4 * 12288 * (2 * 3584 * 28 + 2 * (4 * 3584 + 2 * 512 + 3 * 18944))
    assert out["rows"]["ddp"]["optimizer"] == 12 * p and out["rows"]["zero2"]["weights"] == 2 * p
    assert out["rows"]["zero2"]["optimizer"] == 12 * p / 8
    assert zero3["vllm"] == 0.5 * 80 * GB and zero3["fits"] and not out["rows"]["ddp"]["fits"]
    assert main(["plan", str(path), "--gpus", "8", "--gpu-memory", "80", "--prompt-tokens", "4096"]) == 0
    printed = capsys.readouterr().out
    assert "7.62 B parameters" in printed and "under DeepSpeed ZeRO-3 (*) it fits" in printed


def test_plan_names_the_knob_when_it_does_not_fit(capsys):
    path = "stages/presets/rm-r1/qwen2.5-32b-instruct/distill.yaml"
    assert main(["plan", path, "--gpus", "8", "--gpu-memory", "40", "--strategy", "zero2"]) == 0
    out = capsys.readouterr().out
    assert "it does NOT fit" in out and "lora.r=16" in out
    assert main(["plan", path, "--gpus", "16", "--nodes", "2", "--gpu-memory", "80"]) == 0
    assert "under DeepSpeed ZeRO-3 (*) it fits" in capsys.readouterr().out


def test_plan_counts_lora_adapters_and_reads_a_model_folder(tiny_model, capsys):
    from reasrm.plan import plan
    from reasrm.training.distill import DistillConfig

    cfg = load_config(ROOT / "stages/distill.yaml", [f"model={tiny_model}", "lora.r=4"], schema=DistillConfig)
    out = plan(cfg, None, gpus=1, gpu_memory=16, strategy="ddp")
    config = json.loads((tiny_model / "config.json").read_text())
    h, i, layers = config["hidden_size"], config["intermediate_size"], config["num_hidden_layers"]
    kv = config["num_key_value_heads"] * h // config["num_attention_heads"]
    per_layer = 4 * ((h + h) + (h + kv) * 2 + (h + h)) + 4 * ((h + i) * 2 + (i + h))  # r x (in + out), 7 linears
    assert out["model"].trained == layers * per_layer
