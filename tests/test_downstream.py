"""Pairwise -> scalar rewards and best-of-N: the ranking arithmetic, with a deterministic stand-in judge.

The stand-in replaces only the model: it answers by a fixed rule, so the adapters' maths (wins in both
orders, Bradley-Terry, tie handling, group checks, judge-call counts) can be checked exactly.
"""

import pytest

from reasrm.downstream import (
    ReferenceReward,
    RoundRobinReward,
    bradley_terry,
    schedule,
    select_best,
    win_rates,
)
from reasrm.judge import Call, Judgement
from reasrm.verdict import parse_verdict


class StandIn:
    """Prefers the response with the larger number; "always_a" answers A whatever it sees; texts containing
    "???" get no valid verdict."""

    def __init__(self, mode: str = "better"):
        self.mode, self.calls = mode, 0

    def judge(self, pairs, both_orders=False, seed=0):
        out = []
        for pair in pairs:
            calls = []
            for a, b, order in [(pair.response_a, pair.response_b, "AB"), (pair.response_b, pair.response_a, "BA")]:
                self.calls += 1
                if "???" in a + b:
                    text = "no idea"
                elif self.mode == "always_a":
                    text = "<answer>[[A]]</answer>"
                else:
                    text = "<answer>[[A]]</answer>" if float(a) >= float(b) else "<answer>[[B]]</answer>"
                calls.append(Call(order, None, text, parse_verdict(text, "lenient"), 10, 5, 0.0))
            out.append(Judgement(pair.id, calls[0].verdict, tuple(calls), None))
        return out


def test_reference_reward_is_wins_over_two_orders():
    judge = StandIn()
    reward = ReferenceReward(judge)
    got = reward(["q1", "q2", "q3", "q4"], ["5", "3", "4", "???"], reference=["4", "4", "4", "4"])
    assert got == [1.0, 0.0, 0.5, 0.0]  # beats / loses to / ties (each side wins slot A once) / invalid = loss
    assert judge.calls == 8  # 2 judge calls per completion
    conversational = reward(
        [[{"role": "user", "content": "q"}]], [[{"role": "assistant", "content": "9"}]], reference=["1"]
    )
    assert conversational == [1.0]
    with pytest.raises(ValueError, match="needs a dataset column 'reference'"):
        reward(["q"], ["1"], answer=["2"])


def test_position_bias_cannot_earn_reward():
    """A judge that always says A gives every completion one win in two: no reward for a slot."""
    reward = RoundRobinReward(StandIn("always_a"), num_generations=4, score="win_rate")
    assert reward(["q"] * 4, ["1", "2", "3", "4"]) == [0.5] * 4
    assert ReferenceReward(StandIn("always_a"))(["q"], ["1"], reference=["2"]) == [0.5]


def test_round_robin_ranks_within_each_group_and_counts_calls():
    judge = StandIn()
    reward = RoundRobinReward(judge, num_generations=3, score="win_rate")
    got = reward(["a"] * 3 + ["b"] * 3, ["1", "3", "2", "9", "7", "8"])
    assert got == [0.0, 1.0, 0.5, 1.0, 0.0, 0.5]
    assert judge.calls == 2 * 3 * 2  # G(G-1) calls per group of G=3, two groups
    bt = RoundRobinReward(StandIn(), num_generations=3)(["a"] * 3, ["1", "3", "2"])
    assert bt[1] > bt[2] > bt[0] and abs(sum(bt)) < 1e-9  # ordered, centred
    with pytest.raises(ValueError, match="not a multiple of num_generations=3"):
        reward(["a"] * 4, ["1", "2", "3", "4"])


def test_sampled_opponents_meet_k_others_each():
    import random

    for n, k in ((6, 2), (8, 3), (5, 1)):
        matches = schedule(n, k, random.Random(0))
        assert len(set(matches)) == len(matches) and all(i < j for i, j in matches)
        for i in range(n):
            assert sum(i in m for m in matches) >= k
        assert len(matches) < n * (n - 1) // 2
    judge = StandIn()
    RoundRobinReward(judge, num_generations=6, opponents=2)(["q"] * 6, [str(x) for x in range(6)])
    assert judge.calls <= 2 * 6 * 2  # about G*k pairs, two calls each


def test_bradley_terry_and_win_rate_arithmetic():
    # a beats b twice, b beats c twice, a and c never met: a > b > c, and strengths are centred.
    wins = [[0, 2, 0], [0, 0, 2], [0, 0, 0]]
    games = [[0, 2, 0], [2, 0, 2], [0, 2, 0]]
    s = bradley_terry(wins, games)
    assert s[0] > s[1] > s[2] and abs(sum(s)) < 1e-9
    assert win_rates(wins, games) == [1.0, 0.5, 0.0]
    even = bradley_terry([[0, 1], [1, 0]], [[0, 2], [2, 0]])
    assert even[0] == pytest.approx(even[1])  # a split match is a tie
    assert win_rates([[0, 0], [0, 0]], [[0, 0], [0, 0]]) == [0.0, 0.0]


def test_select_best_knockout_and_round_robin():
    candidates = ["3", "9", "1", "7", "5"]
    judge = StandIn()
    k = select_best(judge, "q", candidates, strategy="knockout", seed=1)
    assert (k.winner, k.text) == (1, "9")
    assert k.judge_calls == 2 * (len(candidates) - 1) == judge.calls  # N-1 matches, both orders
    assert len(k.bracket) == 4 and k.bracket[-1][2] == 1
    r = select_best(StandIn(), "q", candidates, strategy="round_robin")
    assert r.winner == 1 and r.judge_calls == 5 * 4 and max(r.scores) == r.scores[1]
    assert select_best(StandIn(), "q", ["only"]).winner == 0
    # A drawn match (a position-biased judge draws every match) goes to the lower index.
    assert select_best(StandIn("always_a"), "q", ["x1", "x2"], strategy="knockout").winner == 0
    with pytest.raises(ValueError, match="strategy"):
        select_best(StandIn(), "q", ["1", "2"], strategy="swiss")
