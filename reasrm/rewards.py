"""``reasrm.rewards``: the public home of the verifiable rewards (defined in :mod:`reasrm.training.rewards`)."""

from reasrm.training.rewards import REWARDS, verdict_reward

__all__ = ["REWARDS", "verdict_reward"]
