"""`reasrm data build`: run a recipe into a dataset folder, accounting for every row.

    reasrm data build data_recipes/demo.yaml n=1000 seed=0 --output runs/data/demo

Reads each source (a local file or folder, a hub dataset, or a generator), converts rows to the pair
schema, validates them, applies the filters, removes duplicates, samples per source, checks for overlap
with evaluation sets, and splits held-out prompts by a hash of the prompt. Writes ``train.parquet``,
``heldout.parquet``, ``report.json`` (rows read, kept and dropped per reason, per source: read = kept +
dropped), ``rejected_rows.jsonl`` (with ``on_error: skip``) and the resolved ``recipe.yaml``.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
from collections import Counter, defaultdict
from collections.abc import Iterator
from pathlib import Path

from reasrm.config import load_config
from reasrm.data.converters import CONVERTERS, BadRow, map_columns
from reasrm.data.pairs import DATA_SUFFIXES, Pair, RowError, assign_slots, content_id, iter_rows, pair_from_dict
from reasrm.data.recipe import RecipeConfig, SourceConfig
from reasrm.data.synthetic import GENERATORS
from reasrm.errors import ReasrmDataError
from reasrm.resources import recipes_dir
from reasrm.rubrics import pack_error
from reasrm.runs import Progress, check_output, lock_output, prepare_output

# ---------------------------------------------------------------------------------------------------
# Reading sources: (where, row) for each raw row; an unreadable row comes as a RowError
# ---------------------------------------------------------------------------------------------------


def read_source(source: SourceConfig) -> Iterator[tuple[str, dict | RowError]]:
    if source.generator is not None:
        rows = GENERATORS[source.generator](source.n or 0, source.seed or 0, source.families, source.levels)
        for i, row in enumerate(rows):
            yield f"{source.name}:{i + 1}", row
        return
    path = Path(source.path).expanduser()
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix in DATA_SUFFIXES)
        if not files:
            raise ReasrmDataError(f"{path}: a folder without data files ({', '.join(DATA_SUFFIXES)})")
        for file in files:
            yield from iter_rows(file)
    elif path.is_file():
        yield from iter_rows(path)
    elif _looks_like_hub_id(source.path):
        yield from _read_hub(source)
    else:
        raise ReasrmDataError(f"{source.path}: no such file or folder (source {source.name!r})")


def _looks_like_hub_id(name: str) -> bool:
    return re.fullmatch(r"[\w.-]+/[\w.-]+", name) is not None


def _read_hub(source: SourceConfig) -> Iterator[tuple[str, dict]]:
    from datasets import load_dataset

    try:
        dataset = load_dataset(source.path, split=source.split)
    except Exception as e:  # offline, unknown repo, unknown split: one line
        raise ReasrmDataError(f"{source.path}: cannot load hub dataset (split {source.split!r}): {e}") from None
    for i, row in enumerate(dataset):
        yield f"{source.path}[{source.split}]:row {i + 1}", row


# ---------------------------------------------------------------------------------------------------
# Building
# ---------------------------------------------------------------------------------------------------


class _Ledger:
    """Rows read, kept and dropped per source and reason, and the rejected rows (with on_error: skip)."""

    def __init__(self, on_error: str):
        self.on_error = on_error
        self.read: Counter[str] = Counter()
        self.dropped: dict[str, Counter[str]] = defaultdict(Counter)
        self.rejected: list[dict] = []

    def drop(self, source: str, reason: str, where: str | None = None, message: str | None = None) -> None:
        self.dropped[source][reason] += 1
        if message is not None:
            self.rejected.append({"source": source, "where": where, "reason": reason, "message": message})

    def error(self, source: str, where: str, reason: str, message: str) -> None:
        """A bad row: stops the build (on_error: fail) or is dropped and kept aside (skip)."""
        if self.on_error == "fail":
            raise ReasrmDataError(f"{where}: {message}")
        self.drop(source, reason, where, message)


def build(cfg: RecipeConfig, output: str | Path | None = None, overwrite: bool = False) -> dict:
    """Run the recipe; write the dataset folder when ``output`` is given (the resolved recipe is saved in it
    as ``recipe.yaml``; a previous dataset there is replaced only with ``overwrite``). Returns the report."""
    if output is not None:  # refused before the work, written only after it: a failed build leaves nothing
        lock_output(output)
        check_output(output, Path(output) / "recipe.yaml", cfg, overwrite=overwrite)
    train, heldout, ledger, report = collect(cfg)
    if output is not None:
        _write(
            prepare_output(output, Path(output) / "recipe.yaml", cfg, overwrite=overwrite),
            train,
            heldout,
            ledger,
            report,
        )
    return report


def collect(cfg: RecipeConfig) -> tuple[list[Pair], list[Pair], _Ledger, dict]:
    """Run the recipe in memory: (train pairs, held-out pairs, ledger, report)."""
    ledger = _Ledger(cfg.on_error)
    kept: dict[str, list[Pair]] = {}
    seen: set[str] = set()
    for source in cfg.sources:
        kept[source.name] = _read_pairs(cfg, source, ledger, seen)

    pairs = [p for source in cfg.sources for p in _sample(cfg, source, kept[source.name], ledger)]
    hits = contamination_hits(cfg, pairs)
    if cfg.contamination.drop and hits:
        bad = {h["id"] for h in hits}
        for pair in pairs:
            if pair.id in bad:
                ledger.drop(pair.source, "contaminated")
        pairs = [p for p in pairs if p.id not in bad]

    heldout_ids = {p.id for p in pairs if _held_out(p, cfg.heldout.fraction, cfg.heldout.seed)}
    train = [p for p in pairs if p.id not in heldout_ids]
    heldout = [p for p in pairs if p.id in heldout_ids]
    return train, heldout, ledger, _report(cfg, ledger, pairs, train, heldout, hits)


def _read_pairs(cfg: RecipeConfig, source: SourceConfig, ledger: _Ledger, seen: set[str]) -> list[Pair]:
    convert = CONVERTERS[source.converter or "pairs"]
    lengths = _length_filter(source)
    out: list[Pair] = []
    bar = Progress(source.n if source.generator else None, f"reading {source.name}", unit="row")
    for where, raw in _counted(read_source(source), bar):
        if isinstance(raw, RowError):
            ledger.read[source.name] += 1
            ledger.error(source.name, where, raw.reason, raw.detail)
            continue
        if not isinstance(raw, dict):
            ledger.read[source.name] += 1
            ledger.error(source.name, where, "not_an_object", f"expected a JSON object, got {type(raw).__name__}")
            continue
        excluded = next((k for k, values in source.filters.exclude.items() if raw.get(k) in values), None)
        if excluded is not None:
            ledger.read[source.name] += 1
            ledger.drop(source.name, f"excluded_{excluded}")
            continue
        try:
            rows = convert(map_columns(raw, source.columns) if source.columns else raw)
        except BadRow as e:
            ledger.read[source.name] += 1
            ledger.error(source.name, where, e.reason, str(e))
            continue
        for k, row in enumerate(rows):
            ledger.read[source.name] += 1
            row_where = where if len(rows) == 1 else f"{where} (pair {k + 1} of {len(rows)})"
            row = {**row, "source": source.name}
            row.setdefault("domain", source.domain)
            if row.get("rubric") is None:
                row["rubric"] = source.rubric or cfg.rubrics.get(row["domain"])
            try:
                pair = pair_from_dict(row, row_where, cfg.domains)
                if not pair.labelled:
                    raise RowError(
                        row_where,
                        "unlabelled",
                        "field 'chosen': a recipe's pairs are labelled "
                        "(chosen/rejected); response_a/response_b rows are for `reasrm judge`",
                    )
                if pair.rubric is not None and pack_error(pair.rubric):
                    raise RowError(row_where, "unknown_rubric", f"field 'rubric': {pack_error(pair.rubric)}")
            except RowError as e:
                if (e.reason == "empty_answer" and source.filters.drop_empty) or (
                    e.reason == "identical_answers" and source.filters.drop_identical
                ):
                    ledger.drop(source.name, e.reason)
                else:
                    ledger.error(source.name, row_where, e.reason, e.detail)
                continue
            too = lengths(pair) if lengths else None
            if too is not None:
                ledger.drop(source.name, too)
                continue
            key = content_id(pair.context, pair.chosen, pair.rejected)
            if source.filters.dedup and key in seen:
                ledger.drop(source.name, "duplicate")
                continue
            seen.add(key)
            out.append(pair)
    return out


def _counted(items, bar):
    """``items``, each counted on ``bar`` as it passes; the bar closed at the end."""
    with bar:
        for item in items:
            yield item
            bar.update(1)


def _length_filter(source: SourceConfig):
    """A function pair -> drop reason or None, for sources with token-length bounds."""
    low, high = source.filters.min_tokens, source.filters.max_tokens
    if low is None and high is None:
        return None
    from reasrm.models import load_tokenizer

    tokenizer = load_tokenizer(source.filters.tokenizer)

    def count(text: str) -> int:
        return len(tokenizer(text, add_special_tokens=False).input_ids)

    def check(pair: Pair) -> str | None:
        answers = [count(pair.chosen), count(pair.rejected)]
        if low is not None and min(answers) < low:
            return "too_short"
        if high is not None and sum(count(m["content"]) for m in pair.context) + max(answers) > high:
            return "too_long"
        return None

    return check


def _sample(cfg: RecipeConfig, source: SourceConfig, pairs: list[Pair], ledger: _Ledger) -> list[Pair]:
    """Per-source mixing: keep ``count`` pairs or a ``fraction`` of them, drawn with the seed."""
    if source.count is None and source.fraction is None:
        return pairs
    keep = source.count if source.count is not None else round(source.fraction * len(pairs))
    if keep >= len(pairs):
        return pairs
    rng = random.Random(source.seed if source.seed is not None else cfg.seed)
    chosen = sorted(rng.sample(range(len(pairs)), keep))
    for _ in range(len(pairs) - keep):
        ledger.drop(source.name, "not_sampled")
    return [pairs[i] for i in chosen]


def prompt_text(pair: Pair) -> str:
    return "\n".join(m["content"] for m in pair.context)


def _held_out(pair: Pair, fraction: float, seed: int) -> bool:
    """Held out by a hash of the prompt, so one prompt never lands in both splits."""
    digest = hashlib.sha256(f"{seed}\x00{prompt_text(pair)}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < fraction


# ---------------------------------------------------------------------------------------------------
# Contamination: long word n-grams shared with evaluation prompts
# ---------------------------------------------------------------------------------------------------


def _ngrams(text: str, n: int) -> set[int]:
    words = re.findall(r"\w+", text.lower())
    return {hash(" ".join(words[k : k + n])) for k in range(len(words) - n + 1)}


def ngram_index(pairs: list[Pair], n: int) -> dict[int, str]:
    index: dict[int, str] = {}
    for pair in pairs:
        for gram in _ngrams(prompt_text(pair), n):
            index.setdefault(gram, pair.id)
    return index


def contamination_hits(cfg: RecipeConfig, pairs: list[Pair]) -> list[dict]:
    """Training pairs whose prompt shares an n-gram with an evaluation recipe's prompts, with both ids."""
    hits = []
    for against in cfg.contamination.against:
        recipe = load_recipe(against.recipe, [f"{k}={v}" for k, v in against.params.items()])
        recipe.contamination.against = []
        evaluation = [p for s in recipe.sources for p in _read_pairs(recipe, s, _Ledger("skip"), set())]
        index = ngram_index(evaluation, cfg.contamination.ngram)
        for pair in pairs:
            match = next((index[g] for g in _ngrams(prompt_text(pair), cfg.contamination.ngram) if g in index), None)
            if match is not None:
                hits.append({"id": pair.id, "source": pair.source, "against": recipe.name, "against_id": match})
    return hits


# ---------------------------------------------------------------------------------------------------
# Recipes, report and output
# ---------------------------------------------------------------------------------------------------


def load_recipe(name_or_path: str, overrides: list[str] = ()) -> RecipeConfig:
    """A recipe file, or a shipped recipe by name (``demo``, ``rm-bench``...), with overrides."""
    path = Path(name_or_path)
    if not path.is_file() and not path.suffix:
        path = recipes_dir() / f"{name_or_path}.yaml"
    return load_config(path, list(overrides), schema=RecipeConfig)


def _report(cfg, ledger: _Ledger, pairs, train, heldout, hits) -> dict:
    kept = Counter(p.source for p in pairs)
    sources = {}
    for source in cfg.sources:
        dropped = dict(ledger.dropped[source.name].most_common())
        sources[source.name] = {"read": ledger.read[source.name], "kept": kept[source.name], "dropped": dropped}
        assert ledger.read[source.name] == kept[source.name] + sum(dropped.values()), source.name
    # The slots a stage with `seed` = the recipe's seed gives the train split (the first N pairs keep theirs
    # under `limit=N`; any seed balances every domain to within one pair).
    domains: dict[str, dict] = {}
    for pair, slot in zip(train, assign_slots(train, cfg.seed), strict=True):
        entry = domains.setdefault(str(pair.domain), {"pairs": 0, "chosen_in_A": 0, "chosen_in_B": 0})
        entry["pairs"] += 1
        entry[f"chosen_in_{slot}"] += 1
    return {
        "name": cfg.name,
        "sources": sources,
        "total": {"read": sum(ledger.read.values()), "kept": len(pairs)},
        "splits": {"train": len(train), "heldout": len(heldout)},
        "domains": domains,
        "contamination": {
            "checked": len(pairs) if cfg.contamination.against else 0,
            "hits": hits,
            "dropped": cfg.contamination.drop,
        },
    }


def _write(output: Path, train, heldout, ledger: _Ledger, report: dict) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    message = pa.struct([("role", pa.string()), ("content", pa.string())])
    schema = pa.schema(
        [
            ("id", pa.string()),
            ("context", pa.list_(message)),
            ("chosen", pa.string()),
            ("rejected", pa.string()),
            ("rejected_context", pa.list_(message)),
            ("domain", pa.string()),
            ("source", pa.string()),
            ("rubric", pa.string()),
            ("reference", pa.string()),
            ("meta", pa.string()),
        ]
    )
    for split, rows in (("train", train), ("heldout", heldout)):
        pq.write_table(pa.Table.from_pylist([p.to_record() for p in rows], schema=schema), output / f"{split}.parquet")
    (output / "report.json").write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    if ledger.rejected:
        (output / "rejected_rows.jsonl").write_text(
            "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in ledger.rejected)
        )


def load_built(folder: str | Path, split: str = "train") -> list[Pair]:
    """The pairs of a built dataset folder."""
    import pyarrow.parquet as pq

    path = Path(folder) / f"{split}.parquet"
    if not path.is_file():
        raise ReasrmDataError(f"{path}: not found; build it with `reasrm data build RECIPE --output {folder}`")
    return [Pair.from_record(row) for row in pq.read_table(path).to_pylist()]
