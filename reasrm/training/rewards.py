"""Verifiable rewards for judge training, with TRL's reward-function contract, chosen by name.

TRL calls ``reward(prompts=..., completions=..., **columns)`` with every other dataset column as a
keyword list; the GRPO dataset of ``reasrm rl`` has a ``label`` column holding the slot letter of the
chosen response. ``REWARDS`` maps the names a stage config may give to the functions.
"""

from __future__ import annotations

from reasrm.data.pairs import completion_text
from reasrm.verdict import parse_verdict, winner

CORRECT, WRONG = 1.0, -1.0


def verdict_reward(prompts, completions, label, **kwargs) -> list[float]:
    """+1 when the completion's verdict, parsed in **strict** mode, names ``label`` (``"A"``/``"B"``);
    -1 otherwise: a wrong letter, no verdict, several answers, or text after the answer.

    RM-R1's reward accepts any completion whose last 80 characters hold the gold tag and not the other;
    strict parsing closes the "emit several answers" hack (see DESIGN.md, the verdict grammar)."""
    return [
        CORRECT if winner(parse_verdict(completion_text(c), mode="strict").choice, gold) == "chosen" else WRONG
        for c, gold in zip(completions, label, strict=True)
    ]


REWARDS = {"verdict": verdict_reward}
