"""Evaluation: RewardBench, RM-Bench and RMB with their exact scoring rules (see ``reasrm.eval.run``).

Scoring is pure: each benchmark module turns outcomes (1 = the chosen response won, 0 = it lost,
None = invalid verdict) into the official numbers, with no model involved.
"""


def fill_invalid(outcome: float | None, invalid: float) -> float:
    """An outcome with invalid verdicts scored as ``invalid`` (0 as in RM-R1, 0.5 as upstream RewardBench)."""
    return invalid if outcome is None else outcome


def mean(values) -> float:
    values = list(values)
    return sum(values) / len(values)
