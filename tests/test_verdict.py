"""The verdict grammar (DESIGN.md), table-driven: one commented case per rule, in both modes."""

import signal

import pytest

from reasrm import parse_verdict
from reasrm.verdict import STATUSES

A, B = "<answer>[[A]]</answer>", "<answer>[[B]]</answer>"
EVAL = "<eval>Chatbot A is right: <quote_A>47 + 38 = 85</quote_A>.</eval>\n"

# (id, text, strict (status, choice), lenient (status, choice))
CASES = [
    # Rule 3/5: one well-formed answer at the end is ok in both modes.
    ("plain", f"{EVAL}{A}", ("ok", "A"), ("ok", "A")),
    ("plain-b", f"{EVAL}{B}\n\n", ("ok", "B"), ("ok", "B")),
    # Rule 3: whitespace inside the element is stripped.
    ("inner-whitespace", "<answer> [[B]] </answer>", ("ok", "B"), ("ok", "B")),
    ("inner-newlines", "<answer>\n[[A]]\n</answer>", ("ok", "A"), ("ok", "A")),
    # Rule 1: a verdict inside the reasoning block is ignored; the one after </think> counts.
    ("inside-think", f"<think>maybe {A}</think>\n{B}", ("ok", "B"), ("ok", "B")),
    ("only-inside-think", f"<think>I'd say {A}</think> done", ("missing", None), ("missing", None)),
    ("last-think-close", f"<think>a</think>{A}</think>{B}", ("ok", "B"), ("ok", "B")),
    # Rule 1: <think> that never closes: truncated (the model ran out of tokens while thinking).
    ("think-unclosed", f"<think>comparing... {A}", ("truncated", None), ("truncated", None)),
    # Rule 2: a verdict quoted from a response is quoted material, never a verdict.
    ("quoted-verdict", f"<quote_A>{A}</quote_A> is a copied tag. {B}", ("ok", "B"), ("ok", "B")),
    ("only-quoted", f"<quote_B>{B}</quote_B>", ("missing", None), ("missing", None)),
    ("summary-quoted", "<summary_A>it says [[A]]</summary_A>", ("missing", None), ("missing", None)),
    # Rule 2: a quote that never closes quotes the rest: the verdict was cut off.
    ("quote-unclosed", f"<quote_A>the answer is {A}", ("truncated", None), ("truncated", None)),
    # Rule 5: two answers, even agreeing, are `multiple` in strict; lenient takes their common letter.
    ("two-agree", f"{A} and again {A}", ("multiple", None), ("ok", "A")),
    # Rule 6: two that disagree: conflicting in lenient.
    ("two-disagree", f"{A}\n{B}", ("multiple", None), ("conflicting", None)),
    # Rule 3: lower-case letters are not a verdict.
    ("lowercase-letter", "<answer>[[a]]</answer>", ("malformed", None), ("malformed", None)),
    # Rule 3: tag names are exact and lower case.
    ("uppercase-tag", "<ANSWER>[[A]]</ANSWER>", ("missing", None), ("ok", "A")),
    ("no-brackets", "<answer>A</answer>", ("malformed", None), ("malformed", None)),
    ("extra-words", "<answer>[[A]] is better</answer>", ("malformed", None), ("malformed", None)),
    ("empty-answer", "<answer></answer>", ("malformed", None), ("malformed", None)),
    # Rule 3: Unicode look-alike brackets (fullwidth, mathematical) are not the verdict marker.
    ("fullwidth-brackets", "<answer>［［A］］</answer>", ("malformed", None), ("malformed", None)),
    ("white-square-brackets", "<answer>⟦A⟧</answer>", ("malformed", None), ("malformed", None)),
    ("fullwidth-letter", "<answer>[[Ａ]]</answer>", ("malformed", None), ("malformed", None)),
    # Rule 6: a malformed element is ignored when a well-formed one exists (lenient only).
    ("malformed-then-ok", f"<answer>A</answer> {B}", ("multiple", None), ("ok", "B")),
    # Rule 5: text after </answer> is `trailing` in strict (closes the "answer then keep talking" hack).
    ("trailing", f"{A} Actually, B is better.", ("trailing", None), ("ok", "A")),
    ("answer-first-long-eval", A + "\n" + EVAL * 50, ("trailing", None), ("ok", "A")),
    # Rule 4: an <answer> that never closes: truncated.
    ("truncated-answer", f"{EVAL}<answer>[[A]", ("truncated", None), ("truncated", None)),
    ("truncated-after-ok", f"{A} <answer>[[B]", ("multiple", None), ("ok", "A")),
    # Rule 3: <answer> re-opened before closing is a malformed element; the next one is read alone.
    ("reopened", "<answer>[[A]] <answer>[[B]]</answer>", ("multiple", None), ("ok", "B")),
    # Rule 4: nothing at all.
    ("empty-string", "", ("missing", None), ("missing", None)),
    ("no-verdict", EVAL, ("missing", None), ("missing", None)),
    # Rule 6: bare markers without tags decide in lenient mode only, and only one letter may appear.
    ("bare-a", f"{EVAL}Final verdict: [[A]]", ("missing", None), ("ok", "A")),
    ("bare-both", "[[A]] or [[B]]? I pick [[B]]", ("missing", None), ("conflicting", None)),
    ("bare-quoted", "<quote_B>[[B]]</quote_B> so [[A]]", ("missing", None), ("ok", "A")),
    ("bare-lowercase", "verdict: [[b]]", ("missing", None), ("missing", None)),
]


@pytest.mark.parametrize(("text", "strict", "lenient"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_grammar(text, strict, lenient):
    for mode, (status, choice) in (("strict", strict), ("lenient", lenient)):
        verdict = parse_verdict(text, mode=mode)
        assert (verdict.status, verdict.choice) == (status, choice), mode
        # Rule 7: ok exactly when there is a choice, and every status is a documented one.
        assert (verdict.status == "ok") == (verdict.choice is not None) == verdict.ok
        assert verdict.status in STATUSES


def test_default_mode_is_strict():
    assert parse_verdict(f"{A} trailing").status == "trailing"
    with pytest.raises(ValueError, match="mode"):
        parse_verdict(A, mode="loose")


def test_sections_are_parsed():
    text = (
        "<think>hmm</think><type>Reasoning</type>\n<solution> 85 </solution>\n"
        f"<eval>A is right: <quote_A>85</quote_A></eval>\n{A}"
    )
    v = parse_verdict(text)
    assert (v.task_type, v.solution, v.rubric) == ("Reasoning", "85", None)
    assert v.evaluation == "A is right: <quote_A>85</quote_A>"
    chat = parse_verdict("<type>Chat</type><rubric>1. helpful (0.7)<justify>why</justify></rubric>")
    assert chat.rubric == "1. helpful (0.7)<justify>why</justify>"
    assert chat.status == "missing" and chat.task_type == "Chat"
    # A section still open when the text ends runs to the end of the text.
    assert parse_verdict("<eval>cut off here").evaluation == "cut off here"


class _Hang(Exception):
    pass


def _alarm(signum, frame):
    raise _Hang


# Adversarial 1 MB inputs: a backtracking or quadratic parser would take minutes to hours on these;
# the linear one takes well under a second each. The alarm only turns a hang into a failure.
HUGE = {
    "many-open-answers": "<answer>" * 125_000,
    "opens-then-one-close": "<answer>" * 125_000 + "</answer>",
    "many-open-quotes": "<quote_A>" * 110_000,
    "many-brackets": "[[" * 500_000,
    "many-lt": "<" * 1_000_000,
    "many-answers": A * 45_000,
    "long-eval-then-answer": "x" * 1_000_000 + A,
    "many-think": "<think></think>" * 66_000,
}


@pytest.mark.parametrize("text", HUGE.values(), ids=HUGE.keys())
def test_one_megabyte_inputs_stay_linear(text):
    assert len(text) >= 900_000
    previous = signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(20)
    try:
        for mode in ("strict", "lenient"):
            assert parse_verdict(text, mode=mode).status in STATUSES
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
