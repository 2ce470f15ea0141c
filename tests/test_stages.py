"""The judge-training stages on the tiny model: verdict reward, teacher passes, distill (SFT) and rl (GRPO)."""

import json

import pytest

from reasrm.card import JudgeCard
from reasrm.cli import main
from reasrm.config import load_config
from reasrm.errors import ReasrmConfigError, ReasrmDataError
from reasrm.prompts import JudgePrompt
from reasrm.rewards import verdict_reward
from reasrm.training.distill import DistillConfig
from reasrm.training.rl import RLConfig
from reasrm.training.teacher import TeacherConfig, generate_chains

OK_A = "<type>Chat</type><eval><quote_B><answer>[[B]]</answer></quote_B></eval><answer>[[A]]</answer>"


@pytest.mark.parametrize(
    ("completion", "label", "reward"),
    [
        (OK_A, "A", 1.0),
        (OK_A, "B", -1.0),
        ([{"role": "assistant", "content": OK_A}], "A", 1.0),  # TRL's conversational completions
        ("<answer>[[A]]</answer><answer>[[A]]</answer>", "A", -1.0),  # several answers: strict says no
        ("<answer>[[A]]</answer> trailing", "A", -1.0),
        ("no verdict at all", "A", -1.0),
        ("<think>[[B]]</think><answer>[[B]]</answer>", "B", 1.0),
    ],
)
def test_verdict_reward_uses_the_strict_grammar(completion, label, reward):
    assert verdict_reward(prompts=[None], completions=[completion], label=[label]) == [reward]


def _distill(tiny_model, tmp_path, *overrides):
    return load_config("stages/distill.yaml", [f"model={tiny_model}", "limit=4", "max_steps=1",
                                               "per_device_train_batch_size=2", f"output={tmp_path / 'distill'}",
                                               *overrides], schema=DistillConfig)  # fmt: skip


def test_model_teacher_two_passes_and_resume(tiny_model, tmp_path):
    from reasrm.training.common import training_jobs

    jobs = training_jobs("demo", {"n": 4}, 2, 0)
    cfg = TeacherConfig(backend="hf", model=str(tiny_model))
    cfg.generation.max_new_tokens = 4
    path = tmp_path / "chains.jsonl"
    records = generate_chains(jobs, JudgePrompt.create("rm-r1-instruct"), cfg, path)
    # The random model writes no verdicts: each pair went to the hinted second pass, and was dropped there.
    assert [(r["pass"], r["kept"], r["status"]) for r in records] == [(2, False, "missing")] * 2
    assert "Note for the annotator" not in json.dumps(records[0]["messages"])  # the hint never reaches SFT
    path.write_text(path.read_text().splitlines()[0] + "\n")  # as if interrupted after the first pair
    cfg.backend = "hf-broken"  # a resumed run must not regenerate the finished pair...
    with pytest.raises(ReasrmConfigError, match="unknown backend 'hf-broken'"):  # ...and does ask for the other
        generate_chains(jobs, JudgePrompt.create("rm-r1-instruct"), cfg, path)
    assert len(path.read_text().splitlines()) == 1


def test_distill_then_rl_write_judges_with_cards(tiny_model, tmp_path):
    from reasrm.judge import Judge
    from reasrm.training.distill import run as distill
    from reasrm.training.rl import run as rl

    final = distill(_distill(tiny_model, tmp_path, "recipe=support", "rubric=support"))
    card = JudgeCard.load(final)
    assert (card.prompt_format, card.rubric_pack, card.rubric_version) == ("compact", "support", 1)
    assert card.data_recipe == "support" and len(card.config_digest) == 16
    chains = [json.loads(line) for line in (final.parent / "chains.jsonl").read_text().splitlines()]
    assert len(chains) == 4 and all(c["kept"] for c in chains)
    assert sorted(c["chosen_slot"] for c in chains) == ["A", "A", "B", "B"]  # balanced slots

    overrides = [f"model={final}", "recipe=support", "limit=2", "max_steps=1", "num_generations=2",
                 "per_device_train_batch_size=4", "max_completion_length=8", "preflight=false",
                 f"output={tmp_path / 'rl'}"]  # fmt: skip
    cfg = load_config("stages/rl.yaml", overrides, schema=RLConfig)
    judged = rl(cfg)
    card = JudgeCard.load(judged)
    assert (card.rubric_pack, card.rubric_packs, card.data_recipe) == ("support", {"support": 1}, "support")
    judge = Judge.from_pretrained(str(judged))
    assert judge.prompt.default_rubric == "support" and judge.prompt.prompt_format.id == "compact"


def test_stage_outputs_are_never_clobbered_silently(tiny_model, tmp_path):
    from reasrm.training.distill import prepare

    cfg = _distill(tiny_model, tmp_path)
    prepare(cfg)
    (tmp_path / "distill" / "chains.jsonl").write_text("")
    with pytest.raises(ReasrmConfigError, match="holds a previous run: continue it with resume=true"):
        prepare(cfg)
    with pytest.raises(ReasrmConfigError, match=r"cannot resume .*'limit' was 4"):
        prepare(_distill(tiny_model, tmp_path, "resume=true", "limit=3"))
    prepare(_distill(tiny_model, tmp_path, "overwrite=true"))
    assert not (tmp_path / "distill" / "chains.jsonl").exists()  # replaced: only the saved config is there
    foreign = tmp_path / "mine"
    (foreign / "notes.txt").parent.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    with pytest.raises(ReasrmConfigError, match="was not written by reasrm"):
        prepare(_distill(tiny_model, tmp_path, f"output={foreign}", "overwrite=true"))
    assert (foreign / "notes.txt").read_text() == "keep me"


def test_teacher_chains_are_trained_on_by_distill_resume(tiny_model, tmp_path):
    """`reasrm teacher CONFIG` then `reasrm distill CONFIG resume=true` (what the teacher advertises): the
    distill run trains on the teacher's chains without asking the teacher again."""
    args = ["stages/distill.yaml", f"model={tiny_model}", "limit=4", "max_steps=1", "per_device_train_batch_size=2",
            f"output={tmp_path / 'distill'}"]  # fmt: skip
    assert main(["teacher", *args]) == 0
    path = tmp_path / "distill" / "chains.jsonl"
    assert len(path.read_text().splitlines()) == 4 and (tmp_path / "distill" / "distill.yaml").is_file()
    # Mark one chain: a teacher asked again would write it afresh, without the mark.
    marked = path.read_text().replace("</eval>", "(kept from the teacher run)</eval>", 1)
    path.write_text(marked)
    assert main(["distill", *args, "resume=true"]) == 0
    assert path.read_text() == marked
    assert JudgeCard.load(tmp_path / "distill" / "final").data_recipe == "demo"


def test_teacher_resume_with_changed_settings_is_refused(tmp_path, capsys):
    """Chains of one pack and size are never appended to by a run with another (exit 2, the file unchanged)."""
    args = ["stages/distill.yaml", "limit=4", "validation_pairs=0", f"output={tmp_path}"]
    assert main(["teacher", *args]) == 0
    before = (tmp_path / "chains.jsonl").read_text()
    for changed in (["limit=8"], ["rubric=chat"], ["prompt_format=rm-r1-instruct"]):
        assert main(["teacher", *args, *changed, "resume=true"]) == 2
        key = changed[0].split("=")[0]
        assert f"cannot resume {tmp_path}: '{key}' was" in capsys.readouterr().err
    assert (tmp_path / "chains.jsonl").read_text() == before


def test_distill_with_no_kept_chains_says_why(tiny_model, tmp_path):
    from reasrm.training.distill import run as distill

    cfg = _distill(tiny_model, tmp_path, "teacher.backend=hf", f"teacher.model={tiny_model}", "limit=1",
                   "teacher.generation.max_new_tokens=2", "teacher.hint_pass=false")  # fmt: skip
    with pytest.raises(ReasrmDataError, match="the teacher kept no chains"):
        distill(cfg)


def test_stage_configs_validate_and_report_problems(capsys):
    assert main(["validate", "stages/distill.yaml"]) == 0
    assert main(["validate", "stages/rl.yaml"]) == 0
    assert main(["validate", "stages/rl.yaml", "num_generations=3", "stage=rl", "limit=0"]) == 2
    err = capsys.readouterr().err
    assert (
        "per_device_train_batch_size: must be a multiple of 2 x num_generations: both orders of a pair (6), got 32"
        in err
    )
    assert "override 'limit=0': limit: must be >= 1, got 0" in err
    assert main(["distill", "stages/distill.yaml", "teacher.backend=gpt"]) == 2
    assert "teacher.backend: must be one of template, hf, vllm, openai, got 'gpt'" in capsys.readouterr().err
    assert main(["validate", "stages/rl.yaml", "rubric=suport"]) == 2
    assert "rubric: unknown rubric pack 'suport' (did you mean 'support'?)" in capsys.readouterr().err
    assert main(["validate", "stages/rl.yaml", "rewards=[verdict,consistensy]"]) == 2
    assert "rewards: unknown reward 'consistensy'; valid names: verdict, consistency, format" in capsys.readouterr().err


# A chat template without generation markers and unlike SmolLM2's (Zephyr-style turns).
PLAIN_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}</s>\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)


@pytest.mark.parametrize("template", ["smollm2", "plain"])
def test_sft_loss_covers_exactly_the_assistant_reply(tiny_model, tmp_path, template):
    """The training labels of a rendered example are the chain and the end-of-turn token, token for token:
    the system and user turns and the assistant header carry no loss (RM-R1's preprocessing leaked the
    header into the target)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from reasrm.training.distill import sft_examples, sft_trainer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    end = "<|im_end|>"
    if template == "plain":
        tokenizer.chat_template, end = PLAIN_TEMPLATE, "</s>"
    chain = "<type>Reasoning</type>\n<solution>83 is larger.</solution>\n<answer>[[A]]</answer>"
    messages = [{"role": "system", "content": "Judge."}, {"role": "user", "content": "Which is larger, 83 or 47?"}]
    examples = sft_examples([{"kept": True, "messages": messages, "chain": chain}])
    cfg = DistillConfig(model=str(tiny_model), output=str(tmp_path), max_steps=1)
    trainer = sft_trainer(cfg, AutoModelForCausalLM.from_pretrained(tiny_model), tokenizer, examples, tmp_path)
    batch = trainer.data_collator([trainer.train_dataset[0]])
    ids, labels = batch["input_ids"][0].tolist(), batch["labels"][0].tolist()
    trained = [i for i, label in zip(ids, labels, strict=True) if label != -100]
    assert [label for label in labels if label != -100] == trained  # labels are the input ids where trained
    assert tokenizer.decode(trained).rstrip("\n") == chain + end  # the reply and its end-of-turn token
    prompt = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    untrained = tokenizer.decode([i for i, label in zip(ids, labels, strict=True) if label == -100])
    assert untrained == prompt  # system, user and the assistant header: no loss
