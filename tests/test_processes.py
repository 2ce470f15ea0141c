"""Every stage under two real processes on the CPU (`torchrun --nproc_per_node 2`, or `accelerate launch` with
the shipped `stages/accelerate/cpu-*.yaml`: two gloo ranks), on small models: each file written once, by the
main process; each log line once; the global batch printed; resume across processes; the same losses as one
process; DeepSpeed ZeRO-3 where deepspeed is installed."""

import importlib.util
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def command(args: list[str], processes: int = 2, config: str | None = None) -> list[str]:
    """`reasrm ARGS` under torchrun (``config`` None) or `accelerate launch --config_file stages/accelerate/CONFIG`."""
    if processes == 1:
        return [sys.executable, "-m", "reasrm.cli", *args]
    if config is None:
        return [
            str(BIN / "torchrun"),
            "--nproc_per_node",
            str(processes),
            "--master_port",
            str(free_port()),
            "-m",
            "reasrm.cli",
            *args,
        ]
    return [
        str(BIN / "accelerate"),
        "launch",
        "--config_file",
        f"stages/accelerate/{config}",
        "--main_process_port",
        str(free_port()),
        "-m",
        "reasrm.cli",
        *args,
    ]


def launch(args: list[str], processes: int = 2, config: str | None = None) -> subprocess.CompletedProcess:
    result = subprocess.run(command(args, processes, config), cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    return result


def steps(path: Path) -> list[int]:
    return [json.loads(line)["step"] for line in path.read_text().splitlines()]


RL = [
    "rl",
    "stages/rl.yaml",
    "recipe_params={n: 60}",
    "limit=8",
    "num_generations=2",
    "gradient_accumulation_steps=1",
    "max_completion_length=40",
    "validation_pairs=4",
    "prompt_format=compact",
]


def test_distill_with_a_model_teacher_under_two_processes(tiny_model, verdict_model, tmp_path):
    """Each pair's teacher request is sent once (each rank sends its share), chains.jsonl holds each pair
    once, the held-out validation each step once, and one final/ with its card; the log says it all once."""
    out = tmp_path / "distill"
    result = launch(
        [
            "distill",
            "stages/distill.yaml",
            f"model={tiny_model}",
            "recipe_params={n: 60}",
            "limit=12",
            "both_orders=false",  # one teacher request per pair
            "teacher.backend=hf",
            f"teacher.model={verdict_model}",
            "teacher.hint_pass=false",
            "teacher.generation.max_new_tokens=40",
            "teacher.generation.batch_size=2",
            "max_steps=2",
            "per_device_train_batch_size=2",
            "validation_pairs=4",
            "validation_max_new_tokens=8",
            f"output={out}",
        ]
    )
    records = [json.loads(line) for line in (out / "chains.jsonl").read_text().splitlines()]
    assert len(records) == len({r["id"] for r in records}) == 12
    assert {r["kept"] for r in records} == {True, False}  # the teacher always answers A: right for about half
    assert all(r["kept"] == (r["chosen_slot"] == "A") for r in records)
    report = json.loads((out / "teacher_report.json").read_text())
    assert report["this_run"]["requests"] == 12 and report["this_run"]["cache_hits"] == 0
    with sqlite3.connect(out / "teacher_cache.sqlite") as db:
        assert db.execute("SELECT COUNT(*) FROM replies").fetchone()[0] == 12
    assert steps(out / "validation.jsonl") == [0, 2]
    card = json.loads((out / "final" / "reasrm_judge.json").read_text())
    assert card["launch"]["processes"] == 2 and card["launch"]["global_batch"] == {"examples": 4}
    log = result.stdout + result.stderr
    assert log.count("distilled judge:") == 1 and log.count("teacher (") == 1
    assert log.count("global batch per optimizer step: 4 examples (2 per device x 1 accumulated x 2)") == 1


def test_rl_with_validation_every_step_under_two_processes(verdict_model, tmp_path):
    """The shipped 2-process CPU config; validation.jsonl holds each step once, one card with the launch,
    and the global batch (config x processes) printed once."""
    out = tmp_path / "rl"
    result = launch(
        [
            *RL,
            f"model={verdict_model}",
            "per_device_train_batch_size=4",
            "max_steps=3",
            "eval_steps=1",
            f"output={out}",
        ],
        config="cpu-ddp.yaml",
    )
    assert steps(out / "validation.jsonl") == [0, 1, 2, 3]
    validated = json.loads((out / "eval.json").read_text())["after"]
    assert validated["valid"] == 1.0 and validated["a_rate"] == 1.0  # the model always answers A
    card = json.loads((out / "final" / "reasrm_judge.json").read_text())
    assert card["launch"]["global_batch"] == {"completions": 8, "prompts": 4, "pairs": 2}
    log = result.stdout + result.stderr
    assert log.count("global batch per optimizer step: 8 completions, 4 prompts, 2 pairs (4 per device") == 1
    assert log.count("trained judge:") == 1 and log.count("validation at step 3:") == 1
    assert log.count("sampled training prompts got a valid verdict") == 1 and (out / "curves.png").is_file()
    # The preflight's sampled pass: every rank samples its share, the report and the warning come once.
    assert log.count("preflight: sampled as the rollouts are") == 1
    assert log.count("whichever response was chosen: the verdict ignores the content") == 1


def test_rl_strong_start_switch_under_two_processes_and_on_resume(verdict_model, tmp_path):
    """``strong_start`` under 2 processes: every rank reads the same sampled start and switches to the
    difficulty filter and at most its steps, the main process logs it once and writes preflight.json; a resumed
    run (no preflight) trains as the run it continues, from that file."""
    out = tmp_path / "rl"
    args = [*RL, f"model={verdict_model}", "per_device_train_batch_size=4", "validation_pairs=0", f"output={out}"]
    # The verdict model names "A" whatever the content: right in half the calls, over strong_start=0.
    result = launch([*args, "strong_start=0", "max_steps=2", "save_steps=1"])
    log = result.stdout + result.stderr
    assert (
        log.count("training on the pairs it still misses, filter_pass_rate=[0.0,0.75] filter_samples=2 max_steps=2")
        == 1
    )
    assert log.count("difficulty filter: kept 8 of 8 pairs") == 1  # each pair right in one order of two: 0.5
    start = json.loads((out / "preflight.json").read_text())
    assert start["a_rate"] == 1.0 and start["constant"] == "A"
    assert json.loads((out / "filter.json").read_text())["kept"] == 8
    assert json.loads((out / "checkpoint-2" / "trainer_state.json").read_text())["max_steps"] == 2
    result = launch([*args, "strong_start=0", "max_steps=3", "save_steps=1", "resume=true"])
    log = result.stdout + result.stderr
    assert "sampled as the rollouts are" not in log  # no preflight on resume
    assert (
        log.count("training on the pairs it still misses, filter_pass_rate=[0.0,0.75] filter_samples=2 max_steps=3")
        == 1
    )
    assert json.loads((out / "checkpoint-3" / "trainer_state.json").read_text())["global_step"] == 3


def losses(folder: Path) -> list[float]:
    state = json.loads((folder / "trainer_state.json").read_text())
    return [h["loss"] for h in state["log_history"] if "loss" in h]


def test_two_processes_reproduce_one_process_sft_losses(tiny_model, tmp_path):
    """SFT: 2 processes x 2 examples per device give the losses of 1 process x 4 (the same examples per
    step, the loss normalised over the global batch, gradients averaged by DDP): equal within 1e-5."""
    runs = {}
    for processes, per_device in ((1, 4), (2, 2)):
        out = tmp_path / f"p{processes}"
        launch(
            [
                "distill",
                "stages/distill.yaml",
                f"model={tiny_model}",
                "recipe_params={n: 60}",
                "limit=16",
                "max_steps=3",
                "save_steps=3",
                f"per_device_train_batch_size={per_device}",
                "validation_pairs=0",
                f"output={out}",
            ],
            processes,
        )
        runs[processes] = losses(out / "checkpoint-3")
    assert len(runs[1]) == 3
    assert runs[2] == pytest.approx(runs[1], rel=1e-5)


def test_two_processes_reproduce_one_process_grpo_rewards(verdict_model, tmp_path):
    """GRPO: sampling draws differ with the process layout, so rollouts are compared where sampling is
    deterministic (temperature 0.01 on a confident model): with 2 processes x 4 completions per device and 1
    x 8, each step sees the same pairs and gets the same rewards (the global mean of 8) and lengths; the
    loss is 0 in both (no reward variance inside a group)."""
    runs = {}
    for processes, per_device in ((1, 8), (2, 4)):
        out = tmp_path / f"p{processes}"
        launch(
            [
                *RL,
                f"model={verdict_model}",
                f"per_device_train_batch_size={per_device}",
                "max_steps=2",
                "save_steps=2",
                "temperature=0.01",
                "validation_pairs=0",
                f"output={out}",
            ],
            processes,
        )
        state = json.loads((out / "checkpoint-2" / "trainer_state.json").read_text())
        runs[processes] = [
            {k: h[k] for k in ("reward", "completions/mean_length", "loss")}
            for h in state["log_history"]
            if "reward" in h
        ]
    assert len(runs[1]) == 2 and {r["reward"] for r in runs[1]} != {1.0}
    assert runs[2] == runs[1]


@pytest.mark.skipif(importlib.util.find_spec("deepspeed") is None, reason="deepspeed is not installed")
def test_rl_under_deepspeed_zero3(verdict_model, tmp_path):
    """`reasrm rl` with a KL term (beta 0.1: TRL's reference model under zero.Init) under DeepSpeed ZeRO-3 on
    the CPU: the preflight, the validation and the saved judge see the whole weights."""
    out = tmp_path / "rl"
    result = launch(
        [
            *RL,
            f"model={verdict_model}",
            "per_device_train_batch_size=4",
            "max_steps=2",
            "eval_steps=1",
            "shared_prefix=false",
            "beta=0.1",
            f"output={out}",
        ],
        config="cpu-zero3.yaml",
    )
    assert steps(out / "validation.jsonl") == [0, 1, 2]
    assert json.loads((out / "eval.json").read_text())["after"]["valid"] == 1.0
    assert "DeepSpeed ZeRO-3" in result.stdout + result.stderr
    from transformers import AutoModelForCausalLM

    saved = AutoModelForCausalLM.from_pretrained(out / "final")
    assert saved.model.embed_tokens.weight.shape[1] == 128  # whole weights, not a rank's shard


def test_rl_killed_after_a_checkpoint_resumes_across_two_processes(verdict_model, tmp_path):
    """SIGKILL the whole 2-process run once its first checkpoint is complete, then `resume=true` under 2
    processes: the same final step, and every validated step once."""
    out = tmp_path / "rl"
    args = [
        *RL,
        f"model={verdict_model}",
        "per_device_train_batch_size=4",
        "max_steps=6",
        "eval_steps=1",
        "save_steps=2",
        "preflight=false",
        f"output={out}",
    ]
    process = subprocess.Popen(command(args), cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline and process.poll() is None:
        if (out / "checkpoint-2" / "trainer_state.json").exists():
            break
        time.sleep(0.02)
    assert process.poll() is None, "the run ended before it could be killed"
    import psutil  # accelerate's dependency

    ranks = psutil.Process(process.pid).children(recursive=True)  # torchrun starts them in sessions of their own
    for each in [process, *ranks]:
        os.kill(each.pid, signal.SIGKILL)
    process.wait()
    psutil.wait_procs(ranks, timeout=30)
    launch([*args, "resume=true"])
    state = json.loads((out / "checkpoint-6" / "trainer_state.json").read_text())
    assert state["global_step"] == 6
    assert steps(out / "validation.jsonl") == list(range(7))


def test_judge_and_eval_under_two_processes_write_each_result_once(verdict_model, tmp_path):
    """`reasrm judge` and `reasrm eval` split the pairs across the ranks; the main process writes the records
    in the input's order, once, and prints the summary once."""
    pairs = ROOT / "data_recipes/examples/pairs.jsonl"
    out = tmp_path / "judged.jsonl"
    result = launch(
        [
            "judge",
            "--model",
            str(verdict_model),
            "--prompt-format",
            "compact",
            "--pairs",
            str(pairs),
            "--output",
            str(out),
            "--both-orders",
            "--max-new-tokens",
            "40",
            "--batch-size",
            "2",
        ]
    )
    ids = [json.loads(line)["id"] for line in out.read_text().splitlines()]
    assert ids == [json.loads(line)["id"] for line in pairs.read_text().splitlines()]
    assert (result.stdout + result.stderr).count("wrote ") == 1
    data = tmp_path / "data"
    subprocess.run(
        command(["data", "build", "data_recipes/demo.yaml", "n=200", "--output", str(data)], 1),
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    result = launch(
        [
            "eval",
            "--benchmark",
            "pairs",
            "--data-dir",
            str(data),
            "--model",
            str(verdict_model),
            "--prompt-format",
            "compact",
            "--limit",
            "6",
            "--max-new-tokens",
            "40",
            "--both-orders",
            "--output",
            str(tmp_path / "eval"),
        ]
    )
    samples = [json.loads(line)["key"] for line in (tmp_path / "eval" / "samples.jsonl").read_text().splitlines()]
    assert len(samples) == len(set(samples)) == 12
    assert json.loads((tmp_path / "eval" / "scores.json").read_text())["pairs"] == 6
    assert result.stdout.count("headline") + result.stderr.count("headline") == 1
