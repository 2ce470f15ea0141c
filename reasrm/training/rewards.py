"""Verifiable rewards for judge training, with TRL's reward-function contract, chosen by name.

TRL calls ``reward(prompts=..., completions=..., **columns)`` once per generation batch, with every other
dataset column as a keyword list (one entry per completion) plus ``log_metric`` (a scalar logged with the
step). The GRPO dataset of ``reasrm rl`` has these columns: ``label`` (the chosen response's slot letter),
``pair`` (the pair's id), ``order`` (``"AB"``: the pair's first slot assignment, ``"BA"``: swapped) and
``response_a``/``response_b`` (the responses as shown in each slot).
``REWARDS`` maps the names a stage config may give (``rewards: [verdict, consistency]``, weighted by
``reward_weights``) to the functions. Every reward parses verdicts in **strict** mode.

- ``verdict``: +1 when the verdict names the labelled response, -1 otherwise (RM-R1's reward, strict).
- ``consistency`` (J1's idea, made precise for groups of samples): a completion of a pair in one order
  earns the share of the *other* order's completions of that pair in the batch that are right, and only
  when it is right itself; 0 otherwise. So a judge that is right in both orders earns 1, and a judge whose
  verdict follows the slot (always "A", say) earns 0 in every group: the reward exists only for verdicts
  that survive the swap. It needs both orders of a pair in one generation batch (``both_orders: true``).
- ``follows`` (label-free): +1 when a strict verdict names the response the completion's own ``<solution>``
  agrees with (:func:`solution_slot`: the response sharing the longer common token subsequence with it),
  -1 when it names the other one; 0 when there is no solution, it agrees with neither response as much as
  with the other, or the verdict is invalid. It ties the verdict to the judge's own reading of the
  question, not to a slot; from a judge whose solution copies a slot's answer it rewards that copying.
- ``format``: the share of the sections the task type requires that are present: ``<type>``, then
  ``<solution>`` (Reasoning) or ``<rubric>`` with a ``<justify>`` (Chat), then ``<eval>``, then a strict
  verdict. A small bonus (weight it low) that keeps the structure through RL.
"""

from __future__ import annotations

import logging
import re
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
    strict parsing closes the "emit several answers" hack (see DESIGN.md, the verdict grammar). With
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
        log.warning("consistency reward: %d pair(s) without their other slot order in the batch earn 0; "
                    "train with both_orders: true", len(lone))  # fmt: skip
    return rewards


TOKEN = re.compile(r"-?\d+(?:\.\d+)?|\w+|[^\w\s]")


def common_length(a: list[str], b: list[str]) -> int:
    """Length of the longest common subsequence of two token lists."""
    previous = [0] * (len(b) + 1)
    for x in a:
        current = [0]
        for j, y in enumerate(b):
            current.append(previous[j] + 1 if x == y else max(previous[j + 1], current[j]))
        previous = current
    return previous[-1]


def solution_slot(solution: str | None, response_a: str, response_b: str) -> str:
    """The slot whose response a ``<solution>`` agrees with: the one sharing the longer common subsequence
    of tokens (numbers, words, punctuation; lower case) with it, "A" or "B"; "tie" when neither shares more
    (or there is no solution)."""
    if solution is None:
        return "tie"
    tokens = TOKEN.findall(solution.lower())
    a, b = (common_length(tokens, TOKEN.findall(r.lower())) for r in (response_a, response_b))
    return "A" if a > b else "B" if b > a else "tie"


def follows_reward(prompts, completions, response_a, response_b, **kwargs) -> list[float]:
    """+1 / -1 / 0 as the verdict follows the completion's own solution, contradicts it, or either is
    missing (see the module docstring). Needs no label."""
    rewards = []
    for verdict, a, b in zip(_verdicts(completions), response_a, response_b, strict=True):
        slot = solution_slot(verdict.solution, a, b)
        rewards.append(0.0 if not verdict.ok or slot == "tie" else CORRECT if verdict.choice == slot else WRONG)
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


REWARDS = {
    "verdict": verdict_reward,
    "consistency": consistency_reward,
    "follows": follows_reward,
    "format": format_reward,
}
