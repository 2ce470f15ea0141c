"""What a careless user or a hostile input must not get through: a value a trainer would refuse, an output that
is an input, a device as an output, a recipe that builds nothing. One row per key or case: the next person
adding a key adds a row (the first test fails until they do)."""

import dataclasses
import json
import math
import typing

import pytest

from reasrm.cli import SCHEMAS, main, schema
from reasrm.config import Range, load_config


def numeric_fields(cls, prefix=""):
    """(key path, field, type) of every int/float field of a schema and of its sections."""
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        hint = hints[f.name]
        inner = [a for a in typing.get_args(hint) if a is not type(None)] or [hint]
        if dataclasses.is_dataclass(hint):
            yield from numeric_fields(hint, f"{prefix}{f.name}.")
        elif typing.get_origin(hint) is list and dataclasses.is_dataclass(typing.get_args(hint)[0]):
            continue  # lists of sections (recipe sources) are covered by their own class below
        elif inner[0] in (int, float) and len(inner) == 1:
            yield f"{prefix}{f.name}", f, inner[0]


def outside(rng: Range, kind: type) -> list:
    """Values just outside a range (and, for floats, nan and inf)."""
    values = []
    if rng.ge is not None:
        values.append(rng.ge - (1 if kind is int else 0.5))
    if rng.gt is not None:
        values.append(rng.gt)
    if rng.le is not None:
        values.append(rng.le + (1 if kind is int else 0.5))
    if rng.lt is not None:
        values.append(rng.lt)
    values = [v for v in values if v not in rng.also]
    return [*(kind(v) if kind is int else v for v in values), *((math.nan, math.inf) if kind is float else ())]


STAGES = {
    "distill": "stages/distill.yaml",
    "rl": "stages/rl.yaml",
    "judge": "stages/judge.yaml",
    "policy": "stages/policy_grpo.yaml",
    "eval": None,
    "recipe": "data_recipes/demo.yaml",
}
REQUIRED = {"eval": ["benchmark=pairs", "data_dir=x", "output=out"], "recipe": []}


@pytest.mark.parametrize("stage", sorted(SCHEMAS))
def test_every_numeric_key_of_every_stage_has_a_range_that_validate_enforces(stage):
    """Every int/float key (sections included) declares its range, and `reasrm validate` refuses a value just
    outside it (and nan/inf for floats) with one line naming the key; the shipped value passes."""
    from reasrm.data.recipe import FilterConfig, SourceConfig

    assert set(STAGES) == set(SCHEMAS), "a new schema: add its config here"
    fields = list(numeric_fields(schema(stage)))
    if stage == "recipe":
        fields += [(f"sources[0].{k}", f, t) for k, f, t in numeric_fields(SourceConfig)]
        fields += [(f"sources[0].filters.{k}", f, t) for k, f, t in numeric_fields(FilterConfig)]
    assert fields
    for key, f, kind in fields:
        rng = f.metadata.get("range")
        assert rng is not None, f"{stage}: {key} has no range: give its option() ge/gt/le/lt"
        for value in outside(rng, kind):
            override = f"{key}={value}"
            if key.startswith("sources[0]."):
                source = {"name": "s", "generator": "verifiable", "n": 10, **nested(key, value)}
                override = f"sources={json.dumps([source])}"
            with pytest.raises(Exception) as error:
                load_config(STAGES[stage], [*REQUIRED.get(stage, []), override], schema=schema(stage), machine=False)
            assert f"{key}: must be" in str(error.value), (stage, key, value, str(error.value))


def nested(key: str, value) -> dict:
    """``sources[0].filters.min_tokens`` -> ``{"filters": {"min_tokens": value}}`` (the part below sources[0])."""
    parts = key.split(".")[1:]
    out: dict = {parts[-1]: value}
    for part in reversed(parts[:-1]):
        out = {part: out}
    return out


@pytest.mark.parametrize(
    "args, expected",
    [
        (["validate", "stages/rl.yaml", "learning_rate=-1"], "learning_rate: must be > 0, got -1"),
        (["validate", "stages/rl.yaml", "learning_rate=nan"], "learning_rate: must be a finite number, got nan"),
        (["validate", "stages/distill.yaml", "learning_rate=.nan"], "learning_rate: must be a finite number"),
        (["validate", "stages/distill.yaml", "max_length=1"], "max_length: must be >= 16, got 1"),
        (["validate", "stages/rl.yaml", "temperature=0"], "temperature: must be >= 0.001"),
        (["validate", "stages/rl.yaml", "temperature=-1"], "temperature: must be >= 0.001"),
        (["validate", "stages/rl.yaml", "max_completion_length=0"], "max_completion_length: must be >= 1, got 0"),
        (["validate", "stages/rl.yaml", "num_train_epochs=0", "max_steps=-1"], "num_train_epochs: must be > 0"),
        (["validate", "stages/distill.yaml", "max_steps=0"], "max_steps: must be -1 or >= 1, got 0"),
        (["validate", "stages/rl.yaml", "max_steps=-5"], "max_steps: must be -1 or >= 1, got -5"),
        (["validate", "stages/rl.yaml", "beta=-1"], "beta: must be >= 0, got -1"),
        (["validate", "stages/rl.yaml", "save_steps=0"], "save_steps: must be >= 1, got 0"),
        (["validate", "stages/judge.yaml", "generation.temperature=1e-300"], "must be 0 (greedy) or >= 0.001"),
        (["validate", "stages/judge.yaml", "generation.seed=1180591620717411303424"], "generation.seed: must be"),
        (["validate", "stages/judge.yaml", "output=data_recipes/examples/pairs.jsonl"], "is the pairs file itself"),
        (["validate", "data_recipes/demo.yaml", "n=-5"], "n: must be >= 1 and <= 1e+08, got -5"),
        (["validate", "data_recipes/demo.yaml", "n=99999999999999999999"], "n: must be >= 1 and <= 1e+08"),
    ],
)
def test_validate_refuses_what_the_stage_would_refuse(capsys, args, expected):
    assert main(args) == 2
    err = capsys.readouterr().err
    assert expected in err and all(line.startswith("reasrm: error: ") for line in err.splitlines()), err


def test_a_recipe_source_is_checked_like_every_config(tmp_path, write_jsonl, capsys):
    """A generator without n; min_tokens above max_tokens or negative; exclude written as a mapping of values;
    unlabelled rows: each one line naming the key or the row, exit 2, nothing built."""
    recipe = tmp_path / "r.yaml"

    def problems(sources) -> str:
        recipe.write_text(json.dumps({"stage": "recipe", "name": "r", "sources": sources}))
        assert main(["data", "build", str(recipe), "--output", str(tmp_path / "out")]) == 2
        assert not (tmp_path / "out").exists()
        return capsys.readouterr().err

    assert "sources[0].n: required with a generator" in problems([{"name": "g", "generator": "verifiable"}])
    pairs = write_jsonl([{"prompt": "q", "chosen": "a", "rejected": "b"}])
    err = problems([{"name": "s", "path": str(pairs), "filters": {"min_tokens": 10, "max_tokens": 5}}])
    assert "sources[0].filters.min_tokens: is above max_tokens (5): every row would be dropped" in err
    err = problems([{"name": "s", "path": str(pairs), "filters": {"min_tokens": -1}}])
    assert "sources[0].filters.min_tokens: must be >= 1, got -1" in err
    err = problems([{"name": "s", "path": str(pairs), "filters": {"exclude": {"domain": "math"}}}])
    assert "expected a mapping of text to a list of text, got {'domain': 'math'}" in err
    unlabelled = write_jsonl([{"prompt": "q", "response_a": "a", "response_b": "b"}], "u.jsonl")
    err = problems([{"name": "s", "path": str(unlabelled)}])
    assert "u.jsonl:1: field 'chosen': a recipe's pairs are labelled" in err


@pytest.mark.parametrize(
    "output, expected",
    [
        ("", "output '': name a file or folder to write"),
        ("/dev/null", "/dev/null: cannot write there: it is not a regular file or folder"),
        ("/proc/reasrm-out", "/proc/reasrm-out: cannot write there: /proc is not writable"),
        ("/sys/reasrm-out", "/sys/reasrm-out: cannot write there: /sys is not writable"),
    ],
)
def test_an_output_where_nothing_can_be_written_is_one_line(capsys, output, expected):
    assert main(["data", "build", "data_recipes/demo.yaml", "n=4", "--output", output]) == 2
    err = capsys.readouterr().err
    assert expected in err and err.count("\n") == 1, err
    assert main(["judge", "stages/judge.yaml", f"output={output}" if output else "output=''"]) == 2
    assert "reasrm: error:" in capsys.readouterr().err


def test_overwrite_never_replaces_an_input_or_a_file_reasrm_did_not_write(tmp_path, capsys):
    pairs = tmp_path / "mine.jsonl"
    pairs.write_text(json.dumps({"prompt": "q", "chosen": "a", "rejected": "b"}) + "\n")
    before = pairs.read_bytes()
    assert main(["judge", "--pairs", str(pairs), "--output", str(pairs), "--overwrite"]) == 2
    assert "is the pairs file itself" in capsys.readouterr().err and pairs.read_bytes() == before
    other = tmp_path / "notes.jsonl"
    other.write_text("my notes\n")
    assert main(["judge", "--pairs", str(pairs), "--output", str(other), "--overwrite"]) == 2
    assert "holds data that was not written by reasrm" in capsys.readouterr().err
    assert other.read_text() == "my notes\n"


def test_a_pair_id_must_be_text_or_an_integer(write_jsonl):
    from reasrm.data.pairs import read_pairs
    from reasrm.errors import ReasrmDataError

    path = write_jsonl([{"id": True, "prompt": "q", "chosen": "a", "rejected": "b"}])
    with pytest.raises(ReasrmDataError, match="field 'id': expected a string or integer, got bool"):
        read_pairs(path)
