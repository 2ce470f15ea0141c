"""Config loading: typed schemas, every problem reported at once with where it is, clean CLI errors."""

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from reasrm.cli import load
from reasrm.config import load_config, save_config, to_yaml
from reasrm.errors import ReasrmConfigError
from reasrm.judge_file import JudgeConfig

ROOT = Path(__file__).resolve().parents[1]


def test_every_shipped_config_validates():
    """Every stage config and every data recipe, found recursively, each read with the schema it names."""
    stages = [p for p in sorted((ROOT / "stages").rglob("*.yaml")) if "accelerate" not in p.parts]
    recipes = sorted((ROOT / "data_recipes").rglob("*.yaml"))
    assert {p.stem for p in stages} >= {"distill", "rl", "judge", "policy_grpo"}
    assert len(recipes) >= 7
    required = {"local": ["path=pairs.jsonl"]}  # recipes whose parameters have no default
    for path in stages + recipes:
        cfg = load(str(path), required.get(path.stem, []), machine=False)
        assert cfg.stage in ("distill", "rl", "judge", "policy", "recipe")


def _problems(text: str, tmp_path, overrides=()) -> list[str]:
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(ReasrmConfigError) as error:
        load_config(path, list(overrides), schema=JudgeConfig)
    return str(error.value).splitlines()


def test_all_problems_are_reported_at_once_with_lines(tmp_path):
    problems = _problems(
        "stage: judge\nmodle: x\ngeneration:\n  batch_size: many\n  max_new_token: 3\nboth_orders: maybe\n",
        tmp_path,
        overrides=["generation.top_p=high"],
    )
    assert problems == [
        f"{tmp_path}/c.yaml:2: modle: unknown key; did you mean 'model'?",
        f"{tmp_path}/c.yaml:4: generation.batch_size: expected an integer, got 'many'",
        f"{tmp_path}/c.yaml:5: generation.max_new_token: unknown key; did you mean 'generation.max_new_tokens'?",
        f"{tmp_path}/c.yaml:6: both_orders: expected true or false, got 'maybe'",
        "override 'generation.top_p=high': generation.top_p: expected a number, got 'high'",
        f"{tmp_path}/c.yaml: pairs: missing: set it in the file or pass pairs=...",
        f"{tmp_path}/c.yaml: output: missing: set it in the file or pass output=...",
    ]


def test_unknown_key_without_a_close_match_lists_the_valid_ones(tmp_path):
    (problem,) = _problems("stage: judge\npairs: p\noutput: o\nzzz: 1\n", tmp_path)
    assert "zzz: unknown key; valid keys: stage, model" in problem


def test_cross_field_rules_name_line_key_value_and_fix(tmp_path):
    problems = _problems(
        "stage: judge\npairs: p\noutput: o\nbackend: tgi\nresume: true\noverwrite: true\n"
        "generation:\n  temperature: -1\n  top_p: 0\n",
        tmp_path,
        overrides=["generation.batch_size=0"],
    )
    where = f"{tmp_path}/c.yaml"
    assert sorted(problems) == sorted(
        [
            f"{where}:8: generation.temperature: must be >= 0 and <= 10, got -1.0",
            f"{where}:9: generation.top_p: must be > 0 and <= 1, got 0.0",
            "override 'generation.batch_size=0': generation.batch_size: must be >= 1, got 0",
            f"{where}:4: backend: must be one of hf, vllm, openai, got 'tgi'",
            f"{where}:5: resume: resume and overwrite exclude each other: set one of them",
        ]
    )


def test_section_given_a_scalar(tmp_path):
    (problem,) = _problems("stage: judge\npairs: p\noutput: o\ngeneration: 3\n", tmp_path)
    assert problem.endswith(":4: generation: a section: expected a mapping, got 3")


def test_bad_yaml_and_bad_stage(tmp_path):
    assert _problems("stage: judge\n  bad: [indent\n", tmp_path)[0].startswith(f"{tmp_path}/c.yaml:")
    assert _problems("stage: rl\npairs: p\noutput: o\n", tmp_path) == [
        f"{tmp_path}/c.yaml:1: stage: must be 'judge' for this command, got 'rl'"
    ]
    (tmp_path / "c.yaml").write_text("stage: train\n")
    with pytest.raises(ReasrmConfigError, match="stage: must name a schema, one of judge, eval, recipe"):
        load(str(tmp_path / "c.yaml"), [])
    with pytest.raises(ReasrmConfigError, match="cannot read"):
        load_config(tmp_path / "absent.yaml", schema=JudgeConfig)


def test_overrides_apply_and_round_trip(tmp_path):
    cfg = load_config(
        None,
        ["pairs=in.jsonl", "output=out.jsonl", "generation.max_new_tokens=64", "model=null", "both_orders=true"],
        schema=JudgeConfig,
    )
    assert (cfg.generation.max_new_tokens, cfg.model, cfg.both_orders) == (64, None, True)
    save_config(cfg, tmp_path / "saved.yaml")
    assert load(str(tmp_path / "saved.yaml"), []) == cfg
    assert yaml.safe_load(to_yaml(cfg))["generation"]["max_new_tokens"] == 64
    with pytest.raises(ReasrmConfigError, match="expected key=value"):
        load_config(None, ["pairs"], schema=JudgeConfig)


def test_a_mapping_override_replaces_the_mapping_a_dotted_one_sets_a_key():
    """``families={tens_digit: 1}`` on the demo recipe (``families: {comparison: 1}``) means tens_digit alone:
    merged, it built a comparison + tens_digit mix where a user asked for one family."""
    from reasrm.data.build import load_recipe

    assert load_recipe("demo", ["families={tens_digit: 1}"]).sources[0].families == {"tens_digit": 1}
    assert load_recipe("demo", ["families={'parity': 1}", "n=10"]).params["families"] == {"parity": 1}
    cfg = load_config(None, ["pairs=in.jsonl", "output=o.jsonl", "generation={max_new_tokens: 64}"], schema=JudgeConfig)
    assert cfg.generation.max_new_tokens == 64 and cfg.generation == type(cfg.generation)(max_new_tokens=64)
    dotted = load_config(
        None,
        ["pairs=in.jsonl", "output=o.jsonl", "generation.temperature=0.5", "generation.batch_size=3"],
        schema=JudgeConfig,
    )
    assert (dotted.generation.temperature, dotted.generation.batch_size) == (0.5, 3)


def _cli(*args, cwd=ROOT):
    return subprocess.run([sys.executable, "-m", "reasrm.cli", *args], capture_output=True, text=True, cwd=cwd)


def test_cli_validate_and_print_config(tmp_path):
    ok = _cli("validate", "stages/judge.yaml", "generation.batch_size=2")
    assert ok.returncode == 0, ok.stderr
    assert "stages/judge.yaml: ok (judge)" in ok.stdout
    printed = _cli("print-config", "stages/judge.yaml", "seed=7")
    assert printed.returncode == 0 and yaml.safe_load(printed.stdout)["seed"] == 7

    bad = tmp_path / "bad.yaml"
    bad.write_text("stage: judge\npairs: p\noutput: o\nmodle: x\ngeneration: {batch_size: 0}\n")
    result = _cli("validate", str(bad))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert lines == [
        f"reasrm: error: {bad}:4: modle: unknown key; did you mean 'model'?",
        f"reasrm: error: {bad}:5: generation.batch_size: must be >= 1, got 0",
    ]


def test_validate_refuses_resume_with_overwrite_before_any_run(capsys):
    """The shipped configs overwrite nothing by default; resume=true with overwrite=true is refused by
    `reasrm validate` itself, not only when the run starts."""
    from reasrm.cli import main

    for config in ("stages/distill.yaml", "stages/rl.yaml", "stages/judge.yaml", "stages/policy_grpo.yaml"):
        assert main(["validate", config, "resume=true"]) == 0, config
        assert main(["validate", config, "resume=true", "overwrite=true"]) == 2, config
        assert capsys.readouterr().err.strip() == (
            "reasrm: error: override 'resume=true': resume: resume and overwrite exclude each other: set one of them"
        )


@pytest.mark.parametrize("name", ["distill", "rl", "judge", "policy_grpo"])
def test_each_shipped_stage_config_is_its_schemas_defaults(name):
    """One source for each default: a stage YAML lists the dataclass defaults (documenting them), so
    `RLConfig()` from Python is the run `make rl` starts; a YAML gives a value only where the dataclass has
    none (a required key)."""
    import dataclasses

    from omegaconf import OmegaConf

    from reasrm.cli import schema

    path = ROOT / "stages" / f"{name}.yaml"
    cfg = load(str(path), [], machine=False)
    shipped = OmegaConf.to_container(OmegaConf.structured(cfg))
    defaults = OmegaConf.to_container(OmegaConf.structured(schema(cfg.stage)))
    required = {f.name for f in dataclasses.fields(schema(cfg.stage)) if defaults.get(f.name) == "???"}
    differ = {k: (defaults[k], v) for k, v in shipped.items() if k not in required and defaults[k] != v}
    assert differ == {}, f"{path.name} differs from the dataclass defaults (default, yaml): {differ}"
