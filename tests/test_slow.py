"""End to end on the embedded default model (`make test-slow`): what `make demo` runs."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def test_demo_judges_the_sample_pairs_with_the_embedded_default(tmp_path):
    out = tmp_path / "judgements.jsonl"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "reasrm.cli",
            "judge",
            "stages/judge.yaml",
            f"output={out}",
            "--show",
            "--max-new-tokens",
            "48",
            "--both-orders",
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr
    pairs = [json.loads(line) for line in (ROOT / "data_recipes/examples/pairs.jsonl").read_text().splitlines()]
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["id"] for r in records] == [p["id"] for p in pairs]
    assert all(len(r["calls"]) == 2 and r["calls"][0]["text"] for r in records)
    assert result.stdout.count("=== pair") == len(pairs) and "verdict" in result.stdout
    assert "accuracy" in result.stderr


def test_eval_on_rm_bench_with_the_embedded_default(full_benchmark_data, tmp_path):
    out = tmp_path / "eval"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "reasrm.cli",
            "eval",
            "--benchmark",
            "rm-bench",
            "--data-dir",
            str(full_benchmark_data / "rm-bench"),
            "--limit",
            "1",
            "--max-new-tokens",
            "16",
            "--output",
            str(out),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr
    scores = json.loads((out / "scores.json").read_text())
    assert scores["pairs"] == 9 and scores["calls"] == 9
    assert "total" in result.stdout and (out / "rmbench_matrix.png").is_file()


def test_grpo_trains_a_policy_with_the_round_robin_judge_reward(tiny_model, tmp_path):
    """TRL's GRPOTrainer, 2 steps, a tiny policy, a tiny judge through the round-robin adapter: the judge's
    rewards arrive (computed and logged) and the policy's parameters change. The random tiny judge writes
    no verdicts, so its rewards are all equal; a small length reward beside it gives GRPO the variance it
    needs to move the parameters."""
    import torch
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import GRPOConfig, GRPOTrainer

    from reasrm import Judge
    from reasrm.backends import GenerationConfig
    from reasrm.downstream import RoundRobinReward

    judge = Judge.from_pretrained(
        str(tiny_model), prompt_format="rm-r1-instruct", generation=GenerationConfig(max_new_tokens=4)
    )
    adapter = RoundRobinReward(judge, num_generations=4)
    received = []

    def round_robin(prompts, completions, **columns):
        received.append(adapter(prompts, completions, **columns))
        return received[-1]

    def length(prompts, completions, **columns):
        return [len(c) / 100 for c in completions]

    policy = AutoModelForCausalLM.from_pretrained(tiny_model)
    before = {name: p.detach().clone() for name, p in policy.named_parameters()}
    config = GRPOConfig(
        output_dir=str(tmp_path),
        num_generations=4,
        per_device_train_batch_size=4,
        max_completion_length=8,
        max_steps=2,
        learning_rate=1e-2,
        logging_steps=1,
        report_to="none",
        bf16=False,
        use_cpu=True,
        save_strategy="no",
    )
    trainer = GRPOTrainer(
        model=policy,
        reward_funcs=[round_robin, length],
        args=config,
        train_dataset=Dataset.from_dict({"prompt": ["What is 2 + 2?", "Name a colour."] * 4}),
        processing_class=AutoTokenizer.from_pretrained(tiny_model),
    )
    trainer.train()
    assert len(received) == 2 and all(len(r) == 4 for r in received)
    assert any("rewards/round_robin/mean" in entry for entry in trainer.state.log_history)
    assert any(not torch.equal(before[name], p) for name, p in policy.named_parameters())


def test_policy_stage_runs_from_its_shipped_config(tiny_model, tmp_path):
    """`reasrm policy stages/policy_grpo.yaml`, shrunk by overrides to tiny models and one step."""
    from reasrm.config import load_config
    from reasrm.training.policy import PolicyConfig, run

    cfg = load_config(
        ROOT / "stages/policy_grpo.yaml",
        schema=PolicyConfig,
        overrides=[
            f"policy={tiny_model}",
            f"judge={tiny_model}",
            "judge_prompt_format=rm-r1-instruct",
            "judge_generation.max_new_tokens=4",
            "recipe_params.n=8",
            "max_steps=1",
            "max_completion_length=6",
            f"output={tmp_path}",
            "reward=reference",
        ],
    )
    final = run(cfg)
    assert (final / "config.json").is_file() and (tmp_path / "policy.yaml").is_file()


def test_readme_rubric_walkthrough_runs_as_written(tmp_path):
    """README, "Author a judge for your domain": every command of its walk-through, in a copy of the repository."""
    import shlex
    import shutil

    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## Author a judge for your domain") :]
    block = section[section.index("```bash\n") + 8 : section.index("```\n", section.index("```bash\n") + 8)]
    commands = [
        line
        for line in block.replace("\\\n", " ").splitlines()
        if line.strip() and not line.startswith(("#", "make setup"))
    ]
    assert len(commands) == 8 and all(c.startswith("reasrm ") for c in commands)
    for folder in ("rubrics", "data_recipes", "stages"):
        shutil.copytree(ROOT / folder, tmp_path / folder)
    for command in commands:
        args = shlex.split(command)[1:]
        result = subprocess.run(
            [sys.executable, "-m", "reasrm.cli", *args], capture_output=True, text=True, cwd=tmp_path
        )
        skeleton = args[:3] == ["rubric", "validate", "rubrics/helpdesk.yaml"]
        assert result.returncode == (2 if skeleton else 0), (command, result.stdout[-2000:], result.stderr[-2000:])
        if skeleton:
            assert "still holds the skeleton's TODO text" in result.stdout
        if args[:2] == ["rubric", "try"]:
            assert result.stdout.count("=== support-") == 3 and "support v1:" in result.stdout
    card = json.loads((tmp_path / "runs/support/rl/final/reasrm_judge.json").read_text())
    assert (card["rubric_pack"], card["rubric_version"], card["prompt_format"]) == ("support", 1, "compact")
    judged = (tmp_path / "runs/support/judged.jsonl").read_text().splitlines()
    assert len(judged) == 8


def test_rl_killed_mid_run_resumes_to_the_same_steps_and_validation(tiny_model, tmp_path):
    """`reasrm rl` killed with SIGKILL mid-run, then resumed: the same number of optimizer steps, and a
    validation.jsonl with every validated step exactly once."""
    import signal
    import time

    out = tmp_path / "rl"
    args = [
        sys.executable,
        "-m",
        "reasrm.cli",
        "rl",
        "stages/rl.yaml",
        f"model={tiny_model}",
        "recipe_params={n: 60}",
        "limit=8",
        "max_steps=8",
        "num_generations=2",
        "per_device_train_batch_size=4",
        "gradient_accumulation_steps=1",
        "max_completion_length=8",
        "preflight=false",
        "validation_pairs=2",
        "eval_steps=1",
        "save_steps=2",
        "prompt_format=compact",
        f"output={out}",
    ]
    process = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    validation = out / "validation.jsonl"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and process.poll() is None:
        lines = validation.read_text().splitlines() if validation.exists() else []
        if len(lines) >= 4 and (out / "checkpoint-2").exists():  # steps 0-3 validated, a checkpoint saved
            break
        time.sleep(0.02)
    assert process.poll() is None, "the run ended before it could be killed"
    process.send_signal(signal.SIGKILL)
    process.wait()
    result = subprocess.run([*args, "resume=true"], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    state = json.loads((out / "checkpoint-8" / "trainer_state.json").read_text())
    assert state["global_step"] == 8
    steps = [json.loads(line)["step"] for line in validation.read_text().splitlines()]
    assert steps == list(range(9))


def test_learning_bench_validates_the_whole_mix_and_reuses_finished_runs(tiny_model, tmp_path):
    """`bench/learning.py --validate-mix` judges the start and the trained judge on the whole graded mix (its
    five families) after the run's own table; `--reuse` then takes the finished run's eval.json instead of
    training again, and prints the same figures."""
    import shutil

    from reasrm.card import JudgeCard

    start = tmp_path / "start"
    shutil.copytree(tiny_model, start)
    JudgeCard(prompt_format="compact").save(start)
    out = tmp_path / "bench"
    args = [
        sys.executable,
        "bench/learning.py",
        "--skip-distill",
        str(start),
        "--only",
        "ours",
        "--steps",
        "1",
        "--completions",
        "16",
        "--pairs",
        "20",
        "--n",
        "400",
        "--max-completion-length",
        "8",
        "--output",
        str(out),
        "--validate-mix",
        "--rl",
        "preflight=false",
        "--rl",
        "limit=8",
    ]
    first = subprocess.run(args, cwd=ROOT, capture_output=True, text=True)
    assert first.returncode == 0, first.stderr[-3000:]
    assert [json.loads(line)["step"] for line in (out / "ours" / "validation.jsonl").read_text().splitlines()] == [0, 1]
    report = first.stdout[first.stdout.index("held-out demo pairs") :]
    assert "ours            whole mix" in report and "95% CI" in report
    whole = report[report.index("the whole mix (five families, levels 1-3): 20 held-out pairs") :]
    families = {line.split()[1] for line in whole.splitlines() if line.startswith("ours ")}
    assert {"comparison", "arithmetic", "unit_conversion", "sorting", "python_expression", "whole"} <= families
    mtime = (out / "ours" / "eval.json").stat().st_mtime_ns
    again = subprocess.run([*args, "--reuse"], cwd=ROOT, capture_output=True, text=True)
    assert again.returncode == 0, again.stderr[-3000:]
    assert f"ours: reusing {out / 'ours'} (--reuse)" in again.stdout
    assert (out / "ours" / "eval.json").stat().st_mtime_ns == mtime
    rerun = again.stdout[again.stdout.index("held-out demo pairs") :]
    assert rerun.split("wall time")[0] == report.split("wall time")[0]
    # Each checkpoint's whole-mix validation is kept next to it and reused, not judged again.
    assert f"start: reusing {tmp_path / 'mix_validation.json'}" in again.stderr
    assert f"ours: reusing {out / 'ours' / 'mix_validation.json'}" in again.stderr


def test_distill_killed_while_a_checkpoint_is_written_resumes_from_the_last_complete_one(tmp_path):
    """SIGKILL `reasrm distill` (the embedded default: its checkpoint takes seconds to write) the moment its
    first checkpoint folder appears, before the trainer's state file that completes it: `resume=true` skips
    the cut-off folder, says so, and trains to the same final step."""
    import signal

    out = tmp_path / "distill"
    args = [
        sys.executable,
        "-m",
        "reasrm.cli",
        "distill",
        "stages/distill.yaml",
        "limit=4",
        "max_steps=2",
        "per_device_train_batch_size=2",
        "save_steps=1",
        "validation_pairs=0",
        f"output={out}",
    ]
    process = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    first = out / "checkpoint-1"
    while process.poll() is None and not first.exists():
        pass  # polled, not slept: the folder is written for a few seconds
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert first.exists() and not (first / "trainer_state.json").exists(), "killed outside the save"
    result = subprocess.run([*args, "resume=true"], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "checkpoint-1 was cut off while it was saved" in result.stderr
    state = json.loads((out / "checkpoint-2" / "trainer_state.json").read_text())
    assert state["global_step"] == 2 and (out / "final" / "reasrm_judge.json").is_file()


def test_rl_resumes_past_a_validation_line_cut_off_mid_write(tiny_model, tmp_path):
    """A run killed while appending to validation.jsonl leaves half a line: `resume=true` drops it (saying so)
    and validates that step again."""
    out = tmp_path / "rl"
    args = [
        sys.executable,
        "-m",
        "reasrm.cli",
        "rl",
        "stages/rl.yaml",
        f"model={tiny_model}",
        "recipe_params={n: 60}",
        "limit=8",
        "max_steps=4",
        "num_generations=2",
        "per_device_train_batch_size=4",
        "gradient_accumulation_steps=1",
        "max_completion_length=8",
        "preflight=false",
        "validation_pairs=2",
        "eval_steps=1",
        "save_steps=2",
        "prompt_format=compact",
        f"output={out}",
    ]
    result = subprocess.run([*args, "max_steps=2"], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    validation = out / "validation.jsonl"
    lines = validation.read_text().splitlines(keepends=True)
    validation.write_text("".join(lines[:-1]) + lines[-1][:40])  # step 2's line cut off mid-write
    result = subprocess.run([*args, "max_steps=4", "resume=true"], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "dropped a last line cut off mid-write" in result.stderr
    assert [json.loads(line)["step"] for line in validation.read_text().splitlines()] == [0, 1, 2, 3, 4]


OFFLINE = ("reasrm plan ", "reasrm data build data_recipes/demo.yaml", "reasrm judge --pairs data_recipes/examples/")


def test_readme_commands_that_run_offline_run_as_written(tmp_path):
    """README: every command of its blocks that needs no GPU, hub or server of its own (plan, the demo data
    build, judging the example pairs), run as written in a copy of the repository."""
    import shlex
    import shutil

    readme = (ROOT / "README.md").read_text()
    blocks = [b.split("```", 1)[0] for b in readme.split("```bash\n")[1:]]
    lines = [line.split("  #")[0].strip() for b in blocks for line in b.replace("\\\n", " ").splitlines()]
    commands = [line for line in lines if line.startswith(OFFLINE)]
    assert len(commands) >= 3, commands
    for folder in ("rubrics", "data_recipes", "stages"):
        shutil.copytree(ROOT / folder, tmp_path / folder)
    for command in commands:
        result = subprocess.run(
            [sys.executable, "-m", "reasrm.cli", *shlex.split(command)[1:]],
            capture_output=True,
            text=True,
            cwd=tmp_path,
        )
        assert result.returncode == 0, (command, result.stdout[-2000:], result.stderr[-2000:])
    assert (tmp_path / "runs/data/demo/train.parquet").is_file() and (tmp_path / "runs/judgements.jsonl").is_file()
