"""The training side: the teacher, the two judge-training stages, the policy stage, and the rewards.

- :mod:`~reasrm.training.teacher`: reasoning chains for stage one (template or a model, two passes).
- :mod:`~reasrm.training.distill`: stage one, SFT on the teacher's chains (``reasrm distill``).
- :mod:`~reasrm.training.rl`: stage two, GRPO with verifiable rewards (``reasrm rl``).
- :mod:`~reasrm.training.policy`: a policy trained with a judge as its reward (``reasrm policy``).
- :mod:`~reasrm.training.rewards`: the reward functions, chosen by name (TRL's contract).
- :mod:`~reasrm.training.common`: what they share (training pairs in slots, the judge card, hardware).
"""
