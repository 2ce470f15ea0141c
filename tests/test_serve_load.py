"""Load test (slow): 200 /v1/judge requests at concurrency 16 against a loopback server, via the bench."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_200_requests_at_concurrency_16_lose_nothing(tiny_model):
    result = subprocess.run(
        [
            sys.executable,
            "bench/serve_load.py",
            "--model",
            str(tiny_model),
            "--requests",
            "200",
            "--concurrency",
            "16",
            "--json",
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=900,
    )
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    for run in (summary["busy"], summary["single"]):
        assert run["errors"] == 0 and run["replies"] == run["requests"] == 200
    assert summary["batched_reply_mismatches"] == 0
    print(json.dumps(summary, indent=1))  # the figures, with `pytest -s`
