"""Config machinery: YAML files checked against typed dataclasses, then ``key=value`` overrides.

Stage configs, data recipes, rubric packs and prompt formats are all read here, by one loader. Every
problem is collected and reported at once, one per line, as ``WHERE: key.path: problem``, where WHERE is
``file:line`` (or the override that set the value): unknown keys (with a suggestion), wrong types,
missing required values, and the schema's own cross-field rules (its ``check()``, which returns
``(key.path, problem)`` pairs). This module knows no schema: every caller passes its own.
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import math
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from omegaconf import MISSING, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from reasrm.errors import ReasrmConfigError

Problem = tuple[str, str]  # (key.path, what is wrong with it)


@dataclass(frozen=True)
class Range:
    """The values a numeric key takes: bounds (``ge``/``gt`` below, ``le``/``lt`` above) and ``also``, values
    allowed outside them (``max_steps: -1``, none). Floats must be finite as well."""

    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    lt: float | None = None
    also: tuple = ()

    def problem(self, value) -> str | None:
        if value is None or isinstance(value, bool) or not isinstance(value, int | float):
            return None
        if isinstance(value, float) and not math.isfinite(value):
            return f"must be a finite number, got {value}"
        if value in self.also:
            return None
        inside = (
            (self.ge is None or value >= self.ge)
            and (self.gt is None or value > self.gt)
            and (self.le is None or value <= self.le)
            and (self.lt is None or value < self.lt)
        )
        return None if inside else f"must be {self.describe()}, got {value}"

    def describe(self) -> str:
        pairs = ((">=", self.ge), (">", self.gt), ("<=", self.le), ("<", self.lt))
        text = " and ".join(f"{op} {v:g}" for op, v in pairs if v is not None)
        return " or ".join([*(f"{v:g}" for v in self.also), text]) if self.also else text


def option(
    text: str,
    default: Any = MISSING,
    factory: Any = None,
    *,
    ge: float | None = None,
    gt: float | None = None,
    le: float | None = None,
    lt: float | None = None,
    also: tuple = (),
) -> Any:
    """A dataclass field with a help string; without a default (MISSING) the value is required. A numeric
    field states its range (``ge``, ``gt``, ``le``, ``lt``, ``also``): ``load_config`` refuses a value
    outside it, naming the key, before any stage runs."""
    metadata: dict[str, Any] = {"help": text}
    if any(v is not None for v in (ge, gt, le, lt)) or also:
        metadata["range"] = Range(ge, gt, le, lt, tuple(also))
    if factory is not None:
        return field(default_factory=factory, metadata=metadata)
    return field(default=default, metadata=metadata)


def range_problems(obj, prefix: str = "") -> list[Problem]:
    """Every value of a loaded config (its sections and lists of sections too) outside its field's range,
    and every float that is not finite."""
    problems = []
    for f in dataclasses.fields(obj):
        value, key = getattr(obj, f.name), f"{prefix}{f.name}"
        if dataclasses.is_dataclass(value):
            problems += range_problems(value, f"{key}.")
        elif isinstance(value, list) and value and dataclasses.is_dataclass(value[0]):
            for i, item in enumerate(value):
                problems += range_problems(item, f"{key}[{i}].")
        elif (problem := f.metadata.get("range", Range()).problem(value)) is not None:
            problems.append((key, problem))
        elif isinstance(value, list) and any(isinstance(v, float) and not math.isfinite(v) for v in value):
            problems.append((key, f"must hold finite numbers, got {value}"))
    return problems


def read_yaml(path: str | Path) -> tuple[dict, dict[str, int]]:
    """The mapping in ``path`` and the line of each key path (``generation.batch_size`` -> 7,
    ``criteria[1].id`` -> 12)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise ReasrmConfigError(f"{path}: cannot read: {e.strerror}") from None
    except UnicodeDecodeError as e:
        raise ReasrmConfigError(f"{path}: not UTF-8 text (byte {e.start})") from None
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


BASE = "base"  # a config file's key naming the config it overlays


def read_layers(path: str | Path, seen: tuple[Path, ...] = ()) -> tuple[dict, dict[str, str]]:
    """A config file with the file it overlays: ``base: FILE`` (relative to the file) names a config whose
    values this one replaces where it gives them, so a preset names only what differs. The merged mapping,
    and for each key path the ``file:line`` that set it."""
    data, lines = read_yaml(path)
    where = {key: f"{path}:{line}" for key, line in lines.items()}
    if BASE not in data:
        return data, where
    base = data.pop(BASE)
    if not isinstance(base, str) or not base:
        raise ReasrmConfigError(f"{path}:{lines[BASE]}: base: expected the file this config overlays, got {base!r}")
    under = (Path(path).parent / base).resolve()
    if under in seen or under == Path(path).resolve():
        raise ReasrmConfigError(f"{path}:{lines[BASE]}: base: {base} overlays this file again (a cycle)")
    if not under.is_file():
        raise ReasrmConfigError(f"{path}:{lines[BASE]}: base: {under} does not exist")
    below, below_where = read_layers(under, (*seen, Path(path).resolve()))
    return _overlay(below, data), {**below_where, **where}


def _overlay(below: dict, above: dict) -> dict:
    """``below`` with ``above``'s values: sections merge key by key, anything else is replaced."""
    merged = dict(below)
    for key, value in above.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _overlay(merged[key], value)
        else:
            merged[key] = value
    return merged


def load_config(
    path: str | Path | None, overrides: list[str] | tuple[str, ...] = (), *, schema: type, machine: bool = True
):
    """Read ``path`` (optional) as ``schema``, apply ``key=value`` overrides, check everything, return the
    dataclass. Raises :class:`ReasrmConfigError` listing every problem, one per line: the schema's
    ``check()`` and, with ``machine``, its ``machine_check()`` (what this machine and launch cannot run:
    a GPU-only setting on a CPU, a process count other than the config's)."""
    data: dict = {}
    lines: dict[str, str] = {}  # key path -> the file:line that set it (a base file's, for an overlay)
    where = "defaults"
    if path is not None:
        where = str(path)
        data, lines = read_layers(path)
    params = data.get("params")
    if isinstance(params, dict):  # `n=1000` sets a declared parameter, used in the file as ${params.n}
        overrides = [f"params.{o}" if o.partition("=")[0].strip() in params else o for o in overrides]

    problems: list[str] = []
    fatal = False  # a problem that leaves no config to check further (a malformed override, a missing value)
    set_by: dict[str, str] = {}  # key path -> the override that set it

    def locate(key: str) -> str:
        """Where a key's value came from: its override, else its (or its nearest parent's) file line."""
        for probe in _parents(key):
            if probe in set_by:
                return set_by[probe]
        for probe in _parents(key):
            if probe in lines:
                return lines[probe]
        return where

    dropped: set[str] = set()  # key paths whose value was refused (reported once, not again as missing)
    data = _checked(schema, data, "", lambda key: lines.get(key, where), problems, dropped)
    provided = [data]
    for item in overrides:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            problems.append(f"override {item!r}: expected key=value, e.g. generation.batch_size=4")
            fatal = True
            continue
        try:
            value = yaml.safe_load(raw) if raw else ""
        except yaml.YAMLError:
            value = raw
        set_by[key] = f"override {item!r}"
        if isinstance(value, dict):  # a mapping given whole replaces the one below it (families={x: 1})
            provided = [_without(d, key) for d in provided]
        provided.append(
            _checked(schema, _nest(key, value), "", lambda _key, item=item: f"override {item!r}", problems, dropped)
        )
    missing = [
        (key, parent)
        for key, parent in _required(schema, data, "")
        if key not in dropped and not any(_has(d, key) for d in provided)
    ]
    for key, parent in missing:
        hint = f"set it in the file or pass {key}=..." if "[" not in key else "set it in the file"
        problems.append(f"{locate(parent) if parent else where}: {key}: missing: {hint}")
        fatal = True
    if fatal:
        raise ReasrmConfigError("\n".join(problems))

    # Unknown keys and wrong types were left out of `provided`: the schema's own rules still run on the
    # rest, so every problem is reported at once.
    try:
        cfg = OmegaConf.merge(OmegaConf.structured(schema), *provided)
    except OmegaConfBaseException as e:
        raise ReasrmConfigError("\n".join([*problems, f"{where}: {str(e).splitlines()[0]}"])) from None
    try:
        missing_keys = sorted(OmegaConf.missing_keys(cfg))
    except OmegaConfBaseException as e:  # e.g. n=abc where ${params.n} must be an integer
        raise ReasrmConfigError("\n".join([*problems, f"{where}: {str(e).splitlines()[0]}"])) from None
    for key in missing_keys:
        parent, _, leaf = key.rpartition(".")
        if OmegaConf.is_interpolation(OmegaConf.select(cfg, parent) if parent else cfg, leaf):
            continue  # it only points at a missing value, which is reported itself
        name = key.removeprefix("params.")
        problems.append(f"{where}: {name}: missing: pass {name}=...")
        fatal = True
    if fatal:
        raise ReasrmConfigError("\n".join(problems))
    try:
        obj = OmegaConf.to_object(cfg)
    except OmegaConfBaseException as e:
        raise ReasrmConfigError("\n".join([*problems, f"{where}: {str(e).splitlines()[0]}"])) from None
    check = getattr(obj, "check", None)
    own = range_problems(obj) + (list(check()) if check else [])
    if machine and hasattr(obj, "machine_check"):
        own += obj.machine_check()
    stage = next((f.default for f in dataclasses.fields(schema) if f.name == "stage"), None)
    if stage is not None and obj.stage != stage:  # a file's `stage:` names the schema it is read with
        own.insert(0, ("stage", f"must be {stage!r} for this command, got {obj.stage!r}"))
    problems += [f"{locate(key)}: {key}: {message}" for key, message in own]
    if problems:
        raise ReasrmConfigError("\n".join(problems))
    return obj


def to_yaml(cfg) -> str:
    return OmegaConf.to_yaml(OmegaConf.structured(cfg))


def save_config(cfg, path: str | Path) -> None:
    """Save the resolved config (written next to every output so a run can be reproduced)."""
    Path(path).write_text(to_yaml(cfg), encoding="utf-8")


def digest(cfg) -> str:
    """A short hash of the resolved config (recorded in judge cards)."""
    return hashlib.sha256(to_yaml(cfg).encode()).hexdigest()[:16]


def type_name(hint) -> str:
    """A field's type as a config's reader says it: ``dict[str, list[str]]`` is "a mapping of text to a list
    of text", ``int | None`` is "an integer or null"."""
    names = {str: "text", int: "an integer", float: "a number", bool: "true or false", type(None): "null"}
    plural = {str: "text", int: "integers", float: "numbers", bool: "booleans"}
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is dict:
        return f"a mapping of {plural.get(args[0], type_name(args[0]))} to {type_name(args[1])}"
    if origin is list:
        return f"a list of {plural.get(args[0], type_name(args[0]))}"
    if args and type(None) in args:  # X | None
        return " or ".join(type_name(a) for a in args)
    return names.get(hint, getattr(hint, "__name__", str(hint)))


def _parents(key: str) -> list[str]:
    """``a[1].b`` -> ``a[1].b``, ``a[1]``, ``a``."""
    out = [key]
    while True:
        cut = max(key.rfind("."), key.rfind("["))
        if cut <= 0:
            return out
        key = key[:cut]
        out.append(key)


def _section_list(hint: Any) -> type | None:
    """The dataclass ``D`` of a ``list[D]`` field, else None."""
    if typing.get_origin(hint) is list:
        (item,) = typing.get_args(hint)
        return item if dataclasses.is_dataclass(item) else None
    return None


def _required(schema: type, data: Any, prefix: str) -> list[tuple[str, str]]:
    """(key path, its parent's key path) of each value without a default, in nested sections and in the
    items of lists of sections that ``data`` gives."""
    out = []
    hints = typing.get_type_hints(schema)
    data = data if isinstance(data, dict) else {}
    for f in dataclasses.fields(schema):
        key = f"{prefix}{f.name}"
        if f.default is MISSING:
            out.append((key, prefix.rstrip(".")))
        elif f.default_factory is not dataclasses.MISSING and dataclasses.is_dataclass(f.default_factory):
            out.extend(_required(f.default_factory, data.get(f.name), f"{key}."))
        elif _section_list(hints[f.name]) is not None and isinstance(data.get(f.name), list):
            for i, item in enumerate(data[f.name]):
                out.extend(_required(_section_list(hints[f.name]), item, f"{key}[{i}]."))
    return out


def _has(data: dict, dotted: str) -> bool:
    for part in dotted.replace("[", ".[").split("."):
        if part.startswith("["):
            index = int(part[1:-1])
            if not isinstance(data, list) or index >= len(data):
                return False
            data = data[index]
        elif not isinstance(data, dict) or part not in data:
            return False
        else:
            data = data[part]
    return data is not None and data != MISSING


def _without(data: dict, dotted: str) -> dict:
    """``data`` with the value at ``dotted`` (a path of mapping keys) removed; a copy where it differs."""
    head, _, rest = dotted.partition(".")
    if head not in data:
        return data
    if not rest:
        return {k: v for k, v in data.items() if k != head}
    if not isinstance(data[head], dict):
        return data
    return {**data, head: _without(data[head], rest)}


def _nest(dotted: str, value: Any) -> dict:
    *parents, leaf = dotted.split(".")
    out: dict = {leaf: value}
    for part in reversed(parents):
        out = {part: out}
    return out


def _checked(schema: type, data: dict, prefix: str, where, problems: list[str], dropped: set[str]) -> dict:
    """``data`` without its unknown keys and wrongly typed values, each reported in ``problems`` (so the
    schema's own rules can still run on the rest and every problem is reported at once)."""
    hints = typing.get_type_hints(schema)
    kept: dict = {}
    for key, value in data.items():
        full = f"{prefix}{key}"
        if key not in hints:
            close = difflib.get_close_matches(str(key), list(hints), n=1)
            hint = f"; did you mean '{prefix}{close[0]}'?" if close else f"; valid keys: {', '.join(hints)}"
            problems.append(f"{where(full)}: {full}: unknown key{hint}")
        elif dataclasses.is_dataclass(hints[key]):
            if isinstance(value, dict):
                kept[key] = _checked(hints[key], value, f"{full}.", where, problems, dropped)
            else:
                problems.append(f"{where(full)}: {full}: a section: expected a mapping, got {value!r}")
        elif _section_list(hints[key]) is not None:
            if not isinstance(value, list):
                problems.append(f"{where(full)}: {full}: a list of sections: expected a list, got {value!r}")
                continue
            items = []
            for i, item in enumerate(value):
                if isinstance(item, dict):
                    items.append(_checked(_section_list(hints[key]), item, f"{full}[{i}].", where, problems, dropped))
                else:
                    problems.append(f"{where(f'{full}[{i}]')}: {full}[{i}]: expected a mapping, got {item!r}")
            kept[key] = items
        else:
            try:
                OmegaConf.merge(OmegaConf.structured(schema), {key: value})
            except OmegaConfBaseException:
                problems.append(f"{where(full)}: {full}: expected {type_name(hints[key])}, got {value!r}")
                dropped.add(full)
                continue
            kept[key] = value
    return kept
