"""Data building speed: 100,000 synthetic pairs, and a 13-gram contamination check of 10,000 pairs
against all of RM-Bench (its data folder: --data-dir).

    python bench/data_build.py [--pairs 100000] [--checked 10000] [--data-dir DATA/rm-bench]

Prints wall times and rates. Target: both well under a minute on the 2-core development machine.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import yaml

from reasrm.config import load_config
from reasrm.data.build import build, contamination_hits, load_built, load_recipe
from reasrm.data.recipe import RecipeConfig

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, default=100_000)
    parser.add_argument("--checked", type=int, default=10_000)
    parser.add_argument("--data-dir", default=str(ROOT.parent / "shared" / "data" / "rm-bench"))
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "demo"
        started = time.perf_counter()
        report = build(load_recipe("demo", [f"n={args.pairs}"]), out)
        built = time.perf_counter() - started
        kept = report["total"]["kept"]
        print(
            f"build demo n={args.pairs}: {built:6.1f} s  ({args.pairs / built:,.0f} pairs/s generated; "
            f"{kept:,} kept, {args.pairs - kept:,} duplicates dropped; train {report['splits']['train']:,}, "
            f"held-out {report['splits']['heldout']:,})"
        )

        pairs = load_built(out)[: args.checked]
        recipe = Path(tmp) / "check.yaml"
        against = [{"recipe": "rm-bench", "params": {"data_dir": args.data_dir}}]
        recipe.write_text(
            yaml.safe_dump(
                {
                    "stage": "recipe",
                    "name": "check",
                    "sources": [{"name": "x", "path": "-"}],
                    "contamination": {"against": against, "ngram": 13},
                }
            )
        )
        cfg = load_config(recipe, schema=RecipeConfig)
        started = time.perf_counter()
        hits = contamination_hits(cfg, pairs)
        checked = time.perf_counter() - started
        print(
            f"13-gram check of {len(pairs):,} pairs against RM-Bench ({args.data_dir}): {checked:6.1f} s  "
            f"({len(pairs) / checked:,.0f} pairs/s, index build included; {len(hits)} hits)"
        )


if __name__ == "__main__":
    main()
