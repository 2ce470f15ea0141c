"""The judge on real (tiny) models: prefix-cached batching is exact, slots are seeded, verdicts aggregate."""

import dataclasses
import shutil

import pytest
import torch

from reasrm import Judge, parse_verdict
from reasrm.backends import GenerationConfig
from reasrm.backends.hf import HFBackend
from reasrm.card import JudgeCard
from reasrm.data.pairs import Pair, assign_slots, pair_from_dict, read_pairs
from reasrm.errors import ReasrmConfigError, ReasrmDataError, ReasrmError
from reasrm.judge import Call, _aggregate
from reasrm.prompts import render
from reasrm.verdict import JUDGE_STATUSES, Verdict

PAIRS = [
    {"id": "p1", "prompt": "What is 2 + 2?", "chosen": "4", "rejected": "5"},
    {"id": "p2", "prompt": "Name a colour of the sky.", "chosen": "Blue.", "rejected": "Loud."},
    {"id": "p3", "prompt": "Spell 'cat' backwards, please, in lower case.", "chosen": "tac", "rejected": "cta"},
    {
        "id": "p4",
        "context": [
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello!"},
            {"role": "user", "content": "Say bye."},
        ],
        "chosen": "Bye!",
        "rejected": "No.",
    },
]


def _plain_generate(backend: HFBackend, conversation, max_new_tokens: int) -> str:
    """One model.generate per prompt, no cache, no padding: the reference the backend must match."""
    ids = torch.tensor([backend.prompt_ids(conversation)])
    out = backend.model.generate(
        input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=max_new_tokens, do_sample=False
    )
    return backend.tokenizer.decode(out[0, ids.shape[1] :], skip_special_tokens=True)


def test_prefix_cached_batches_match_one_prompt_at_a_time(tiny_model):
    backend = HFBackend.load(str(tiny_model), device="cpu")
    pairs = [
        Pair(
            id=p["id"], context=({"role": "user", "content": p["prompt"]},), chosen=p["chosen"], rejected=p["rejected"]
        )
        for p in PAIRS[:3]
    ]
    conversations = [render("rm-r1-instruct", p.context, p.chosen, p.rejected) for p in pairs]
    conversations.append(render("rm-r1-instruct", pairs[0].context, "x " * 40, "y"))  # a much longer suffix
    expected = [_plain_generate(backend, c, 12) for c in conversations]

    got = backend.generate(conversations, GenerationConfig(max_new_tokens=12, batch_size=3))
    assert [g.text for g in got] == expected
    assert len(backend._prefix) > 500  # the system prompt and chat template were cached...
    assert all(g.prompt_tokens == len(backend.prompt_ids(c)) for g, c in zip(got, conversations, strict=True))
    assert all(1 <= g.completion_tokens <= 12 for g in got)

    # ...and a call with another format shrinks the cache to what is shared, still matching exactly.
    other = [render("rm-r1-reasoning", pairs[1].context, "Blue.", "Loud.")]
    assert backend.generate(other, GenerationConfig(max_new_tokens=12))[0].text == _plain_generate(
        backend, other[0], 12
    )
    assert backend.generate(conversations[:1], GenerationConfig(max_new_tokens=12))[0].text == expected[0]


def test_roomy_cache_gives_what_dynamic_cache_gives_through_row_changes(tiny_model):
    """The backend's cache writes each decoded token in place; the model must see the same keys and values
    as with transformers' DynamicCache: a one-row prefix spread over the rows, a suffix, decode steps, rows
    leaving the batch, samples repeated, and a buffer filled to its last spare position."""
    import copy

    from transformers import DynamicCache

    from reasrm.backends.hf import RoomyLayer, roomy_cache

    backend = HFBackend.load(str(tiny_model), device="cpu")
    model = backend.model
    prefix = DynamicCache(config=model.config)
    with torch.inference_mode():
        model(input_ids=torch.tensor([[5, 6, 7, 8]]), use_cache=True, past_key_values=prefix)
    plain = copy.deepcopy(prefix)
    plain.batch_repeat_interleave(3)
    roomy = roomy_cache(model.config, prefix, rows=3, room=1)
    assert all(isinstance(layer, RoomyLayer) for layer in roomy.layers)
    steps = [torch.tensor([[9, 10], [11, 12], [13, 14]])] + [torch.tensor([[20 + k]] * 3) for k in range(5)]
    rows = 3
    with torch.inference_mode():
        for k, ids in enumerate(steps):
            ids = ids[:rows]
            logits = [model(input_ids=ids, use_cache=True, past_key_values=c).logits for c in (plain, roomy)]
            torch.testing.assert_close(logits[1], logits[0], rtol=0, atol=1e-6)
            if k == 1:  # a row leaves
                for c in (plain, roomy):
                    c.batch_select_indices(torch.tensor([0, 2]))
                rows = 2
            if k == 2:  # samples repeated, then a row leaves before the next update
                for c in (plain, roomy):
                    c.batch_repeat_interleave(2)
                    c.batch_select_indices(torch.tensor([0, 1, 3]))
                rows = 3
    assert roomy.get_seq_length() == plain.get_seq_length() == 4 + 2 + 5
    assert prefix.get_seq_length() == 4  # the backend's prefix cache is left as it was


def test_sampling_is_seeded(tiny_model):
    backend = HFBackend.load(str(tiny_model), device="cpu")
    conversations = [render("rm-r1-instruct", ({"role": "user", "content": q},), "yes", "no") for q in ("a", "b c")]

    def sample(seed, top_p=1.0):
        settings = GenerationConfig(max_new_tokens=16, temperature=1.0, top_p=top_p, seed=seed)
        return [g.text for g in backend.generate(conversations, settings)]

    assert sample(0) == sample(0)  # same seed, same samples
    assert sample(0) != sample(1)  # a random model at temperature 1 almost never repeats itself
    greedy = [g.text for g in backend.generate(conversations, GenerationConfig(max_new_tokens=16))]
    assert sample(0, top_p=1e-6) == greedy  # a vanishing nucleus keeps only the top token


def test_n_samples_prefill_each_prompt_once_and_match_repeated_prompts(tiny_model):
    """``generate(..., n=k)``: each prompt prefilled once, its KV cache repeated for k rows: greedy, the rows
    equal k separate copies of the prompt; sampled, they differ; results come n per conversation, in order."""
    backend = HFBackend.load(str(tiny_model), device="cpu")
    conversations = [render("rm-r1-instruct", ({"role": "user", "content": q},), "yes", "no") for q in ("a", "b c d")]
    greedy = GenerationConfig(max_new_tokens=10, batch_size=6)
    repeated = backend.generate([c for c in conversations for _ in range(3)], greedy)
    grouped = backend.generate(conversations, greedy, n=3)
    assert [g.text for g in grouped] == [g.text for g in repeated]
    assert [g.completion_ids for g in grouped] == [g.completion_ids for g in repeated]
    assert all(backend.tokenizer.decode(g.completion_ids, skip_special_tokens=True) == g.text for g in grouped)
    sampled = backend.generate(conversations, GenerationConfig(max_new_tokens=10, temperature=1.0, batch_size=4), n=3)
    assert len(sampled) == 6 and len({g.text for g in sampled[:3]}) > 1  # batch_size 4: one prompt per batch
    assert [g.prompt_tokens for g in sampled] == [len(backend.prompt_ids(c)) for c in conversations for _ in range(3)]


@pytest.fixture(scope="module")
def judge(tiny_model, tmp_path_factory):
    """A reasrm-style checkpoint: the tiny model with a judge card naming its prompt format."""
    path = tmp_path_factory.mktemp("ckpt") / "judge"
    shutil.copytree(tiny_model, path)
    JudgeCard(prompt_format="rm-r1-instruct", base_model="tiny").save(path)
    return Judge.from_pretrained(str(path), generation=GenerationConfig(max_new_tokens=8, batch_size=4))


def test_judge_seeds_slots_and_parses_every_call(judge):
    assert judge.prompt.prompt_format.id == "rm-r1-instruct"  # from the judge card
    judgements = judge.judge(PAIRS, seed=3)
    expected = assign_slots([pair_from_dict(p, "t") for p in PAIRS], 3)
    for pair, j, slot in zip(PAIRS, judgements, expected, strict=True):
        (call,) = j.calls
        assert j.pair_id == pair["id"] and call.order == "AB"
        assert call.chosen_slot == slot
        assert j.verdict == parse_verdict(call.text, mode="lenient")  # a random model writes no verdict...
        assert (j.status, j.winner, j.flip) == ("missing", None, None)  # ...and that is reported, not hidden
        assert call.prompt_tokens > 500 and 1 <= call.completion_tokens <= 8
    assert [j.calls[0].chosen_slot for j in judgements].count("A") == 2  # the slots are balanced
    given = judge.judge(PAIRS, slots=["B", "B", "A", "A"])  # a caller judging in chunks gives them
    assert [j.calls[0].chosen_slot for j in given] == ["B", "B", "A", "A"]
    assert [j.text for j in judge.judge(PAIRS, seed=3)] == [j.text for j in judgements]  # greedy: reproducible


def test_both_orders_swap_the_slots(judge):
    for j in judge.judge(PAIRS, both_orders=True, seed=0):
        first, second = j.calls
        assert (first.order, second.order) == ("AB", "BA")
        assert {first.chosen_slot, second.chosen_slot} == {"A", "B"}
        assert j.to_dict()["orders"] == ["AB", "BA"]


def test_unlabelled_pairs_are_judged_as_given(judge):
    (j,) = judge.judge([{"prompt": "Q?", "response_a": "one", "response_b": "two"}], both_orders=True)
    assert [c.chosen_slot for c in j.calls] == [None, None] and j.winner is None
    assert len(j.pair_id) == 16  # a content hash when the row has no id


def _call(order, slot, text):
    return Call(order, slot, text, parse_verdict(text, "lenient"), 10, 5, 0.1)


@pytest.mark.parametrize(
    ("first", "second", "status", "choice", "flip"),
    [
        ("<answer>[[A]]</answer>", "<answer>[[B]]</answer>", "ok", "A", False),  # same response both times
        ("<answer>[[B]]</answer>", "<answer>[[A]]</answer>", "ok", "B", False),
        ("<answer>[[A]]</answer>", "<answer>[[A]]</answer>", "inconsistent", None, True),  # position bias
        ("<answer>[[A]]</answer>", "no verdict", "missing", None, None),  # invalid in either order
        ("<answer>[[A]]", "<answer>[[B]]</answer>", "truncated", None, None),
    ],
)
def test_aggregation_of_both_orders(first, second, status, choice, flip):
    j = _aggregate("p", (_call("AB", "A", first), _call("BA", "B", second)))
    assert (j.status, j.verdict.choice, j.flip) == (status, choice, flip)
    assert j.status in JUDGE_STATUSES
    assert j.winner == (None if choice is None else ("chosen" if choice == "A" else "rejected"))


def test_prompt_format_comes_from_argument_card_or_embedded_default(tiny_model, tmp_path):
    with pytest.raises(ReasrmConfigError, match="has no judge card"):
        Judge.from_pretrained(str(tiny_model))
    judge = Judge.from_pretrained(str(tiny_model), prompt_format="rm-r1-reasoning")
    assert judge.prompt.prompt_format.id == "rm-r1-reasoning" and judge.card is None
    with_card = tmp_path / "ckpt"
    shutil.copytree(tiny_model, with_card)
    JudgeCard(prompt_format="rm-r1-reasoning").save(with_card)
    assert Judge.from_pretrained(str(with_card)).prompt.prompt_format.id == "rm-r1-reasoning"
    named = Judge.from_pretrained(str(with_card), prompt_format="rm-r1-instruct")
    assert named.prompt.prompt_format.id == "rm-r1-instruct"
    (with_card / "reasrm_judge.json").write_text('{"format": "x"}')
    with pytest.raises(ReasrmError, match=r"reasrm_judge\.json"):
        Judge.from_pretrained(str(with_card))


def test_hub_id_without_reachable_card_needs_a_format():
    """Offline (as in the test suite) a hub id has no readable card: the error says what to pass."""
    from reasrm.card import judge_prompt, read_card

    assert read_card("gaotang/RM-R1-Qwen2.5-Instruct-7B") is None
    with pytest.raises(ReasrmConfigError, match="name it with --prompt-format"):
        judge_prompt("gaotang/RM-R1-Qwen2.5-Instruct-7B", None)
    prompt = judge_prompt("gaotang/RM-R1-Qwen2.5-Instruct-7B", None, "rm-r1-instruct")
    assert (prompt.prompt_format.id, prompt.default_rubric) == ("rm-r1-instruct", None)
    card = JudgeCard(prompt_format="rm-r1-reasoning", rubric_pack="support")
    prompt = judge_prompt("any/hub-id", card, rubric="chat")  # the card's format and pack, a forced pack on top
    assert (prompt.prompt_format.id, prompt.default_rubric, prompt.forced_rubric) == (
        "rm-r1-reasoning",
        "support",
        "chat",
    )
    assert judge_prompt(None, None).prompt_format.id == "rm-r1-instruct"  # the embedded default's


def test_rubric_on_a_self_rubric_format_is_refused(judge):
    with pytest.raises(ReasrmDataError, match="field 'rubric'"):
        judge.judge([{**PAIRS[0], "rubric": "medical"}])


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("{not json", "invalid JSON"),
        ('["a list"]', "expected a JSON object, got list"),
        ('{"chosen": "a", "rejected": "b"}', "give exactly one of 'prompt'"),
        ('{"prompt": "q", "chosen": "a"}', "field 'rejected': expected a string, got nothing"),
        ('{"prompt": "q", "chosen": 3, "rejected": "b"}', "field 'chosen': expected a string, got int"),
        ('{"prompt": "q", "chosen": "   ", "rejected": "b"}', "field 'chosen': empty"),
        ('{"prompt": "q", "chosen": "a", "rejected": "a"}', "field 'rejected': identical to 'chosen'"),
        ('{"prompt": "q", "chosen": "a", "response_b": "b"}', "give either 'chosen' and 'rejected'"),
        ('{"context": [{"role": "bot", "content": "x"}], "chosen": "a", "rejected": "b"}', "field 'context[0].role'"),
        ('{"context": [{"role": "assistant", "content": "x"}], "chosen": "a", "rejected": "b"}', "last message"),
        ('{"id": [1], "prompt": "q", "chosen": "a", "rejected": "b"}', "field 'id'"),
    ],
)
def test_bad_rows_name_file_line_and_field(write_jsonl, line, message):
    good = '{"id": "ok", "prompt": "q", "chosen": "a", "rejected": "b"}'
    path = write_jsonl([good, "", line])
    with pytest.raises(ReasrmDataError) as error:
        read_pairs(path)
    assert str(error.value).startswith(f"{path}:3: ")
    assert message in str(error.value)


def test_duplicate_ids_and_empty_files(write_jsonl):
    row = {"id": 7, "prompt": "q", "chosen": "a", "rejected": "b"}
    with pytest.raises(ReasrmDataError, match=r":2: field 'id': '7' already used on .*pairs\.jsonl:1$"):
        read_pairs(write_jsonl([row, row]))
    with pytest.raises(ReasrmDataError, match="no pairs"):
        read_pairs(write_jsonl([]))
    with pytest.raises(ReasrmDataError, match="cannot read"):
        read_pairs(write_jsonl([]).parent / "absent.jsonl")


def test_slots_place_the_chosen_response_and_swap():
    pair = Pair(id="x", context=({"role": "user", "content": "q"},), chosen="good", rejected="bad")
    for slot in ("A", "B"):
        shown, swapped = pair.shown(slot), pair.shown(slot, swap=True)
        assert shown.chosen_slot == slot and swapped.chosen_slot != slot
        assert (shown.response_a if slot == "A" else shown.response_b) == "good"
        assert (swapped.response_a, swapped.response_b) == (shown.response_b, shown.response_a)
    with pytest.raises(ValueError, match="labelled: give the chosen response's slot"):
        pair.shown()
    plain = Pair(id="u", context=pair.context, response_a="one", response_b="two")
    assert (plain.shown().response_a, plain.shown(swap=True).response_a) == ("one", "two")
    assert plain.shown().chosen_slot is None


def test_verdict_is_frozen_and_serialisable():
    v = Verdict("A", "ok", task_type="Chat")
    assert v.to_dict()["task_type"] == "Chat"
    with pytest.raises(AttributeError):
        v.choice = "B"


def test_a_prompt_over_the_limit_is_too_long_and_fails_alone(judge):
    """A prompt over max_prompt_tokens (or the model's context less the completion room) is not generated:
    status too_long, counted like any status; the pairs batched with it are judged as they would be alone."""
    from reasrm.runs import summarize

    short = [
        {"id": f"s{i}", "prompt": f"What is {i} + 1?", "chosen": str(i + 1), "rejected": str(i + 2)} for i in range(3)
    ]
    long = {"id": "long", "prompt": "word " * 2000, "chosen": "a", "rejected": "b"}
    limited = Judge(judge.backend, judge.prompt, dataclasses.replace(judge.generation, max_prompt_tokens=1500))
    mixed = limited.judge([short[0], long, short[1], short[2]], both_orders=True)
    assert [j.status for j in mixed][1] == "too_long" and {c.verdict.status for c in mixed[1].calls} == {"too_long"}
    assert all(c.prompt_tokens > 1500 and c.completion_tokens == 0 for c in mixed[1].calls)
    alone = limited.judge(short, both_orders=True)
    assert [c.text for j in mixed[::2] + mixed[3:] for c in j.calls] == [c.text for j in alone for c in j.calls]
    assert summarize([j.to_dict()["calls"] for j in mixed])["statuses"]["too_long"] == 2
    assert all(c.verdict.status != "too_long" for j in alone for c in j.calls)
    # Without a setting, the limit is the model's context (4,096 tokens for the tiny model) less max_new_tokens.
    huge = {"id": "huge", "prompt": "word " * 5000, "chosen": "a", "rejected": "b"}
    assert judge.judge([huge])[0].status == "too_long"
