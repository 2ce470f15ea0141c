"""Configs: OmegaConf YAML checked against typed dataclasses, then ``key=value`` overrides.

Every problem is collected and reported at once (unknown keys with a suggestion, wrong types, missing
required values, cross-field rules), each naming the file and line or the override that caused it.
A config file names its schema with ``stage:`` (a plain dict below maps names to dataclasses).
"""

from __future__ import annotations

import dataclasses
import difflib
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from omegaconf import MISSING, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from reasrm.errors import ReasrmConfigError


def _help(text: str, default: Any = MISSING, factory: Any = None) -> Any:
    """A dataclass field with a help string (MISSING default = required)."""
    if factory is not None:
        return field(default_factory=factory, metadata={"help": text})
    return field(default=default, metadata={"help": text})


@dataclass
class GenerationConfig:
    """How the judge generates. Greedy (temperature 0) by default, so verdicts are reproducible."""

    max_new_tokens: int = _help("Most tokens the judge may write per pair.", 512)
    temperature: float = _help("0 means greedy decoding; above 0 samples.", 0.0)
    top_p: float = _help("Nucleus sampling mass (used only when temperature > 0).", 1.0)
    batch_size: int = _help("Judge calls generated together (hf backend).", 16)
    seed: int = _help("Seed for sampling (temperature > 0).", 0)

    def check(self, path: str) -> list[str]:
        problems = []
        if self.max_new_tokens < 1:
            problems.append(f"'{path}max_new_tokens' must be >= 1, got {self.max_new_tokens}")
        if self.temperature < 0:
            problems.append(f"'{path}temperature' must be >= 0 (0 = greedy), got {self.temperature}")
        if not 0 < self.top_p <= 1:
            problems.append(f"'{path}top_p' must be in (0, 1], got {self.top_p}")
        if self.batch_size < 1:
            problems.append(f"'{path}batch_size' must be >= 1, got {self.batch_size}")
        return problems


BACKENDS = ("hf", "vllm", "openai")


@dataclass
class JudgeConfig:
    """``reasrm judge``: judge every pair of a JSONL file and write one JSON line per pair."""

    stage: str = _help("Names this schema.", "judge")
    model: str | None = _help("Hub id, local HF folder or .gguf file; null = the embedded default.", None)
    backend: str = _help(f"Generation backend: one of {', '.join(BACKENDS)}.", "hf")
    prompt_format: str | None = _help(
        "Prompt format name or .yaml path; null = the checkpoint's judge card (required without one).", None
    )
    rubric: str | None = _help(
        "Rubric pack forced on every pair; null = each pair's `rubric` field, else the judge card's pack.", None
    )
    base_url: str | None = _help(
        "openai backend: the server, e.g. http://127.0.0.1:8000/v1 (key: $REASRM_API_KEY).", None
    )
    pairs: str = _help("Input JSONL: prompt|context, chosen/rejected or response_a/response_b, optional id.")
    output: str = _help("Output JSONL, one line per pair; the resolved config is saved beside it.")
    both_orders: bool = _help("Judge each pair as (A,B) and (B,A) and aggregate.", False)
    seed: int = _help("Seeds the slot of the chosen response in labelled pairs.", 0)
    resume: bool = _help("Continue an interrupted run: skip pairs already in the output.", False)
    overwrite: bool = _help("Replace an existing output file.", False)
    generation: GenerationConfig = _help("Generation settings.", factory=GenerationConfig)

    def check(self) -> list[str]:
        problems = self.generation.check("generation.")
        if self.stage != "judge":
            problems.append(f"'stage' must be 'judge' for this schema, got {self.stage!r}")
        if self.backend not in BACKENDS:
            problems.append(f"'backend' must be one of {', '.join(BACKENDS)}, got {self.backend!r}")
        if self.resume and self.overwrite:
            problems.append("'resume' and 'overwrite' exclude each other: set one of them")
        return problems


BENCHMARKS = ("rewardbench", "rm-bench", "rmb", "pairs")


@dataclass
class EvalConfig:
    """``reasrm eval``: judge a benchmark and score it exactly as the benchmark does."""

    stage: str = _help("Names this schema.", "eval")
    benchmark: str = _help(f"One of {', '.join(BENCHMARKS)}.")
    model: str | None = _help("Hub id, local HF folder or .gguf file; null = the embedded default.", None)
    backend: str = _help(f"Generation backend: one of {', '.join(BACKENDS)}.", "hf")
    prompt_format: str | None = _help("Prompt format; null = the checkpoint's judge card.", None)
    rubric: str | None = _help(
        "Rubric pack forced on every pair; null = each pair's `rubric` field, else the judge card's pack.", None
    )
    base_url: str | None = _help(
        "openai backend: the server, e.g. http://127.0.0.1:8000/v1 (key: $REASRM_API_KEY).", None
    )
    data_dir: str | None = _help(
        "Local benchmark data (the layout of ../shared/data/<benchmark>), or for `pairs` a built dataset "
        "folder (its held-out split); null = the hub (rewardbench).",
        None,
    )
    domain: str | None = _help("Evaluate only pairs of this domain.", None)
    both_orders: bool = _help("Judge each pair in both slot orders (reports the position-flip rate).", False)
    limit: int | None = _help(
        "Evaluate this many prompts (RM-Bench) / records (BoN) / pairs, drawn with the seed.", None
    )
    seed: int = _help("Seeds the slot order and the --limit draw.", 0)
    output: str = _help("Output folder: samples.jsonl, scores.json, report.md, figures.")
    resume: bool = _help("Continue from samples.jsonl without redoing finished calls.", False)
    overwrite: bool = _help("Replace an existing evaluation in the output folder.", False)
    generation: GenerationConfig = _help("Generation settings.", factory=GenerationConfig)

    def check(self) -> list[str]:
        problems = self.generation.check("generation.")
        if self.benchmark not in BENCHMARKS:
            problems.append(f"'benchmark' must be one of {', '.join(BENCHMARKS)}, got {self.benchmark!r}")
        if self.benchmark in ("rm-bench", "rmb", "pairs") and self.data_dir is None:
            problems.append(f"'data_dir' is required for {self.benchmark!r}: e.g. data_dir=../shared/data/rm-bench, "
                            "or for `pairs` a folder written by `reasrm data build`")  # fmt: skip
        if self.backend not in BACKENDS:
            problems.append(f"'backend' must be one of {', '.join(BACKENDS)}, got {self.backend!r}")
        if self.limit is not None and self.limit < 1:
            problems.append(f"'limit' must be >= 1, got {self.limit}")
        if self.resume and self.overwrite:
            problems.append("'resume' and 'overwrite' exclude each other: set one of them")
        return problems


def stages() -> dict[str, type]:
    """Config schemas by the name a file gives in ``stage:`` (recipes live with the data code)."""
    from reasrm.data.recipe import RecipeConfig
    from reasrm.distill import DistillConfig
    from reasrm.policy import PolicyConfig
    from reasrm.rl import RLConfig

    return {"judge": JudgeConfig, "eval": EvalConfig, "recipe": RecipeConfig, "policy": PolicyConfig,
            "distill": DistillConfig, "rl": RLConfig}  # fmt: skip


def load_config(path: str | Path | None, overrides: list[str] = (), schema: type | None = None):
    """Read ``path`` (optional), apply ``key=value`` overrides, check everything, return the dataclass."""
    problems: list[str] = []
    data: dict = {}
    lines: dict[str, int] = {}
    where = "defaults"
    if path is not None:
        where = str(path)
        data, lines = _read_yaml(Path(path))
    if schema is None:
        stage = data.get("stage")
        if stage not in stages():
            raise ReasrmConfigError(f"{where}: 'stage' must name a schema, one of {', '.join(stages())}; got {stage!r}")
        schema = stages()[stage]
    params = data.get("params")
    if isinstance(params, dict):  # `n=1000` sets a declared parameter, used in the file as ${params.n}
        overrides = [f"params.{o}" if o.partition("=")[0].strip() in params else o for o in overrides]

    _check_keys(schema, data, "", lambda key: f"{where}:{lines.get(key, 1)}", problems)
    override_dicts: list[dict] = []
    for item in overrides:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            problems.append(f"override {item!r}: expected key=value, e.g. generation.batch_size=4")
            continue
        try:
            value = yaml.safe_load(raw) if raw else ""
        except yaml.YAMLError:
            value = raw
        override_dicts.append(_nest(key, value))
        _check_keys(schema, override_dicts[-1], "", lambda _key, item=item: f"override {item!r}", problems)
    provided = [data, *override_dicts]
    for key in _required(schema, ""):
        if not any(_has(d, key) for d in provided):
            problems.append(f"{where}: missing required value '{key}': set it in the file or pass {key}=...")
    if problems:
        raise ReasrmConfigError("\n".join(problems))

    cfg = OmegaConf.merge(OmegaConf.structured(schema), *provided)
    for key in sorted(OmegaConf.missing_keys(cfg)):
        parent, _, leaf = key.rpartition(".")
        if OmegaConf.is_interpolation(OmegaConf.select(cfg, parent) if parent else cfg, leaf):
            continue  # it only points at a missing value, which is reported itself
        name = key.removeprefix("params.")
        problems.append(f"{where}: missing value for '{name}': pass {name}=...")
    if problems:
        raise ReasrmConfigError("\n".join(problems))
    try:
        obj = OmegaConf.to_object(cfg)
    except OmegaConfBaseException as e:
        raise ReasrmConfigError(f"{where}: {str(e).splitlines()[0]}") from None
    problems.extend(f"{where}: {p}" for p in obj.check())
    if problems:
        raise ReasrmConfigError("\n".join(problems))
    return obj


def to_yaml(cfg) -> str:
    return OmegaConf.to_yaml(OmegaConf.structured(cfg))


def save_config(cfg, path: str | Path) -> None:
    """Save the resolved config (written next to every output so a run can be reproduced)."""
    Path(path).write_text(to_yaml(cfg), encoding="utf-8")


def check_resume(saved: Path, cfg, keys: tuple[str, ...]) -> None:
    """Refuse to resume an output made with settings (``keys``) that change results."""
    if not saved.is_file():
        return
    before = yaml.safe_load(saved.read_text(encoding="utf-8")) or {}
    now = yaml.safe_load(to_yaml(cfg))
    for key in keys:
        if before.get(key) != now.get(key):
            raise ReasrmConfigError(
                f"cannot resume {cfg.output}: '{key}' was {before.get(key)!r} (see {saved}), now {now.get(key)!r}; "
                "use the same settings or --overwrite"
            )


def _read_yaml(path: Path) -> tuple[dict, dict[str, int]]:
    """The mapping in ``path`` and the line of each key path (``generation.batch_size`` -> 7)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise ReasrmConfigError(f"{path}: cannot read config: {e.strerror}") from None
    try:
        node = yaml.compose(text)
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = f":{mark.line + 1}" if mark else ""
        raise ReasrmConfigError(f"{path}{line}: invalid YAML: {getattr(e, 'problem', e)}") from None
    if data is None:
        return {}, {}
    if not isinstance(data, dict):
        raise ReasrmConfigError(f"{path}: expected a mapping of keys to values, got {type(data).__name__}")
    lines: dict[str, int] = {}

    def walk(node: yaml.Node, prefix: str) -> None:
        if isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:
                key = f"{prefix}{key_node.value}"
                lines[key] = key_node.start_mark.line + 1
                walk(value_node, f"{key}.")
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                lines[f"{prefix[:-1]}[{i}]"] = item.start_mark.line + 1
                walk(item, f"{prefix[:-1]}[{i}].")

    walk(node, "")
    return data, lines


def _section_list(hint: Any) -> type | None:
    """The dataclass ``D`` of a ``list[D]`` field, else None."""
    if typing.get_origin(hint) is list:
        (item,) = typing.get_args(hint)
        return item if dataclasses.is_dataclass(item) else None
    return None


def _required(schema: type, prefix: str) -> list[str]:
    """Dotted paths of the fields without a default."""
    out = []
    for f in dataclasses.fields(schema):
        if f.default is MISSING:
            out.append(f"{prefix}{f.name}")
        elif f.default_factory is not dataclasses.MISSING and dataclasses.is_dataclass(f.default_factory):
            out.extend(_required(f.default_factory, f"{prefix}{f.name}."))
    return out


def _has(data: dict, dotted: str) -> bool:
    for part in dotted.split("."):
        if not isinstance(data, dict) or part not in data:
            return False
        data = data[part]
    return data is not None and data != MISSING


def _nest(dotted: str, value: Any) -> dict:
    *parents, leaf = dotted.split(".")
    out: dict = {leaf: value}
    for part in reversed(parents):
        out = {part: out}
    return out


def _check_keys(schema: type, data: dict, prefix: str, where, problems: list[str]) -> None:
    """Unknown keys and wrong types in ``data`` against ``schema``, appended to ``problems``."""
    hints = typing.get_type_hints(schema)
    for key, value in data.items():
        full = f"{prefix}{key}"
        if key not in hints:
            close = difflib.get_close_matches(str(key), list(hints), n=1)
            hint = f"; did you mean '{prefix}{close[0]}'?" if close else f"; valid keys: {', '.join(hints)}"
            problems.append(f"{where(full)}: unknown key '{full}'{hint}")
        elif dataclasses.is_dataclass(hints[key]):
            if isinstance(value, dict):
                _check_keys(hints[key], value, f"{full}.", where, problems)
            else:
                problems.append(f"{where(full)}: '{full}' is a section: expected a mapping, got {value!r}")
        elif _section_list(hints[key]) is not None:
            if not isinstance(value, list):
                problems.append(f"{where(full)}: '{full}' is a list of sections: expected a list, got {value!r}")
                continue
            for i, item in enumerate(value):
                if isinstance(item, dict):
                    _check_keys(_section_list(hints[key]), item, f"{full}[{i}].", where, problems)
                else:
                    problems.append(f"{where(f'{full}[{i}]')}: '{full}[{i}]' expected a mapping, got {item!r}")
        else:
            try:
                OmegaConf.merge(OmegaConf.structured(schema), {key: value})
            except OmegaConfBaseException:
                expected = getattr(hints[key], "__name__", str(hints[key]))
                problems.append(f"{where(full)}: '{full}': expected {expected}, got {value!r}")
