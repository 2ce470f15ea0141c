"""Verifiable rewards for judge training, with TRL's reward-function contract, chosen by name.

TRL calls ``reward(prompts=..., completions=..., **columns)`` once per generation batch, with every other
dataset column as a keyword list (one entry per completion) plus ``log_metric`` (a scalar logged with the
step). The GRPO dataset of ``reasrm rl`` has these columns: ``label`` (the chosen response's slot letter),
``pair`` (the pair's id) and ``order`` (``"AB"``: the pair's first slot assignment, ``"BA"``: swapped).
``REWARDS`` maps the names a stage config may give (``rewards: [verdict, consistency]``, weighted by
``reward_weights``) to the functions. Every reward parses verdicts in **strict** mode.

- ``verdict``: +1 when the verdict names the labelled response, -1 otherwise (RM-R1's reward, strict).
- ``consistency`` (J1's idea, made precise for groups of samples): a completion of a pair in one order
  earns the share of the *other* order's completions of that pair in the batch that are right, and only
  when it is right itself; 0 otherwise. So a judge that is right in both orders earns 1, and a judge whose
  verdict follows the slot (always "A", say) earns 0 in every group: the reward exists only for verdicts
  that survive the swap. It needs both orders of a pair in one generation batch (``both_orders: true``).
- ``format``: the share of the sections the task type requires that are present: ``<type>``, then
  ``<solution>`` (Reasoning) or ``<rubric>`` with a ``<justify>`` (Chat), then ``<eval>``, then a strict
  verdict. A small bonus (weight it low) that keeps the structure through RL.
- ``solution``: +1 when the completion's ``<solution>`` names the labelled response (read by token overlap
  with the two responses, ``reasrm.training.validation.solution_slot``), -1 when it names the other, 0
  without a solution that names one. Verifiable (the label decides), so the reasoning cannot drift toward a
  slot-biased verdict to agree with it. It reads the ``response_a``/``response_b`` columns of the rows.
"""

from __future__ import annotations

import logging
from collections import Counter, defaultdict

from reasrm.data.pairs import completion_text
from reasrm.verdict import JUSTIFY, STATUSES, parse_verdict, winner

log = logging.getLogger(__name__)

CORRECT, WRONG = 1.0, -1.0


def _verdicts(completions):
    return [parse_verdict(completion_text(c), mode="strict") for c in completions]


def verdict_reward(prompts, completions, label, log_metric=None, **kwargs) -> list[float]:
    """+1 when the completion's verdict, parsed in **strict** mode, names ``label`` (``"A"``/``"B"``);
    -1 otherwise: a wrong letter, no verdict, several answers, or text after the answer.

    RM-R1's reward accepts any completion whose last 80 characters hold the gold tag and not the other;
    strict parsing closes the "emit several answers" hack (docs/verdict.md). With
    ``log_metric`` (TRL passes it), logs the rollouts' A-rate and the share of each verdict status."""
    verdicts = _verdicts(completions)
    if log_metric is not None:
        statuses = Counter(v.status for v in verdicts)
        for status in STATUSES:
            log_metric(f"rollouts/{status}", statuses[status] / len(verdicts))
        valid = [v.choice for v in verdicts if v.ok]
        if valid:
            log_metric("rollouts/a_rate", valid.count("A") / len(valid))
    return [CORRECT if winner(v.choice, gold) == "chosen" else WRONG for v, gold in zip(verdicts, label, strict=True)]


def consistency_reward(prompts, completions, label, pair, order, **kwargs) -> list[float]:
    """For a right completion: the share of right completions among the pair's other-order completions in
    the batch; 0 for a wrong or invalid one (see the module docstring). A pair whose other order is not in
    the batch earns 0 and is logged: put both orders in one batch (``both_orders: true``)."""
    right = [winner(v.choice, gold) == "chosen" for v, gold in zip(_verdicts(completions), label, strict=True)]
    groups: dict[tuple[str, str], list[bool]] = defaultdict(list)
    for ok, pair_id, shown in zip(right, pair, order, strict=True):
        groups[pair_id, shown].append(ok)
    other = {"AB": "BA", "BA": "AB"}
    rewards, lone = [], set()
    for ok, pair_id, shown in zip(right, pair, order, strict=True):
        partners = groups.get((pair_id, other[shown]))
        if not partners:
            lone.add(pair_id)
        rewards.append(sum(partners) / len(partners) if ok and partners else 0.0)
    if lone:
        log.warning(
            "consistency reward: %d pair(s) without their other slot order in the batch earn 0; "
            "train with both_orders: true",
            len(lone),
        )
    return rewards


def format_score(text: str) -> float:
    """The share of the required sections present (see the module docstring)."""
    verdict = parse_verdict(text, mode="strict")
    kind = (verdict.task_type or "").strip().lower()
    if kind == "reasoning":
        body = verdict.solution is not None
    elif kind == "chat":
        body = verdict.rubric is not None and f"<{JUSTIFY}>" in verdict.rubric
    else:
        body = verdict.solution is not None or verdict.rubric is not None
    return (bool(kind) + body + (verdict.evaluation is not None) + verdict.ok) / 4


def format_reward(prompts, completions, **kwargs) -> list[float]:
    """:func:`format_score` of each completion: 0 to 1."""
    return [format_score(completion_text(c)) for c in completions]


def solution_reward(prompts, completions, label, response_a, response_b, **kwargs) -> list[float]:
    """+1 when the completion's ``<solution>`` names the labelled response, -1 the other, 0 neither."""
    from reasrm.training.validation import solution_slot

    named = [
        solution_slot(v.solution, a, b) for v, a, b in zip(_verdicts(completions), response_a, response_b, strict=True)
    ]
    return [
        0.0 if slot is None else CORRECT if slot == gold else WRONG for slot, gold in zip(named, label, strict=True)
    ]


REWARDS = {
    "verdict": verdict_reward,
    "consistency": consistency_reward,
    "format": format_reward,
    "solution": solution_reward,
}
