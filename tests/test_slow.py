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


def test_eval_on_rm_bench_with_the_embedded_default(shared, tmp_path):
    out = tmp_path / "eval"
    result = subprocess.run(
        [sys.executable, "-m", "reasrm.cli", "eval", "--benchmark", "rm-bench", "--data-dir",
         str(shared / "data/rm-bench"), "--limit", "1", "--max-new-tokens", "16", "--output", str(out)],
        capture_output=True, text=True, cwd=ROOT,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    scores = json.loads((out / "scores.json").read_text())
    assert scores["pairs"] == 9 and scores["calls"] == 9
    assert "total" in result.stdout and (out / "rmbench_matrix.png").is_file()
