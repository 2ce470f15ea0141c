"""Stage two: rewards by name, both orders in one generation batch, preflight, difficulty filter, validation."""

import json

import pytest

from reasrm.cli import main
from reasrm.config import load_config
from reasrm.errors import ReasrmConfigError
from reasrm.training.rewards import REWARDS, consistency_reward, format_score
from reasrm.training.rl import (
    RLConfig,
    after_filter,
    constant_slot,
    grpo_rows,
    start_warnings,
    strong_start_settings,
)

A = "<type>Reasoning</type><solution>2</solution><eval>A says 2</eval><answer>[[A]]</answer>"
B = A.replace("[[A]]", "[[B]]")
NONE = "<type>Reasoning</type><solution>2</solution>"


@pytest.mark.parametrize(
    ("completions", "label", "order", "expected"),
    [
        # One pair, two samples per order; label A in order AB means label B in order BA.
        ([A, A, B, B], "AABB", ["AB", "AB", "BA", "BA"], [1, 1, 1, 1]),  # right in both orders
        ([A, A, A, A], "AABB", ["AB", "AB", "BA", "BA"], [0, 0, 0, 0]),  # always "A": earns nothing
        ([B, B, B, B], "AABB", ["AB", "AB", "BA", "BA"], [0, 0, 0, 0]),  # always "B": earns nothing
        ([A, B, B, A], "AABB", ["AB", "AB", "BA", "BA"], [0.5, 0, 0.5, 0]),  # half the other order is right
        ([A, NONE, B, B], "AABB", ["AB", "AB", "BA", "BA"], [1, 0, 0.5, 0.5]),  # no verdict: wrong
        ([A, A], "AA", ["AB", "AB"], [0, 0]),  # the other order is not in the batch
    ],
)
def test_consistency_reward_pays_only_verdicts_that_survive_the_swap(completions, label, order, expected):
    pair = ["p"] * len(completions)
    assert consistency_reward(None, completions, list(label), pair, order) == expected


def test_consistency_reward_keeps_pairs_apart():
    rewards = consistency_reward(
        None, [A, B, A, A], ["A", "B", "A", "B"], ["p", "p", "q", "q"], ["AB", "BA", "AB", "BA"]
    )
    assert rewards == [1, 1, 0, 0]  # p right in both orders; q answered "A" twice


def _advantages(rewards, num_generations, scale):
    """TRL 1.16's GRPO advantages (``GRPOTrainer._generate_and_score_completions``), for one process."""
    import torch
    from trl.trainer.utils import nanstd

    rewards = torch.tensor(rewards)
    mean = rewards.view(-1, num_generations).mean(dim=1).repeat_interleave(num_generations)
    if scale == "group":
        std = nanstd(rewards.view(-1, num_generations), dim=1).repeat_interleave(num_generations)
    else:
        std = nanstd(rewards).expand_as(rewards)
    return (rewards - mean) / (std + 1e-4)


def _leaning(names, weights, scale):
    """TRL's advantages for a judge leaning to "B" on one pair (A-rate 0.25): right on 2 of 4 samples with the
    chosen response in A (order AB), on 4 of 4 in B (order BA); every completion well-formed."""
    completions = [A, A, B, B, B, B, B, B]
    label, pair, order = list("AAAABBBB"), ["p"] * 8, ["AB"] * 4 + ["BA"] * 4
    scores = [REWARDS[n](None, completions, label=label, pair=pair, order=order) for n in names]
    return _advantages([sum(w * s[i] for w, s in zip(weights, scores, strict=True)) for i in range(8)], 4, scale)


def test_consistency_moves_advantages_only_across_groups():
    shipped, verdict_only = (["verdict", "consistency", "format"], [1.0, 0.5, 0.1]), (["verdict"], [1.0])
    # Per group a completion is right or wrong, so consistency only widens the gap between the two reward
    # levels, and dividing by the group's std takes it out again: with scale_rewards: group it changes nothing.
    grouped = _leaning(*shipped, "group").tolist()
    assert grouped == pytest.approx(_leaning(*verdict_only, "group").tolist(), abs=1e-3)
    # Across groups it acts: under batch scaling the right "A" of the order the judge gets wrong half the
    # time gains more over its wrong "B" (its partners are all right) than verdict alone gives it.
    batch, plain = _leaning(*shipped, "batch"), _leaning(*verdict_only, "batch")
    assert batch[0] - batch[2] > plain[0] - plain[2] + 0.1


@pytest.mark.parametrize(
    ("text", "score"),
    [
        (A, 1.0),
        (NONE, 0.5),  # type and solution, no eval, no verdict
        ("<type>Chat</type><rubric>1. helpful <justify>why</justify></rubric><eval>x</eval><answer>[[B]]</answer>", 1),
        ("<type>Chat</type><rubric>1. helpful</rubric><eval>x</eval><answer>[[B]]</answer>", 0.75),  # no <justify>
        ("<type>Reasoning</type><rubric>r</rubric><eval>x</eval><answer>[[B]]</answer>", 0.75),  # needs <solution>
        ("<answer>[[A]]</answer>", 0.25),
        ("<eval>x</eval><answer>[[A]]</answer> and more", 0.25),  # text after the answer: not a strict verdict
        ("nothing", 0.0),
    ],
)
def test_format_score_counts_the_required_sections(text, score):
    assert format_score(text) == score
    assert REWARDS["format"](None, [[{"role": "assistant", "content": text}]]) == [score]


def test_verdict_reward_logs_the_rollouts_status_and_a_rate():
    logged = {}
    rewards = REWARDS["verdict"](None, [A, B, NONE, A], ["A", "A", "B", "B"], log_metric=logged.__setitem__)
    assert rewards == [1, -1, -1, -1]
    assert logged["rollouts/a_rate"] == pytest.approx(2 / 3) and logged["rollouts/missing"] == 0.25


def _jobs(n=6):
    from reasrm.training.common import training_jobs

    return training_jobs("demo", {"n": 40}, n, 0)


def test_grpo_rows_put_both_orders_of_a_pair_next_to_each_other():
    from reasrm.prompts import JudgePrompt

    prompt = JudgePrompt.create("compact")
    rows = grpo_rows(prompt, _jobs(), both_orders=True, seed=1)
    assert len(rows) == 12 and [r["order"] for r in rows] == ["AB", "BA"] * 6
    for first, second in zip(rows[::2], rows[1::2], strict=True):
        assert first["pair"] == second["pair"] and {first["label"], second["label"]} == {"A", "B"}
    assert [r["pair"] for r in rows[::2]] != [pair.id for pair, _ in _jobs()]  # pairs are shuffled, with the seed
    assert rows == grpo_rows(prompt, _jobs(), both_orders=True, seed=1)
    single = grpo_rows(prompt, _jobs(), both_orders=False, seed=1)
    assert len(single) == 6 and sorted(r["label"] for r in single) == ["A"] * 3 + ["B"] * 3


@pytest.mark.parametrize("per_device, accumulated", [(8, 1), (4, 2)])
def test_every_generation_batch_of_the_trainer_holds_whole_pairs(tiny_model, tmp_path, per_device, accumulated):
    """TRL's own sampler and dataloader, as `reasrm rl` configures them: each generation batch (what a reward
    function sees) holds both orders of each of its pairs, every prompt repeated num_generations times; with
    gradient accumulation too (TRL generates a whole step's completions at once)."""
    from datasets import Dataset
    from trl import GRPOConfig, GRPOTrainer

    from reasrm.models import load_model, load_tokenizer
    from reasrm.prompts import JudgePrompt

    rows = grpo_rows(JudgePrompt.create("compact"), _jobs(8), both_orders=True, seed=0)
    args = GRPOConfig(
        output_dir=str(tmp_path),
        num_generations=2,
        per_device_train_batch_size=per_device,
        gradient_accumulation_steps=accumulated,
        max_steps=4,
        shuffle_dataset=False,
        report_to="none",
        bf16=False,
    )
    trainer = GRPOTrainer(
        model=load_model(str(tiny_model)),
        reward_funcs=REWARDS["verdict"],
        args=args,
        train_dataset=Dataset.from_list(rows),
        processing_class=load_tokenizer(str(tiny_model)),
    )
    batches = [batch for batch, _ in zip(trainer.get_train_dataloader(), range(4), strict=False)]
    assert len(batches) == 4
    for batch in batches:
        seen = [(row["pair"], row["order"]) for row in batch]
        assert len(batch) == 8 and all(seen.count(key) == 2 for key in seen)  # num_generations copies
        for pair, _ in seen:
            assert (pair, "AB") in seen and (pair, "BA") in seen


def test_rl_config_problems_name_their_keys(capsys):
    assert main(["validate", "stages/rl.yaml", "num_generations=3"]) == 2
    err = capsys.readouterr().err
    assert (
        "per_device_train_batch_size: times gradient_accumulation_steps must be a multiple of 2 x "
        "num_generations: both orders of a pair (6)"
    ) in err
    assert (
        main(
            [
                "validate",
                "stages/rl.yaml",
                "reward_weights=[1.0]",
                "filter_pass_rate=[0.9,0.1]",
                "loss_type=ppo",
                "scale_rewards=std",
                "warmup_steps=2.5",
                "lr_scheduler_type=cosine_with_restarts",
            ]
        )
        == 2
    )
    err = capsys.readouterr().err
    assert "reward_weights: gives 1 weights for 4 rewards (verdict, consistency, format, solution)" in err
    assert "filter_pass_rate: must be [low, high] with 0 <= low <= high <= 1, got [0.9, 0.1]" in err
    assert "loss_type: must be one of dapo, grpo, dr_grpo, bnpo, got 'ppo'" in err
    assert "scale_rewards: must be one of group, batch, none, got 'std'" in err
    assert "warmup_steps: must be a whole number of steps or a share in [0, 1), got 2.5" in err
    assert (
        "lr_scheduler_type: must be one of linear, constant_with_warmup, cosine, constant, got 'cosine_with_restarts'"
    ) in err
    for warmup in ("3", "0.25", "0"):
        assert main(["validate", "stages/rl.yaml", f"warmup_steps={warmup}"]) == 0
    assert (
        main(["validate", "stages/rl.yaml", "both_orders=false", "num_generations=4", "per_device_train_batch_size=4"])
        == 0
    )
    assert main(["validate", "--config-only", "stages/presets/rm-r1/qwen2.5-7b-instruct/rl.yaml"]) == 0


def _rl(tiny_model, tmp_path, *overrides):
    return load_config(
        "stages/rl.yaml",
        [
            f"model={tiny_model}",
            "recipe_params={n: 60}",
            "limit=4",
            "max_steps=2",
            "num_generations=2",
            "per_device_train_batch_size=4",
            "gradient_accumulation_steps=1",
            "max_completion_length=8",
            "prompt_format=compact",
            f"output={tmp_path / 'rl'}",
            *overrides,
        ],
        schema=RLConfig,
    )


@pytest.mark.parametrize(
    "choices, chosen, constant",
    [
        (["B"] * 8, ["A", "B"] * 4, "B"),
        (["A"] * 5, ["A", "A", "B", "A", "B"], "A"),
        (["B"] * 8, ["B"] * 8, None),  # every chosen response in B: a right judge says B too
        (["A", "B"] * 4, ["A", "B"] * 4, None),
        (["B"] * 3, ["A", "B", "A"], None),  # too few verdicts to tell
        ([], ["A", "B"], None),
    ],
)
def test_constant_slot_names_a_judge_blind_to_the_content(choices, chosen, constant):
    assert constant_slot(choices, chosen) == constant


WITHOUT, WITH = "verdict,consistency,format", "verdict,consistency,format,solution"


@pytest.mark.parametrize(
    "a_rate, follows, constant, rewards, warned",
    [
        (0.5, 0.9, None, WITHOUT, []),
        (0.34, 0.9, None, WITHOUT, ["name slot B in 66% of calls", "add solution to rewards"]),
        (0.34, 0.9, None, WITH, []),
        (0.34, None, None, WITHOUT, []),  # no solution to reward: the pairs are not of that kind
        (0.9, 0.5, None, WITH, ["follows the judge's own solution in only 50%"]),
        (0.0, 0.5, "B", WITH, ["ignores the content", "in only 50%"]),
        (0.7, 0.5, None, WITH, []),  # within 0.5 +/- 0.25
        (None, None, None, WITHOUT, []),  # no valid verdict sampled
    ],
)
def test_preflight_warns_on_a_sampled_start_that_leans_to_one_slot(a_rate, follows, constant, rewards, warned):
    weights = ",".join("1" * len(rewards.split(",")))
    cfg = load_config("stages/rl.yaml", [f"rewards=[{rewards}]", f"reward_weights=[{weights}]"], schema=RLConfig)
    start = {"calls": 16, "valid": 16, "a_rate": a_rate, "right": 0.5, "follows": follows, "constant": constant}
    text = " | ".join(start_warnings(start, cfg))
    assert all(w in text for w in warned) and bool(text) == bool(warned), text


@pytest.mark.parametrize("clipped, warned", [(0, False), (3, True)])
def test_preflight_warns_when_sampled_chains_reach_the_cap_before_a_verdict(clipped, warned):
    cfg = load_config("stages/rl.yaml", ["max_completion_length=128"], schema=RLConfig)
    start = {"calls": 64, "valid": 64 - clipped, "a_rate": 0.5, "right": 0.9, "follows": 1.0, "constant": None}
    text = " | ".join(start_warnings({**start, "clipped": clipped}, cfg))
    assert ("3 of 64 sampled calls reached max_completion_length=128" in text) == warned, text
    assert bool(text) == warned


@pytest.mark.parametrize(
    "right, overrides, hinted",
    [
        (0.94, ["strong_start=null"], True),
        (0.86, ["strong_start=null"], False),
        (0.94, [], False),  # the shipped strong_start trains on the pairs it misses
        (0.94, ["strong_start=null", "filter_pass_rate=[0.0,0.75]"], False),  # so does the filter
    ],
)
def test_preflight_names_strong_start_for_a_start_already_right_without_it(right, overrides, hinted):
    cfg = load_config("stages/rl.yaml", overrides, schema=RLConfig)
    start = {"calls": 64, "valid": 64, "a_rate": 0.53, "right": right, "follows": 0.94, "constant": None}
    text = " | ".join(start_warnings(start, cfg))
    assert (f"already right in {right:.0%} of calls" in text and "strong_start=0.9" in text) == hinted
    assert bool(text) == hinted, text


SWITCHED = {"filter_pass_rate": [0.0, 0.75], "filter_samples": 2, "max_steps": 8}


@pytest.mark.parametrize(
    "right, overrides, settings",
    [
        (0.94, [], SWITCHED),
        (0.90, [], {}),  # not over the threshold
        (0.86, [], {}),
        (0.86, ["strong_start=0.8"], SWITCHED),
        (0.94, ["strong_start=null"], {}),
        (0.94, ["filter_pass_rate=[0.1,0.9]"], {}),  # the user's own filter stands
        (0.94, ["max_steps=4"], {**SWITCHED, "max_steps": 4}),  # never more steps than configured
        (0.94, ["max_steps=-1"], SWITCHED),
        (None, [], {}),  # no preflight, no sampled start
    ],
)
def test_strong_start_trains_a_start_already_right_on_the_pairs_it_misses(right, overrides, settings):
    cfg = load_config("stages/rl.yaml", overrides, schema=RLConfig)
    start = None if right is None else {"calls": 64, "valid": 64, "a_rate": 0.5, "right": right, "follows": 1.0}
    assert strong_start_settings(start, cfg) == settings


def test_a_strong_start_filter_that_keeps_no_pair_trains_every_pair_as_configured(tmp_path):
    """Every sampled call right: the switch's filter singles out nothing, and the run is the configured one
    (every pair, its own steps); a filter of the user's own that keeps nothing stops with the band named."""
    from dataclasses import replace

    configured = load_config("stages/rl.yaml", [], schema=RLConfig)
    start = {"calls": 64, "valid": 64, "a_rate": 0.5, "right": 1.0, "follows": 1.0}
    switched = replace(configured, **strong_start_settings(start, configured))
    jobs = ["pair 1", "pair 2", "pair 3"]
    assert switched.max_steps == 8 and configured.max_steps == 16
    assert after_filter(["pair 2"], jobs, switched, configured, tmp_path) == (switched, ["pair 2"])
    assert after_filter([], jobs, switched, configured, tmp_path) == (configured, jobs)
    own = load_config("stages/rl.yaml", ["filter_pass_rate=[0.1,0.9]"], schema=RLConfig)
    with pytest.raises(ReasrmConfigError, match=r"'filter_pass_rate': no pair's pass rate is in \[0.1, 0.9\]"):
        after_filter([], jobs, own, own, tmp_path)


@pytest.mark.slow  # the verdict model trains for a while on 2 cores
def test_sampled_start_reads_each_preflight_pair_in_both_orders(verdict_model, tmp_path):
    """The preflight's sampled pass on a real model whose every chain names "A": each pair judged in both
    orders at the training temperature, the verdicts read against their slots, the content-blind judge named."""
    from reasrm.models import load_model, load_tokenizer
    from reasrm.training.common import training_jobs
    from reasrm.training.rl import judge_prompt, read_card, sampled_start

    cfg = _rl(verdict_model, tmp_path, "max_completion_length=48")
    prompt = judge_prompt(cfg.model, read_card(cfg.model), cfg.prompt_format, cfg.rubric)
    sample = training_jobs(cfg.recipe, cfg.recipe_params, 3, cfg.seed)
    start = sampled_start(load_model(cfg.model), load_tokenizer(cfg.model), prompt, sample, cfg)
    assert start["calls"] == 24 and start["valid"] >= 20  # sampled at temperature 1: a chain may run out of room
    assert start["a_rate"] == 1.0 and start["constant"] == "A" and start["follows"] is None
    assert abs(start["right"] - 0.5) <= (24 - start["valid"]) / 24  # "A" is right in half the calls
    assert start["clipped"] <= 24 - start["valid"]
    assert "ignores the content" in start_warnings(start, cfg)[0]


def test_preflight_refuses_a_model_that_writes_no_verdict(tiny_model, tmp_path):
    from reasrm.training.rl import run

    with pytest.raises(
        ReasrmConfigError,
        match=r"wrote no valid verdict on 4 sampled training prompts .*"
        r"Distill it first \(reasrm distill\)",
    ):
        run(_rl(tiny_model, tmp_path))
    assert not (tmp_path / "rl" / "checkpoint-1").exists()


def test_difficulty_filter_drops_pairs_outside_the_band(tiny_model, tmp_path):
    from reasrm.training.rl import run

    # The random model never writes a verdict: every pass rate is 0, below any band above 0.
    with pytest.raises(ReasrmConfigError, match=r"filter_pass_rate': no pair's pass rate is in \[0.1, 0.9\]"):
        run(_rl(tiny_model, tmp_path, "preflight=false", "filter_pass_rate=[0.1,0.9]", "filter_samples=2"))
    report = json.loads((tmp_path / "rl" / "filter.json").read_text())
    assert report == {
        "pass_rate": [0.1, 0.9],
        "samples_per_order": 2,
        "pairs": 4,
        "too_easy": 0,
        "too_hard": 4,
        "kept": 0,
    }


def test_rl_validates_on_held_out_pairs_and_draws_curves(tiny_model, tmp_path):
    from reasrm.training.rl import run

    final = run(_rl(tiny_model, tmp_path, "preflight=false", "validation_pairs=3", "eval_steps=1"))
    records = [json.loads(line) for line in (final.parent / "validation.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [0, 1, 2]
    for r in records:
        assert r["pairs"] == 3 and r["calls"] == 6 and len(r["right"]) == 3
        assert {"valid", "a_rate", "statuses", "by_domain", "completion_tokens", "digest"} <= set(r)
    assert (final.parent / "curves.png").stat().st_size > 1000
    saved = json.loads((final.parent / "eval.json").read_text())
    assert saved["before"]["step"] == 0 and saved["after"]["step"] == 2
    history = json.loads((final.parent / "checkpoint-2" / "trainer_state.json").read_text())["log_history"]
    assert [h["step"] for h in history if "validation/valid" in h] == [0, 1, 2]
    assert any("rewards/consistency_reward/mean" in h and "rollouts/missing" in h for h in history)


@pytest.mark.parametrize(
    "schedule, rates",
    [("linear", [0.0, 1.0, 0.5]), ("constant_with_warmup", [0.0, 1.0, 1.0])],
)
def test_rl_learning_rate_warms_up_then_follows_the_schedule(tiny_model, tmp_path, schedule, rates):
    from reasrm.training.rl import run

    final = run(
        _rl(
            tiny_model,
            tmp_path,
            "preflight=false",
            "validation_pairs=0",
            "max_steps=3",
            "warmup_steps=1",
            "learning_rate=1e-3",
            f"lr_scheduler_type={schedule}",
        )
    )
    history = json.loads((final.parent / "checkpoint-3" / "trainer_state.json").read_text())["log_history"]
    assert [h["learning_rate"] for h in history if "learning_rate" in h] == pytest.approx([r * 1e-3 for r in rates])


def test_rl_table_starts_from_the_distilled_judges_own_measurement(tiny_model, tmp_path, caplog):
    """distill measures the base model and its judge on held-out pairs (eval.json); rl from that judge on the
    same pairs reuses the judge's figures as its start and ends with base -> distill -> RL in one table."""
    import logging

    from reasrm.training.distill import DistillConfig
    from reasrm.training.distill import run as distill
    from reasrm.training.rl import run

    cfg = load_config(
        "stages/distill.yaml",
        [
            f"model={tiny_model}",
            "recipe_params={n: 60}",
            "limit=4",
            "max_steps=1",
            "validation_pairs=2",
            "validation_max_new_tokens=8",
            f"output={tmp_path / 'distill'}",
        ],
        schema=DistillConfig,
    )
    final = distill(cfg)
    measured = json.loads((tmp_path / "distill" / "eval.json").read_text())
    assert measured["before"]["pairs"] == measured["after"]["pairs"] == 2
    with caplog.at_level(logging.INFO, logger="reasrm"):
        run(
            _rl(
                tiny_model,
                tmp_path,
                f"model={final}",
                "prompt_format=null",
                "preflight=false",
                "validation_pairs=2",
                "eval_steps=0",
                "max_steps=1",
            )
        )
    records = [json.loads(line) for line in (tmp_path / "rl" / "validation.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [0, 1]
    assert {k: v for k, v in records[0].items() if k != "step"} == {
        k: v for k, v in measured["after"].items() if k != "step"
    }
    table = next(
        r.getMessage() for r in caplog.records if "held-out validation" in r.getMessage() and "RL" in r.getMessage()
    )
    assert [line.split()[0] for line in table.splitlines()[2:]] == ["base", "after", "after"]
    assert "after distill" in table and "after RL (step 1)" in table


def test_shared_prefix_loss_gives_trls_log_probs_and_gradients(tiny_model, tmp_path):
    """`shared_prefix: true` runs each group's prompt once and its completions on the prompt's KV cache.
    On a batch shaped like TRL's (left-padded prompts of different lengths, each repeated for its group,
    right-padded completions), log-probs, entropies and every weight's gradient equal TRL's own pass, with a
    group's rows together or apart."""
    import torch
    from accelerate.utils import AutocastKwargs
    from trl import GRPOTrainer

    from reasrm.models import load_model, load_tokenizer
    from reasrm.prompts import JudgePrompt
    from reasrm.training.rl import grpo_args, grpo_trainer
    from reasrm.training.shared_prefix import SharedPrefixGRPOTrainer, _groups

    overrides = [
        f"model={tiny_model}",
        "num_generations=3",
        "per_device_train_batch_size=6",
        "gradient_accumulation_steps=1",
        f"output={tmp_path}",
    ]
    cfg = load_config("stages/rl.yaml", overrides, schema=RLConfig)
    tokenizer = load_tokenizer(str(tiny_model))
    rows = grpo_rows(JudgePrompt.create("compact"), _jobs(2), both_orders=False, seed=0)
    model = load_model(str(tiny_model), dtype=torch.float32)
    trainer = grpo_trainer(cfg, grpo_args(cfg, tmp_path), model, tokenizer, rows, [])
    assert isinstance(trainer, SharedPrefixGRPOTrainer)
    trainer.accelerator.autocast_handler = AutocastKwargs(enabled=False)  # exact fp32 on every host (AMX: bf16)
    torch.manual_seed(0)
    prompts = [torch.randint(5, 1000, (n,)) for n in (9, 6)]
    length, width = 9, 5
    input_ids = torch.zeros(6, length + width, dtype=torch.long)
    mask = torch.zeros_like(input_ids)
    for row in range(6):
        prompt, done = prompts[row // 3], (5, 3, 1)[row % 3]  # completions of 5, 3 and 1 tokens
        input_ids[row, length - len(prompt) : length], mask[row, length - len(prompt) : length] = prompt, 1
        input_ids[row, length : length + done], mask[row, length : length + done] = torch.randint(5, 1000, (done,)), 1
    input_ids, mask = input_ids.to(model.device), mask.to(model.device)

    def run(method):
        model.zero_grad()
        logps, entropies, _ = method(trainer, model, input_ids, mask, width, compute_entropy=True)
        (logps * mask[:, length:]).sum().backward()
        return logps.detach(), entropies.detach(), [p.grad.clone() for p in model.parameters()]

    ours = run(SharedPrefixGRPOTrainer._get_per_token_logps_and_entropies)
    trls = run(GRPOTrainer._get_per_token_logps_and_entropies)
    completion = mask[:, length:].bool()
    assert torch.allclose(ours[0][completion], trls[0][completion], atol=1e-5)
    assert torch.allclose(ours[1][completion], trls[1][completion], atol=1e-5)
    for mine, theirs in zip(ours[2], trls[2], strict=True):
        assert torch.allclose(mine, theirs, atol=1e-6, rtol=1e-4)
    assert any(g.abs().sum() > 0 for g in ours[2])
    # With gradient_accumulation_steps > 1 TRL shuffles a step's rows before its loss passes: a group's rows
    # are then apart, and still share one prompt pass.
    mixed = torch.tensor([3, 0, 4, 1, 5, 2], device=model.device)
    input_ids, mask = input_ids[mixed], mask[mixed]
    first, rows = _groups(input_ids[:, :length], mask[:, :length])
    assert len(first) == 2  # two prompts, each of three rows
    assert (rows[[1, 3, 5]] == rows[1]).all() and (rows[[0, 2, 4]] == rows[0]).all()
    shuffled = run(SharedPrefixGRPOTrainer._get_per_token_logps_and_entropies)
    assert torch.allclose(shuffled[0][completion[mixed]], trls[0][mixed][completion[mixed]], atol=1e-5)
    for mine, theirs in zip(shuffled[2], trls[2], strict=True):
        assert torch.allclose(mine, theirs, atol=1e-6, rtol=1e-4)


@pytest.mark.parametrize(
    "completion, label, expected",
    [
        (
            "<type>Reasoning</type><solution>83 is larger than 47.</solution><eval>x</eval><answer>[[A]]</answer>",
            "A",
            1.0,
        ),
        (
            "<type>Reasoning</type><solution>47 is larger than 83.</solution><eval>x</eval><answer>[[A]]</answer>",
            "A",
            -1.0,
        ),
        (
            "<type>Reasoning</type><solution>83 is larger than 47.</solution><eval>x</eval><answer>[[B]]</answer>",
            "A",
            1.0,
        ),
        ("<answer>[[A]]</answer>", "A", 0.0),  # no solution: nothing to reward
    ],
)
def test_solution_reward_pays_a_solution_that_names_the_labelled_response(completion, label, expected):
    """The verdict does not matter here (row 3): the reward is for the reasoning, checked against the label."""
    from reasrm.training.rewards import solution_reward

    assert solution_reward([None], [completion], [label], ["83 is larger."], ["47 is larger."]) == [expected]
