"""Rubric packs: a domain's judging criteria as data (``rubrics/*.yaml``), validated and rendered.

A pack is either a **criteria pack** (the judge applies the pack's weighted criteria and hard
constraints; ``task_type: chat`` weighs criteria, ``task_type: reasoning`` solves first, then checks)
or a **self-generated pack** (``self_generated: true``: the judge writes its own rubric, as RM-R1 does;
the two RM-R1 prompt formats are such packs). The judge's output keeps the RM-R1 chain (``<type>``,
``<rubric>`` with ``<justify>`` or ``<solution>``, ``<eval>`` with quotes, ``<answer>``), so the verdict
grammar and the rewards do not change with the pack.

:class:`JudgePrompt` is the one renderer of judge conversations. The teacher, SFT formatting, GRPO
prompts, ``Judge`` and ``reasrm serve`` all build one and call :meth:`JudgePrompt.messages`; which pack a
pair gets is decided there, in this order: the stage's forced ``rubric``, else the pair's ``rubric``
field, else the default pack (a checkpoint's judge card), else the bare prompt format.

Pack keys (``reasrm rubric new`` writes a commented skeleton; ``reasrm rubric validate`` checks them):
``id version domain task_type description`` always; ``criteria`` (each ``id description weight good
poor``), ``weights_justification``, optional ``hard_constraints``, ``reference`` (``ignore``, ``use``
or ``require``: whether the pair's reference answer is shown), ``normalize`` and ``format`` for
criteria packs; ``format`` for self-generated ones.
"""

from __future__ import annotations

import dataclasses
import difflib
import logging
import string
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from reasrm.errors import ReasrmConfigError, ReasrmDataError
from reasrm.prompts import PromptFormat, escape, load_format, render
from reasrm.resources import rubrics_dir

log = logging.getLogger(__name__)

TASK_TYPES = ("chat", "reasoning")
REFERENCE = ("ignore", "use", "require")
# What a pack format's templates may name. The system template is filled from the pack, the user
# templates from the pair (``reference`` is the "[Reference Answer]" block, or empty).
SYSTEM_PLACEHOLDERS = ("domain", "description", "criteria", "hard_constraints", "weights_justification",
                       "reference_usage")  # fmt: skip
USER_PLACEHOLDERS = ("question", "answer_a", "answer_b", "conversation_1", "conversation_2", "reference")
_KEYS = {"id", "version", "domain", "task_type", "description", "self_generated", "format", "criteria",
         "hard_constraints", "reference", "weights_justification", "normalize"}  # fmt: skip
_CRITERION_KEYS = {"id", "description", "weight", "good", "poor"}
_WEIGHT_TOLERANCE = 1e-6


@dataclass(frozen=True)
class Criterion:
    id: str
    description: str
    weight: float  # normalised: a pack's weights sum to 1
    good: str
    poor: str


@dataclass(frozen=True)
class RubricPack:
    id: str
    version: int
    domain: str
    task_type: str | None  # chat | reasoning; None for self-generated packs (the judge classifies)
    description: str
    format: str  # the prompt format that renders this pack
    self_generated: bool = False
    criteria: tuple[Criterion, ...] = ()
    hard_constraints: tuple[str, ...] = ()
    reference: str = "ignore"
    weights_justification: str = ""
    path: str | None = None

    @property
    def label(self) -> str:
        return f"{self.id} v{self.version}"


# ---------------------------------------------------------------------------------------------------
# Loading and validation
# ---------------------------------------------------------------------------------------------------


def pack_dirs() -> list[Path]:
    """Where packs are found by id: ``./rubrics`` (your own), then the shipped ones."""
    local, shipped = Path("rubrics").resolve(), rubrics_dir().resolve()
    return [shipped] if local == shipped else [local, shipped]


def shipped_packs() -> list[Path]:
    """The packs shipped in ``rubrics/`` (prompt formats live in ``rubrics/formats/`` and are not packs)."""
    return sorted(rubrics_dir().glob("*.yaml"))


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
    pack, problems = _parse(path)
    if problems:
        raise ReasrmConfigError("\n".join(problems))
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
            found += sorted(p for p in path.rglob("*.y*ml") if p.suffix in (".yaml", ".yml") and
                            "formats" not in p.relative_to(path).parts[:-1])  # fmt: skip
        elif path.is_file():
            found.append(path)
        else:
            raise ReasrmConfigError(f"{path}: no such file or folder")
    return found


def validate_file(path: str | Path) -> list[str]:
    """Every problem of one pack file, each ``file:line: key.path: problem``; empty when it is clean."""
    return _parse(Path(path))[1]


def _parse(path: Path) -> tuple[RubricPack | None, list[str]]:
    from reasrm.config import _read_yaml

    try:
        data, lines = _read_yaml(path)
    except ReasrmConfigError as e:
        return None, [str(e)]
    problems: list[str] = []

    def problem(key: str, message: str) -> None:
        line = lines.get(key) or lines.get(key.rsplit(".", 1)[0]) or 1
        problems.append(f"{path}:{line}: {key}: {message}" if key else f"{path}:{line}: {message}")

    for key in sorted(set(data) - _KEYS):
        close = difflib.get_close_matches(key, sorted(_KEYS), n=1)
        problem(key, "unknown key" + (f" (did you mean {close[0]!r}?)" if close else ""))

    def text(key: str, required: bool = True, container: dict = data, prefix: str = "") -> str:
        value = container.get(key)
        if value is None:
            if required:
                problem(prefix + key, "missing (a non-empty string)")
            return ""
        if not isinstance(value, str):
            problem(prefix + key, f"expected a string, got {type(value).__name__}")
            return ""
        if required and not value.strip():
            problem(prefix + key, "is empty")
        return value.strip()

    pack_id = text("id")
    if pack_id and pack_id != path.stem:
        problem("id", f"{pack_id!r} differs from the file name {path.stem!r}; pairs find a pack by its file name")
    version = data.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        problem("version", f"expected a whole number >= 1, got {version!r}")
        version = 0
    domain = text("domain")
    description = text("description")
    self_generated = data.get("self_generated", False)
    if not isinstance(self_generated, bool):
        problem("self_generated", f"expected true or false, got {self_generated!r}")
        self_generated = False
    normalize = data.get("normalize", False)
    if not isinstance(normalize, bool):
        problem("normalize", f"expected true or false, got {normalize!r}")

    task_type = data.get("task_type")
    if self_generated:
        if task_type not in (None, "auto"):
            problem(
                "task_type", f"a self-generated pack lets the judge classify the task: use 'auto', got {task_type!r}"
            )
        task_type = None
        for key in ("criteria", "hard_constraints", "weights_justification", "reference", "normalize"):
            if key in data:
                problem(key, "a self-generated pack has no criteria of its own: remove it or set self_generated: false")
        if "format" not in data:
            problem("format", "missing: a self-generated pack names the prompt format it renders with")
    elif task_type not in TASK_TYPES:
        problem("task_type", f"expected one of {', '.join(TASK_TYPES)}, got {task_type!r}")

    fmt_name = data.get("format") or (f"pack-{task_type}" if task_type in TASK_TYPES else None)
    fmt = None
    if fmt_name is not None:
        try:
            fmt = load_format(str(fmt_name))
        except ReasrmConfigError as e:
            problem("format", str(e))
    if fmt is not None:
        allowed = () if self_generated else SYSTEM_PLACEHOLDERS
        for name in _placeholders(fmt.system or ""):
            if name not in allowed:
                problem("format", f"{fmt.id}: system template: unknown placeholder {{{name}}}; "
                        f"known: {', '.join(allowed) or 'none (a self-generated pack fills nothing)'}")  # fmt: skip
        for field in ("user_single_turn", "user_multi_turn"):
            for name in _placeholders(getattr(fmt, field)):
                if name not in USER_PLACEHOLDERS:
                    problem("format", f"{fmt.id}: {field}: unknown placeholder {{{name}}}; known: "
                            f"{', '.join(USER_PLACEHOLDERS)}")  # fmt: skip

    criteria: list[Criterion] = []
    hard: list[str] = []
    reference = "ignore"
    justification = ""
    if not self_generated:
        raw = data.get("criteria")
        if not isinstance(raw, list) or not raw:
            problem("criteria", "missing: a list of at least one criterion (id, description, weight, good, poor)")
            raw = []
        seen: dict[str, int] = {}
        weights: list[float] = []
        for i, item in enumerate(raw):
            where = f"criteria[{i}]."
            if not isinstance(item, dict):
                problem(where[:-1], f"expected a mapping, got {type(item).__name__}")
                continue
            for key in sorted(set(item) - _CRITERION_KEYS):
                problem(where + key, f"unknown key (a criterion has {', '.join(sorted(_CRITERION_KEYS))})")
            cid = text("id", container=item, prefix=where)
            if cid in seen:
                problem(where + "id", f"duplicate criterion id {cid!r} (also criteria[{seen[cid]}])")
            seen.setdefault(cid, i)
            weight = item.get("weight")
            if isinstance(weight, bool) or not isinstance(weight, int | float) or not weight > 0:
                problem(where + "weight", f"expected a positive number, got {weight!r}")
                weight = 0.0
            weights.append(float(weight))
            criteria.append(Criterion(cid, text("description", container=item, prefix=where),
                                      float(weight), text("good", container=item, prefix=where),
                                      text("poor", container=item, prefix=where)))  # fmt: skip
        total = sum(weights)
        if criteria and all(w > 0 for w in weights):
            if normalize is True:
                criteria = [dataclasses.replace(c, weight=c.weight / total) for c in criteria]
            elif abs(total - 1) > _WEIGHT_TOLERANCE:
                problem("criteria", f"weights sum to {total:g}, not 1: fix them or set 'normalize: true'")
        raw_hard = data.get("hard_constraints", [])
        if not isinstance(raw_hard, list):
            problem("hard_constraints", f"expected a list of strings, got {type(raw_hard).__name__}")
            raw_hard = []
        for i, item in enumerate(raw_hard):
            if not isinstance(item, str) or not item.strip():
                problem(f"hard_constraints[{i}]", f"expected a non-empty string, got {item!r}")
            else:
                hard.append(item.strip())
        reference = data.get("reference", "ignore")
        if reference not in REFERENCE:
            problem("reference", f"expected one of {', '.join(REFERENCE)}, got {reference!r}")
        justification = text("weights_justification")

    for key in lines:
        value = _get(data, key)
        if isinstance(value, str) and "TODO" in value:
            problem(key, "still holds the skeleton's TODO text")
    if problems:
        return None, sorted(set(problems), key=problems.index)
    pack = RubricPack(pack_id, version, domain, task_type, description, fmt.id, self_generated,
                      tuple(criteria), tuple(hard), reference, justification, str(path))  # fmt: skip
    return pack, []


def _get(data, key: str):
    """The value at a key path like ``criteria[1].good`` (None when absent)."""
    for part in key.replace("[", ".[").split("."):
        if part.startswith("["):
            index = int(part[1:-1])
            data = data[index] if isinstance(data, list) and index < len(data) else None
        else:
            data = data.get(part) if isinstance(data, dict) else None
    return data


def _placeholders(template: str) -> list[str]:
    try:
        return [name for _, name, _, _ in string.Formatter().parse(template) if name is not None]
    except ValueError as e:  # an unmatched brace
        return [f"<unparsable template: {e}>"]


# ---------------------------------------------------------------------------------------------------
# Rendering
# ---------------------------------------------------------------------------------------------------


def system_text(pack: RubricPack) -> str | None:
    """The pack's system prompt: its format's system template filled from the pack."""
    fmt = load_format(pack.format)
    if pack.self_generated or fmt.system is None:
        return fmt.system
    criteria = "\n".join(
        f"{k}. {c.id} (weight {c.weight:.0%}): {c.description}\n   Good: {c.good}\n   Poor: {c.poor}"
        for k, c in enumerate(pack.criteria, start=1)
    )
    hard = ""
    if pack.hard_constraints:
        items = "\n".join(f"- {h}" for h in pack.hard_constraints)
        hard = (
            "Hard constraints: a response that breaks one loses to a response that breaks none, whatever its "
            f"other merits; when both break one, prefer the response that breaks fewer.\n{items}\n\n"
        )
    usage = {
        "ignore": "",
        "use": "When a reference answer is given, treat it as correct and check both responses against it.\n\n",
        "require": "A reference answer is given: treat it as correct and check both responses against it.\n\n",
    }[pack.reference]
    return fmt.system.format(domain=pack.domain, description=pack.description, criteria=criteria,
                             hard_constraints=hard, weights_justification=pack.weights_justification,
                             reference_usage=usage)  # fmt: skip


@dataclass(frozen=True)
class JudgePrompt:
    """How judge conversations are rendered: a prompt format for pairs without a pack, an optional
    default pack (a checkpoint's card) and an optional forced pack (a stage config's ``rubric``)."""

    prompt_format: PromptFormat
    default_rubric: str | None = None
    forced_rubric: str | None = None

    @classmethod
    def create(cls, prompt_format: PromptFormat | str, default_rubric: str | None = None,
               forced_rubric: str | None = None) -> JudgePrompt:  # fmt: skip
        if isinstance(prompt_format, str):
            prompt_format = load_format(prompt_format)
        if _placeholders(prompt_format.system or ""):
            raise ReasrmConfigError(f"prompt format {prompt_format.id!r} renders rubric packs and needs one: "
                                    "choose a pack (rubric=...) or another prompt format")  # fmt: skip
        for name in filter(None, (default_rubric, forced_rubric)):
            load_pack(name)  # an unknown or invalid pack is a config error now, not at the first pair
        return cls(prompt_format, default_rubric, forced_rubric)

    def pack_for(self, pair) -> RubricPack | None:
        name = self.forced_rubric or pair.rubric or self.default_rubric
        if name is None:
            return None
        try:
            return load_pack(name)
        except ReasrmConfigError as e:
            raise ReasrmDataError(f"pair {pair.id!r}: field 'rubric': {str(e).splitlines()[0]}") from None

    def check(self, pairs) -> None:
        """Every pair's pack exists and validates, and packs that require a reference get one."""
        for pair in pairs:
            pack = self.pack_for(pair)
            if pack is not None and pack.reference == "require" and not pair.reference:
                raise ReasrmDataError(
                    f"pair {pair.id!r}: rubric pack {pack.id!r} requires a reference answer; the pair has none"
                )

    def messages(self, pair, slots) -> list[dict]:
        """The judge conversation for ``pair`` shown in ``slots``: the one renderer every stage calls."""
        pack = self.pack_for(pair)
        if pack is None:
            return render(self.prompt_format, slots.context_a, slots.response_a, slots.response_b, slots.context_b)
        fmt = load_format(pack.format)
        reference = ""
        if pack.reference != "ignore" and pair.reference:
            reference = f"[Reference Answer]\n{escape(pair.reference)}\n\n"
        fmt = dataclasses.replace(fmt, system=system_text(pack))
        return render(fmt, slots.context_a, slots.response_a, slots.response_b, slots.context_b, reference=reference)

    def packs(self, pairs) -> dict[str, int]:
        """Pack id -> version of the packs these pairs are rendered with (for the judge card)."""
        out = {}
        for pair in pairs:
            pack = self.pack_for(pair)
            if pack is not None:
                out[pack.id] = pack.version
        return dict(sorted(out.items()))


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
