"""`reasrm judge` as a user runs it: a real process, real files, exit codes, resume without duplicates."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from reasrm.card import JudgeCard

ROWS = [
    {"id": f"q{i}", "prompt": f"What is {i} + {i}?", "chosen": f"{2 * i}", "rejected": f"{2 * i + 1}"} for i in range(5)
]


def reasrm(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "reasrm.cli", *args], capture_output=True, text=True, cwd=cwd)


@pytest.fixture(scope="module")
def checkpoint(tiny_model, tmp_path_factory):
    path = tmp_path_factory.mktemp("cli") / "ckpt"
    shutil.copytree(tiny_model, path)
    JudgeCard(prompt_format="rm-r1-instruct").save(path)
    return path


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_judge_writes_one_line_per_pair_then_resumes(checkpoint, write_jsonl, tmp_path):
    pairs = write_jsonl(ROWS)
    out = tmp_path / "out" / "judgements.jsonl"
    args = [
        "judge",
        "--model",
        str(checkpoint),
        "--pairs",
        str(pairs),
        "--output",
        str(out),
        "--both-orders",
        "--max-new-tokens",
        "6",
        "--batch-size",
        "2",
    ]
    first = reasrm(*args)
    assert first.returncode == 0, first.stderr
    records = _lines(out)
    assert [r["id"] for r in records] == [r["id"] for r in ROWS]
    for r in records:
        assert r["orders"] == ["AB", "BA"] and len(r["calls"]) == 2
        assert {c["chosen_slot"] for c in r["calls"]} == {"A", "B"}
        assert set(r["verdict"]) == {"choice", "status", "task_type", "rubric", "solution", "evaluation"}
        assert r["status"] == r["verdict"]["status"] and r["text"] == r["calls"][0]["text"]
        assert all(c["seconds"] > 0 and c["prompt_tokens"] > 0 for c in r["calls"])
    saved = yaml.safe_load(out.with_suffix(".config.yaml").read_text())
    assert saved["model"] == str(checkpoint) and saved["both_orders"] is True
    assert "label-prior baseline" in first.stderr and "flip rate" not in first.stderr  # no valid pair: no rate

    # An existing output is never clobbered by accident.
    again = reasrm(*args)
    assert again.returncode == 2 and "holds a previous run: continue it with resume=true (--resume)" in again.stderr

    # Simulate a crash after two pairs, in the middle of writing the third line.
    text = out.read_text().splitlines(keepends=True)
    out.write_text(text[0] + text[1] + text[2][:40])
    resumed = reasrm(*args, "--resume")
    assert resumed.returncode == 0, resumed.stderr
    after = _lines(out)
    assert [r["id"] for r in after] == [r["id"] for r in ROWS]  # no pair lost, none duplicated
    assert after[:2] == records[:2]  # finished lines are untouched
    assert [r["calls"][0]["text"] for r in after] == [r["calls"][0]["text"] for r in records]  # greedy: same result

    # Resuming with settings that change results is refused.
    changed = reasrm(*args[:-4], "--max-new-tokens", "7", "--batch-size", "2", "--resume")
    assert changed.returncode == 2 and "'generation' was" in changed.stderr


def test_bad_input_fails_before_any_model_is_loaded(write_jsonl, tmp_path):
    bad = write_jsonl([ROWS[0], {"id": "x", "prompt": "q", "chosen": "a"}])
    # The model does not exist either: the pairs error must come first (nothing was loaded).
    result = reasrm(
        "judge", "--model", str(tmp_path / "no-model"), "--pairs", str(bad), "--output", str(tmp_path / "o.jsonl")
    )
    assert result.returncode == 2
    assert result.stderr.strip() == f"reasrm: error: {bad}:2: field 'rejected': expected a string, got nothing"
    assert not (tmp_path / "o.jsonl").exists()


def test_unknown_prompt_format_and_missing_model(checkpoint, write_jsonl, tmp_path):
    pairs = write_jsonl(ROWS[:1])
    fmt = reasrm(
        "judge",
        "--model",
        str(checkpoint),
        "--prompt-format",
        "rm-r9",
        "--pairs",
        str(pairs),
        "--output",
        str(tmp_path / "o.jsonl"),
    )
    assert fmt.returncode == 2 and "unknown prompt format 'rm-r9'" in fmt.stderr and "Traceback" not in fmt.stderr
    missing = reasrm(
        "judge",
        "--model",
        str(tmp_path / "nope"),
        "--prompt-format",
        "rm-r1-instruct",
        "--pairs",
        str(pairs),
        "--output",
        str(tmp_path / "o.jsonl"),
    )
    assert missing.returncode == 2
    assert (
        missing.stderr.strip() == f"reasrm: error: model not found: {tmp_path}/nope is neither a model folder, "
        "a .gguf file nor a hub id"
    )
    assert not (tmp_path / "o.jsonl").exists() and not (tmp_path / "o.config.yaml").exists()


def test_a_second_run_on_a_locked_output_is_refused_with_the_holders_pid(checkpoint, write_jsonl, tmp_path):
    """Two runs on one output would interleave their records: the second is refused (exit 2, the holder's
    PID), and a holder killed with SIGKILL leaves no stale lock."""
    pairs = write_jsonl(ROWS)
    out = tmp_path / "judged.jsonl"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time\nfrom reasrm.runs import lock_output\n"
            f"lock_output({str(out)!r})\nprint('locked', flush=True)\ntime.sleep(120)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        args = [
            "judge",
            "--model",
            str(checkpoint),
            "--pairs",
            str(pairs),
            "--output",
            str(out),
            "--max-new-tokens",
            "4",
            "--resume",
        ]
        second = reasrm(*args)
        assert second.returncode == 2, second.stderr
        assert f"is in use by another reasrm run (PID {holder.pid};" in second.stderr
        assert not out.exists()  # the refused run wrote nothing
    finally:
        holder.kill()
        holder.wait()
    after = reasrm(*args)
    assert after.returncode == 0, after.stderr
    assert [r["id"] for r in _lines(out)] == [r["id"] for r in ROWS]


@pytest.mark.parametrize("broken", ["empty config", "no weights"])
def test_a_model_that_cannot_load_is_one_line_and_leaves_no_files(checkpoint, write_jsonl, tmp_path, broken):
    model = tmp_path / "model"
    if broken == "empty config":
        model.mkdir()
        (model / "config.json").write_text("{}")
    else:
        shutil.copytree(checkpoint, model, ignore=shutil.ignore_patterns("*.safetensors", "*.bin"))
    out = tmp_path / "out" / "judged.jsonl"
    result = reasrm(
        "judge",
        "--model",
        str(model),
        "--prompt-format",
        "rm-r1-instruct",
        "--pairs",
        str(write_jsonl(ROWS[:1])),
        "--output",
        str(out),
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    assert result.stderr.strip().startswith(f"reasrm: error: cannot load model {model}: ")
    assert not out.parent.exists() or not any(out.parent.iterdir())  # no output, config or lock left behind


def test_user_mistakes_are_one_line_and_exit_2(checkpoint, write_jsonl, tmp_path):
    ok = write_jsonl(ROWS[:1])
    (tmp_path / "afile").write_text("")
    cases = [
        (
            [
                "judge",
                "--model",
                str(checkpoint),
                "--pairs",
                str(write_jsonl([b'{"id": "\xff"}'], "bad.jsonl")),
                "--output",
                str(tmp_path / "o.jsonl"),
            ],
            "bad.jsonl:1: not UTF-8 text (byte 9 of the line)",
        ),
        (
            [
                "judge",
                "--model",
                str(checkpoint),
                "--pairs",
                str(write_jsonl(['{"id": "a", "prompt": "\\ud800 q", "chosen": "a", "rejected": "b"}'], "s.jsonl")),
                "--output",
                str(tmp_path / "o.jsonl"),
            ],
            "s.jsonl:1: field 'prompt': not valid Unicode (a lone surrogate at character 1)",
        ),
        (
            ["judge", "--model", str(checkpoint), "--pairs", str(ok), "--output", str(tmp_path / "afile" / "o.jsonl")],
            f"cannot write there: {tmp_path / 'afile'} is a file, not a folder",
        ),
        (
            ["data", "build", "data_recipes/demo.yaml", "n=abc", "--output", str(tmp_path / "data")],
            "Value 'abc' of type 'str' could not be converted to Integer",
        ),
    ]
    for args, message in cases:
        result = reasrm(*args)
        assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
        assert len(result.stderr.strip().splitlines()) == 1 and message in result.stderr, result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile", "bad.jsonl", "pairs.jsonl", "s.jsonl"]


def test_parquet_pairs_are_read_directly(checkpoint, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    pairs = tmp_path / "pairs.parquet"
    pq.write_table(pa.Table.from_pylist(ROWS[:2]), pairs)
    result = reasrm(
        "judge",
        "--model",
        str(checkpoint),
        "--pairs",
        str(pairs),
        "--output",
        str(tmp_path / "o.jsonl"),
        "--max-new-tokens",
        "4",
    )
    assert result.returncode == 0, result.stderr
    assert [r["id"] for r in _lines(tmp_path / "o.jsonl")] == ["q0", "q1"]
