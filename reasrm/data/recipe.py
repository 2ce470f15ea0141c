"""The recipe schema: where pairs come from, how rows map to the pair schema, filters, mixing, splits.

Dataset identity lives only in ``data_recipes/*.yaml``; nothing in the library names a dataset.
A recipe declares its parameters under ``params`` (``reasrm data build demo.yaml n=1000`` sets
``params.n``) and uses them as ``${params.n}``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from omegaconf import MISSING

from reasrm.config import _help
from reasrm.data.converters import CONVERTERS
from reasrm.data.pairs import DOMAINS
from reasrm.data.synthetic import GENERATORS
from reasrm.rubrics import pack_error

ON_ERROR = ("fail", "skip")


@dataclass
class FilterConfig:
    """Per-source filters; every row they drop is counted under its reason in the report."""

    drop_empty: bool = _help("Drop rows with an empty answer (else they are errors, see on_error).", False)
    drop_identical: bool = _help("Drop rows whose chosen equals rejected (else errors, see on_error).", False)
    dedup: bool = _help("Drop exact duplicates (same conversation and answers) across all sources.", True)
    tokenizer: str | None = _help("Tokenizer for the length bounds (null = the embedded default's).", None)
    min_tokens: int | None = _help("Drop pairs whose shorter answer has fewer tokens.", None)
    max_tokens: int | None = _help("Drop pairs whose conversation plus longer answer has more tokens.", None)
    exclude: dict[str, list[str]] = _help("Drop raw rows whose column holds one of these values.", factory=dict)


@dataclass
class SourceConfig:
    """One source: a local file or folder, a hub dataset, or a generator."""

    name: str = _help("Names the source in the report and in each pair's `source` field.")
    path: str | None = _help("Local .jsonl/.json/.parquet file or folder of them, or a hub dataset id.", None)
    split: str = _help("Split of a hub dataset.", "train")
    generator: str | None = _help(f"Instead of a path: one of {', '.join(GENERATORS)}.", None)
    n: int | None = _help("Pairs a generator makes.", None)
    converter: str | None = _help(f"Row converter: one of {', '.join(CONVERTERS)}; null = `pairs`.", None)
    columns: dict[str, str] = _help("Pair field -> source column, applied before the converter.", factory=dict)
    domain: str | None = _help("Domain of rows that give none.", None)
    rubric: str | None = _help("Rubric pack id for rows that give none.", None)
    count: int | None = _help("Keep this many pairs (sampled with the recipe seed).", None)
    fraction: float | None = _help("Keep this fraction of pairs (sampled with the recipe seed).", None)
    seed: int | None = _help("Sampling seed of this source (null = the recipe seed).", None)
    filters: FilterConfig = _help("Filters.", factory=FilterConfig)

    def check(self, path: str) -> list[str]:
        problems = []
        if (self.path is None) == (self.generator is None):
            problems.append(f"'{path}': give exactly one of 'path' or 'generator'")
        if self.generator is not None and self.generator not in GENERATORS:
            problems.append(f"'{path}generator' must be one of {', '.join(GENERATORS)}, got {self.generator!r}")
        if self.converter is not None and self.converter not in CONVERTERS:
            problems.append(
                f"'{path}converter' must be one of {', '.join(CONVERTERS)}, got {self.converter!r} (or use 'columns')"
            )
        if self.count is not None and self.fraction is not None:
            problems.append(f"'{path}': set one of 'count' or 'fraction', not both")
        if self.count is not None and self.count < 0:
            problems.append(f"'{path}count' must be >= 0, got {self.count}")
        if self.fraction is not None and not 0 < self.fraction <= 1:
            problems.append(f"'{path}fraction' must be in (0, 1], got {self.fraction}")
        return problems


@dataclass
class HeldoutConfig:
    fraction: float = _help("Share of prompts held out; split by a hash of the prompt, never by row.", 0.0)
    seed: int = _help("Seeds the prompt hash.", 0)


@dataclass
class AgainstConfig:
    """An evaluation set to check for overlap: another recipe and its parameters."""

    recipe: str = _help("A recipe file, or the name of a shipped one (e.g. rm-bench).")
    params: dict[str, Any] = _help("Parameters of that recipe.", factory=dict)


@dataclass
class ContaminationConfig:
    against: list[AgainstConfig] = _help(
        "Evaluation recipes whose prompts training prompts must not share.", factory=list
    )
    ngram: int = _help("Length in words of a shared n-gram that counts as a hit.", 13)
    drop: bool = _help("Drop contaminated pairs (else they are only reported).", False)


@dataclass
class RecipeConfig:
    """`reasrm data build RECIPE --output DIR`: preference pairs from any sources into one schema."""

    stage: str = _help("Names this schema.", "recipe")
    name: str = _help("Names the built dataset.", MISSING)
    params: dict[str, Any] = _help("Parameters set from the command line as key=value.", factory=dict)
    sources: list[SourceConfig] = _help("Where pairs come from.", factory=list)
    seed: int = _help("Seeds sampling and slot balancing.", 0)
    on_error: str = _help("fail: the first bad row stops the build; skip: drop it, count it, keep it aside.", "fail")
    domains: list[str] = _help("Domains a row may name.", factory=lambda: list(DOMAINS))
    rubrics: dict[str, str] = _help(
        "Domain -> rubric pack, for rows that name none and whose source sets none.", factory=dict
    )
    heldout: HeldoutConfig = _help("The held-out split.", factory=HeldoutConfig)
    contamination: ContaminationConfig = _help("Overlap check against evaluation sets.", factory=ContaminationConfig)

    def check(self) -> list[str]:
        problems = []
        if self.stage != "recipe":
            problems.append(f"'stage' must be 'recipe' for this schema, got {self.stage!r}")
        if self.on_error not in ON_ERROR:
            problems.append(f"'on_error' must be one of {', '.join(ON_ERROR)}, got {self.on_error!r}")
        if not self.sources:
            problems.append("'sources' is empty: a recipe needs at least one source")
        names = [s.name for s in self.sources]
        for name in sorted({n for n in names if names.count(n) > 1}):
            problems.append(f"'sources': the name {name!r} is used twice; source names must be unique")
        for i, source in enumerate(self.sources):
            problems.extend(source.check(f"sources[{i}]."))
            for domain in filter(None, [source.domain]):
                if domain not in self.domains:
                    problems.append(
                        f"'sources[{i}].domain': {domain!r} is not in 'domains' ({', '.join(self.domains)})"
                    )
        for domain, pack in self.rubrics.items():
            if domain not in self.domains:
                problems.append(f"'rubrics.{domain}': {domain!r} is not in 'domains' ({', '.join(self.domains)})")
            if pack_error(pack):
                problems.append(f"'rubrics.{domain}': {pack_error(pack)}")
        for i, source in enumerate(self.sources):
            if source.rubric is not None and pack_error(source.rubric):
                problems.append(f"'sources[{i}].rubric': {pack_error(source.rubric)}")
        if not 0 <= self.heldout.fraction < 1:
            problems.append(f"'heldout.fraction' must be in [0, 1), got {self.heldout.fraction}")
        if self.contamination.ngram < 1:
            problems.append(f"'contamination.ngram' must be >= 1, got {self.contamination.ngram}")
        return problems
