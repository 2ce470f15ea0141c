"""The judge-training stages on the tiny model: verdict reward, teacher passes, distill (SFT) and rl (GRPO)."""

import json

import pytest
import torch

from reasrm.backends import Generation
from reasrm.card import JudgeCard
from reasrm.cli import main
from reasrm.config import load_config
from reasrm.errors import ReasrmConfigError, ReasrmDataError
from reasrm.models import load_model
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
    return load_config(
        "stages/distill.yaml",
        [
            f"model={tiny_model}",
            "limit=4",
            "max_steps=1",
            "per_device_train_batch_size=2",
            f"output={tmp_path / 'distill'}",
            *overrides,
        ],
        schema=DistillConfig,
    )


def test_model_teacher_two_passes_and_resume(tiny_model, tmp_path):
    from reasrm.training.common import training_jobs

    jobs = training_jobs("demo", {"n": 4}, 2, 0)
    cfg = TeacherConfig(backend="hf", model=str(tiny_model))
    cfg.generation.max_new_tokens = 4
    path = tmp_path / "chains.jsonl"
    records = generate_chains(jobs, JudgePrompt.create("rm-r1-instruct"), cfg, path)
    # The random model writes no verdicts: each pair went to the second pass, and was dropped there.
    assert [(r["pass"], r["kept"], r["status"], r["chains"]) for r in records] == [(2, False, "missing", [])] * 2
    assert [[a["pass"] for a in r["attempts"]] for r in records] == [[1, 2]] * 2
    assert "Note for the annotator" not in json.dumps(records[0]["messages"])  # the hint never reaches SFT
    report = json.loads((tmp_path / "teacher_report.json").read_text())
    assert report["passes"]["pass 1"]["rejected"] == {"missing": 2} and report["pairs_kept"] == 0
    assert report["this_run"]["requests"] == 4 and report["this_run"]["cache_hits"] == 0
    path.write_text(path.read_text().splitlines()[0] + "\n")  # as if interrupted after the first pair
    cfg.backend = "hf-broken"  # a resumed run must not regenerate the finished pair...
    with pytest.raises(ReasrmConfigError, match="unknown backend 'hf-broken'"):  # ...and does ask for the other
        generate_chains(jobs, JudgePrompt.create("rm-r1-instruct"), cfg, path)
    assert len(path.read_text().splitlines()) == 1
    # Over a complete reply cache, the same chains come back with no request at all.
    cfg.backend = "hf"
    again = generate_chains(jobs, JudgePrompt.create("rm-r1-instruct"), cfg, path, resume=False)
    assert again == records
    report = json.loads((tmp_path / "teacher_report.json").read_text())
    assert report["this_run"]["requests"] == 0 and report["this_run"]["cache_hits"] == 4


CHAT = (
    "<type>Chat</type><rubric>1. accuracy <justify>because</justify></rubric><eval>{e}</eval><answer>[[{v}]]</answer>"
)


@pytest.mark.parametrize(
    ("text", "asks_sections", "hinted", "status"),
    [
        (CHAT.format(e="A is right", v="A"), True, False, "ok"),
        (CHAT.format(e="A is right", v="B"), True, False, "wrong_verdict"),
        ("<answer>[[A]]</answer>", True, False, "missing_sections"),  # the prompt asked for <type> and the rest
        ("<answer>[[A]]</answer>", False, False, "ok"),  # e.g. rm-r1-reasoning asks for the verdict only
        ("<type>Chat</type><eval>x</eval><answer>[[A]]</answer>", True, False, "missing_sections"),  # no rubric
        ("<type>Chat</type><rubric>r</rubric><eval>x</eval><answer>[[A]]</answer>", True, False, "missing_sections"),
        ("<type>Reasoning</type><solution>4</solution><eval>x</eval><answer>[[A]]</answer>", True, False, "ok"),
        ("<answer>[[A]]</answer><answer>[[A]]</answer>", False, False, "multiple"),
        ("no verdict", False, False, "missing"),
        (CHAT.format(e="As instructed, A wins", v="A"), True, True, "mentions_hint"),
        (CHAT.format(e="As instructed, A wins", v="A"), True, False, "ok"),  # pass 1 had no hint to give away
    ],
)
def test_teacher_verifies_chains(text, asks_sections, hinted, status):
    from reasrm.data.pairs import Pair
    from reasrm.training.teacher import check_chain

    slots = Pair(id="p", context=({"role": "user", "content": "q"},), chosen="good", rejected="bad").shown("A")
    assert check_chain(Generation(text, 1, 1, 0.0), slots, asks_sections, hinted) == status


def test_failed_and_too_long_calls_are_not_chains():
    from reasrm.data.pairs import Pair
    from reasrm.training.teacher import check_chain

    slots = Pair(id="p", context=({"role": "user", "content": "q"},), chosen="good", rejected="bad").shown("B")
    assert check_chain(Generation("", 0, 0, 0.0, error="timeout"), slots, True) == "failed"
    assert check_chain(Generation("", 900, 0, 0.0, too_long=True), slots, True) == "too_long"


@pytest.mark.parametrize(
    ("text", "tells"),
    [
        ("Chatbot A states the capital correctly.", False),
        ("The note for the annotator says B.", True),
        ("As instructed, I conclude B.", True),
        ("I was told the answer is B.", True),
        ("Unlike my previous evaluation, B wins.", True),
        ("The CORRECT VERDICT IS B.", True),
        ("Both note the date; B is more precise.", False),  # "note" alone is an ordinary word
        ("The hint in the question helps A.", True),  # conservative: a rejected chain only costs a sample
    ],
)
def test_hint_tells_are_caught(text, tells):
    from reasrm.training.teacher import mentions_hint

    assert mentions_hint(text) is tells


class ScriptedTeacher:
    """A teacher backend whose reply depends on the pass and the sampling seed (the teacher's sampling and
    keeping rules are under test here, not a model): pass 1 answers wrongly at seed 0 and rightly at seeds
    1 and 2; pass 2 gives the hint away for pair p0 and answers cleanly for the others."""

    def __init__(self):
        self.calls = []

    def generate(self, conversations, settings, on_batch=None, on_reply=None):
        replies = []
        for i, conversation in enumerate(conversations):
            self.calls.append((settings.seed, conversation))
            pair = "p0" if "first question" in conversation[1]["content"] else "p1"
            label = conversation[0]["content"][-1]  # the test's system text ends with the chosen slot
            wrong = "B" if label == "A" else "A"
            if len(conversation) == 2:  # pass 1
                text = CHAT.format(e=f"seed {settings.seed}", v=wrong if settings.seed == 0 else label)
            else:  # pass 2: the task, the failed chain, the correction
                text = CHAT.format(e="as instructed" if pair == "p0" else "on the merits", v=label)
            replies.append(Generation(text, 10, 20, 0.0))
            if on_reply is not None:
                on_reply(i, replies[-1])
        return replies


def test_rejection_sampling_and_the_verified_second_pass(tmp_path):
    from reasrm.data.pairs import Pair

    pairs = [
        Pair(id="p0", context=({"role": "user", "content": "first question"},), chosen="x", rejected="y"),
        Pair(id="p1", context=({"role": "user", "content": "second question"},), chosen="x", rejected="y"),
    ]
    jobs = [(pairs[0], pairs[0].shown("A")), (pairs[1], pairs[1].shown("B"))]

    class Prompt:  # the rendered conversation: a system text naming <type> and the chosen slot, the question
        def messages(self, pair, slots):
            return [
                {"role": "system", "content": f"Write <type>... then the verdict. {slots.chosen_slot}"},
                {"role": "user", "content": pair.context[0]["content"]},
            ]

    cfg = TeacherConfig(backend="hf", samples=3, keep=2)
    cfg.generation.temperature = 1.0
    backend = ScriptedTeacher()
    records = generate_chains(jobs, Prompt(), cfg, tmp_path / "chains.jsonl", backend=backend)
    # Seeds 0, 1, 2 drawn for each pair: seed 0 is wrong, seeds 1 and 2 verify and are kept (keep=2).
    assert [len(r["chains"]) for r in records] == [2, 2]
    assert ["seed 1" in r["chains"][0] and "seed 2" in r["chains"][1] for r in records] == [True, True]
    assert [a["status"] for a in records[0]["attempts"]] == ["wrong_verdict", "ok", "ok"]
    report = json.loads((tmp_path / "teacher_report.json").read_text())
    assert report["passes"]["pass 1"]["chains_drawn"] == 6 and report["chains_kept"] == 4
    assert report["this_run"]["requests"] == 6

    # keep=1 stops a pair's drawing at its first verified chain; with samples=1 every pair fails pass 1
    # (seed 0) and goes to pass 2 with its failed chain and the verdict: p0's correction gives the hint
    # away and is rejected, p1's is kept and marked pass 2.
    backend.calls.clear()
    cfg.samples, cfg.keep = 1, 1
    records = generate_chains(jobs, Prompt(), cfg, tmp_path / "one.jsonl", backend=backend)
    assert [(r["kept"], r["pass"], r["status"]) for r in records] == [(False, 2, "mentions_hint"), (True, 2, "ok")]
    assert "as instructed" in records[0]["rejected"]  # a dropped pair keeps its last failed chain
    hinted = [c for _, c in backend.calls if len(c) == 4]
    assert len(hinted) == 2 and hinted[0][2]["role"] == "assistant" and "seed 0" in hinted[0][2]["content"]
    assert "the better response is Chatbot A" in hinted[0][3]["content"]
    report = json.loads((tmp_path / "teacher_report.json").read_text())
    assert report["passes"]["pass 2"] == {
        "pairs_sent": 2,
        "pairs_kept": 1,
        "chains_drawn": 2,
        "chains_kept": 1,
        "rejected": {"mentions_hint": 1},
        "tokens_in": 20,
        "tokens_out": 40,
    }


def test_teacher_sampling_settings_are_checked(capsys):
    args = ["teacher", "stages/distill.yaml", "teacher.backend=hf"]
    assert main([*args, "teacher.samples=4"]) == 2
    assert "teacher.samples: 4 samples need teacher.generation.temperature > 0" in capsys.readouterr().err
    assert main([*args, "teacher.samples=2", "teacher.keep=3", "teacher.generation.temperature=1"]) == 2
    assert "teacher.keep: must be at most samples (2), got 3" in capsys.readouterr().err
    assert main(["teacher", "stages/distill.yaml", "teacher.template_eval=each"]) == 2
    assert "teacher.template_eval: one of joint, per_quote, got 'each'" in capsys.readouterr().err


def test_distill_then_rl_write_judges_with_cards(tiny_model, tmp_path):
    from reasrm.judge import Judge
    from reasrm.training.distill import run as distill
    from reasrm.training.rl import run as rl

    final = distill(_distill(tiny_model, tmp_path, "recipe=support", "rubric=support"))
    card = JudgeCard.load(final)
    assert (card.prompt_format, card.rubric_pack, card.rubric_version) == ("compact", "support", 1)
    assert card.data_recipe == "support" and len(card.config_digest) == 16
    chains = [json.loads(line) for line in (final.parent / "chains.jsonl").read_text().splitlines()]
    assert len(chains) == 8 and all(c["kept"] for c in chains)  # 4 pairs, each in both slot orders
    assert sorted(c["chosen_slot"] for c in chains) == ["A"] * 4 + ["B"] * 4

    overrides = [
        f"model={final}",
        "recipe=support",
        "limit=2",
        "max_steps=1",
        "num_generations=2",
        "per_device_train_batch_size=4",
        "gradient_accumulation_steps=1",
        "max_completion_length=8",
        "preflight=false",
        f"output={tmp_path / 'rl'}",
    ]
    cfg = load_config("stages/rl.yaml", overrides, schema=RLConfig)
    judged = rl(cfg)
    card = JudgeCard.load(judged)
    assert (card.rubric_pack, card.rubric_packs, card.data_recipe) == ("support", {"support": 1}, "support")
    judge = Judge.from_pretrained(str(judged))
    assert judge.prompt.default_rubric == "support" and judge.prompt.prompt_format.id == "compact"


def test_distill_with_lora_saves_an_adapter_or_merged_weights_that_judge_alike(tiny_model, tmp_path):
    """LoRA through peft: the card records it; final/ holds the adapter (with a note on loading it) or the
    merged weights, and Judge.from_pretrained loads either into the same judge."""
    from reasrm import Judge
    from reasrm.training.distill import run as distill

    pairs = [
        {"prompt": f"Which is larger, {a} or {b}?", "response_a": str(a), "response_b": str(b)}
        for a, b in ((3, 9), (12, 7))
    ]
    texts = {}
    for merge in (False, True):
        out = tmp_path / f"merge-{merge}"
        cfg = _distill(
            tiny_model,
            tmp_path,
            "lora.r=4",
            "lora.alpha=8",
            f"lora.merge={str(merge).lower()}",
            "learning_rate=0.05",
            "validation_pairs=0",
            f"output={out}",
        )
        final = distill(cfg)
        assert (final / "adapter_config.json").is_file() is (not merge)
        assert (final / "README.md").is_file() is (not merge)  # the note on loading an adapter
        card = JudgeCard.load(final)
        assert card.lora == {"r": 4, "alpha": 8, "target_modules": "all-linear", "merged": merge, "quantization": None}
        judge = Judge.from_pretrained(str(final))
        judge.generation.max_new_tokens = 8
        texts[merge] = [c.text for j in judge.judge(pairs) for c in j.calls]
    assert texts[False] == texts[True]  # the adapter merged at load time is the merged checkpoint
    # and training changed the model (its weights: a random tiny model's greedy text can stay the same)
    base, merged = (load_model(str(p), device="cpu").state_dict() for p in (tiny_model, final))
    assert any(not torch.equal(base[name], merged[name]) for name in base)


def test_qlora_and_packing_are_refused_clearly_where_they_cannot_run(tiny_model, tmp_path, capsys):
    import importlib.util

    args = [
        "distill",
        "stages/distill.yaml",
        f"model={tiny_model}",
        "limit=2",
        "validation_pairs=0",
        f"output={tmp_path / 'q'}",
        "lora.quantization=4bit",
    ]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "lora.quantization: QLoRA trains adapters: set lora.r > 0" in err
    assert main([*args, "lora.r=8"]) == 2
    assert "lora.merge: must be false with QLoRA" in capsys.readouterr().err
    if not torch.cuda.is_available():
        assert main([*args, "lora.r=8", "lora.merge=false"]) == 2
        assert "lora.quantization: 4bit (QLoRA) needs a CUDA GPU" in capsys.readouterr().err
    elif importlib.util.find_spec("bitsandbytes") is None:  # a GPU without it: refused before loading
        assert main([*args, "lora.r=8", "lora.merge=false"]) == 2
        assert "lora.quantization: 4bit (QLoRA) needs bitsandbytes: pip install bitsandbytes" in capsys.readouterr().err
    if importlib.util.find_spec("flash_attn") is None or not torch.cuda.is_available():
        assert main([*args[:-1], "packing=true"]) == 2  # padded batches here: packing needs flash-attn
        assert "'packing': padding-free packed batches need flash-attn" in capsys.readouterr().err


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
    args = [
        "stages/distill.yaml",
        f"model={tiny_model}",
        "limit=4",
        "max_steps=1",
        "per_device_train_batch_size=2",
        f"output={tmp_path / 'distill'}",
    ]
    assert main(["teacher", *args]) == 0
    path = tmp_path / "distill" / "chains.jsonl"
    assert len(path.read_text().splitlines()) == 8 and (tmp_path / "distill" / "distill.yaml").is_file()  # both orders
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

    cfg = _distill(
        tiny_model,
        tmp_path,
        "teacher.backend=hf",
        f"teacher.model={tiny_model}",
        "limit=1",
        "teacher.generation.max_new_tokens=2",
        "teacher.hint_pass=false",
    )
    with pytest.raises(ReasrmDataError, match="the teacher kept no chains"):
        distill(cfg)


def test_stage_configs_validate_and_report_problems(capsys):
    assert main(["validate", "stages/distill.yaml"]) == 0
    assert main(["validate", "stages/rl.yaml"]) == 0
    assert main(["validate", "stages/rl.yaml", "num_generations=3", "stage=rl", "limit=0"]) == 2
    err = capsys.readouterr().err
    assert (
        "per_device_train_batch_size: times gradient_accumulation_steps must be a multiple of 2 x num_generations: "
        "both orders of a pair (6), got 64" in err
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

    from reasrm.training.distill import sft_args, sft_examples, sft_trainer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    end = "<|im_end|>"
    if template == "plain":
        tokenizer.chat_template, end = PLAIN_TEMPLATE, "</s>"
    chain = "<type>Reasoning</type>\n<solution>83 is larger.</solution>\n<answer>[[A]]</answer>"
    messages = [{"role": "system", "content": "Judge."}, {"role": "user", "content": "Which is larger, 83 or 47?"}]
    examples = sft_examples([{"kept": True, "messages": messages, "chains": [chain]}])
    cfg = DistillConfig(model=str(tiny_model), output=str(tmp_path), max_steps=1)
    trainer = sft_trainer(
        cfg, sft_args(cfg, tmp_path), AutoModelForCausalLM.from_pretrained(tiny_model), tokenizer, examples, []
    )
    batch = trainer.data_collator([trainer.train_dataset[0]])
    ids, labels = batch["input_ids"][0].tolist(), batch["labels"][0].tolist()
    trained = [i for i, label in zip(ids, labels, strict=True) if label != -100]
    assert [label for label in labels if label != -100] == trained  # labels are the input ids where trained
    assert tokenizer.decode(trained).rstrip("\n") == chain + end  # the reply and its end-of-turn token
    prompt = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    untrained = tokenizer.decode([i for i, label in zip(ids, labels, strict=True) if label == -100])
    assert untrained == prompt  # system, user and the assistant header: no loss


def test_shared_prefix_sft_loss_gives_trls_loss_and_gradients(tiny_model, tmp_path):
    """`shared_prefix: true` in stage one runs the system text every example of a batch shares once and the
    rest of each row on its KV cache: the loss, TRL's metrics and every weight's gradient equal TRL's own
    pass on a real collated batch (rows of different lengths, right-padded)."""
    import torch
    from accelerate.utils import AutocastKwargs
    from transformers import AutoTokenizer
    from trl import SFTTrainer

    from reasrm.models import load_model
    from reasrm.prompts import JudgePrompt
    from reasrm.training.common import training_jobs
    from reasrm.training.distill import sft_args, sft_examples, sft_trainer
    from reasrm.training.shared_prefix import SharedPrefixSFTTrainer, loss_free_prefix

    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    prompt = JudgePrompt.create("compact")
    chains = [
        "<type>Reasoning</type>\n<answer>[[A]]</answer>",
        "<type>Reasoning</type>\n<solution>9</solution>\n<eval>B says 9.</eval>\n<answer>[[B]]</answer>",
        "<answer>[[A]]</answer>",
    ]
    records = [
        {"kept": True, "messages": prompt.messages(pair, slot), "chains": [chain]}
        for (pair, slot), chain in zip(training_jobs("demo", {"n": 40}, 3, 0), chains, strict=True)
    ]
    cfg = DistillConfig(model=str(tiny_model), output=str(tmp_path), max_steps=1)
    model = load_model(str(tiny_model), dtype=torch.float32)
    trainer = sft_trainer(cfg, sft_args(cfg, tmp_path), model.train(), tokenizer, sft_examples(records), [])
    assert isinstance(trainer, SharedPrefixSFTTrainer)
    trainer.accelerator.autocast_handler = AutocastKwargs(enabled=False)  # exact fp32 on every host (AMX: bf16)
    batch = trainer.data_collator([trainer.train_dataset[k] for k in range(3)])
    system = tokenizer.apply_chat_template(records[0]["messages"][:1], tokenize=True, return_dict=False)
    assert len(system) - 2 <= loss_free_prefix(batch) < len(batch["input_ids"][0])  # the system turn, at least
    assert len(set(batch["attention_mask"].sum(1).tolist())) == 3  # rows of three lengths, right-padded
    assert set(batch) == {"input_ids", "attention_mask", "labels"}  # what the shared pass takes (else: TRL's)

    def run(method):
        model.zero_grad()
        trainer._metrics["train"].clear()
        trainer._total_train_tokens = 0  # num_tokens counts the batch's tokens, prefix included, as TRL does
        loss = method(trainer, model, {k: v.clone() for k, v in batch.items()})
        loss.backward()
        metrics = {k: v[-1] for k, v in trainer._metrics["train"].items()}
        return loss.detach(), metrics, [p.grad.clone() for p in model.parameters()]

    ours, trls = run(SharedPrefixSFTTrainer.compute_loss), run(SFTTrainer.compute_loss)
    assert torch.allclose(ours[0], trls[0], atol=1e-6)
    assert ours[1].keys() == trls[1].keys() and all(abs(ours[1][k] - trls[1][k]) < 1e-4 for k in ours[1])
    for mine, theirs in zip(ours[2], trls[2], strict=True):
        assert torch.allclose(mine, theirs, atol=1e-6, rtol=1e-4)
    assert any(g.abs().sum() > 0 for g in ours[2])


def test_shared_prefix_falls_back_to_trls_trainers_outside_the_checked_versions(
    tiny_model, tmp_path, monkeypatch, caplog
):
    """The overrides mirror TRL 1.16 internals: with a TRL or transformers the pins do not admit, the stages
    train with TRL's own trainers and say why in one log line."""
    import logging

    from trl import GRPOTrainer, SFTTrainer

    from reasrm.training import shared_prefix
    from reasrm.training.shared_prefix import SharedPrefixGRPOTrainer, SharedPrefixSFTTrainer, trainer_class

    assert shared_prefix.unchecked_versions() is None  # the installed versions are the checked ones
    assert trainer_class(True, SharedPrefixSFTTrainer, SFTTrainer) is SharedPrefixSFTTrainer
    monkeypatch.setitem(shared_prefix.CHECKED, "trl", ((1, 17), (1, 18)))
    with caplog.at_level(logging.WARNING, logger="reasrm"):
        assert trainer_class(True, SharedPrefixSFTTrainer, SFTTrainer) is SFTTrainer
        assert trainer_class(True, SharedPrefixGRPOTrainer, GRPOTrainer) is GRPOTrainer
    assert "trl 1.16" in caplog.text and "training with TRL's own SFTTrainer instead" in caplog.text
    assert trainer_class(False, SharedPrefixSFTTrainer, SFTTrainer) is SFTTrainer


def test_distill_in_both_orders_trains_each_pair_in_each_slot(tiny_model, tmp_path):
    """`both_orders: true`: two chains per pair, the chosen response once in slot A and once in slot B."""
    from reasrm.training.distill import DistillConfig, prepare
    from reasrm.training.teacher import generate_chains

    cfg = load_config(
        "stages/distill.yaml",
        [f"model={tiny_model}", "recipe_params={n: 60}", "limit=6", "both_orders=true", f"output={tmp_path}"],
        schema=DistillConfig,
    )
    prompt, jobs, output = prepare(cfg)
    records = generate_chains(jobs, prompt, cfg.teacher, output / "chains.jsonl")
    assert len(records) == 12 and all(r["kept"] for r in records)
    by_pair = {}
    for r in records:
        by_pair.setdefault(r["id"].removesuffix("~swapped"), []).append(r["chosen_slot"])
    assert len(by_pair) == 6 and all(sorted(slots) == ["A", "B"] for slots in by_pair.values())
