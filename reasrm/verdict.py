"""The verdict grammar: one definition, shared by the RL reward, the judge, evaluation and the server.

A judge's completion ends with ``<answer>[[A]]</answer>`` or ``<answer>[[B]]</answer>``. ``parse_verdict``
turns any completion into a :class:`Verdict`. The rules (numbered as in docs/verdict.md):

1. Everything up to and including the last ``</think>`` is ignored; a ``<think>`` that never closes
   makes the verdict ``truncated``.
2. Text inside ``<quote_A>``, ``<quote_B>``, ``<summary_A>``, ``<summary_B>`` is quoted material and is
   never read as a verdict. A quote that never closes quotes everything after it.
3. Answer elements are ``<answer>...</answer>`` (exact lower-case tags); the content, stripped of
   whitespace, must be exactly ``[[A]]`` or ``[[B]]``, anything else is ``malformed``. An ``<answer>``
   followed by another ``<answer>`` before any ``</answer>`` is a malformed element.
4. No answer element: ``missing``; an ``<answer>`` that never closes: ``truncated``.
5. strict (the RL reward): exactly one well-formed element and only whitespace after its ``</answer>``;
   two or more elements are ``multiple`` (even if they agree); trailing text is ``trailing``.
6. lenient (judging, evaluation): malformed elements are ignored when a well-formed one exists; well-formed
   elements naming different letters are ``conflicting``. Without any answer element, bare ``[[A]]`` /
   ``[[B]]`` markers outside quotes decide when only one letter appears.
7. ``status == "ok"`` exactly when ``choice`` is not ``None``.

Only ``str.find`` scans that always move forward are used, so parsing is linear in the text length.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Literal

GRAMMAR_VERSION = "1"

Choice = Literal["A", "B"]
Mode = Literal["strict", "lenient"]

# The statuses parse_verdict gives, and the two a judge adds on top of them (see reasrm.judge).
STATUSES = ("ok", "missing", "truncated", "malformed", "multiple", "conflicting", "trailing")
FAILED = "failed"  # the backend gave up on the call: there is no text to parse
INCONSISTENT = "inconsistent"  # both slot orders gave valid verdicts naming different responses
TOO_LONG = "too_long"  # the judge prompt was over the limit (max_prompt_tokens, the model's context): not generated
JUDGE_STATUSES = (*STATUSES, FAILED, INCONSISTENT, TOO_LONG)

# Tag names of a judge's output, here and nowhere else (prompts escape them, the teacher writes them).
ANSWER, THINK = "answer", "think"
QUOTES = ("quote_A", "quote_B", "summary_A", "summary_B")  # quoted material: never read as a verdict
TYPE, RUBRIC, JUSTIFY, SOLUTION, EVAL = "type", "rubric", "justify", "solution", "eval"
TAGS = (ANSWER, THINK, *QUOTES, TYPE, RUBRIC, JUSTIFY, SOLUTION, EVAL)
MARKERS = {"[[A]]": "A", "[[B]]": "B"}  # what an answer element holds

# Fixed alternatives, no quantifiers: the regex engine cannot backtrack, the scan stays linear.
_QUOTE_OPEN = re.compile(f"<({'|'.join(QUOTES)})>")
_SECTIONS = {"task_type": TYPE, "rubric": RUBRIC, "solution": SOLUTION, "evaluation": EVAL}


def element(tag: str, content: str) -> str:
    """``<tag>content</tag>``: how a judge's output is written (the template teacher, tests)."""
    return f"<{tag}>{content}</{tag}>"


def answer(choice: Choice) -> str:
    """The well-formed answer element naming ``choice``: ``<answer>[[A]]</answer>``."""
    return element(ANSWER, f"[[{choice}]]")


def winner(choice: Choice | None, chosen_slot: Choice | None) -> Literal["chosen", "rejected"] | None:
    """Whether a verdict named the labelled response: ``"chosen"``, ``"rejected"``, or None when there is
    no verdict or no label. The one definition of "is this verdict right?" (reward, teacher, judge, eval)."""
    if choice is None or chosen_slot is None:
        return None
    return "chosen" if choice == chosen_slot else "rejected"


@dataclass(frozen=True)
class Verdict:
    """A parsed verdict. ``choice`` is the slot letter, or ``None`` whenever ``status != "ok"``."""

    choice: Choice | None
    status: str
    task_type: str | None = None
    rubric: str | None = None
    solution: str | None = None
    evaluation: str | None = None

    @property
    def ok(self) -> bool:
        return self.choice is not None

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class _Element:
    """One ``<answer>`` element: its choice (None when not well formed), and where it ends."""

    choice: Choice | None
    closed: bool
    end: int  # index just after ``</answer>`` in the unquoted text, or len(text) when unclosed


def parse_verdict(text: str, mode: Mode = "strict") -> Verdict:
    """Parse a judge completion into a :class:`Verdict` (see the module docstring for the rules)."""
    if mode not in ("strict", "lenient"):
        raise ValueError(f"mode must be 'strict' or 'lenient', got {mode!r}")
    # Rule 1: the reasoning block.
    close = f"</{THINK}>"
    cut = text.rfind(close)
    body = text[cut + len(close) :] if cut >= 0 else text
    sections = _sections(body)
    if f"<{THINK}>" in body:
        return Verdict(None, "truncated", **sections)

    # Rule 2: blank out quoted material (the unquoted text keeps the same length, so positions agree).
    unquoted, open_quote = _unquote(body)
    elements = _answer_elements(unquoted)

    if mode == "strict":
        status, choice = _strict(elements, unquoted)
    else:
        status, choice = _lenient(elements, unquoted)
    if status == "missing" and open_quote:
        status = "truncated"  # the text ended inside a quote: the verdict was cut off, not left out
    return Verdict(choice, status, **sections)


def _strict(elements: list[_Element], unquoted: str) -> tuple[str, Choice | None]:
    if not elements:
        return "missing", None
    if len(elements) > 1:
        return "multiple", None
    (element,) = elements
    if not element.closed:
        return "truncated", None
    if element.choice is None:
        return "malformed", None
    if unquoted[element.end :].strip():
        return "trailing", None
    return "ok", element.choice


def _lenient(elements: list[_Element], unquoted: str) -> tuple[str, Choice | None]:
    if elements:
        letters = {e.choice for e in elements if e.choice is not None}
        if len(letters) > 1:
            return "conflicting", None
        if letters:
            return "ok", letters.pop()
        return ("truncated" if not elements[-1].closed else "malformed"), None
    has_a, has_b = "[[A]]" in unquoted, "[[B]]" in unquoted
    if has_a and has_b:
        return "conflicting", None
    if has_a or has_b:
        return "ok", "A" if has_a else "B"
    return "missing", None


def _unquote(text: str) -> tuple[str, bool]:
    """Replace quoted material by spaces. Returns the text and whether a quote was left open."""
    parts: list[str] = []
    pos = 0
    while True:
        start, tag = _first_open_quote(text, pos)
        if start < 0:
            parts.append(text[pos:])
            return "".join(parts), False
        parts.append(text[pos:start])
        close = text.find(f"</{tag}>", start)
        if close < 0:
            parts.append(" " * (len(text) - start))
            return "".join(parts), True
        end = close + len(tag) + 3
        parts.append(" " * (end - start))
        pos = end


def _first_open_quote(text: str, pos: int) -> tuple[int, str]:
    """The earliest quote/summary opening tag at or after ``pos``: (index, tag name) or (-1, "")."""
    match = _QUOTE_OPEN.search(text, pos)
    return (match.start(), match.group(1)) if match else (-1, "")


def _answer_elements(text: str) -> list[_Element]:
    opening, closing = f"<{ANSWER}>", f"</{ANSWER}>"
    elements: list[_Element] = []
    n = len(text)
    pos = text.find(opening)
    close = -1  # the next "</answer>" at or after the current element; n when there is none left
    while pos >= 0:
        content_start = pos + len(opening)
        if close < content_start:  # search again only once the last close lies behind: keeps it linear
            found = text.find(closing, content_start)
            close = n if found < 0 else found
        next_open = text.find(opening, content_start)
        if close == n and next_open < 0:
            elements.append(_Element(None, closed=False, end=n))
            break
        if next_open >= 0 and next_open < close:
            # Re-opened before closing: this element is malformed; the next one is read on its own.
            elements.append(_Element(None, closed=True, end=next_open))
        else:
            content = text[content_start:close].strip()
            elements.append(_Element(MARKERS.get(content), closed=True, end=close + len(closing)))
        pos = next_open
    return elements


def _sections(body: str) -> dict[str, str | None]:
    """The judge's reasoning sections: the first element of each, up to its close tag or the text's end."""
    found: dict[str, str | None] = {}
    for field, tag in _SECTIONS.items():
        start = body.find(f"<{tag}>")
        if start < 0:
            found[field] = None
            continue
        start += len(tag) + 2
        end = body.find(f"</{tag}>", start)
        found[field] = body[start : end if end >= 0 else len(body)].strip()
    return found
