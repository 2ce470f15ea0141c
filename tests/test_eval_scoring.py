"""Benchmark scoring as pure functions, against hand-computed cases."""

import pytest

from reasrm.eval import rewardbench, rmb, rmbench


def test_rewardbench_weights_sections_and_average():
    acc = {"alpacaeval-easy": 1.0, "mt-bench-med": 0.5, "math-prm": 0.5, "hep-go": 1.0, "hep-rust": 1.0}
    s = rewardbench.section_scores(acc)
    assert s["Chat"] == pytest.approx((100 * 1.0 + 40 * 0.5) / 140)
    # math-prm weighs 984, so with every hep subset at 1.0 math and code would each weigh half;
    # here two hep subsets (164 each) stand against math-prm's 984.
    assert s["Reasoning"] == pytest.approx((984 * 0.5 + 164 + 164) / (984 + 328))
    assert "Chat Hard" not in s and "Safety" not in s  # a section with no subset present is absent, not zero
    assert s["average"] == pytest.approx((s["Chat"] + s["Reasoning"]) / 2)


def test_rewardbench_math_and_code_weigh_half_of_reasoning():
    acc = {"math-prm": 0.0, **{f"hep-{lang}": 1.0 for lang in ("cpp", "go", "java", "js", "python", "rust")}}
    assert rewardbench.section_scores(acc)["Reasoning"] == pytest.approx(0.5)


def test_rewardbench_reproduces_published_section_average():
    """RM-R1-Qwen2.5-Instruct-32B's published sections (95.3, 83.1, 91.9, 95.2) average to its 91.4."""
    published = {"Chat": 0.953, "Chat Hard": 0.831, "Safety": 0.919, "Reasoning": 0.952}
    acc = {subset: published[section] for section, weights in rewardbench.SECTIONS.items() for subset in weights}
    s = rewardbench.section_scores(acc)
    for section, value in published.items():
        assert s[section] == pytest.approx(value)
    assert round(100 * s["average"], 1) == 91.4


def test_rewardbench_subset_accuracy_counts_invalid_both_ways():
    outcomes = {"hep-go": [1, 0, None, 1]}
    assert rewardbench.subset_accuracy(outcomes) == {"hep-go": 0.5}
    assert rewardbench.subset_accuracy(outcomes, invalid=0.5) == {"hep-go": 0.625}
    with pytest.raises(ValueError, match="not RewardBench subsets"):
        rewardbench.section_scores({"made-up": 1.0})


def test_rmbench_triangles_of_one_prompt():
    m = [
        [1, 0, 0],  # chosen concise vs rejected concise / detailed / markdown
        [1, 1, 0],
        [1, 1, 1],
    ]
    s = rmbench.scores({"chat": [m]})
    assert s["domains"]["chat"]["hard"] == 0.0  # (0,1) (0,2) (1,2): chosen less styled than rejected
    assert s["domains"]["chat"]["normal"] == 1.0
    assert s["domains"]["chat"]["easy"] == 1.0
    assert s["domains"]["chat"]["total"] == pytest.approx(2 / 3)
    assert s["total"] == pytest.approx(2 / 3)


def test_rmbench_all_nine_cells_count():
    """Each cell moves exactly its own triangle: the RM-R1 bug (cells (0,1), (1,2), (2,0) never scored, an
    easy cell read into hard) would break this."""
    base = [[0] * 3 for _ in range(3)]
    for i in range(3):
        for j in range(3):
            m = [row[:] for row in base]
            m[i][j] = 1
            d = rmbench.scores({"code": [m]})["domains"]["code"]
            expected = {"hard": (i, j) in rmbench.HARD, "normal": i == j, "easy": (i, j) in rmbench.EASY}
            assert {k: d[k] for k in expected} == {k: v / 3 for k, v in expected.items()}, (i, j)


def test_rmbench_averages_prompts_pools_domains_and_counts_invalid():
    ones = [[1] * 3 for _ in range(3)]
    with_invalid = [[None] * 3 for _ in range(3)]
    s = rmbench.scores({"chat": [ones, with_invalid], "safety": [ones]})
    assert s["domains"]["chat"]["total"] == 0.5 and s["domains"]["safety"]["total"] == 1.0
    assert s["total"] == 0.75 and s["hard"] == s["normal"] == s["easy"] == 0.75
    assert rmbench.scores({"chat": [ones, with_invalid]}, invalid=0.5)["total"] == 0.75
    with pytest.raises(ValueError, match="not 3x3"):
        rmbench.scores({"chat": [[[1, 1, 1], [1, 1], [1, 1, 1]]]})


def test_rmb_pairwise_micro_average_and_bon_needs_every_win():
    pairwise = {"helpfulness": [1, 1, 0, 1], "harmlessness": [1, None]}
    bon = {"helpfulness": [[1, 1, 1], [1, 0, 1], [1, None]]}
    s = rmb.scores(pairwise, bon)
    assert s["pairwise_helpfulness"] == 0.75 and s["pairwise_harmlessness"] == 0.5
    assert s["bon_helpfulness"] == pytest.approx(1 / 3)  # one loss or one invalid verdict sinks a record
    assert "bon_harmlessness" not in s
    assert s["overall"] == pytest.approx((0.75 + 0.5 + 1 / 3) / 3)
    half = rmb.scores(pairwise, bon, invalid=0.5)
    assert half["pairwise_harmlessness"] == 0.75 and half["bon_helpfulness"] == pytest.approx(1 / 3)


def test_rmb_reproduces_published_overall():
    """RM-R1-Qwen2.5-Instruct-32B: pairwise 80.2 / 80.6, BoN 65.1 / 66.2 -> overall 73.0."""

    def outcomes(wins, n=1000):
        return [1] * wins + [0] * (n - wins)

    pairwise = {"helpfulness": outcomes(802), "harmlessness": outcomes(806)}
    bon = {"helpfulness": [[1, 1]] * 651 + [[1, 0]] * 349, "harmlessness": [[1]] * 662 + [[0, 1]] * 338}
    s = rmb.scores(pairwise, bon)
    assert [
        round(100 * s[k], 1)
        for k in ("pairwise_helpfulness", "pairwise_harmlessness", "bon_helpfulness", "bon_harmlessness")
    ] == [80.2, 80.6, 65.1, 66.2]
    assert round(100 * s["overall"], 1) == 73.0
