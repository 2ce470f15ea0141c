"""Verifiable rewards for judge training, with TRL's reward-function contract.

TRL calls ``reward(prompts=..., completions=..., **columns)`` with every other dataset column as a
keyword list; the GRPO dataset of ``reasrm rl`` has a ``label`` column holding the slot letter of the
chosen response.
"""

from __future__ import annotations

from reasrm.verdict import parse_verdict

CORRECT, WRONG = 1.0, -1.0


def completion_text(completion) -> str:
    """A completion as text: TRL passes strings, or conversational lists ``[{"role", "content"}]``."""
    if isinstance(completion, str):
        return completion
    return "".join(m["content"] for m in completion if m.get("role", "assistant") == "assistant")


def verdict_reward(prompts, completions, label, **kwargs) -> list[float]:
    """+1 when the completion's verdict, parsed in **strict** mode, names ``label`` (``"A"``/``"B"``);
    -1 otherwise: a wrong letter, no verdict, several answers, or text after the answer.

    RM-R1's reward accepts any completion whose last 80 characters hold the gold tag and not the other;
    strict parsing closes the "emit several answers" hack (see DESIGN.md, the verdict grammar)."""
    return [
        CORRECT if parse_verdict(completion_text(c), mode="strict").choice == gold else WRONG
        for c, gold in zip(completions, label, strict=True)
    ]
