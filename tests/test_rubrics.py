"""Rubric packs: validation, rendering, the one renderer shared by every stage, recipes, cards and the CLI."""

import json
import textwrap

import pytest

from reasrm.cli import main
from reasrm.data.pairs import pair_from_dict
from reasrm.errors import ReasrmConfigError, ReasrmDataError
from reasrm.prompts import JudgePrompt
from reasrm.resources import rubrics_dir
from reasrm.rubrics import find_packs, load_pack, validate_file, write_skeleton
from reasrm.verdict import parse_verdict

SHIPPED = {"chat", "reasoning", "code", "safety", "rm-r1-instruct", "rm-r1-reasoning", "support"}
SUPPORT = {
    "id": "s1",
    "prompt": "I was charged twice.",
    "chosen": "Refunded the second charge.",
    "rejected": "Be more careful.",
    "rubric": "support",
    "domain": "support",
}
MATH = {
    "id": "m1",
    "prompt": "What is 47 + 38?",
    "chosen": "85",
    "rejected": "75",
    "reference": "47 + 38 = 85",
    "domain": "math",
}


def test_every_shipped_pack_validates():
    packs = find_packs([str(rubrics_dir())])  # recursive; prompt formats under formats/ are not packs
    assert {p.stem for p in packs} == SHIPPED and len(packs) == len(SHIPPED)
    for path in packs:
        assert validate_file(path) == [], path
    assert main(["rubric", "validate", str(rubrics_dir())]) == 0


def _pack(tmp_path, text: str, name: str = "bad"):
    path = tmp_path / f"{name}.yaml"
    path.write_text(textwrap.dedent(text))
    return path


def test_validate_reports_every_problem_at_once_with_key_paths(tmp_path, capsys):
    path = _pack(
        tmp_path,
        """\
        id: bad
        version: 1
        domain: sql
        task_type: chat
        description: ""
        colour: blue
        criteria:
          - {id: a, description: x, weight: 0.5, good: g, poor: p}
          - {id: a, description: y, weight: -1, good: g, poor: p}
          - {id: c, description: z, weight: 0.2, good: g, poor: p, extra: 1}
          - {id: d, weight: 0.1, good: g, poor: p}
        weights_justification: why
        """,
    )
    problems = validate_file(path)
    text = "\n".join(problems)
    assert f"{path}:5: description: missing (a non-empty string)" in text
    assert f"{path}:6: colour: unknown key" in text
    assert "criteria[1].id: duplicate criterion id 'a' (also criteria[0])" in text
    assert "criteria[1].weight: expected a positive number, got -1" in text
    assert "criteria[2].extra: unknown key" in text
    assert f"{path}:11: criteria[3].description: missing" in text  # the line of the criterion that lacks it
    assert len(problems) == 6, problems
    assert main(["rubric", "validate", str(path)]) == 2
    assert "0 ok, 1 with problems" in capsys.readouterr().out


def test_weights_must_sum_to_one_unless_normalized(tmp_path):
    body = """\
        id: w
        version: 2
        domain: sql
        task_type: reasoning
        description: SQL queries.
        criteria:
          - {id: a, description: x, weight: 3, good: g, poor: p}
          - {id: b, description: y, weight: 1, good: g, poor: p}
        weights_justification: why
        """
    path = _pack(tmp_path, body, "w")
    assert validate_file(path) == [f"{path}:6: criteria: weights sum to 4, not 1: fix them or set 'normalize: true'"]
    path.write_text(textwrap.dedent(body) + "normalize: true\n")
    pack = load_pack(str(path))
    assert [c.weight for c in pack.criteria] == [0.75, 0.25] and pack.label == "w v2"


def test_unknown_placeholder_in_a_pack_format_is_reported(tmp_path):
    fmt = tmp_path / "myfmt.yaml"
    fmt.write_text(
        json.dumps(
            {
                "id": "myfmt",
                "version": 1,
                "description": "d",
                "system": "Judge {domian}: {criteria}",
                "user_single_turn": "{question} {answer_a} {answer_b} {refrence}",
                "user_multi_turn": "{conversation_1} {conversation_2}",
            }
        )
    )
    path = _pack(
        tmp_path,
        f"""\
        id: p
        version: 1
        domain: sql
        task_type: chat
        format: {fmt}
        description: SQL.
        criteria: [{{id: a, description: x, weight: 1, good: g, poor: p}}]
        weights_justification: why
        """,
        "p",
    )
    text = "\n".join(validate_file(path))
    assert f"{path}:5: format: {fmt}:1: system: unknown placeholder {{domian}}" in text
    assert "user_single_turn: unknown placeholder {refrence}" in text


def test_skeleton_names_its_todos_until_filled_in(tmp_path):
    path = write_skeleton("sql", "sql", tmp_path)
    problems = validate_file(path)
    assert problems and all("TODO" in p for p in problems)
    path.write_text(path.read_text().replace("TODO", "Filled in."))
    assert validate_file(path) == []
    with pytest.raises(ReasrmConfigError, match="already exists"):
        write_skeleton("sql", "sql", tmp_path)


def test_a_pack_renders_its_criteria_constraints_and_reference():
    pair = pair_from_dict(MATH, "t")
    system, user = (
        m["content"]
        for m in JudgePrompt.create("rm-r1-instruct", forced_rubric="reasoning").messages(pair, pair.shown("A"))
    )
    assert "1. final_answer (weight 60%)" in system and "Hard constraints" in system and "<solution>" in system
    assert "do not invent other criteria" in system
    assert "[Reference Answer]\n47 + 38 = 85\n\n[The Start of Chatbot A's Response]" in user


def test_pack_resolution_forced_then_pair_then_default_then_format():
    support, math = pair_from_dict(SUPPORT, "t"), pair_from_dict(MATH, "t")
    plain = JudgePrompt.create("rm-r1-instruct")
    assert plain.pack_for(math) is None and plain.pack_for(support).id == "support"
    with_default = JudgePrompt.create("rm-r1-instruct", default_rubric="reasoning")
    assert with_default.pack_for(math).id == "reasoning" and with_default.pack_for(support).id == "support"
    forced = JudgePrompt.create("rm-r1-instruct", default_rubric="reasoning", forced_rubric="chat")
    assert forced.pack_for(math).id == forced.pack_for(support).id == "chat"
    # A self-generated pack renders byte-identically to its prompt format.
    slots = math.shown("A")
    assert JudgePrompt.create("rm-r1-instruct", forced_rubric="rm-r1-reasoning").messages(
        math, slots
    ) == JudgePrompt.create("rm-r1-reasoning").messages(math, slots)


def test_bad_pack_references_are_clear_errors():
    unknown = pair_from_dict({**SUPPORT, "rubric": "suport"}, "t")
    with pytest.raises(
        ReasrmDataError, match=r"pair 's1': field 'rubric': unknown rubric pack 'suport' \(did you mean"
    ):
        JudgePrompt.create("rm-r1-instruct").check([unknown])
    with pytest.raises(ReasrmConfigError, match="renders rubric packs and needs one"):
        JudgePrompt.create("pack-chat")
    with pytest.raises(ReasrmConfigError, match="unknown rubric pack"):
        JudgePrompt.create("rm-r1-instruct", forced_rubric="nope")


def test_template_chains_follow_the_strict_grammar_and_name_the_label():
    from reasrm.training.teacher import template_chain

    for row, pack in ((SUPPORT, "support"), (MATH, "reasoning"), (MATH, "rm-r1-instruct"), (SUPPORT, None)):
        pair = pair_from_dict(row, "t")
        for slot in ("A", "B"):
            slots = pair.shown(slot)
            verdict = parse_verdict(template_chain(pair, slots, load_pack(pack) if pack else None), mode="strict")
            assert (verdict.status, verdict.choice) == ("ok", slot)
            assert verdict.evaluation and (verdict.rubric or verdict.solution)


def test_template_reasoning_chain_judges_each_quote_where_it_quotes_it():
    """The letter is read off two local judgments, each written right after its quote, not decided at once."""
    from reasrm.training.teacher import template_chain

    pair = pair_from_dict(MATH, "t")
    for chosen, rejected in (("A", "B"), ("B", "A")):
        chain = template_chain(pair, pair.shown(chosen), load_pack("reasoning"), "per_quote")
        assert parse_verdict(chain, mode="strict").choice == chosen
        assert f"</quote_{chosen}> matches the solution." in chain
        assert f"</quote_{rejected}> does not match the solution." in chain
        assert chain.index(f"</quote_{rejected}>") < chain.index(f"So Chatbot {chosen} agrees with the solution")


def test_recipe_sets_packs_per_domain_and_counts_unknown_ones(tmp_path, write_jsonl):
    from reasrm.config import load_config
    from reasrm.data.build import build, load_built
    from reasrm.data.recipe import RecipeConfig

    rows = [{**SUPPORT, "rubric": None}, {**MATH}, {**SUPPORT, "id": "s2", "rubric": "nope"}]
    path = tmp_path / "r.yaml"
    path.write_text(
        json.dumps(
            {
                "stage": "recipe",
                "name": "r",
                "on_error": "skip",
                "domains": ["support", "math"],
                "rubrics": {"support": "support"},
                "sources": [{"name": "x", "path": str(write_jsonl(rows))}],
            }
        )
    )
    report = build(load_config(path, schema=RecipeConfig), tmp_path / "out")
    assert report["sources"]["x"]["dropped"] == {"unknown_rubric": 1}
    assert {p.id: p.rubric for p in load_built(tmp_path / "out")} == {"s1": "support", "m1": None}
    path.write_text(
        json.dumps(
            {
                "stage": "recipe",
                "name": "r",
                "rubrics": {"chat": "nope"},
                "sources": [{"name": "x", "generator": "verifiable", "n": 2}],
            }
        )
    )
    with pytest.raises(ReasrmConfigError, match=r"rubrics.chat: unknown rubric pack 'nope'"):
        load_config(path, schema=RecipeConfig)


# ---------------------------------------------------------------------------------------------------
# One renderer: teacher, SFT, GRPO, Judge and serve see the same conversation for the same pair and pack
# ---------------------------------------------------------------------------------------------------


class Recording:
    """The real backend, plus a record of the conversations it was asked to generate for."""

    def __init__(self, backend):
        self.backend, self.seen = backend, []

    def generate(self, conversations, settings, **hooks):
        self.seen.extend(conversations)
        return self.backend.generate(conversations, settings, **hooks)


@pytest.mark.parametrize("row", [SUPPORT, MATH], ids=["support-pack", "reasoning-pack"])
def test_five_stages_render_identical_messages(row, tiny_model, tmp_path):
    from fastapi.testclient import TestClient

    from reasrm.backends import GenerationConfig, load_backend
    from reasrm.judge import Judge
    from reasrm.serve import create_app
    from reasrm.training.distill import sft_examples
    from reasrm.training.rl import grpo_rows
    from reasrm.training.teacher import TeacherConfig, generate_chains

    rubric = None if row is SUPPORT else "reasoning"  # the pair's own field, and a stage forcing one
    pair = pair_from_dict(row, "t")
    slots = pair.shown("A")
    prompt = JudgePrompt.create("rm-r1-instruct", forced_rubric=rubric)
    teacher = generate_chains([(pair, slots)], prompt, TeacherConfig(), tmp_path / "chains.jsonl")[0]["messages"]
    sft = sft_examples(generate_chains([(pair, slots)], prompt, TeacherConfig(), tmp_path / "chains.jsonl"))
    grpo = grpo_rows(prompt, [(pair, slots)])[0]["prompt"]

    backend = Recording(load_backend("hf", str(tiny_model)))
    judge = Judge(backend, prompt, GenerationConfig(max_new_tokens=2))
    judge.judge([pair], slots=["A"])
    via_judge = backend.seen.pop()
    unlabelled = {
        "response_a": slots.response_a,
        "response_b": slots.response_b,
        "prompt": row["prompt"],
        "rubric": row.get("rubric"),
        "reference": row.get("reference"),
    }
    with TestClient(create_app(judge, "judge")) as client:
        reply = client.post("/v1/judge", json=unlabelled)
    assert reply.status_code == 200, reply.text
    assert reply.json()["rubric"] == {"id": rubric or row["rubric"], "version": 1}
    via_serve = backend.seen.pop()

    assert teacher == sft[0]["prompt"] == grpo == via_judge == via_serve
    assert "[Rubric]" in teacher[0]["content"]


def test_judge_card_records_the_pack_and_from_pretrained_uses_it(tiny_model, tmp_path):
    import shutil

    from reasrm.judge import Judge
    from reasrm.training.common import write_card
    from reasrm.training.distill import DistillConfig

    folder = tmp_path / "judge"
    shutil.copytree(tiny_model, folder)
    pair = pair_from_dict(SUPPORT, "t")
    prompt = JudgePrompt.create("rm-r1-instruct")
    card = write_card(folder, prompt, [pair], None, DistillConfig(recipe="support"))
    assert (card.rubric_pack, card.rubric_version, card.rubric_packs) == ("support", 1, {"support": 1})
    judge = Judge.from_pretrained(str(folder))
    plain = pair_from_dict({k: v for k, v in SUPPORT.items() if k != "rubric"}, "t")
    assert judge.prompt.pack_for(plain).id == "support"  # the card's pack is the default
    assert Judge.from_pretrained(str(folder), rubric="chat").prompt.pack_for(plain).id == "chat"


def test_cli_show_and_try(tiny_model, tmp_path, capsys):
    pairs = tmp_path / "p.jsonl"
    pairs.write_text(json.dumps(SUPPORT) + "\n" + json.dumps({**SUPPORT, "id": "s2"}) + "\n")
    assert main(["rubric", "show", "support", "--pair", f"{pairs}:2"]) == 0
    out = capsys.readouterr().out
    assert "rubric pack support v1" in out and "pair s2" in out and "I was charged twice." in out
    assert main(["rubric", "show", "support", "--pair", f"{pairs}:9"]) == 2
    assert "no pair on line 9" in capsys.readouterr().err
    assert (
        main(
            [
                "rubric",
                "try",
                "support",
                "--pairs",
                str(pairs),
                "--model",
                str(tiny_model),
                "--prompt-format",
                "rm-r1-instruct",
                "--max-new-tokens",
                "4",
                "--limit",
                "1",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "=== s1" in out and "label chosen in" in out and "support v1: 0 of 1 labelled pairs judged right" in out
