"""Which response a judge's <solution> names, read by token overlap (reasrm.training.validation.solution_slot),
on each family's forms; and bench/solutions.py, which reports it per family."""

import subprocess
import sys
from pathlib import Path

import pytest

from reasrm.training.validation import solution_slot

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(
    ("solution", "response_a", "response_b", "slot"),
    [
        ("42 is larger than 38.", "42 is larger.", "38 is larger.", "A"),  # both numbers in the solution
        ("42 is larger than 38.", "38 is larger.", "42 is larger.", "B"),
        ("3.9 is larger than 3.11.", "3.11 is larger.", "3.9 is larger.", "B"),  # decimals are one token
        ("37 + 82 = 119", "37 + 82 = 119", "37 + 82 = 109", "A"),
        ("119", "37 + 82 = 109", "37 + 82 = 119", "B"),  # a bare answer
        (
            "1 metre = 100 centimetres, so 5 metres = 500 centimetres",
            "5 × 10 = 50 centimetres",
            "5 × 100 = 500 centimetres",
            "B",
        ),
        ("In ascending order: 6, 8, 37, 99", "99, 37, 8, 6", "6, 8, 37, 99", "B"),  # the wrong direction
        ("In ascending order: 6, 8, 37, 99", "6, 8, 37, 99", "6, 37, 99", "A"),  # an element lost
        ("12 // 5 == 2", "It evaluates to 2.", "It evaluates to 2.4.", "A"),
        ("A", "It evaluates to 'dgemode'.", "It evaluates to 'dgemoe'.", None),  # names neither
        (None, "42 is larger.", "38 is larger.", None),  # no solution
    ],
)
def test_solution_names_the_response_it_shares_more_tokens_with(solution, response_a, response_b, slot):
    assert solution_slot(solution, response_a, response_b) == slot


def test_solutions_bench_prints_a_row_per_family_and_the_whole_mix(tiny_model, tmp_path):
    import shutil

    from reasrm.card import JudgeCard

    judge = tmp_path / "judge"
    shutil.copytree(tiny_model, judge)
    JudgeCard(prompt_format="compact").save(judge)
    args = [sys.executable, "bench/solutions.py", str(judge), "--pairs", "10", "--max-new-tokens", "4"]
    result = subprocess.run(args, cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    rows = {line.split()[0]: line.split()[1:] for line in result.stdout.splitlines() if line.startswith("  ")}
    assert "whole" in rows and int(rows["whole"][1]) == 20  # "whole mix", then 10 pairs x 2 orders
    assert sum(int(cells[0]) for family, cells in rows.items() if family not in ("family", "whole")) == 20
