"""What every command shares (reasrm.runs): the output policy, the resumable JSONL, the summary."""

from dataclasses import dataclass

import pytest
import yaml

from reasrm.errors import ReasrmConfigError
from reasrm.runs import ResumableJsonl, check_output, prepare_output, summarize


@dataclass
class Cfg:
    output: str
    seed: int = 0
    limit: int = 1


def test_a_folder_output_is_new_then_refused_resumed_or_replaced(tmp_path):
    out = tmp_path / "run"
    saved = out / "stage.yaml"
    assert check_output(out, saved, Cfg(str(out))) == "new" and not out.exists()  # a check changes nothing
    prepare_output(out, saved, Cfg(str(out)), ("seed",))
    assert yaml.safe_load(saved.read_text()) == {"output": str(out), "seed": 0, "limit": 1}
    (out / "result.txt").write_text("work")
    with pytest.raises(ReasrmConfigError, match="holds a previous run: continue it with resume=true"):
        prepare_output(out, saved, Cfg(str(out)), ("seed",))
    with pytest.raises(ReasrmConfigError, match=r"'seed' was 0 .* now 1; use the same settings or overwrite=true"):
        prepare_output(out, saved, Cfg(str(out), seed=1), ("seed",), resume=True)
    prepare_output(out, saved, Cfg(str(out), limit=5), ("seed",), resume=True)  # limit is not a result key
    assert (out / "result.txt").exists() and yaml.safe_load(saved.read_text())["limit"] == 1  # kept as it was
    prepare_output(out, saved, Cfg(str(out), seed=2), ("seed",), overwrite=True)
    assert not (out / "result.txt").exists() and yaml.safe_load(saved.read_text())["seed"] == 2
    with pytest.raises(ReasrmConfigError, match="resume and overwrite exclude each other"):
        prepare_output(out, saved, Cfg(str(out)), ("seed",), resume=True, overwrite=True)


def test_only_what_reasrm_wrote_is_ever_removed(tmp_path):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "thesis.tex").write_text("years of work")
    with pytest.raises(ReasrmConfigError, match=r"not empty and was not written by reasrm \(no stage.yaml beside it\)"):
        prepare_output(mine, mine / "stage.yaml", Cfg(str(mine)), overwrite=True)
    with pytest.raises(ReasrmConfigError, match=r"cannot resume .*stage.yaml is missing"):
        prepare_output(mine, mine / "stage.yaml", Cfg(str(mine)), ("seed",), resume=True)
    assert (mine / "thesis.tex").read_text() == "years of work"


def test_a_file_output_keeps_its_config_beside_it(tmp_path):
    out = tmp_path / "sub" / "judged.jsonl"
    saved = out.with_suffix(".config.yaml")
    prepare_output(out, saved, Cfg(str(out)), ("seed",))
    assert saved.is_file() and not out.exists()  # nothing is written until the first result
    out.write_text('{"id": "a"}\n')
    with pytest.raises(ReasrmConfigError, match="holds a previous run"):
        prepare_output(out, saved, Cfg(str(out)), ("seed",))
    prepare_output(out, saved, Cfg(str(out)), ("seed",), overwrite=True)
    assert not out.exists()
    with pytest.raises(ReasrmConfigError, match="is a folder: expected a file"):
        prepare_output(tmp_path, tmp_path.parent / "x.config.yaml", Cfg(str(tmp_path)))


def test_resumable_jsonl_drops_a_cut_line_and_knows_what_is_done(tmp_path):
    path = tmp_path / "out.jsonl"
    with ResumableJsonl(path) as out:
        out.write({"id": "a", "v": 1})
        out.write({"id": "b", "v": 2})
    path.write_text(path.read_text() + '{"id": "c", "v"')  # killed while writing the third line
    with ResumableJsonl(path, resume=True) as out:
        assert out.done == {"a", "b"}
        out.write({"id": "c", "v": 3})
    assert path.read_text().count("\n") == 3 and path.read_text().endswith('{"id": "c", "v": 3}\n')
    with ResumableJsonl(path) as out:  # not resuming: it starts empty
        assert out.done == set()
    assert path.read_text() == ""


def _call(order: str, chosen_slot, choice, status=None):
    return {
        "order": order,
        "chosen_slot": chosen_slot,
        "verdict": {"choice": choice, "status": status or ("ok" if choice else "missing")},
    }


@pytest.mark.parametrize(
    ("pairs", "expected"),
    [
        # A judge that always answers A, both orders of two pairs: half right, every pair flips.
        (
            [[_call("AB", "A", "A"), _call("BA", "B", "A")], [_call("AB", "B", "A"), _call("BA", "A", "A")]],
            {
                "accuracy": 0.5,
                "label_prior": 0.5,
                "a_rate": 1.0,
                "flip_rate": 1.0,
                "both_right": 0.0,
                "valid": 1.0,
                "both_right_chance": 0.0,
            },
        ),
        # A judge that follows the content: right in both orders, no flips.
        (
            [[_call("AB", "A", "A"), _call("BA", "B", "B")], [_call("AB", "B", "B"), _call("BA", "A", "A")]],
            {
                "accuracy": 1.0,
                "label_prior": 0.5,
                "a_rate": 0.5,
                "flip_rate": 0.0,
                "both_right": 1.0,
                "both_right_chance": 0.25,
            },
        ),
        # One order each, chosen mostly in B; "always B" would score 0.75: the label prior says so.
        (
            [[_call("AB", "B", "B")], [_call("AB", "B", "B")], [_call("AB", "B", "B")], [_call("AB", "A", None)]],
            {
                "accuracy": 0.75,
                "label_prior": 0.75,
                "chosen_in_a": 0.25,
                "a_rate": 0.0,
                "valid": 0.75,
                "statuses": {"ok": 3, "missing": 1},
            },
        ),
        # Invalid verdicts count as wrong, and a pair with one leaves the flip rate.
        (
            [[_call("AB", "A", None, "failed"), _call("BA", "B", "B")], [_call("AB", "A", "A"), _call("BA", "B", "A")]],
            {
                "accuracy": 0.5,
                "flip_rate": 1.0,
                "both_right": 0.0,
                "statuses": {"ok": 3, "failed": 1},
                "both_right_chance": 2 * 1 / 16,
            },
        ),
        # Unlabelled pairs: no accuracy, but the A-rate and flips are still measured.
        ([[_call("AB", None, "A"), _call("BA", None, "B")]], {"a_rate": 0.5, "flip_rate": 0.0, "pairs": 1, "calls": 2}),
    ],
    ids=["always-A", "content", "label-prior", "invalid", "unlabelled"],
)
def test_summary(pairs, expected):
    stats = summarize(pairs)
    assert {k: stats.get(k) for k in expected} == expected
    if pairs[0][0]["chosen_slot"] is None:
        assert "accuracy" not in stats and "both_right" not in stats
