"""Rubric packs: a domain's judging criteria as data (``rubrics/*.yaml``), validated and rendered.

A pack is either a **criteria pack** (the judge applies the pack's weighted criteria and hard
constraints; ``task_type: chat`` weighs criteria, ``task_type: reasoning`` solves first, then checks)
or a **self-generated pack** (``self_generated: true``: the judge writes its own rubric, as RM-R1 does;
the two RM-R1 prompt formats are such packs). The judge's output keeps the RM-R1 chain (``<type>``,
``<rubric>`` with ``<justify>`` or ``<solution>``, ``<eval>`` with quotes, ``<answer>``), so the verdict
grammar and the rewards do not change with the pack.

A pack file is read by the same typed loader as every config (``reasrm.config``): the schema below,
its ``check()`` for the rules between keys, every problem reported at once as ``file:line: key.path:
problem``. Packs are rendered by :class:`reasrm.prompts.JudgePrompt`.

Pack keys (``reasrm rubric new`` writes a commented skeleton; ``reasrm rubric validate`` checks them):
``id version domain task_type description`` always; ``criteria`` (each ``id description weight good
poor``), ``weights_justification``, optional ``hard_constraints``, ``reference`` (``ignore``, ``use``
or ``require``: whether the pair's reference answer is shown), ``normalize`` and ``format`` for
criteria packs; ``format`` for self-generated ones.
"""

from __future__ import annotations

import dataclasses
import difflib
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from reasrm.config import Problem, load_config, option, read_yaml
from reasrm.errors import ReasrmConfigError
from reasrm.formats import load_format
from reasrm.resources import rubrics_dir

TASK_TYPES = ("chat", "reasoning")
REFERENCE = ("ignore", "use", "require")
_WEIGHT_TOLERANCE = 1e-6


@dataclass(frozen=True)
class Criterion:
    id: str = option("A short name for the criterion.", "")
    description: str = option("What the criterion checks.", "")
    weight: float = option("Its weight; a pack's weights sum to 1 (or set normalize: true).", 0.0)
    good: str = option("What a response that does well on it looks like.", "")
    poor: str = option("What a response that does badly on it looks like.", "")


@dataclass(frozen=True)
class RubricPack:
    """A pack as its file gives it (``load_pack`` normalises the weights when ``normalize`` is set)."""

    id: str = option("The pack id: equals the file name; pairs select the pack by it.", "")
    version: int = option("Bumped when the criteria change; checkpoints record it.", 0)
    domain: str = option("The domain the pack judges.", "")
    task_type: str = option(f"One of {', '.join(TASK_TYPES)}; 'auto' for a self-generated pack.", "")
    description: str = option("One sentence on what is being judged.", "")
    self_generated: bool = option("The judge writes its own rubric (RM-R1); the pack has no criteria.", False)
    format: str | None = option("The prompt format that renders the pack; null = pack-{task_type}.", None)
    criteria: list[Criterion] = option("The weighted criteria (criteria packs).", factory=list)
    hard_constraints: list[str] = option("Rules that decide the verdict on their own.", factory=list)
    reference: str = option(f"Whether the pair's reference answer is shown: {', '.join(REFERENCE)}.", "ignore")
    weights_justification: str | None = option("Why these criteria carry these weights.", None)
    normalize: bool = option("Scale the weights to sum to 1.", False)

    @property
    def label(self) -> str:
        return f"{self.id} v{self.version}"

    @property
    def format_id(self) -> str:
        return self.format or f"pack-{self.task_type}"

    def check(self) -> list[Problem]:
        problems = [(key, "still holds the skeleton's TODO text") for key, text in _strings(self) if "TODO" in text]
        for key in ("id", "domain", "description"):
            if not getattr(self, key).strip():
                problems.append((key, "missing (a non-empty string)"))
        if self.version < 1:
            problems.append(("version", f"expected a whole number >= 1, got {self.version}"))
        if self.self_generated:
            if self.task_type != "auto":
                problems.append(
                    (
                        "task_type",
                        f"a self-generated pack lets the judge classify the task: use 'auto', got {self.task_type!r}",
                    )
                )
            extra = [
                k
                for k, v in (
                    ("criteria", self.criteria),
                    ("hard_constraints", self.hard_constraints),
                    ("weights_justification", self.weights_justification),
                    ("reference", self.reference != "ignore"),
                    ("normalize", self.normalize),
                )
                if v
            ]
            problems += [
                (k, "a self-generated pack has no criteria of its own: remove it or set self_generated: false")
                for k in extra
            ]
            if self.format is None:
                problems.append(("format", "missing: a self-generated pack names the prompt format it renders with"))
        else:
            problems += self._check_criteria()
        if self.self_generated or self.task_type in TASK_TYPES:
            try:
                fmt = load_format(self.format_id)
            except ReasrmConfigError as e:
                problems += [("format", line) for line in str(e).splitlines()]
            else:
                if self.self_generated and fmt.renders_packs:
                    problems.append(
                        (
                            "format",
                            f"{fmt.id} fills its system template from a pack's criteria; a "
                            "self-generated pack has none",
                        )
                    )
                if not self.self_generated and not fmt.renders_packs:
                    problems.append(
                        ("format", f"{fmt.id} does not show a pack's criteria (its system template names none of them)")
                    )
        return problems

    def _check_criteria(self) -> list[Problem]:
        problems = []
        if self.task_type not in TASK_TYPES:
            problems.append(("task_type", f"expected one of {', '.join(TASK_TYPES)}, got {self.task_type!r}"))
        if not self.criteria:
            problems.append(
                ("criteria", "missing: a list of at least one criterion (id, description, weight, good, poor)")
            )
        seen: dict[str, int] = {}
        for i, c in enumerate(self.criteria):
            for key in ("id", "description", "good", "poor"):
                if not getattr(c, key).strip():
                    problems.append((f"criteria[{i}].{key}", "missing (a non-empty string)"))
            if c.id.strip() and c.id in seen:
                problems.append((f"criteria[{i}].id", f"duplicate criterion id {c.id!r} (also criteria[{seen[c.id]}])"))
            seen.setdefault(c.id, i)
            if not c.weight > 0:
                problems.append((f"criteria[{i}].weight", f"expected a positive number, got {c.weight:g}"))
        total = sum(c.weight for c in self.criteria)
        positive = self.criteria and all(c.weight > 0 for c in self.criteria)
        if positive and not self.normalize and abs(total - 1) > _WEIGHT_TOLERANCE:
            problems.append(("criteria", f"weights sum to {total:g}, not 1: fix them or set 'normalize: true'"))
        for i, item in enumerate(self.hard_constraints):
            if not item.strip():
                problems.append((f"hard_constraints[{i}]", "expected a non-empty string"))
        if self.reference not in REFERENCE:
            problems.append(("reference", f"expected one of {', '.join(REFERENCE)}, got {self.reference!r}"))
        if not (self.weights_justification or "").strip():
            problems.append(("weights_justification", "missing (a non-empty string)"))
        return problems


def _strings(obj, prefix: str = ""):
    """(key path, text) of every string in a pack, criteria and lists included."""
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        items = list(enumerate(value)) if isinstance(value, list) else [(None, value)]
        for i, item in items:
            key = f"{prefix}{f.name}" + ("" if i is None else f"[{i}]")
            if isinstance(item, str):
                yield key, item
            elif dataclasses.is_dataclass(item):
                yield from _strings(item, f"{key}.")


# ---------------------------------------------------------------------------------------------------
# Finding and loading packs
# ---------------------------------------------------------------------------------------------------


def pack_dirs() -> list[Path]:
    """Where packs are found by id: ``./rubrics`` (your own), then the shipped ones."""
    local, shipped = Path("rubrics").resolve(), rubrics_dir().resolve()
    return [shipped] if local == shipped else [local, shipped]


def available_packs() -> list[str]:
    return sorted({p.stem for folder in pack_dirs() for p in folder.glob("*.yaml")})


def pack_path(name_or_path: str) -> Path:
    """A pack by id (``code``: ``./rubrics/code.yaml``, else the shipped one) or a pack file by path."""
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml"):
        if not path.is_file():
            raise ReasrmConfigError(f"{path}: no such rubric pack file")
        return path
    path = next((d / f"{name_or_path}.yaml" for d in pack_dirs() if (d / f"{name_or_path}.yaml").is_file()), None)
    if path is None:
        names = available_packs()
        close = difflib.get_close_matches(name_or_path, names, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ReasrmConfigError(
            f"unknown rubric pack {name_or_path!r}{hint}: expected one of {', '.join(names)} or a path to a pack .yaml"
        )
    return path


@cache
def load_pack(name_or_path: str) -> RubricPack:
    """Load and validate a pack; every problem is reported at once (``file:line: key.path: problem``)."""
    path = pack_path(name_or_path)
    problems = validate_file(path)
    if problems:
        raise ReasrmConfigError("\n".join(problems))
    pack = load_config(path, schema=RubricPack)
    if pack.normalize:
        total = sum(c.weight for c in pack.criteria)
        pack = dataclasses.replace(
            pack, criteria=[dataclasses.replace(c, weight=c.weight / total) for c in pack.criteria]
        )
    return pack


@cache
def pack_error(name_or_path: str) -> str | None:
    """Why ``name_or_path`` is not a usable pack (first line of the problem), or None when it is one."""
    try:
        load_pack(name_or_path)
    except ReasrmConfigError as e:
        lines = str(e).splitlines()
        return lines[0] + (f" (and {len(lines) - 1} more problems)" if len(lines) > 1 else "")
    return None


def find_packs(paths: list[str]) -> list[Path]:
    """Pack files among ``paths``: files as given, folders searched recursively for ``*.yaml`` / ``*.yml``
    (prompt formats, in folders named ``formats``, are not packs and are skipped)."""
    found: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found += sorted(
                p
                for p in path.rglob("*.y*ml")
                if p.suffix in (".yaml", ".yml") and "formats" not in p.relative_to(path).parts[:-1]
            )
        elif path.is_file():
            found.append(path)
        else:
            raise ReasrmConfigError(f"{path}: no such file or folder")
    return found


def validate_file(path: str | Path) -> list[str]:
    """Every problem of one pack file, each ``file:line: key.path: problem``; empty when it is clean."""
    path = Path(path)
    try:
        pack = load_config(path, schema=RubricPack)
    except ReasrmConfigError as e:
        problems = str(e).splitlines()
        try:  # the pack's id, read on its own so a misnamed file is reported with the other problems
            data, lines = read_yaml(path)
        except ReasrmConfigError:
            return problems
        pack_id, line = data.get("id"), lines.get("id", 1)
    else:
        problems, pack_id, line = [], pack.id, read_yaml(path)[1].get("id", 1)
    if pack_id and pack_id != path.stem:
        problems.append(
            f"{path}:{line}: id: {pack_id!r} differs from the file name {path.stem!r}; "
            "pairs find a pack by its file name"
        )
    return problems


# ---------------------------------------------------------------------------------------------------
# Authoring: `reasrm rubric new`
# ---------------------------------------------------------------------------------------------------

SKELETON = """\
# Rubric pack `{name}` for the domain `{domain}`. Check it with: reasrm rubric validate {path}
# See what the judge will read with: reasrm rubric show {path}
id: {name}                 # must equal the file name; pairs select the pack with  "rubric": "{name}"
version: 1                 # bump when the criteria change: checkpoints record the version they were trained with
domain: {domain}
task_type: chat            # chat: weigh the criteria; reasoning: solve the task first, then check against it
description: >-
  TODO: one sentence on what is being judged, e.g. replies of a support agent to customer emails.

# Each criterion: a short id, what it means, its weight, and what good and poor look like.
# Weights are positive and sum to 1 (or set `normalize: true` to have them scaled).
criteria:
  - id: correctness
    description: TODO what this criterion checks.
    weight: 0.6
    good: TODO what a response that does well on it looks like.
    poor: TODO what a response that does badly on it looks like.
  - id: clarity
    description: TODO what this criterion checks.
    weight: 0.4
    good: TODO
    poor: TODO

# Optional: rules that decide the verdict on their own (a response that breaks one loses).
hard_constraints: []
#  - A response that reveals personal data of a third party loses.

reference: ignore          # ignore | use (show the pair's reference answer when it has one) | require
weights_justification: >-
  TODO: why these criteria carry these weights in this domain.
"""


def write_skeleton(name: str, domain: str, folder: str | Path) -> Path:
    if not name or not all(ch.isalnum() or ch in "-_" for ch in name):
        raise ReasrmConfigError(f"pack name {name!r}: use letters, digits, '-' and '_' only (it becomes the file name)")
    path = Path(folder) / f"{name}.yaml"
    if path.exists():
        raise ReasrmConfigError(f"{path} already exists: choose another name or edit it")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(SKELETON.format(name=name, domain=domain, path=path), encoding="utf-8")
    return path
