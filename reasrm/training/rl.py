"""Stage two: GRPO on preference pairs with verifiable rewards (TRL's GRPOTrainer, used directly).

    reasrm rl stages/rl.yaml                                 # or: make rl
    reasrm rl stages/rl.yaml model=runs/distill/final max_steps=2

1. The recipe's training pairs, shuffled with the seed, each in the slots ``assign_slots`` gives and, with
   ``both_orders`` (default), also in the swapped order as the next prompt: TRL's sampler keeps dataset
   order (``shuffle_dataset`` off) and every generation batch holds whole pairs, so a reward sees both
   orders of a pair (``consistency`` needs it). Prompts are rendered by :class:`reasrm.prompts.JudgePrompt`
   (the stage's ``rubric``, else the pair's pack, else the checkpoint's card pack, else its prompt format).
2. Before training, what cannot teach anything is refused (``preflight``): a starting model that writes no
   strict verdict on a sample of the training prompts (every reward would be -1), or chains longer than
   ``max_completion_length`` (every completion clipped before its verdict); the preflight's sampled start is
   kept in ``preflight.json``. The difficulty filter samples each pair ``filter_samples`` times and keeps
   those whose pass rate lies inside ``filter_pass_rate``: a group whose completions all score the same has
   zero reward variance and teaches nothing. It is on by itself for a start the preflight samples right in
   over ``strong_start`` of its calls, with one short pass over the pairs it keeps (``STRONG_START_SETTINGS``).
3. The rewards by name with weights (``rewards``, ``reward_weights``; :mod:`reasrm.training.rewards`).
4. Held-out validation at the start, every ``eval_steps`` steps and at the end
   (:mod:`reasrm.training.validation`): ``validation.jsonl``, the trainer's loggers, ``curves.png``, and a
   one-screen table that also shows the base model and the distilled judge when the starting checkpoint's
   stage wrote ``eval.json`` on the same pairs.

Under ``accelerate launch`` / ``torchrun`` (``stages/accelerate/``) TRL splits each generation batch across
the ranks (both orders of a pair stay on one rank); every rank takes its share of the preflight sample,
the difficulty filter and the held-out pairs, and the main process alone writes (:mod:`reasrm.processes`).
The batch settings are per process: the global batch is printed at the start and recorded in the card.

Defaults for the embedded default on a CPU (why each: docs/findings.md): lr 2e-5 warmed up over the first
quarter of the steps, beta 0.1 (the KL to the starting judge holds its slot balance: a group whose
completions all name one slot has no advantage, and without the KL nothing pulls a judge drifting to one
slot back), TRL's ``dapo`` loss (token-level normalisation, no length bias), 8
completions per prompt at temperature 1.0. ``stages/presets/rm-r1/*/rl.yaml`` hold RM-R1's own settings for 7B-32B
judges on GPUs (``grpo`` loss, beta 0.001, lr 1e-6, 7 generations, 8192 completion tokens).
"""

from __future__ import annotations

import json
import logging
import math
import random
from dataclasses import dataclass, replace
from pathlib import Path

from reasrm import processes
from reasrm.backends.generation import MAX_TEMPERATURE, MIN_TEMPERATURE
from reasrm.backends.vllm import VLLMSettings
from reasrm.card import judge_prompt, read_card
from reasrm.config import Problem, option
from reasrm.errors import ReasrmConfigError
from reasrm.models import load_model, load_tokenizer
from reasrm.rubrics import pack_error
from reasrm.runs import output_problems, prepare_output
from reasrm.training.common import (
    last_checkpoint,
    launch_problems,
    trainable,
    trainer_args,
    training_jobs,
    write_card,
)
from reasrm.training.rewards import REWARDS
from reasrm.training.validation import heldout_jobs, jobs_digest, table_lines
from reasrm.verdict import parse_verdict, winner

log = logging.getLogger(__name__)

RESULT_KEYS = (
    "model",
    "recipe",
    "recipe_params",
    "limit",
    "prompt_format",
    "rubric",
    "seed",
    "rewards",
    "updates_per_generation",
    "reward_weights",
    "both_orders",
    "num_generations",
    "temperature",
    "beta",
    "learning_rate",
    "warmup_steps",
    "lr_scheduler_type",
    "loss_type",
    "scale_rewards",
    "max_completion_length",
    "filter_pass_rate",
    "filter_samples",
    "strong_start",
    "validation_pairs",
)
LOSS_TYPES = ("dapo", "grpo", "dr_grpo", "bnpo")
SCALE_REWARDS = ("group", "batch", "none")
ROLLOUTS = ("trl", "vllm")
LR_SCHEDULERS = ("linear", "constant_with_warmup", "cosine", "constant")
# What stage two trains as on a start already right in most sampled calls (``strong_start``): the difficulty
# filter keeps the pairs some sampled call misses, and one short pass over them; from such starts the
# 16 steps over every pair moved right in both orders by at most +0.01 (docs/findings.md).
STRONG_START_SETTINGS = {"filter_pass_rate": [0.0, 0.75], "filter_samples": 2, "max_steps": 8}


def overrides_text(settings: dict) -> str:
    """``settings`` as command-line overrides: ``filter_pass_rate=[0.0,0.75] max_steps=8``."""
    return " ".join(f"{key}={json.dumps(value, separators=(',', ':'))}" for key, value in settings.items())


@dataclass
class RLConfig:
    stage: str = option("Names this schema.", "rl")
    model: str | None = option(
        "The judge to train (a distilled checkpoint); null = the embedded default.", "runs/distill/final"
    )
    recipe: str = option("Data recipe giving the training pairs (a name in data_recipes/ or a path).", "demo")
    recipe_params: dict = option("Parameters of the recipe.", factory=dict)
    limit: int | None = option("Use at most this many training pairs (null: all).", 256, ge=1)
    prompt_format: str | None = option("Prompt format for pairs without a pack; null = the model's judge card.", None)
    rubric: str | None = option("Rubric pack forced on every pair; null = each pair's, else the card's.", None)
    both_orders: bool = option("Every pair in both slot orders, as adjacent prompts of one generation batch.", True)
    rewards: list[str] = option(
        f"Reward functions by name: any of {', '.join(REWARDS)}.",
        factory=lambda: ["verdict", "consistency", "format", "solution"],
    )
    reward_weights: list[float] | None = option(
        "One weight per reward (null = 1.0 each).", factory=lambda: [1.0, 0.5, 0.1, 0.5]
    )
    output: str = option("Output folder: checkpoints, validation.jsonl, curves.png, final/ (the judge).", "runs/rl")
    resume: bool = option("Continue a previous run from its last checkpoint.", False)
    overwrite: bool = option("Replace a previous run in the output folder.", False)
    seed: int = option("Seeds the slot assignment, the pair order and training.", 0, ge=0)
    num_generations: int = option("Completions per prompt (GRPO's group; RM-R1: 7).", 8, ge=2)
    per_device_train_batch_size: int = option(
        "Completions per loss pass; times gradient_accumulation_steps, the completions generated per step: a "
        "multiple of num_generations (of 2 x num_generations with both_orders).",
        32,
        ge=1,
    )
    gradient_accumulation_steps: int = option(
        "Loss passes per optimizer step (TRL's): the step's completions split into this many, for less memory.", 2, ge=1
    )
    updates_per_generation: int = option(
        "Optimizer steps taken on each generation batch, one after another on its parts (verl's rollout batch / "
        "PPO mini-batch; RM-R1: 1024 / 128 prompts = 8). TRL's steps_per_generation is this x "
        "gradient_accumulation_steps.",
        1,
        ge=1,
    )
    max_completion_length: int = option("Most tokens per completion (RM-R1: 8192).", 128, ge=1)
    temperature: float = option("Sampling temperature of the rollouts.", 1.0, ge=MIN_TEMPERATURE, le=MAX_TEMPERATURE)
    max_steps: int = option("Optimizer steps (-1: num_train_epochs).", 16, ge=1, also=(-1,))
    num_train_epochs: float = option("Epochs over the pairs (RM-R1: 1).", 1.0, gt=0)
    learning_rate: float = option("Learning rate (RM-R1: 1e-6 for 7B+ judges).", 2e-5, gt=0)
    warmup_steps: float = option(
        "Steps of linear lr warmup from 0 (a float in [0, 1): a share of max_steps, rounded up). The first step "
        "runs at lr 0 and only fills Adam's moments: Adam's first update moves every weight by the full lr whatever "
        "the gradient's size, on the few pairs of one step (docs/findings.md).",
        0.25,
        ge=0,
    )
    lr_scheduler_type: str = option(
        f"After warmup: one of {', '.join(LR_SCHEDULERS)} (transformers' schedules; linear decays to 0 by the "
        "last step, TRL's default; constant ignores warmup_steps).",
        "linear",
    )
    beta: float = option(
        "KL coefficient to the starting judge (RM-R1: 0.001; 0 loads no reference model, one "
        "forward pass less per step, but nothing holds the slot balance).",
        0.1,
        ge=0,
    )
    loss_type: str = option(f"TRL's GRPO loss: one of {', '.join(LOSS_TYPES)} (RM-R1: grpo).", "dapo")
    scale_rewards: str = option(
        "Advantages divided by the std of: group (GRPO's, TRL's default), batch, or none (Dr. GRPO). Per group, a "
        "two-valued group's advantages depend only on its share right, so the consistency reward's extra pay "
        "cannot move a judge blind to the content off its slot.",
        "group",
    )
    preflight: bool = option("Refuse settings that cannot teach (no valid verdict, chains clipped).", True)
    preflight_pairs: int = option("Training pairs the preflight check samples.", 8, ge=1)
    filter_pass_rate: list[float] | None = option(
        "Difficulty filter: keep pairs whose sampled pass rate lies in [low, high], e.g. [0.1, 0.9]; null = off.",
        None,
    )
    filter_samples: int = option("Difficulty filter: samples per pair and order.", 4, ge=1)
    strong_start: float | None = option(
        "Where the preflight's sampled start is right in more than this share of calls and filter_pass_rate is "
        f"null, train on the pairs it still misses: {overrides_text(STRONG_START_SETTINGS)} "
        "(max_steps: at most that many). null = off (the preflight then only names the setting).",
        0.9,
        ge=0,
        le=1,
    )
    validation_pairs: int = option("Held-out pairs validated in both orders (0 = no validation).", 100, ge=0)
    eval_steps: int = option("Validate every this many steps (0 = only at the start and the end).", 5, ge=0)
    gradient_checkpointing: bool = option("Trade compute for memory (large judges on GPUs).", False)
    rollouts: str = option(
        "Who generates the rollouts: trl (TRL's own generate, on the training weights) or vllm "
        "(TRL's vLLM integration; CUDA GPUs and the `vllm` extra; settings in `vllm`).",
        "trl",
    )
    vllm: VLLMSettings = option(
        "vLLM for rollouts=vllm: colocate in each training process, or a `trl vllm-serve` server on GPUs of its own.",
        factory=VLLMSettings,
    )
    shared_prefix: bool = option(
        "In the loss, run each group's prompt once and its completions on its KV cache "
        "(TRL's log-probs and gradients, fewer FLOPs; reasrm.training.shared_prefix).",
        True,
    )
    save_steps: int = option("Save a resumable checkpoint every this many steps.", 50, ge=1)
    launch_processes: int | None = option(
        "The process count (GPUs) the batch sizes were set for; a launch with another count is refused (null: any).",
        None,
        ge=1,
    )

    @property
    def completions_per_step(self) -> int:
        """TRL's generation batch per process: every prompt's group is generated together, then split for the
        loss."""
        return self.per_device_train_batch_size * self.gradient_accumulation_steps

    @property
    def launch(self) -> dict:
        """Processes, strategy and global batch (completions, prompts and pairs per optimizer step)."""
        per_pair = self.num_generations * (2 if self.both_orders else 1)
        return processes.describe_launch(
            "completions",
            self.per_device_train_batch_size,
            self.gradient_accumulation_steps,
            prompts=self.num_generations,
            pairs=per_pair,
        )

    def check(self) -> list[Problem]:
        problems = []
        group = self.num_generations * (2 if self.both_orders else 1)
        if self.num_generations >= 2 and self.completions_per_step % group:
            what = "2 x num_generations: both orders of a pair" if self.both_orders else "num_generations"
            problems.append(
                (
                    "per_device_train_batch_size",
                    f"times gradient_accumulation_steps must be a multiple "
                    f"of {what} ({group}), got {self.completions_per_step}",
                )
            )
        if self.rubric is not None and pack_error(self.rubric):
            problems.append(("rubric", pack_error(self.rubric)))
        band = self.filter_pass_rate
        if band is not None and not (len(band) == 2 and 0 <= band[0] <= band[1] <= 1):
            problems.append(("filter_pass_rate", f"must be [low, high] with 0 <= low <= high <= 1, got {band}"))
        if self.rollouts not in ROLLOUTS:
            problems.append(("rollouts", f"must be one of {', '.join(ROLLOUTS)}, got {self.rollouts!r}"))
        elif self.rollouts == "vllm":
            problems += self.vllm.check("vllm.")
        if self.loss_type not in LOSS_TYPES:
            problems.append(("loss_type", f"must be one of {', '.join(LOSS_TYPES)}, got {self.loss_type!r}"))
        if math.isfinite(self.warmup_steps) and self.warmup_steps >= 1 and self.warmup_steps != int(self.warmup_steps):
            problems.append(
                ("warmup_steps", f"must be a whole number of steps or a share in [0, 1), got {self.warmup_steps}")
            )
        if self.lr_scheduler_type not in LR_SCHEDULERS:
            problems.append(
                ("lr_scheduler_type", f"must be one of {', '.join(LR_SCHEDULERS)}, got {self.lr_scheduler_type!r}")
            )
        if self.scale_rewards not in SCALE_REWARDS:
            problems.append(("scale_rewards", f"must be one of {', '.join(SCALE_REWARDS)}, got {self.scale_rewards!r}"))
        valid = f"valid names: {', '.join(REWARDS)}"
        if not self.rewards:
            problems.append(("rewards", f"is empty; {valid}"))
        problems += [("rewards", f"unknown reward {name!r}; {valid}") for name in self.rewards if name not in REWARDS]
        if self.reward_weights is not None and len(self.reward_weights) != len(self.rewards):
            problems.append(
                (
                    "reward_weights",
                    f"gives {len(self.reward_weights)} weights for {len(self.rewards)} "
                    f"rewards ({', '.join(self.rewards)})",
                )
            )
        return problems + output_problems(self)

    def machine_check(self) -> list[Problem]:
        """What this machine and launch cannot run of the config (``reasrm validate`` reports it too)."""
        problems = self.vllm.machine_problems("vllm.", processes.world_size()) if self.rollouts == "vllm" else []
        samples = self.preflight or self.filter_pass_rate is not None
        return problems + launch_problems(self, validates=self.validation_pairs > 0, samples=samples)


def grpo_rows(prompt, jobs, both_orders: bool = True, seed: int = 0) -> list[dict]:
    """GRPO examples in training order: the pairs shuffled with ``seed``; each as its judge conversation
    (``prompt``), the chosen response's slot (``label``), its id (``pair``), its slot order (``order``) and the
    responses in their slots (``response_a``, ``response_b``). With ``both_orders`` the swapped order follows
    as the next row."""
    order = list(range(len(jobs)))
    random.Random(seed).shuffle(order)
    rows = []
    for k in order:
        pair, slots = jobs[k]
        shown = [("AB", slots)]
        if both_orders:
            shown.append(("BA", pair.shown(slots.chosen_slot, swap=True)))
        rows += [
            {
                "prompt": prompt.messages(pair, s),
                "label": s.chosen_slot,
                "pair": pair.id,
                "order": name,
                "response_a": s.response_a,
                "response_b": s.response_b,
            }
            for name, s in shown
        ]
    return rows


def judged(model, tokenizer, prompt, jobs, settings, both_orders: bool = False) -> list:
    """``Judge.judge`` of the pairs of ``jobs`` in their slots with ``model`` (whole weights on each rank:
    ``processes.full_weights``); every rank judges its share and gets every judgement, in order."""
    from reasrm.backends.hf import HFBackend
    from reasrm.judge import Judge

    mine = processes.share(jobs)
    judge = Judge(HFBackend(model, tokenizer), prompt, settings)
    with processes.full_weights(model):
        out = judge.judge([p for p, _ in mine], both_orders=both_orders, slots=[s.chosen_slot for _, s in mine])
    return processes.gather(out if mine else [])


def preflight(model, tokenizer, prompt, jobs, cfg: RLConfig) -> dict:
    """Refuse a run that cannot learn: sample ``preflight_pairs`` training prompts, judge them greedily with
    twice ``max_completion_length`` of room, and check that some verdict is valid and that no chain a
    valid verdict ends is longer than ``max_completion_length``. Then sample the same pairs in both orders as
    the rollouts will (:func:`sampled_start`), log what that start says (:func:`start_warnings`) and return it."""
    from reasrm.backends import GenerationConfig

    sample = random.Random(cfg.seed).sample(jobs, min(cfg.preflight_pairs, len(jobs)))
    room = 2 * cfg.max_completion_length
    settings = GenerationConfig(max_new_tokens=room, batch_size=32)
    calls = [j.calls[0] for j in judged(model, tokenizer, prompt, sample, settings)]
    verdicts = [parse_verdict(c.text, mode="strict") for c in calls]
    lengths = [c.completion_tokens for c, v in zip(calls, verdicts, strict=True) if v.ok]
    right = sum(winner(v.choice, c.chosen_slot) == "chosen" for c, v in zip(calls, verdicts, strict=True))
    log.info(
        "preflight: %d of %d sampled training prompts got a valid verdict (%d right); longest valid chain %s tokens",
        len(lengths),
        len(calls),
        right,
        max(lengths) if lengths else "-",
    )
    if not lengths:
        statuses = ", ".join(sorted({v.status for v in verdicts}))
        raise ReasrmConfigError(
            f"'model': {cfg.model or 'the embedded default'} wrote no valid verdict on {len(calls)} sampled training "
            f"prompts (statuses: {statuses}; {room} tokens of room): every reward would be -1 and GRPO would learn "
            "nothing. Distill it first (reasrm distill), or set preflight=false"
        )
    if max(lengths) > cfg.max_completion_length:
        need = -(-max(lengths) * 5 // 4 // 16) * 16
        raise ReasrmConfigError(
            f"'max_completion_length': {cfg.max_completion_length} is shorter than the longest chain the model wrote "
            f"on sampled training prompts ({max(lengths)} tokens): such completions are clipped before their verdict "
            f"and every one scores -1. Set max_completion_length={need} (or preflight=false)"
        )
    start = sampled_start(model, tokenizer, prompt, sample, cfg)  # every rank samples, every rank gets it all
    if processes.is_main():
        for warning in start_warnings(start, cfg):
            log.warning("preflight: %s", warning)
    return start


SAMPLED_READINGS = 4  # samples of each pair and order: one each read 3 to 11 of 16 right on the same pairs


def sampled_start(model, tokenizer, prompt, sample, cfg: RLConfig) -> dict:
    """What the first rollouts will see: the preflight's pairs in both slot orders, ``SAMPLED_READINGS`` times
    each, sampled as GRPO samples (``temperature``, ``max_completion_length``): the A-rate of the valid
    verdicts (the labels are half A), the share right, the share whose verdict follows the judge's own
    ``<solution>`` (None when no solution names a response), whether the verdict named one slot whichever
    response was chosen, and how many calls the cap clipped before a verdict."""
    from reasrm.backends import GenerationConfig
    from reasrm.training.validation import solution_slot

    settings = GenerationConfig(
        max_new_tokens=cfg.max_completion_length, temperature=cfg.temperature, seed=cfg.seed, batch_size=64
    )
    calls = [
        (pair, c)
        for (pair, _), j in zip(
            sample * SAMPLED_READINGS,
            judged(model, tokenizer, prompt, sample * SAMPLED_READINGS, settings, True),
            strict=True,
        )
        for c in j.calls
    ]
    valid = [(pair, c, v) for pair, c in calls if (v := parse_verdict(c.text, mode="strict")).ok]
    choices = [v.choice for _, _, v in valid]
    named = [(v.choice, solution_slot(v.solution, *_responses(pair, c.chosen_slot))) for pair, c, v in valid]
    decided = [(choice, slot) for choice, slot in named if slot is not None]
    start = {
        "calls": len(calls),
        "valid": len(valid),
        "a_rate": choices.count("A") / len(choices) if choices else None,
        "right": sum(v.choice == c.chosen_slot for _, c, v in valid) / len(calls) if calls else 0.0,
        "follows": sum(choice == slot for choice, slot in decided) / len(decided) if decided else None,
        "constant": constant_slot(choices, [c.chosen_slot for _, c, _ in valid]),
        "clipped": sum(
            c.completion_tokens >= cfg.max_completion_length and not parse_verdict(c.text, mode="strict").ok
            for _, c in calls
        ),
    }
    log.info(
        "preflight: sampled as the rollouts are (temperature %s, both orders, %d calls, %d valid): A-rate %s, "
        "right %.2f, verdict follows its own solution in %s",
        cfg.temperature,
        start["calls"],
        start["valid"],
        "-" if start["a_rate"] is None else f"{start['a_rate']:.2f}",
        start["right"],
        "-" if start["follows"] is None else f"{start['follows']:.2f}",
    )
    return start


def start_warnings(start: dict, cfg: RLConfig) -> list[str]:
    """What the sampled start says about the run (:func:`sampled_start`): a verdict that ignores the content
    (one slot whatever was chosen); a lean to one slot without the ``solution`` reward (the verdict and
    consistency rewards cancel their pull on the slot between a pair's two orders, and such a start has
    drifted to a constant verdict); a lean whose verdict does not follow its own solution (docs/findings.md);
    a start already right in most sampled calls with neither the difficulty filter nor ``strong_start`` (most
    groups score alike and teach nothing); sampled chains the cap clipped before their verdict (each such
    rollout scores as invalid)."""
    warnings, clipped = [], []
    if start.get("clipped"):
        clipped.append(
            f"{start['clipped']} of {start['calls']} sampled calls reached max_completion_length="
            f"{cfg.max_completion_length} before a verdict, and such rollouts score as invalid: raise "
            "max_completion_length"
        )
    a_rate, follows = start["a_rate"], start["follows"]
    if a_rate is None:
        return clipped
    slot, share = ("A", a_rate) if a_rate > 0.5 else ("B", 1 - a_rate)
    if start["constant"] and cfg.both_orders:
        warnings.append(
            f"every valid verdict named slot {start['constant']}, whichever response was chosen: the verdict "
            "ignores the content, and on the whole demo mix such a judge stayed constant through RL "
            "(docs/findings.md); distill it further, or try both_orders=false"
        )
    elif share > 0.6 and follows is not None and "solution" not in cfg.rewards:
        warnings.append(
            f"the sampled verdicts name slot {slot} in {share:.0%} of calls, and without the solution reward nothing "
            "but the KL holds the slot: such a start (B in 66%) drifted to a constant verdict (docs/findings.md); "
            "add solution to rewards"
        )
    if follows is not None and follows < 0.75 and share > 0.75 and cfg.both_orders:
        warnings.append(
            f"the verdict follows the judge's own solution in only {follows:.0%} of sampled calls: stage two has "
            "not moved such a start (docs/findings.md); distill with both_orders=true first"
        )
    if start["right"] > RLConfig.strong_start and cfg.strong_start is None and cfg.filter_pass_rate is None:
        warnings.append(
            f"the sampled verdicts are already right in {start['right']:.0%} of calls: most groups will score alike "
            "and teach nothing, and from such starts 16 steps over every pair moved right in both orders by at most "
            f"+0.01 (docs/findings.md); to train on the pairs it still misses: strong_start={RLConfig.strong_start}"
        )
    return warnings + clipped


def strong_start_settings(start: dict | None, cfg: RLConfig) -> dict:
    """The settings stage two trains with in place of ``cfg``'s on a start the preflight sampled right in more
    than ``strong_start`` of its calls (:data:`STRONG_START_SETTINGS`, never more steps than ``max_steps``);
    empty when it does not apply (``strong_start`` or the preflight off, or a difficulty filter set)."""
    if start is None or cfg.strong_start is None or cfg.filter_pass_rate is not None:
        return {}
    if start["right"] <= cfg.strong_start:
        return {}
    steps = STRONG_START_SETTINGS["max_steps"]
    return {**STRONG_START_SETTINGS, "max_steps": steps if cfg.max_steps == -1 else min(steps, cfg.max_steps)}


def _responses(pair, chosen_slot: str) -> tuple[str, str]:
    """The responses in slots A and B, with the chosen one in ``chosen_slot``."""
    shown = pair.shown(chosen_slot)
    return shown.response_a, shown.response_b


def constant_slot(choices: list[str], chosen: list[str]) -> str | None:
    """The slot every verdict names, when there are several verdicts and the chosen responses sat in both
    slots (a judge blind to the content); else None."""
    return choices[0] if len(choices) >= 4 and len(set(choices)) == 1 and len(set(chosen)) == 2 else None


def difficulty_filter(model, tokenizer, prompt, jobs, cfg: RLConfig, output: Path) -> list:
    """Keep the pairs whose pass rate over ``filter_samples`` sampled completions per order lies inside
    ``filter_pass_rate`` (possibly none); write the counts to ``filter.json``."""
    from reasrm.backends import GenerationConfig

    low, high = cfg.filter_pass_rate
    settings = GenerationConfig(
        max_new_tokens=cfg.max_completion_length, temperature=cfg.temperature, batch_size=64, seed=cfg.seed
    )
    k = cfg.filter_samples
    # Sampling is seeded per rank and batch: the same seed and process count give the same filter.
    judgements = judged(model, tokenizer, prompt, [job for job in jobs for _ in range(k)], settings, cfg.both_orders)
    kept, counts = [], {"too_easy": 0, "too_hard": 0, "kept": 0}
    for n, job in enumerate(jobs):
        calls = [c for j in judgements[n * k : (n + 1) * k] for c in j.calls]
        rate = sum(winner(parse_verdict(c.text, mode="strict").choice, c.chosen_slot) == "chosen" for c in calls)
        rate /= len(calls)
        reason = "too_hard" if rate < low else "too_easy" if rate > high else "kept"
        counts[reason] += 1
        if reason == "kept":
            kept.append(job)
    report = {"pass_rate": [low, high], "samples_per_order": k, "pairs": len(jobs), **counts}
    if processes.is_main():
        (output / "filter.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    log.info(
        "difficulty filter: kept %d of %d pairs (pass rate in [%g, %g]); %d too easy, %d too hard",
        counts["kept"],
        len(jobs),
        low,
        high,
        counts["too_easy"],
        counts["too_hard"],
    )
    return kept


def after_filter(kept: list, jobs: list, cfg: RLConfig, configured: RLConfig, output: Path) -> tuple:
    """The settings and pairs stage two trains with after the difficulty filter kept ``kept`` of ``jobs``:
    ``cfg`` on the kept pairs. When it kept none, a filter of the user's own (``configured`` has it) stops the
    run; the ``strong_start`` switch's filter falls back to ``configured`` on every pair (each sampled call
    was right: no pair to single out)."""
    if kept:
        return cfg, kept
    if configured.filter_pass_rate is not None:
        band = "[{}, {}]".format(*cfg.filter_pass_rate)
        raise ReasrmConfigError(f"'filter_pass_rate': no pair's pass rate is in {band} ({output}/filter.json)")
    if processes.is_main():
        log.warning("rl: the strong-start filter kept no pair; training on every pair as configured")
    return configured, jobs


def run(cfg: RLConfig) -> Path:
    """GRPO with the configured rewards; returns ``output/final`` (a judge checkpoint with its card)."""
    from reasrm.training.callbacks import HeldOutValidation

    where = trainable(cfg.model)
    card = read_card(cfg.model)
    prompt = judge_prompt(cfg.model, card, cfg.prompt_format, cfg.rubric)
    jobs = training_jobs(cfg.recipe, cfg.recipe_params, cfg.limit, cfg.seed)
    prompt.check([pair for pair, _ in jobs])
    heldout = []
    if cfg.validation_pairs:
        heldout = heldout_jobs(cfg.recipe, cfg.recipe_params, cfg.validation_pairs, cfg.seed)
    output = prepare_output(cfg.output, Path(cfg.output) / "rl.yaml", cfg, RESULT_KEYS, cfg.resume, cfg.overwrite)
    log.info("rl: %s", processes.launch_line(cfg.launch))
    resume = processes.on_main(lambda: last_checkpoint(output)) if cfg.resume else None
    tokenizer = load_tokenizer(cfg.model)
    args = grpo_args(cfg, output)
    model = load_model(cfg.model)
    # The preflight's sampled start, kept in preflight.json: a resumed run trains as the run it continues.
    sampled, start_file = None, output / "preflight.json"
    if cfg.preflight and not resume:
        sampled = preflight(model, tokenizer, prompt, jobs, cfg)
        processes.on_main(lambda: start_file.write_text(json.dumps(sampled, indent=2) + "\n", encoding="utf-8"))
    elif resume:
        sampled = processes.on_main(lambda: json.loads(start_file.read_text()) if start_file.exists() else None)
    configured, switched = cfg, strong_start_settings(sampled, cfg)
    if switched:
        cfg = replace(cfg, **switched)
        if processes.is_main():
            log.warning(
                "preflight: the sampled verdicts are already right in %.0f%% of calls (over strong_start=%s): "
                "training on the pairs it still misses, %s (strong_start=null: every pair)",
                100 * sampled["right"],
                configured.strong_start,
                overrides_text(switched),
            )
    if cfg.filter_pass_rate is not None:
        kept = difficulty_filter(model, tokenizer, prompt, jobs, cfg, output)
        cfg, jobs = after_filter(kept, jobs, cfg, configured, output)
    args.max_steps = cfg.max_steps
    rows = grpo_rows(prompt, jobs, cfg.both_orders, cfg.seed)
    log.info(
        "rl: %d pairs, %d prompts (%s); training %s",
        len(jobs),
        len(rows),
        "both slot orders" if cfg.both_orders else "one slot order each",
        where,
    )

    validation = None
    if heldout:
        # The distilled judge's own "after" figures, when its stage measured these pairs the same way.
        measured = dict(lineage(cfg.model, jobs_digest(heldout)))
        start = measured.get("after distill")
        start = start if start and start.get("max_new_tokens") == cfg.max_completion_length else None
        validation = HeldOutValidation(
            output / "validation.jsonl",
            heldout,
            prompt,
            tokenizer,
            cfg.max_completion_length,
            cfg.eval_steps,
            start=start,
        )
    trainer = grpo_trainer(cfg, args, model, tokenizer, rows, [validation] if validation else [])
    if validation:
        validation.trainer = trainer
    trainer.train(resume_from_checkpoint=resume)
    final = output / "final"
    trainer.save_model(str(final))  # every rank: the trainer gathers sharded weights, its main process writes
    if processes.is_main():
        tokenizer.save_pretrained(final)
        base = card.base_model if card else cfg.model
        new = write_card(final, prompt, [pair for pair, _ in jobs], base, cfg, inherited=card, launch=cfg.launch)
        log.info("trained judge: %s (prompt format %s, rubric pack %s)", final, new.prompt_format, new.rubric_pack)
        if validation:
            report(output, trainer.state.log_history, validation.records, cfg.model)
    processes.barrier()
    return final


def grpo_args(cfg: RLConfig, output: Path):
    """TRL's GRPOConfig for the stage. Made before the model is loaded: under DeepSpeed ZeRO-3 it is what
    makes ``from_pretrained`` load each rank's shard only."""
    from trl import GRPOConfig  # trl takes seconds to import: only a run pays for it

    vllm = {}
    if cfg.rollouts == "vllm":
        vllm = {
            "use_vllm": True,
            "vllm_mode": cfg.vllm.mode,
            "vllm_server_base_url": cfg.vllm.server_url,
            "vllm_tensor_parallel_size": cfg.vllm.tensor_parallel_size,
        }
        if cfg.vllm.gpu_memory_utilization is not None:
            vllm["vllm_gpu_memory_utilization"] = cfg.vllm.gpu_memory_utilization
    return GRPOConfig(
        num_generations=cfg.num_generations,
        per_device_train_batch_size=cfg.per_device_train_batch_size,
        gradient_accumulation_steps=cfg.gradient_accumulation_steps,  # TRL: generates all of a step's at once
        steps_per_generation=cfg.gradient_accumulation_steps * cfg.updates_per_generation,
        max_completion_length=cfg.max_completion_length,
        temperature=cfg.temperature,
        max_steps=cfg.max_steps,
        num_train_epochs=cfg.num_train_epochs,
        learning_rate=cfg.learning_rate,
        warmup_steps=cfg.warmup_steps,
        lr_scheduler_type=cfg.lr_scheduler_type,
        beta=cfg.beta,
        loss_type=cfg.loss_type,
        scale_rewards=cfg.scale_rewards,
        reward_weights=cfg.reward_weights,
        shuffle_dataset=False,  # grpo_rows already shuffled whole pairs; keeps both orders in one batch
        activation_checkpointing=cfg.gradient_checkpointing,  # transformers 5 name of gradient checkpointing
        log_completions=False,
        **vllm,
        **trainer_args(output, cfg),
    )


def grpo_trainer(cfg: RLConfig, args, model, tokenizer, rows: list[dict], callbacks: list):
    """TRL's GRPOTrainer on the stage's rows, rewards and settings (``rollouts``: TRL's own generate or
    its vLLM integration)."""
    from datasets import Dataset  # datasets and trl take seconds to import: only a run pays for them
    from trl import GRPOTrainer

    from reasrm.training.shared_prefix import SharedPrefixGRPOTrainer, trainer_class

    trainer = trainer_class(cfg.shared_prefix, SharedPrefixGRPOTrainer, GRPOTrainer)
    return trainer(
        model=model.train(),
        reward_funcs=[REWARDS[name] for name in cfg.rewards],
        args=args,
        train_dataset=Dataset.from_list(rows),
        processing_class=tokenizer,
        callbacks=callbacks or None,
    )


def report(output: Path, history: list[dict], records: list[dict], model: str | None) -> None:
    """``eval.json`` (the first and last validation), ``curves.png``, and the summary table in the log (with
    the base model and the distilled judge when the starting checkpoint's stage measured the same pairs)."""
    before, after = records[0], records[-1]
    (output / "eval.json").write_text(json.dumps({"before": before, "after": after}, indent=2) + "\n", "utf-8")
    rows = lineage(model, after["digest"])
    rows += [] if rows else [(f"start (step {before['step']})", before)]
    rows.append((f"after RL (step {after['step']})", after))
    plot_curves(output / "curves.png", history, records)
    log.info("held-out validation, %d pairs in both orders:\n%s", after["pairs"], "\n".join(table_lines(rows)))


def lineage(model: str | None, digest: str) -> list[tuple[str, dict]]:
    """The base model's and the distilled judge's figures from the ``eval.json`` next to a stage's
    ``final/`` checkpoint, when they were measured on the same validation pairs."""
    found = Path(model).parent / "eval.json" if model else None
    if found is None or not found.is_file():
        return []
    saved = json.loads(found.read_text(encoding="utf-8"))
    if saved.get("after", {}).get("digest") != digest:
        return []
    names = ("base model", "after distill") if (found.parent / "distill.yaml").is_file() else ("before", "after")
    return [(name, saved[key]) for name, key in zip(names, ("before", "after"), strict=True) if key in saved]


def plot_curves(path: Path, history: list[dict], records: list[dict]) -> None:
    """Reward per step, and the held-out figures per validation: ``curves.png``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (top, bottom) = plt.subplots(2, 1, figsize=(7, 6), sharex=True)
    steps = [h["step"] for h in history if "reward" in h]
    top.plot(steps, [h["reward"] for h in history if "reward" in h], marker=".", label="reward (mean)")
    top.set_ylabel("training reward")
    top.legend()
    at = [r["step"] for r in records]
    for key, name in (
        ("both_right", "right in both orders"),
        ("both_right_chance", "both orders, by chance"),
        ("valid", "valid"),
        ("a_rate", "A-rate"),
        ("flip_rate", "flip rate"),
    ):
        bottom.plot(
            at, [r.get(key) if r.get(key) is not None else float("nan") for r in records], marker="o", label=name
        )
    bottom.axhline(0.5, color="grey", linewidth=0.5)
    bottom.set_ylim(-0.02, 1.02)
    bottom.set_xlabel("optimizer step")
    bottom.set_ylabel("held-out validation")
    bottom.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
