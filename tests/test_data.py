"""Data recipes: every source schema converts, bad rows get one clear line, nothing is lost silently."""

import json
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from reasrm.config import load_config
from reasrm.data.build import build, load_built, load_recipe
from reasrm.data.converters import CONVERTERS, BadRow
from reasrm.data.pairs import Pair, assign_slots
from reasrm.data.recipe import RecipeConfig
from reasrm.data.synthetic import FAMILIES, verifiable
from reasrm.errors import ReasrmConfigError, ReasrmDataError
from reasrm.prompts import JudgePrompt

ROOT = Path(__file__).resolve().parents[1]


def recipe(tmp_path, sources, **extra) -> RecipeConfig:
    """A recipe written to a file and loaded the way users load one."""
    import yaml

    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump({"stage": "recipe", "name": "t", "sources": sources, **extra}))
    return load_config(path, schema=RecipeConfig)


def row(i, **kw):
    return {"id": f"r{i}", "prompt": f"Question number {i}?", "chosen": f"good {i}", "rejected": f"bad {i}", **kw}


# --- converters, on rows in each source's own schema ------------------------------------------------


def test_skywork_single_multi_turn_and_magpie_exclusion(tmp_path, write_jsonl):
    u, a = {"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}
    rows = [
        {
            "chosen": [u, {"role": "assistant", "content": "good"}],
            "rejected": [u, {"role": "assistant", "content": "bad"}],
            "source": "helpsteer2",
        },
        {
            "chosen": [u, a, {"role": "user", "content": "More?"}, {"role": "assistant", "content": "yes"}],
            "rejected": [u, a, {"role": "user", "content": "More?"}, {"role": "assistant", "content": "no"}],
            "source": "wildguard",
        },
        {
            "chosen": [u, a, {"role": "user", "content": "Q"}, {"role": "assistant", "content": "same"}],
            "rejected": [
                u,
                {"role": "assistant", "content": "Other"},
                {"role": "user", "content": "Q"},
                {"role": "assistant", "content": "same"},
            ],
            "source": "x",
        },
        {"chosen": [u, a], "rejected": [u, {"role": "assistant", "content": "z"}], "source": "magpie_ultra"},
    ]
    cfg = recipe(
        tmp_path,
        [
            {
                "name": "sky",
                "path": str(write_jsonl(rows)),
                "converter": "skywork",
                "domain": "chat",
                "filters": {"exclude": {"source": ["magpie_ultra"]}},
            }
        ],
    )
    report = build(cfg, tmp_path / "out")
    assert report["sources"]["sky"] == {"read": 4, "kept": 3, "dropped": {"excluded_source": 1}}
    single, multi, differing = load_built(tmp_path / "out")
    assert (single.context, single.chosen, single.rejected) == ((u,), "good", "bad")
    assert len(multi.context) == 3 and multi.rejected_context is None and multi.meta == {"origin": "wildguard"}
    # Earlier turns differ: the full conversations are kept, and each slot is rendered with its own.
    assert differing.rejected_context[1]["content"] == "Other"
    slots = differing.shown("A")
    text = JudgePrompt.create("rm-r1-instruct").messages(differing, slots)[1]["content"]
    assert "Chatbot A: Hello" in text and "Chatbot B: Other" in text


def test_code_and_math_converters(tmp_path, write_jsonl):
    code = write_jsonl([{"input": "Reverse a list", "accepted": "xs[::-1]", "rejected": "xs.sort()"}], "code.jsonl")
    math = write_jsonl(
        [
            {
                "prompt": "2+2*2?",
                "initial_reason_steps": "Step 1: 2*2=4.\n",
                "full_chosen": "Step 2: 2+4=6.",
                "full_rejected": "Step 2: 4+2=8.",
                "dataset": "x",
            }
        ],
        "math.jsonl",
    )
    cfg = recipe(
        tmp_path,
        [
            {"name": "code", "path": str(code), "converter": "code_preference", "domain": "code"},
            {"name": "math", "path": str(math), "converter": "math_step_dpo", "domain": "math"},
        ],
    )
    build(cfg, tmp_path / "out")
    c, m = load_built(tmp_path / "out")
    assert (c.context[0]["content"], c.chosen, c.rejected, c.domain) == (
        "Reverse a list",
        "xs[::-1]",
        "xs.sort()",
        "code",
    )
    assert m.chosen == "Step 1: 2*2=4.\nStep 2: 2+4=6." and m.rejected == "Step 1: 2*2=4.\nStep 2: 4+2=8."
    assert m.meta == {"dataset": "x"}  # unknown columns are kept, not dropped


def test_rm_bench_from_its_published_files(benchmark_data, tmp_path):
    report = build(load_recipe("rm-bench", [f"data_dir={benchmark_data}/rm-bench"]), tmp_path / "out")
    files = {
        name: benchmark_data / "rm-bench" / f"{name}_filtered.json"
        for name in ("chat", "code", "safety-refuse", "safety-response")
    }
    for name, n in ((name, len(json.loads(path.read_text()))) for name, path in files.items()):
        s = report["sources"][name]
        assert s["read"] == 9 * n and s["read"] == s["kept"] + sum(s["dropped"].values())
    pairs = load_built(tmp_path / "out")
    first = [p for p in pairs if p.meta["benchmark_id"] == pairs[0].meta["benchmark_id"] and p.source == "chat"]
    assert sorted((p.meta["i"], p.meta["j"]) for p in first) == [(i, j) for i in range(3) for j in range(3)]


def test_rmb_pairwise_and_bon_from_its_published_files(benchmark_data, tmp_path):
    report = build(load_recipe("rmb", [f"data_dir={benchmark_data}/rmb"]), tmp_path / "out")
    pairwise = sum(len(json.loads(p.read_text())) for p in (benchmark_data / "rmb/pairwise").glob("*.json"))
    assert report["sources"]["pairwise"]["read"] == pairwise
    bon_records = sum(len(json.loads(p.read_text())) for p in (benchmark_data / "rmb/bon").glob("*.json"))
    pairs = load_built(tmp_path / "out")
    bon = [p for p in pairs if p.source == "bon"]
    assert len({p.meta["bon_uid"] for p in bon}) == bon_records
    assert {p.domain for p in pairs if p.source == "pairwise"} == {"chat", "safety"}
    assert all(p.context[-1]["role"] == "user" for p in pairs)


def test_rewardbench_rows_in_hub_schema(tmp_path, write_jsonl):
    subsets = ["alpacaeval-easy", "hep-go", "math-prm", "xstest-should-refuse", "llmbar-natural"]
    rows = [
        {
            "prompt": "p1",
            "chosen": "a",
            "chosen_model": "m",
            "rejected": "b",
            "rejected_model": "n",
            "subset": subset,
            "id": k,
        }
        for k, subset in enumerate(subsets)
    ]
    cfg = recipe(
        tmp_path,
        [{"name": "rb", "path": str(write_jsonl(rows)), "converter": "rewardbench", "filters": {"dedup": False}}],
    )
    build(cfg, tmp_path / "out")
    pairs = load_built(tmp_path / "out")
    assert [p.domain for p in pairs] == ["chat", "code", "math", "safety", "chat"]
    assert pairs[0].meta == {"chosen_model": "m", "rejected_model": "n", "subset": "alpacaeval-easy"}


def test_column_mapping(tmp_path, write_jsonl):
    path = write_jsonl([{"question": "Q?", "good": "yes", "bad": "no"}])
    cfg = recipe(
        tmp_path,
        [{"name": "m", "path": str(path), "columns": {"prompt": "question", "chosen": "good", "rejected": "bad"}}],
    )
    build(cfg, tmp_path / "out")
    (pair,) = load_built(tmp_path / "out")
    assert (pair.context[0]["content"], pair.chosen, pair.rejected) == ("Q?", "yes", "no")


def test_converters_name_the_bad_field():
    with pytest.raises(BadRow, match="field 'accepted': missing"):
        CONVERTERS["code_preference"]({"input": "q", "rejected": "r"})
    with pytest.raises(BadRow, match="expected 3 responses each"):
        CONVERTERS["rm_bench"]({"id": 1, "prompt": "p", "chosen": ["a"], "rejected": ["b", "c", "d"]})


# --- bad input: one line naming file, line and field ------------------------------------------------

BAD_ROWS = [
    ("{broken", "invalid_json", "invalid JSON"),
    ('{"id": "x", "prompt": "q", "chosen": "a"}', "missing_field", "field 'rejected'"),
    (
        '{"id": "x", "prompt": "q", "chosen": 1, "rejected": "b"}',
        "wrong_type",
        "field 'chosen': expected a string, got int",
    ),
    ('{"id": "x", "prompt": "q", "chosen": "  ", "rejected": "b"}', "empty_answer", "field 'chosen': empty"),
    ('{"id": "x", "prompt": "q", "chosen": "a", "rejected": "a"}', "identical_answers", "field 'rejected': identical"),
    (
        '{"id": "x", "prompt": "q", "chosen": "a", "rejected": "b", "domain": "cooking"}',
        "unknown_domain",
        "field 'domain': unknown domain 'cooking'",
    ),
    (
        b'{"id": "x", "prompt": "q\xff", "chosen": "a", "rejected": "b"}',
        "invalid_utf8",
        "not UTF-8 text (byte 25 of the line)",
    ),
    (
        '{"id": "x", "prompt": "q \\ud800", "chosen": "a", "rejected": "b"}',
        "invalid_text",
        "field 'prompt': not valid Unicode (a lone surrogate at character 3)",
    ),
    (
        '{"id": ' + "9" * 5000 + ', "prompt": "q", "chosen": "a", "rejected": "b"}',
        "invalid_json",
        "invalid JSON: Exceeds the limit (4300 digits) for integer string conversion",
    ),
    ("[" * 100_000 + "]" * 100_000, "invalid_json", "invalid JSON: nested too deeply"),
]


@pytest.mark.parametrize(("line", "reason", "message"), BAD_ROWS, ids=[b[1] for b in BAD_ROWS])
def test_first_bad_row_stops_the_build(tmp_path, write_jsonl, line, reason, message):
    path = write_jsonl([row(1), line, row(3)])
    with pytest.raises(ReasrmDataError) as error:
        build(recipe(tmp_path, [{"name": "s", "path": str(path)}]), tmp_path / "out")
    assert str(error.value).startswith(f"{path}:2: ") and message in str(error.value)
    assert not (tmp_path / "out").exists()


def test_skip_counts_and_keeps_every_bad_row(tmp_path, write_jsonl):
    lines = [row(0)] + [b[0] for b in BAD_ROWS] + [row(9)]
    path = write_jsonl(lines)
    report = build(recipe(tmp_path, [{"name": "s", "path": str(path)}], on_error="skip"), tmp_path / "out")
    source = report["sources"]["s"]
    assert source["read"] == len(lines) == source["kept"] + sum(source["dropped"].values())
    assert source["dropped"] == Counter(b[1] for b in BAD_ROWS)
    rejected = [json.loads(x) for x in (tmp_path / "out" / "rejected_rows.jsonl").read_text().splitlines()]
    assert [r["reason"] for r in rejected] == [b[1] for b in BAD_ROWS]
    assert [r["where"] for r in rejected] == [f"{path}:{k}" for k in range(2, 2 + len(BAD_ROWS))]


def test_filters_turn_empty_and_identical_into_counted_drops(tmp_path, write_jsonl):
    path = write_jsonl([row(1), row(2, chosen=""), row(3, rejected="good 3"), row(1)])
    cfg = recipe(tmp_path, [{"name": "s", "path": str(path), "filters": {"drop_empty": True, "drop_identical": True}}])
    report = build(cfg, tmp_path / "out")
    assert report["sources"]["s"] == {
        "read": 4,
        "kept": 1,
        "dropped": {"empty_answer": 1, "identical_answers": 1, "duplicate": 1},
    }


def test_missing_file_empty_folder_and_broken_parquet(tmp_path):
    with pytest.raises(ReasrmDataError, match="no such file or folder"):
        build(recipe(tmp_path, [{"name": "s", "path": str(tmp_path / "absent.jsonl")}]))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ReasrmDataError, match="a folder without data files"):
        build(recipe(tmp_path, [{"name": "s", "path": str(tmp_path / "empty")}]))
    (tmp_path / "broken.parquet").write_bytes(b"PAR1 not really")
    with pytest.raises(ReasrmDataError, match="unreadable parquet file"):
        build(recipe(tmp_path, [{"name": "s", "path": str(tmp_path / "broken.parquet")}]))


def test_recipe_errors_are_config_errors(tmp_path):
    with pytest.raises(ReasrmConfigError) as error:
        recipe(
            tmp_path,
            [
                {"name": "s", "path": "x", "converter": "nope", "count": 3, "fraction": 0.5},
                {"name": "s", "generator": "v2"},
            ],
            on_error="ignore",
        )
    problems = str(error.value)
    for expected in (
        "sources[0].converter: must be one of pairs, skywork",
        "set one of 'count' or 'fraction'",
        "sources[1].generator: must be one of verifiable",
        "the name 's' is used twice",
        "on_error: must be one of fail, skip",
    ):
        assert expected in problems


def test_cli_build_bad_row_exits_2_without_traceback(tmp_path, write_jsonl):
    path = write_jsonl([json.dumps(row(1)), '{"prompt": "q", "chosen": "a", "rejected": 5}'])
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "reasrm.cli",
            "data",
            "build",
            "data_recipes/local.yaml",
            f"path={path}",
            "--output",
            str(tmp_path / "out"),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip() == f"reasrm: error: {path}:2: field 'rejected': expected a string, got int"


def test_every_shipped_recipe_validates():
    recipes = sorted((ROOT / "data_recipes").rglob("*.yaml"))
    assert len(recipes) >= 6
    for path in recipes:
        load_recipe(str(path), ["path=x.jsonl"] if path.stem == "local" else [])


# --- splits, mixing, balance, determinism -----------------------------------------------------------


def test_heldout_is_split_by_prompt(tmp_path, write_jsonl):
    rows = [row(i, prompt=f"Shared prompt {i // 4}", chosen=f"c{i}", rejected=f"r{i}") for i in range(400)]
    cfg = recipe(tmp_path, [{"name": "s", "path": str(write_jsonl(rows))}], heldout={"fraction": 0.3, "seed": 1})
    report = build(cfg, tmp_path / "out")
    train, heldout = load_built(tmp_path / "out"), load_built(tmp_path / "out", "heldout")
    assert report["splits"] == {"train": len(train), "heldout": len(heldout)} and len(train) + len(heldout) == 400
    assert 60 < len(heldout) < 180
    prompts = lambda pairs: {p.context[0]["content"] for p in pairs}  # noqa: E731
    assert not prompts(train) & prompts(heldout)


def test_mixing_samples_with_the_seed(tmp_path, write_jsonl):
    path = write_jsonl([row(i) for i in range(50)])
    cfg = recipe(tmp_path, [{"name": "s", "path": str(path), "count": 20, "seed": 42}])
    report = build(cfg, tmp_path / "a")
    assert report["sources"]["s"] == {"read": 50, "kept": 20, "dropped": {"not_sampled": 30}}
    build(cfg, tmp_path / "b")
    assert [p.id for p in load_built(tmp_path / "a")] == [p.id for p in load_built(tmp_path / "b")]
    half = recipe(tmp_path, [{"name": "s", "path": str(path), "fraction": 0.5}])
    assert build(half)["sources"]["s"]["kept"] == 25


def test_length_bounds_use_the_named_tokenizer(tmp_path, write_jsonl, tiny_model):
    rows = [row(1, chosen="ok", rejected="no"), row(2, chosen="a long answer " * 30, rejected="b " * 5), row(3)]
    bounds = {"tokenizer": str(tiny_model), "min_tokens": 3, "max_tokens": 60}
    cfg = recipe(tmp_path, [{"name": "s", "path": str(write_jsonl(rows)), "filters": bounds}])
    assert build(cfg)["sources"]["s"]["dropped"] == {"too_short": 1, "too_long": 1}


def test_slots_are_balanced_within_each_domain_in_every_prefix():
    """One slot assignment for every command: balanced to within one per domain in the whole list and in
    each prefix of it (so `limit` keeps the balance and the slots), seeded, and a lone pair's slot is a
    seeded hash of its id."""
    pairs = [
        Pair(
            id=f"p{i}",
            context=({"role": "user", "content": "q"},),
            chosen="a",
            rejected="b",
            domain=["math", "code", "chat"][i % 3],
        )
        for i in range(301)
    ]
    slots = assign_slots(pairs, seed=5)
    for n in (1, 2, 7, 50, 301):
        for domain in ("math", "code", "chat"):
            mine = [s for p, s in zip(pairs[:n], slots[:n], strict=True) if p.domain == domain]
            assert abs(mine.count("A") - mine.count("B")) <= 1, (n, domain)
        assert assign_slots(pairs[:n], seed=5) == slots[:n]  # a prefix keeps its slots
    assert slots != assign_slots(pairs, seed=6)
    lone = [assign_slots([p], seed=0)[0] for p in pairs]
    assert 0.4 < lone.count("A") / len(lone) < 0.6 and lone != [assign_slots([p], seed=1)[0] for p in pairs]
    unlabelled = Pair(id="u", context=pairs[0].context, response_a="x", response_b="y")
    assert assign_slots([unlabelled, pairs[0]], seed=5) == [None, slots[0]]


def test_report_slot_figures_are_the_slots_a_stage_uses(tmp_path):
    """report.json's chosen-in-A/B per domain are what `training_jobs` (same seed, any limit) assigns."""
    from reasrm.training.common import training_jobs

    report = build(load_recipe("demo", ["n=200", "seed=4"]))
    jobs = training_jobs("demo", {"n": 200, "seed": 4}, None, 4)
    for domain, entry in report["domains"].items():
        mine = [slots.chosen_slot for pair, slots in jobs if str(pair.domain) == domain]
        assert (entry["pairs"], entry["chosen_in_A"], entry["chosen_in_B"]) == (
            len(mine),
            mine.count("A"),
            mine.count("B"),
        )
    limited = training_jobs("demo", {"n": 200, "seed": 4}, 30, 4)
    assert [s.chosen_slot for _, s in limited] == [s.chosen_slot for _, s in jobs[:30]]


def test_demo_recipe_is_deterministic_and_verifiable(tmp_path):
    build(load_recipe("demo", ["n=400", "seed=3"]), tmp_path / "a")
    build(load_recipe("demo", ["n=400", "seed=3"]), tmp_path / "b")
    assert (tmp_path / "a/train.parquet").read_bytes() == (tmp_path / "b/train.parquet").read_bytes()
    assert list(verifiable(50, 3)) == list(verifiable(400, 3))[:50]  # a larger build extends a smaller one
    weighted = [r["meta"]["family"] for r in verifiable(8, 0, {"comparison": 2, "sorting": 1, "arithmetic": 0})]
    assert weighted == ["comparison", "comparison", "sorting"] * 2 + ["comparison"] * 2
    assert list(verifiable(40, 3, levels=None)) == list(verifiable(40, 3))  # default: levels 1-3
    assert {r["meta"]["level"] for r in verifiable(60, 3)} == {1, 2, 3}
    assert {r["meta"]["level"] for r in verifiable(60, 3, levels=[2, 3])} == {2, 3}
    pairs = load_built(tmp_path / "a") + load_built(tmp_path / "a", "heldout")
    # the demo recipe: two-digit comparisons only, the family a 135M judge learns on a CPU
    assert {(p.meta["family"], p.meta["level"]) for p in pairs} == {("comparison", 1)}
    every = [r for family in FAMILIES for level in (1, 2, 3) for r in verifiable(30, 3, {family: 1}, [level])]
    for pair in pairs + [_pair(r) for r in every]:
        assert pair.reference and pair.chosen != pair.rejected
        assert _correct(pair, pair.chosen) and not _correct(pair, pair.rejected), pair


def _pair(row: dict) -> Pair:
    return Pair(
        id=row["id"],
        context=({"role": "user", "content": row["prompt"]},),
        chosen=row["chosen"],
        rejected=row["rejected"],
        reference=row["reference"],
        meta=row["meta"],
    )


def _correct(pair: Pair, answer: str) -> bool:
    """Check an answer from scratch, by the task's own rules (not by comparing with `chosen`)."""
    question, family = pair.context[0]["content"], pair.meta["family"]
    if family == "arithmetic":
        a, op, b = re.match(r"What is (\d+) (.) (\d+)\?", question).groups()
        value = {"+": int(a) + int(b), "-": int(a) - int(b), "×": int(a) * int(b)}[op]
        return answer.endswith(f"= {value}")
    if family == "sorting":
        numbers = [int(x) for x in re.findall(r"\d+", question.split(":")[1])]
        return answer == ", ".join(map(str, sorted(numbers, reverse="descending" in question)))
    if family == "unit_conversion":
        factors = {
            "centimetres": 100,
            "metres": 1000,
            "grams": 1000,
            "minutes": 60,
            "seconds": 60,
            "millilitres": 1000,
            "millimetres": 10,
        }
        small, amount = re.match(r"How many (\w+) are in ([\d.]+)", question).groups()
        value = float(amount) * factors[small]
        return answer.endswith(f"= {int(value) if value.is_integer() else f'{value:g}'} {small}")
    if family == "comparison":
        a, b = re.match(r"Which is larger, ([\d.]+) or ([\d.]+)\?", question).groups()
        return answer == f"{max(a, b, key=float)} is larger."
    if family == "minimum":
        a, b = re.match(r"Which is smaller, (\d+) or (\d+)\?", question).groups()
        return answer == f"{min(a, b, key=int)} is smaller."
    if family == "successor":
        (n,) = re.match(r"What number comes right after (\d+)\?", question).groups()
        return answer == f"{int(n) + 1} comes after {n}."
    if family == "tens_digit":
        (n,) = re.match(r"What is the tens digit of (\d+)\?", question).groups()
        return answer == f"The tens digit of {n} is {int(n) // 10 % 10}."
    if family == "parity":
        (n,) = re.match(r"Is (\d+) even or odd\?", question).groups()
        return answer == f"{n} is {'odd' if int(n) % 2 else 'even'}."
    expression = question.split("\n", 1)[1]
    allowed = {"len": len, "sum": sum, "range": range, "max": max, "min": min, "sorted": sorted}
    value = eval(expression, {"__builtins__": allowed})
    return answer == f"It evaluates to {value!r}." if isinstance(value, str) else answer == f"It evaluates to {value}."


# --- contamination ----------------------------------------------------------------------------------


def test_planted_overlap_with_rm_bench_is_found_and_dropped(benchmark_data, tmp_path, write_jsonl):
    bench = json.loads((benchmark_data / "rm-bench/chat_filtered.json").read_text())
    long_prompt = next(r for r in bench if len(r["prompt"].split()) > 30)
    planted = "Please help: " + " ".join(long_prompt["prompt"].split()[:20]) + " thanks"
    path = write_jsonl([row(1), row(2, prompt=planted), row(3)])
    against = {"against": [{"recipe": "rm-bench", "params": {"data_dir": str(benchmark_data / "rm-bench")}}]}
    report = build(recipe(tmp_path, [{"name": "s", "path": str(path)}], contamination=against))
    (hit,) = report["contamination"]["hits"]
    assert (hit["id"], hit["source"], hit["against"]) == ("r2", "s", "rm-bench")
    assert hit["against_id"].startswith(f"{long_prompt['id']}:")
    dropped = build(recipe(tmp_path, [{"name": "s", "path": str(path)}], contamination={**against, "drop": True}))
    assert dropped["sources"]["s"] == {"read": 3, "kept": 2, "dropped": {"contaminated": 1}}


def test_generator_family_weights_and_levels_are_checked(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text(
        "stage: recipe\nname: r\nsources:\n  - name: s\n    generator: verifiable\n    n: 4\n"
        "    families: {comparison: 1, algebra: 2}\n"
    )
    with pytest.raises(
        ReasrmConfigError,
        match=r"r.yaml:7: sources\[0\].families.algebra: unknown family; known: "
        r"comparison, arithmetic",
    ):
        load_recipe(str(path))
    path.write_text(
        "stage: recipe\nname: r\nsources:\n  - name: s\n    generator: verifiable\n    n: 4\n    levels: [1, 4]\n"
    )
    with pytest.raises(ReasrmConfigError, match=r"r.yaml:7: sources\[0\].levels: must be a non-empty list of 1, 2, 3"):
        load_recipe(str(path))


@pytest.mark.parametrize("family", ["comparison", "minimum", "successor", "tens_digit", "parity"])
def test_two_digit_families_have_a_reference_that_names_the_chosen_response(family):
    """Each two-digit family: chosen and rejected differ, and the worked reference (the template teacher's
    solution) names the chosen response by the same reading the validation uses."""
    from reasrm.data.synthetic import verifiable
    from reasrm.training.validation import solution_slot

    rows = list(verifiable(200, 0, {family: 1}, [1]))
    assert all(r["chosen"] != r["rejected"] for r in rows)
    assert all(solution_slot(r["reference"], r["chosen"], r["rejected"]) == "A" for r in rows)
    assert len({r["prompt"] for r in rows}) > 50
