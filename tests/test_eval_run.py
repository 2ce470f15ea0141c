"""`reasrm eval` on a tiny model: benchmark loading, resumable samples, scores, report and figures."""

import json

import pytest

from reasrm.config import load_config
from reasrm.data.build import build, load_recipe
from reasrm.errors import ReasrmConfigError, ReasrmError
from reasrm.eval.run import EvalConfig, benchmark_pairs, bias, run, score


def cfg(tmp_path, tiny_model, **kw) -> EvalConfig:
    overrides = {
        "model": str(tiny_model),
        "prompt_format": "rm-r1-instruct",
        "output": str(tmp_path / "eval"),
        "generation.max_new_tokens": 3,
        **kw,
    }
    return load_config(None, [f"{k}={v}" for k, v in overrides.items()], schema=EvalConfig)


def lines(path):
    return [json.loads(x) for x in path.read_text().splitlines()]


def test_rm_bench_limit_takes_whole_prompts_and_scores_every_cell(benchmark_data, tmp_path, tiny_model):
    c = cfg(tmp_path, tiny_model, benchmark="rm-bench", data_dir=benchmark_data / "rm-bench", limit=2, both_orders=True)
    result = run(c)
    out = tmp_path / "eval"
    samples = lines(out / "samples.jsonl")
    assert len(samples) == 2 * 9 * 2 and len({s["key"] for s in samples}) == len(samples)
    assert {tuple(s["cell"]) for s in samples} == {(i, j) for i in range(3) for j in range(3)}
    assert result["pairs"] == 18 and result["calls"] == 36
    assert result["invalid"] == sum(s["outcome"] is None for s in samples)
    for domain in result["scores"]["domains"].values():
        assert set(domain) == {"hard", "normal", "easy", "total", "matrix"}
    assert 0 <= result["headline"] <= 1 and result["accuracy_invalid_half"] >= result["accuracy"]
    assert json.loads((out / "scores.json").read_text())["headline"] == result["headline"]
    assert "Headline" in (out / "report.md").read_text()
    for figure in ("rmbench_matrix.png", "sections.png", "bias.png"):
        assert (out / figure).read_bytes()[:4] == b"\x89PNG"


def test_resume_continues_without_redoing_or_duplicating(benchmark_data, tmp_path, tiny_model):
    c = cfg(tmp_path, tiny_model, benchmark="rmb", data_dir=benchmark_data / "rmb", limit=5)
    first = run(c)
    path = tmp_path / "eval" / "samples.jsonl"
    done = path.read_text().splitlines(keepends=True)
    path.write_text("".join(done[:3]) + done[3][:25])  # interrupted while writing the fourth line
    with pytest.raises(ReasrmError, match="holds a previous run: continue it with resume=true"):
        run(c)
    resumed = run(cfg(tmp_path, tiny_model, benchmark="rmb", data_dir=benchmark_data / "rmb", limit=5, resume=True))
    after = lines(path)
    assert [s["key"] for s in after[:3]] == [json.loads(x)["key"] for x in done[:3]]
    assert sorted(s["key"] for s in after) == sorted(json.loads(x)["key"] for x in done)
    assert resumed["scores"] == first["scores"]
    with pytest.raises(ReasrmConfigError, match="'seed' was 0"):
        run(cfg(tmp_path, tiny_model, benchmark="rmb", data_dir=benchmark_data / "rmb", limit=5, resume=True, seed=1))


def test_rmb_bon_records_stay_whole(benchmark_data, tmp_path, tiny_model):
    chosen = benchmark_pairs(cfg(tmp_path, tiny_model, benchmark="rmb", data_dir=benchmark_data / "rmb", limit=40))
    bon = [p for p, _ in chosen if p.source == "bon"]
    counts = {}
    for p in bon:
        counts[p.meta["bon_uid"]] = counts.get(p.meta["bon_uid"], 0) + 1
    records = [r for f in (benchmark_data / "rmb/bon").glob("*.json") for r in json.loads(f.read_text())]
    full = {str(r["bon_uid"]): len(r["loser_list"]) for r in records}
    assert bon and all(counts[uid] == full[uid] for uid in counts)  # --limit never splits a record


def test_pairs_benchmark_uses_the_heldout_split(tmp_path, tiny_model):
    build(load_recipe("demo", ["n=60"]), tmp_path / "data")
    result = run(cfg(tmp_path, tiny_model, benchmark="pairs", data_dir=tmp_path / "data", domain="math"))
    samples = lines(tmp_path / "eval" / "samples.jsonl")
    assert samples and {s["domain"] for s in samples} == {"math"} and set(result["scores"]) == {"math"}


def test_rewardbench_from_local_rows_in_hub_schema(tmp_path, tiny_model, write_jsonl):
    subsets = ["alpacaeval-easy", "hep-go", "math-prm"]
    rows = [
        {
            "prompt": f"q{k}",
            "chosen": "a",
            "chosen_model": "m",
            "rejected": "b",
            "rejected_model": "n",
            "subset": subset,
            "id": k,
        }
        for k, subset in enumerate(subsets)
    ]
    folder = write_jsonl(rows).parent
    result = run(cfg(tmp_path, tiny_model, benchmark="rewardbench", data_dir=folder))
    assert set(result["scores"]) == {"Chat", "Reasoning", "average", "subsets"}
    assert set(result["scores"]["subsets"]) == {"alpacaeval-easy", "hep-go", "math-prm"}


def test_config_requires_data_dir_for_local_benchmarks(tmp_path, tiny_model):
    with pytest.raises(ReasrmConfigError, match="data_dir: required for 'rm-bench'"):
        cfg(tmp_path, tiny_model, benchmark="rm-bench")
    with pytest.raises(ReasrmConfigError, match="benchmark: must be one of"):
        cfg(tmp_path, tiny_model, benchmark="mmlu", data_dir="x")


def _sample(pair, order, outcome, choice, longer=True, status=None):
    status = status or ("ok" if choice else "missing")
    return {
        "pair": pair,
        "order": order,
        "outcome": outcome,
        "chosen_slot": "A" if order == "AB" else "B",
        "chosen_longer": longer,
        "verdict": {"choice": choice, "status": status},
        "status": status,
    }


def test_bias_report_arithmetic():
    """Position bias made visible: a judge that always says A is right half the time and flips every pair."""
    records = [
        _sample("p1", "AB", 1, "A"),
        _sample("p1", "BA", 0, "A"),  # always A: a flip
        _sample("p2", "AB", 1, "A", longer=False),
        _sample("p2", "BA", 1, "B", longer=False),  # consistent
        _sample("p3", "AB", None, None, status="truncated"),
        _sample("p3", "BA", 0, "A"),
    ]
    by_pair = {}
    for r in records:
        by_pair.setdefault(r["pair"], []).append(r)

    b = bias(list(by_pair.values()))
    assert b["a_rate"] == 4 / 5 and b["chosen_in_a"] == 0.5
    assert b["flip_rate"] == 0.5  # p1 flips, p2 does not, p3 has an invalid call
    assert b["both_right"] == 1 / 3  # only p2 is right in both orders
    assert b["accuracy_chosen_longer"] == 1 / 4 and b["accuracy_chosen_shorter"] == 1.0
    assert b["invalid_rate"] == {"truncated": 1 / 6}


def test_score_needs_samples(tmp_path, tiny_model):
    with pytest.raises(ReasrmError, match="no samples"):
        score(cfg(tmp_path, tiny_model, benchmark="rmb", data_dir="x"), [])


def test_an_eval_that_fails_before_its_first_sample_leaves_no_files(benchmark_data, tmp_path):
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text("{}")  # transformers cannot read it: the run fails at model load
    c = cfg(tmp_path, model, benchmark="rm-bench", data_dir=benchmark_data / "rm-bench", limit=1)
    with pytest.raises(ReasrmError, match=f"cannot load model {model}"):
        run(c)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]  # no eval folder, config or lock
