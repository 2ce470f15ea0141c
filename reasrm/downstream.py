"""A pairwise judge used downstream: scalar rewards for policy training, and best-of-N selection.

GRPO needs one number per completion; a reasoning judge compares two responses. The adapters below turn
comparisons into scores. Each is a TRL reward function, ``fn(prompts, completions, **columns) ->
list[float]``, built from a :class:`reasrm.Judge`. Every comparison is judged in both slot orders, so a
judge that always answers "A" gives every completion the same reward instead of rewarding slot A;
an invalid verdict is a loss for both sides and is logged.

- :class:`ReferenceReward`: each completion against a reference answer. Reward = wins / 2 (0, 0.5, 1).
  Cost: 2 judge calls per completion.
- :class:`RoundRobinReward`: completions compared within their group (TRL lays out ``num_generations``
  consecutive completions per prompt). Reward = Bradley-Terry log-strength (centred in the group) or
  win rate. Cost per group of G: G(G-1) calls for all pairs, about G*k calls with k sampled opponents.
- :func:`select_best`: best-of-N. ``knockout``: a seeded bracket, 2(N-1) calls; ``round_robin``: all pairs,
  N(N-1) calls, the highest Bradley-Terry strength wins.
"""

from __future__ import annotations

import logging
import math
import random
from dataclasses import dataclass

from reasrm.data.pairs import Pair, completion_text, content_id, context_of

log = logging.getLogger(__name__)


def wins_of_first(
    judge, context: tuple[dict, ...], pairs: list[tuple[str, str]], seed: int = 0
) -> list[tuple[int, int]]:
    """For each (x, y): (wins of x, wins of y) over the two slot orders; an invalid verdict is nobody's win."""
    if not pairs:
        return []
    batch = [Pair(id=content_id(context, x, y), context=context, response_a=x, response_b=y) for x, y in pairs]
    results = []
    invalid = 0
    for judgement in judge.judge(batch, both_orders=True, seed=seed):
        first, second = (c.verdict.choice for c in judgement.calls)  # AB: x in slot A; BA: x in slot B
        invalid += (first is None) + (second is None)
        x_wins = (first == "A") + (second == "B")
        y_wins = (first == "B") + (second == "A")
        results.append((x_wins, y_wins))
    if invalid:
        log.info("%d of %d judge calls gave no valid verdict (counted as losses)", invalid, 2 * len(pairs))
    return results


class ReferenceReward:
    """Reward = (wins of the completion over the reference answer in the two slot orders) / 2.

    Cost: 2 judge calls per completion. Rewards what the judge prefers to a known good answer; with a
    weak reference everything scores 1, with a perfect one the policy can at best tie (0.5).
    """

    def __init__(self, judge, reference_column: str = "reference", seed: int = 0):
        self.judge, self.reference_column, self.seed = judge, reference_column, seed
        self.__name__ = "reference_reward"  # TRL logs each reward function under its name

    def __call__(self, prompts, completions, **columns) -> list[float]:
        if self.reference_column not in columns:
            raise ValueError(
                f"reference reward needs a dataset column {self.reference_column!r}; got {sorted(columns)}"
            )
        rewards = []
        for prompt, completion, reference in zip(prompts, completions, columns[self.reference_column], strict=True):
            ((wins, _),) = wins_of_first(
                self.judge, context_of(prompt), [(completion_text(completion), reference)], self.seed
            )
            rewards.append(wins / 2)
        return rewards


class RoundRobinReward:
    """Completions of one prompt compete with each other; reward = Bradley-Terry strength or win rate.

    Cost per group of G completions: G(G-1) judge calls (all pairs, both orders), or with ``opponents=k``
    about G*k calls (each completion meets k others, drawn with the seed). Rewards being preferred to the
    other samples of the same prompt, which is what GRPO's group-relative advantage uses anyway.
    """

    def __init__(
        self, judge, num_generations: int, opponents: int | None = None, score: str = "bradley_terry", seed: int = 0
    ):
        if num_generations < 2:
            raise ValueError(f"num_generations must be >= 2 to compare completions, got {num_generations}")
        if score not in ("bradley_terry", "win_rate"):
            raise ValueError(f"score must be 'bradley_terry' or 'win_rate', got {score!r}")
        if opponents is not None and not 1 <= opponents < num_generations:
            raise ValueError(f"opponents must be in [1, {num_generations - 1}], got {opponents}")
        self.judge, self.num_generations, self.opponents, self.score, self.seed = (
            judge,
            num_generations,
            opponents,
            score,
            seed,
        )
        self.__name__ = f"round_robin_{score}"

    def __call__(self, prompts, completions, **columns) -> list[float]:
        g = self.num_generations
        if len(completions) % g:
            raise ValueError(
                f"{len(completions)} completions is not a multiple of num_generations={g}: TRL passes groups of "
                "num_generations consecutive completions per prompt"
            )
        rewards: list[float] = []
        for start in range(0, len(completions), g):
            texts = [completion_text(c) for c in completions[start : start + g]]
            matches = schedule(g, self.opponents, random.Random(self.seed + start))
            results = wins_of_first(self.judge, context_of(prompts[start]), [(texts[i], texts[j]) for i, j in matches])
            wins = [[0] * g for _ in range(g)]
            for (i, j), (a, b) in zip(matches, results, strict=True):
                wins[i][j] += a
                wins[j][i] += b
            games = [[2 * ((i, j) in matches or (j, i) in matches) for j in range(g)] for i in range(g)]
            rewards.extend(bradley_terry(wins, games) if self.score == "bradley_terry" else win_rates(wins, games))
        return rewards


def schedule(n: int, opponents: int | None, rng: random.Random) -> list[tuple[int, int]]:
    """Pairs (i, j), i < j, to judge: all of them, or enough that each item meets ``opponents`` others."""
    every = [(i, j) for i in range(n) for j in range(i + 1, n)]
    if opponents is None:
        return every
    chosen: set[tuple[int, int]] = set()
    for i in range(n):
        met = sum(1 for a, b in chosen if i in (a, b))
        others = [j for j in rng.sample(range(n), n) if j != i and (min(i, j), max(i, j)) not in chosen]
        for j in others[: max(0, opponents - met)]:
            chosen.add((min(i, j), max(i, j)))
    return sorted(chosen)


def win_rates(wins: list[list[int]], games: list[list[int]]) -> list[float]:
    """Wins / games played, per item (an invalid verdict counted a game without a winner)."""
    return [sum(w) / sum(g) if sum(g) else 0.0 for w, g in zip(wins, games, strict=True)]


def bradley_terry(
    wins: list[list[int]], games: list[list[int]], iterations: int = 200, prior: float = 0.5
) -> list[float]:
    """Bradley-Terry log-strengths, centred to mean 0, fitted by minorisation-maximisation (Hunter, 2004).

    ``prior`` adds that many virtual wins for each side of every pair that met, so an item that won or lost
    everything still gets a finite strength.
    """
    n = len(wins)
    w = [[wins[i][j] + (prior if games[i][j] else 0.0) for j in range(n)] for i in range(n)]
    m = [[games[i][j] + (2 * prior if games[i][j] else 0.0) for j in range(n)] for i in range(n)]
    p = [1.0] * n
    for _ in range(iterations):
        new = []
        for i in range(n):
            denominator = sum(m[i][j] / (p[i] + p[j]) for j in range(n) if j != i and m[i][j])
            new.append(sum(w[i]) / denominator if denominator else p[i])
        scale = math.exp(sum(math.log(x) for x in new) / n)
        p = [x / scale for x in new]
    return [math.log(x) for x in p]


@dataclass(frozen=True)
class Selection:
    """The result of best-of-N selection."""

    winner: int  # index into the candidates
    text: str
    scores: list[float]  # round robin: Bradley-Terry strengths; knockout: rounds survived
    bracket: list[tuple[int, int, int]]  # knockout: (a, b, winner) per match; round robin: (i, j, wins of i)
    judge_calls: int


def select_best(judge, prompt, candidates: list[str], strategy: str = "knockout", seed: int = 0) -> Selection:
    """Pick the best of ``candidates`` for ``prompt`` with a pairwise judge (every match in both orders).

    knockout: a bracket in seeded order, byes for odd counts, a drawn match goes to the lower index:
    2(N-1) judge calls. round_robin: every pair, the highest Bradley-Terry strength wins: N(N-1) calls.
    """
    if not candidates:
        raise ValueError("select_best needs at least one candidate")
    context, n = context_of(prompt), len(candidates)
    if strategy == "round_robin":
        matches = schedule(n, None, random.Random(seed))
        results = wins_of_first(judge, context, [(candidates[i], candidates[j]) for i, j in matches], seed)
        wins = [[0] * n for _ in range(n)]
        for (i, j), (a, b) in zip(matches, results, strict=True):
            wins[i][j], wins[j][i] = a, b
        scores = bradley_terry(wins, [[2 * (i != j) for j in range(n)] for i in range(n)])
        best = max(range(n), key=lambda i: (scores[i], -i))
        bracket = [(i, j, r[0]) for (i, j), r in zip(matches, results, strict=True)]
        return Selection(best, candidates[best], scores, bracket, 2 * len(matches))
    if strategy != "knockout":
        raise ValueError(f"strategy must be 'knockout' or 'round_robin', got {strategy!r}")
    alive = list(range(n))
    random.Random(seed).shuffle(alive)
    rounds = [0.0] * n
    bracket: list[tuple[int, int, int]] = []
    while len(alive) > 1:
        pairs = [(alive[k], alive[k + 1]) for k in range(0, len(alive) - 1, 2)]
        results = wins_of_first(judge, context, [(candidates[a], candidates[b]) for a, b in pairs], seed)
        survivors = [alive[-1]] if len(alive) % 2 else []  # a bye
        for (a, b), (wins_a, wins_b) in zip(pairs, results, strict=True):
            winner = a if wins_a > wins_b or (wins_a == wins_b and a < b) else b
            bracket.append((a, b, winner))
            survivors.append(winner)
        for i in survivors:
            rounds[i] += 1
        alive = sorted(survivors, key=lambda i: alive.index(i))
    best = alive[0]
    return Selection(best, candidates[best], rounds, bracket, 2 * len(bracket))
