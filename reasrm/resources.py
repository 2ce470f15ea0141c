"""Where the shipped data files (prompt formats, rubric packs) live, installed or in a checkout."""

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


def rubrics_dir() -> Path:
    """``rubrics/``: inside the wheel as ``reasrm/_rubrics``, beside the package in a source checkout."""
    bundled = _PACKAGE / "_rubrics"
    return bundled if bundled.is_dir() else _PACKAGE.parent / "rubrics"


def recipes_dir() -> Path:
    """``data_recipes/``: inside the wheel as ``reasrm/_data_recipes``, beside the package in a checkout."""
    bundled = _PACKAGE / "_data_recipes"
    return bundled if bundled.is_dir() else _PACKAGE.parent / "data_recipes"
