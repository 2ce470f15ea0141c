"""Config loading: typed schemas, every problem reported at once with where it is, clean CLI errors."""

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from reasrm.config import JudgeConfig, load_config, save_config, to_yaml
from reasrm.errors import ReasrmConfigError

ROOT = Path(__file__).resolve().parents[1]


def test_every_shipped_stage_config_validates():
    configs = sorted((ROOT / "stages").rglob("*.yaml"))
    configs = [p for p in configs if "accelerate" not in p.parts]  # accelerate's own files are not ours
    assert len(configs) >= 1
    for path in configs:
        load_config(path)


def _problems(text: str, tmp_path, overrides=()) -> list[str]:
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(ReasrmConfigError) as error:
        load_config(path, list(overrides))
    return str(error.value).splitlines()


def test_all_problems_are_reported_at_once_with_lines(tmp_path):
    problems = _problems(
        "stage: judge\nmodle: x\ngeneration:\n  batch_size: many\n  max_new_token: 3\nboth_orders: maybe\n",
        tmp_path,
        overrides=["generation.top_p=high"],
    )
    assert problems == [
        f"{tmp_path}/c.yaml:2: unknown key 'modle'; did you mean 'model'?",
        f"{tmp_path}/c.yaml:4: 'generation.batch_size': expected int, got 'many'",
        f"{tmp_path}/c.yaml:5: unknown key 'generation.max_new_token'; did you mean 'generation.max_new_tokens'?",
        f"{tmp_path}/c.yaml:6: 'both_orders': expected bool, got 'maybe'",
        "override 'generation.top_p=high': 'generation.top_p': expected float, got 'high'",
        f"{tmp_path}/c.yaml: missing required value 'pairs': set it in the file or pass pairs=...",
        f"{tmp_path}/c.yaml: missing required value 'output': set it in the file or pass output=...",
    ]


def test_unknown_key_without_a_close_match_lists_the_valid_ones(tmp_path):
    (problem,) = _problems("stage: judge\npairs: p\noutput: o\nzzz: 1\n", tmp_path)
    assert "unknown key 'zzz'; valid keys: stage, model" in problem


def test_cross_field_rules_name_key_value_and_fix(tmp_path):
    problems = _problems(
        "stage: judge\npairs: p\noutput: o\nbackend: tgi\nresume: true\noverwrite: true\n"
        "generation:\n  temperature: -1\n  top_p: 0\n",
        tmp_path,
    )
    assert len(problems) == 4
    assert any("'generation.temperature' must be >= 0 (0 = greedy), got -1.0" in p for p in problems)
    assert any("'generation.top_p' must be in (0, 1], got 0.0" in p for p in problems)
    assert any("'backend' must be one of hf, vllm, openai, got 'tgi'" in p for p in problems)
    assert any("'resume' and 'overwrite' exclude each other" in p for p in problems)


def test_section_given_a_scalar(tmp_path):
    (problem,) = _problems("stage: judge\npairs: p\noutput: o\ngeneration: 3\n", tmp_path)
    assert problem.endswith("'generation' is a section: expected a mapping, got 3")


def test_bad_yaml_and_bad_stage(tmp_path):
    assert _problems("stage: judge\n  bad: [indent\n", tmp_path)[0].startswith(f"{tmp_path}/c.yaml:")
    assert "'stage' must name a schema" in _problems("stage: train\n", tmp_path)[0]
    with pytest.raises(ReasrmConfigError, match="cannot read config"):
        load_config(tmp_path / "absent.yaml")


def test_overrides_apply_and_round_trip(tmp_path):
    cfg = load_config(
        None,
        ["pairs=in.jsonl", "output=out.jsonl", "generation.max_new_tokens=64", "model=null", "both_orders=true"],
        schema=JudgeConfig,
    )
    assert (cfg.generation.max_new_tokens, cfg.model, cfg.both_orders) == (64, None, True)
    save_config(cfg, tmp_path / "saved.yaml")
    assert load_config(tmp_path / "saved.yaml") == cfg
    assert yaml.safe_load(to_yaml(cfg))["generation"]["max_new_tokens"] == 64
    with pytest.raises(ReasrmConfigError, match="expected key=value"):
        load_config(None, ["pairs"], schema=JudgeConfig)


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
    assert lines == [f"reasrm: error: {bad}:4: unknown key 'modle'; did you mean 'model'?"]
    bad.write_text("stage: judge\npairs: p\noutput: o\ngeneration: {batch_size: 0}\n")
    assert "'generation.batch_size' must be >= 1, got 0" in _cli("validate", str(bad)).stderr
