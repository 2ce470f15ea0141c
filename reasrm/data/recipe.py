"""The recipe schema: where pairs come from, how rows map to the pair schema, filters, mixing, splits.

Dataset identity lives only in ``data_recipes/*.yaml``; nothing in the library names a dataset.
A recipe declares its parameters under ``params`` (``reasrm data build demo.yaml n=1000`` sets
``params.n``) and uses them as ``${params.n}``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from omegaconf import MISSING

from reasrm.config import Problem, option
from reasrm.data.converters import CONVERTERS
from reasrm.data.pairs import DOMAINS
from reasrm.data.synthetic import FAMILIES, GENERATORS
from reasrm.rubrics import pack_error

ON_ERROR = ("fail", "skip")
MAX_PAIRS = 100_000_000  # a generator's n: more would take hours and more memory than a machine has


@dataclass
class FilterConfig:
    """Per-source filters; every row they drop is counted under its reason in the report."""

    drop_empty: bool = option("Drop rows with an empty answer (else they are errors, see on_error).", False)
    drop_identical: bool = option("Drop rows whose chosen equals rejected (else errors, see on_error).", False)
    dedup: bool = option("Drop exact duplicates (same conversation and answers) across all sources.", True)
    tokenizer: str | None = option("Tokenizer for the length bounds (null = the embedded default's).", None)
    min_tokens: int | None = option("Drop pairs whose shorter answer has fewer tokens.", None, ge=1)
    max_tokens: int | None = option("Drop pairs whose conversation plus longer answer has more tokens.", None, ge=1)
    exclude: dict[str, list[str]] = option("Drop raw rows whose column holds one of these values.", factory=dict)


@dataclass
class SourceConfig:
    """One source: a local file or folder, a hub dataset, or a generator."""

    name: str = option("Names the source in the report and in each pair's `source` field.")
    path: str | None = option("Local .jsonl/.json/.parquet file or folder of them, or a hub dataset id.", None)
    split: str = option("Split of a hub dataset.", "train")
    generator: str | None = option(f"Instead of a path: one of {', '.join(GENERATORS)}.", None)
    n: int | None = option("Pairs a generator makes.", None, ge=1, le=MAX_PAIRS)
    families: dict[str, int] | None = option(
        f"Generator `verifiable`: family -> weight (its share of the pairs) among {', '.join(FAMILIES)}; "
        "null = each family once.",
        None,
    )
    levels: list[int] | None = option("Generator `verifiable`: difficulty levels to draw from (1-3); null = all.", None)
    converter: str | None = option(f"Row converter: one of {', '.join(CONVERTERS)}; null = `pairs`.", None)
    columns: dict[str, str] = option("Pair field -> source column, applied before the converter.", factory=dict)
    domain: str | None = option("Domain of rows that give none.", None)
    rubric: str | None = option("Rubric pack id for rows that give none.", None)
    count: int | None = option("Keep this many pairs (sampled with the recipe seed).", None, ge=0)
    fraction: float | None = option("Keep this fraction of pairs (sampled with the recipe seed).", None, gt=0, le=1)
    seed: int | None = option("Sampling seed of this source (null = the recipe seed).", None, ge=0)
    filters: FilterConfig = option("Filters.", factory=FilterConfig)

    def check(self, prefix: str) -> list[Problem]:
        problems = []
        if (self.path is None) == (self.generator is None):
            problems.append((prefix.rstrip("."), "give exactly one of 'path' or 'generator'"))
        if self.generator is not None and self.generator not in GENERATORS:
            problems.append((f"{prefix}generator", f"must be one of {', '.join(GENERATORS)}, got {self.generator!r}"))
        for family, weight in (self.families or {}).items():
            if family not in FAMILIES:
                problems.append((f"{prefix}families.{family}", f"unknown family; known: {', '.join(FAMILIES)}"))
            elif weight < 0:
                problems.append((f"{prefix}families.{family}", f"must be >= 0, got {weight}"))
        if self.families is not None and not sum(self.families.values()):
            problems.append((f"{prefix}families", "every weight is 0: no pairs to make"))
        if self.levels is not None and (not self.levels or not set(self.levels) <= {1, 2, 3}):
            problems.append((f"{prefix}levels", f"must be a non-empty list of 1, 2, 3, got {self.levels}"))
        if self.converter is not None and self.converter not in CONVERTERS:
            problems.append(
                (
                    f"{prefix}converter",
                    f"must be one of {', '.join(CONVERTERS)}, got {self.converter!r} (or use 'columns')",
                )
            )
        if self.count is not None and self.fraction is not None:
            problems.append((f"{prefix}count", "set one of 'count' or 'fraction', not both"))
        if self.generator is not None and self.n is None:
            problems.append((f"{prefix}n", f"required with a generator: the pairs it makes (1 to {MAX_PAIRS:,})"))
        low, high = self.filters.min_tokens, self.filters.max_tokens
        if low is not None and high is not None and low > high:
            problems.append(
                (f"{prefix}filters.min_tokens", f"is above max_tokens ({high}): every row would be dropped")
            )
        if self.rubric is not None and pack_error(self.rubric):
            problems.append((f"{prefix}rubric", pack_error(self.rubric)))
        return problems


@dataclass
class HeldoutConfig:
    fraction: float = option("Share of prompts held out; split by a hash of the prompt, never by row.", 0.0, ge=0, lt=1)
    seed: int = option("Seeds the prompt hash.", 0, ge=0)


@dataclass
class AgainstConfig:
    """An evaluation set to check for overlap: another recipe and its parameters."""

    recipe: str = option("A recipe file, or the name of a shipped one (e.g. rm-bench).")
    params: dict[str, Any] = option("Parameters of that recipe.", factory=dict)


@dataclass
class ContaminationConfig:
    against: list[AgainstConfig] = option(
        "Evaluation recipes whose prompts training prompts must not share.", factory=list
    )
    ngram: int = option("Length in words of a shared n-gram that counts as a hit.", 13, ge=1)
    drop: bool = option("Drop contaminated pairs (else they are only reported).", False)


@dataclass
class RecipeConfig:
    """`reasrm data build RECIPE --output DIR`: preference pairs from any sources into one schema."""

    stage: str = option("Names this schema.", "recipe")
    name: str = option("Names the built dataset.", MISSING)
    params: dict[str, Any] = option("Parameters set from the command line as key=value.", factory=dict)
    sources: list[SourceConfig] = option("Where pairs come from.", factory=list)
    seed: int = option(
        "Seeds per-source sampling, and the slot figures of report.json (stages assign slots "
        "with their own seed, by the same rule).",
        0,
        ge=0,
    )
    on_error: str = option("fail: the first bad row stops the build; skip: drop it, count it, keep it aside.", "fail")
    domains: list[str] = option("Domains a row may name.", factory=lambda: list(DOMAINS))
    rubrics: dict[str, str] = option(
        "Domain -> rubric pack, for rows that name none and whose source sets none.", factory=dict
    )
    heldout: HeldoutConfig = option("The held-out split.", factory=HeldoutConfig)
    contamination: ContaminationConfig = option("Overlap check against evaluation sets.", factory=ContaminationConfig)

    def check(self) -> list[Problem]:
        problems = []
        if self.on_error not in ON_ERROR:
            problems.append(("on_error", f"must be one of {', '.join(ON_ERROR)}, got {self.on_error!r}"))
        if not self.sources:
            problems.append(("sources", "is empty: a recipe needs at least one source"))
        names = [s.name for s in self.sources]
        for name in sorted({n for n in names if names.count(n) > 1}):
            problems.append(("sources", f"the name {name!r} is used twice; source names must be unique"))
        for i, source in enumerate(self.sources):
            problems.extend(source.check(f"sources[{i}]."))
            if source.domain is not None and source.domain not in self.domains:
                problems.append(
                    (f"sources[{i}].domain", f"{source.domain!r} is not in 'domains' ({', '.join(self.domains)})")
                )
        for domain, pack in self.rubrics.items():
            if domain not in self.domains:
                problems.append((f"rubrics.{domain}", f"{domain!r} is not in 'domains' ({', '.join(self.domains)})"))
            if pack_error(pack):
                problems.append((f"rubrics.{domain}", pack_error(pack)))
        return problems
