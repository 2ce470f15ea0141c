"""Prompt formats: the templates a judge conversation is rendered from (``rubrics/formats/*.yaml``).

A format is data, read by the same typed loader as every config (``reasrm.config``): a system template
(or none) and two user templates, single-turn and multi-turn. The shipped ``rm-r1-instruct`` and
``rm-r1-reasoning`` hold, byte for byte, what the released RM-R1 checkpoints were trained on; the
``pack-*`` formats render rubric packs (their system template is filled from a pack, see
``reasrm.prompts``). Rendering itself lives in :mod:`reasrm.prompts`.
"""

from __future__ import annotations

import string
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from reasrm.config import Problem, load_config, option
from reasrm.errors import ReasrmConfigError
from reasrm.resources import rubrics_dir

# What templates may name. A system template is filled from a rubric pack (a format whose system
# template names any of these renders packs and needs one); the user templates from the pair
# (``reference`` is the "[Reference Answer]" block, or empty).
SYSTEM_PLACEHOLDERS = (
    "domain",
    "description",
    "criteria",
    "hard_constraints",
    "weights_justification",
    "reference_usage",
)
USER_PLACEHOLDERS = ("question", "answer_a", "answer_b", "conversation_1", "conversation_2", "reference")


@dataclass(frozen=True)
class PromptFormat:
    id: str = option("The format's name (a shipped format's equals its file name).")
    version: int = option("Bumped when the templates change.")
    description: str = option("What the format is for.")
    system: str | None = option(
        f"System template (null or absent: no system message); may name {SYSTEM_PLACEHOLDERS}.", None
    )
    user_single_turn: str = option("User template for one-turn pairs: {question} {answer_a} {answer_b} {reference}.")
    user_multi_turn: str = option("User template for conversations: {conversation_1} {conversation_2} {reference}.")

    @property
    def renders_packs(self) -> bool:
        return bool(placeholders(self.system or ""))

    def check(self) -> list[Problem]:
        problems = []
        for key, allowed in (
            ("system", SYSTEM_PLACEHOLDERS),
            ("user_single_turn", USER_PLACEHOLDERS),
            ("user_multi_turn", USER_PLACEHOLDERS),
        ):
            try:
                names = placeholders(getattr(self, key) or "")
            except ValueError as e:  # an unbalanced brace
                problems.append((key, f"not a valid template ({e}); write a literal brace as {{{{ or }}}}"))
                continue
            for name in names:
                if name not in allowed:
                    problems.append((key, f"unknown placeholder {{{name}}}; known: {', '.join(allowed)}"))
        return problems


def placeholders(template: str) -> list[str]:
    """The ``{names}`` a template fills (raises ValueError on an unbalanced brace)."""
    return [name for _, name, _, _ in string.Formatter().parse(template) if name is not None]


def available_formats() -> list[str]:
    return sorted(p.stem for p in (rubrics_dir() / "formats").glob("*.yaml"))


@cache
def load_format(name_or_path: str) -> PromptFormat:
    """A shipped format by name (``rm-r1-instruct``) or a format YAML file by path."""
    path = Path(name_or_path)
    if path.suffix not in (".yaml", ".yml"):
        path = rubrics_dir() / "formats" / f"{name_or_path}.yaml"
        if not path.is_file():
            raise ReasrmConfigError(
                f"unknown prompt format {name_or_path!r}: expected one of {', '.join(available_formats())} "
                "or a path to a format .yaml file"
            )
    return load_config(path, schema=PromptFormat)
