"""The pair schema: one definition of a preference pair (labelled) or a pair to judge (unlabelled).

A row gives the conversation as ``prompt`` (a string: one user turn) or ``context`` (``{role, content}``
messages ending with a user turn), and either ``chosen``/``rejected`` (labelled) or
``response_a``/``response_b`` (unlabelled, judged as given). Optional: ``id`` (else a hash of the
content), ``domain``, ``source``, ``rubric``, ``reference``, ``meta``, and ``rejected_context`` (the
rejected answer's own conversation, for multi-turn sources whose earlier turns differ; ``context`` is
then the chosen answer's). Other keys are kept in ``meta``.

Which slot the chosen response is shown in is not part of the pair: :func:`assign_slots` decides it for
a list of pairs and a seed, the one definition every command uses (training, ``Judge``, eval, the data
report).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, NamedTuple

from reasrm.errors import ReasrmDataError

Slot = Literal["A", "B"]
ROLES = ("system", "user", "assistant")
DOMAINS = ("chat", "reasoning", "math", "code", "safety")
_KNOWN = {
    "id",
    "prompt",
    "context",
    "chosen",
    "rejected",
    "response_a",
    "response_b",
    "domain",
    "source",
    "rubric",
    "reference",
    "meta",
    "rejected_context",
}


class RowError(ReasrmDataError):
    """An invalid row; ``reason`` is the short code a build report counts drops by."""

    def __init__(self, where: str, reason: str, message: str):
        super().__init__(f"{where}: {message}")
        self.reason = reason
        self.detail = message


class Shown(NamedTuple):
    """A pair as shown to the judge: each slot's conversation and response, and where the chosen one is."""

    context_a: tuple[dict, ...]
    response_a: str
    context_b: tuple[dict, ...]
    response_b: str
    chosen_slot: Slot | None


@dataclass(frozen=True)
class Pair:
    """Two responses to one conversation. ``chosen``/``rejected`` when labelled, else ``response_a``/``_b``."""

    id: str
    context: tuple[dict, ...]
    chosen: str | None = None
    rejected: str | None = None
    response_a: str | None = None
    response_b: str | None = None
    domain: str | None = None
    source: str | None = None
    rubric: str | None = None
    reference: str | None = None
    meta: dict = field(default_factory=dict)
    rejected_context: tuple[dict, ...] | None = None

    @property
    def labelled(self) -> bool:
        return self.chosen is not None

    def shown(self, chosen_slot: Slot | None = None, swap: bool = False) -> Shown:
        """The pair in slots: a labelled pair's chosen response in ``chosen_slot`` (see :func:`assign_slots`);
        ``swap`` exchanges the two slots (the other order). Unlabelled pairs keep their given order."""
        other = self.rejected_context or self.context
        if self.labelled:
            if chosen_slot not in ("A", "B"):
                raise ValueError(f"pair {self.id!r} is labelled: give the chosen response's slot, 'A' or 'B'")
            slot = other_slot(chosen_slot) if swap else chosen_slot
            if slot == "A":
                return Shown(self.context, self.chosen, other, self.rejected, "A")
            return Shown(other, self.rejected, self.context, self.chosen, "B")
        if swap:
            return Shown(self.context, self.response_b, self.context, self.response_a, None)
        return Shown(self.context, self.response_a, self.context, self.response_b, None)

    def to_record(self) -> dict:
        """A flat row for a dataset file (``meta`` as JSON text, so every row has the same columns)."""
        return {
            "id": self.id,
            "context": list(self.context),
            "chosen": self.chosen,
            "rejected": self.rejected,
            "rejected_context": list(self.rejected_context) if self.rejected_context else None,
            "domain": self.domain,
            "source": self.source,
            "rubric": self.rubric,
            "reference": self.reference,
            "meta": json.dumps(self.meta, ensure_ascii=False, sort_keys=True),
        }

    @classmethod
    def from_record(cls, row: dict) -> Pair:
        return cls(
            id=row["id"],
            context=tuple(dict(m) for m in row["context"]),
            chosen=row["chosen"],
            rejected=row["rejected"],
            rejected_context=tuple(dict(m) for m in row["rejected_context"]) if row.get("rejected_context") else None,
            domain=row["domain"],
            source=row["source"],
            rubric=row["rubric"],
            reference=row["reference"],
            meta=json.loads(row["meta"]) if row.get("meta") else {},
        )


def other_slot(slot: Slot) -> Slot:
    return "B" if slot == "A" else "A"


def assign_slots(pairs: Sequence[Pair], seed: int) -> list[Slot | None]:
    """The slot of each labelled pair's chosen response (None for unlabelled pairs, judged as given).

    Within each domain, pairs are taken two by two in list order; the first of each two gets a slot from a
    seeded hash of its id, the second the other slot. So: (1) within every domain, and therefore overall,
    the chosen response is in A and in B equally often, to within one, in the whole list and in every
    prefix of it; (2) the slots of the first N pairs do not depend on the pairs after them, so ``limit``
    and resumed runs keep them; (3) a lone pair's slot is the seeded hash of its id.
    """
    slots: list[Slot | None] = []
    previous: dict[str | None, Slot | None] = {}  # domain -> slot of a first-of-two waiting for its partner
    for pair in pairs:
        if not pair.labelled:
            slots.append(None)
            continue
        waiting = previous.get(pair.domain)
        if waiting is None:
            digest = hashlib.sha256(f"{seed}\x00{pair.id}".encode()).digest()
            slot: Slot = "A" if digest[0] % 2 == 0 else "B"
            previous[pair.domain] = slot
        else:
            slot = other_slot(waiting)
            previous[pair.domain] = None
        slots.append(slot)
    return slots


def content_id(context: tuple[dict, ...], first: str, second: str) -> str:
    blob = json.dumps([list(context), first, second], ensure_ascii=False, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def pair_from_dict(row: object, where: str, domains: Collection[str] | None = None) -> Pair:
    """Validate one input row; ``where`` (e.g. ``pairs.jsonl:3``) starts every error message.
    With ``domains``, a ``domain`` outside it is an error (recipes declare theirs)."""
    if not isinstance(row, dict):
        raise RowError(where, "not_an_object", f"expected a JSON object, got {type(row).__name__}")

    def text(key: str, required: bool = True) -> str | None:
        value = row.get(key)
        if value is None and not required:
            return None
        if value is None:
            raise RowError(where, "missing_field", f"field '{key}': expected a string, got nothing")
        if not isinstance(value, str):
            raise RowError(where, "wrong_type", f"field '{key}': expected a string, got {type(value).__name__}")
        if required and not value.strip():
            raise RowError(where, "empty_answer" if key != "prompt" else "empty_prompt", f"field '{key}': empty")
        return _unicode(value, where, key)

    if ("prompt" in row) == ("context" in row):
        raise RowError(where, "missing_field", "give exactly one of 'prompt' (a string) or 'context' (messages)")
    context = ({"role": "user", "content": text("prompt")},) if "prompt" in row else _context(row["context"], where)
    rejected_context = (
        _context(row["rejected_context"], where, "rejected_context") if row.get("rejected_context") else None
    )

    labelled = "chosen" in row or "rejected" in row
    unlabelled = "response_a" in row or "response_b" in row
    if labelled == unlabelled:
        raise RowError(
            where, "missing_field", "give either 'chosen' and 'rejected' (labelled) or 'response_a' and 'response_b'"
        )
    first, second = ("chosen", "rejected") if labelled else ("response_a", "response_b")
    one, two = text(first), text(second)
    if labelled and one == two and (rejected_context or context) == context:
        raise RowError(
            where, "identical_answers", "field 'rejected': identical to 'chosen', so the label means nothing"
        )

    raw_id = row.get("id")
    if raw_id is not None and (isinstance(raw_id, bool) or not isinstance(raw_id, (str, int))):
        raise RowError(where, "wrong_type", f"field 'id': expected a string or integer, got {type(raw_id).__name__}")
    domain = text("domain", required=False)
    if domains is not None and domain is not None and domain not in domains:
        raise RowError(
            where, "unknown_domain", f"field 'domain': unknown domain {domain!r}; expected one of {', '.join(domains)}"
        )
    meta = row.get("meta", {})
    if not isinstance(meta, dict):
        raise RowError(where, "wrong_type", f"field 'meta': expected an object, got {type(meta).__name__}")
    meta = {**meta, **{k: v for k, v in row.items() if k not in _KNOWN}}
    return Pair(
        id=str(raw_id) if raw_id is not None else content_id(context, one, two),
        context=context,
        chosen=one if labelled else None,
        rejected=two if labelled else None,
        response_a=None if labelled else one,
        response_b=None if labelled else two,
        domain=domain,
        source=text("source", required=False),
        rubric=text("rubric", required=False),
        reference=text("reference", required=False),
        meta=meta,
        rejected_context=rejected_context,
    )


def _unicode(value: str, where: str, key: str) -> str:
    """Text a tokenizer can take: a lone surrogate (JSON "\\ud800") is refused here, before any model loads."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as e:
        raise RowError(
            where, "invalid_text", f"field '{key}': not valid Unicode (a lone surrogate at character {e.start + 1})"
        ) from None
    return value


def _context(value: object, where: str, field_name: str = "context") -> tuple[dict, ...]:
    if not isinstance(value, list) or not value:
        raise RowError(where, "bad_context", f"field '{field_name}': expected a non-empty list of messages")
    messages = []
    for i, message in enumerate(value):
        key = f"{field_name}[{i}]"
        if not isinstance(message, dict) or set(message) - {"role", "content"}:
            raise RowError(where, "bad_context", f"field '{key}': expected an object with 'role' and 'content'")
        if message.get("role") not in ROLES:
            raise RowError(
                where, "bad_context", f"field '{key}.role': expected one of {ROLES}, got {message.get('role')!r}"
            )
        if not isinstance(message.get("content"), str):
            raise RowError(where, "bad_context", f"field '{key}.content': expected a string")
        _unicode(message["content"], where, f"{key}.content")
        messages.append({"role": message["role"], "content": message["content"]})
    if messages[-1]["role"] != "user":
        raise RowError(where, "bad_context", f"field '{field_name}': the last message must be a user turn")
    return tuple(messages)


def _loads(text: str, where: str) -> object:
    """One JSON value; what cannot be one is a RowError naming the place (never a traceback)."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        return RowError(where, "invalid_json", f"invalid JSON: {e.msg} (column {e.colno})")
    except RecursionError:
        return RowError(where, "invalid_json", "invalid JSON: nested too deeply")
    except ValueError as e:  # e.g. an integer of more than 4,300 digits
        return RowError(where, "invalid_json", f"invalid JSON: {str(e).split(':')[0]}")


def iter_jsonl(path: Path) -> Iterator[tuple[str, object]]:
    """(``file:line``, parsed value) for each non-blank line; a line that is not UTF-8 or not JSON comes as a
    RowError value, so a caller can stop there or count it and read on."""
    try:
        handle = path.open("rb")
    except OSError as e:
        raise ReasrmDataError(f"{path}: cannot read: {e.strerror}") from None
    with handle:
        for number, raw in enumerate(handle, start=1):
            where = f"{path}:{number}"
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                yield where, RowError(where, "invalid_utf8", f"not UTF-8 text (byte {e.start + 1} of the line)")
                continue
            if line.strip():
                yield where, _loads(line, where)


DATA_SUFFIXES = (".jsonl", ".json", ".parquet")


def iter_rows(path: Path) -> Iterator[tuple[str, object]]:
    """(where, row) for each row of a ``.json`` array, a ``.parquet`` file or (any other name) JSON lines."""
    if path.suffix == ".json":
        try:
            rows = _loads(path.read_text(encoding="utf-8"), str(path))
        except UnicodeDecodeError as e:
            raise ReasrmDataError(f"{path}: not UTF-8 text (byte {e.start + 1})") from None
        except OSError as e:
            raise ReasrmDataError(f"{path}: cannot read: {e.strerror}") from None
        if isinstance(rows, RowError):
            raise rows
        if not isinstance(rows, list):
            raise ReasrmDataError(f"{path}: expected a JSON array of rows, got {type(rows).__name__}")
        for i, row in enumerate(rows):
            yield f"{path}:row {i + 1}", row
    elif path.suffix == ".parquet":
        import pyarrow.parquet as pq

        try:
            rows = pq.read_table(path).to_pylist()
        except Exception as e:  # pyarrow raises several types for a damaged file
            raise ReasrmDataError(f"{path}: unreadable parquet file: {str(e).splitlines()[0]}") from None
        for i, row in enumerate(rows):
            yield f"{path}:row {i + 1}", row
    else:
        yield from iter_jsonl(path)


def read_pairs(path: str | Path) -> list[Pair]:
    """Read and validate a file of pairs (.jsonl, .json or .parquet); ids must be unique (they key
    resumable outputs)."""
    path = Path(path)
    pairs: list[Pair] = []
    seen: dict[str, str] = {}
    for where, row in iter_rows(path):
        if isinstance(row, RowError):
            raise row
        pair = pair_from_dict(row, where)
        if pair.id in seen:
            raise ReasrmDataError(f"{where}: field 'id': {pair.id!r} already used on {seen[pair.id]}")
        seen[pair.id] = where
        pairs.append(pair)
    if not pairs:
        raise ReasrmDataError(f"{path}: no pairs in the file")
    return pairs


def pair_at(spec: str) -> Pair:
    """The pair on one line of a JSONL file, given as ``FILE:LINE`` (lines count from 1)."""
    path, sep, line = spec.rpartition(":")
    if not sep or not line.isdigit() or int(line) < 1:
        raise ReasrmDataError(f"{spec}: expected FILE:LINE, e.g. pairs.jsonl:3")
    for where, row in iter_jsonl(Path(path)):
        if where.rpartition(":")[2] == line:
            if isinstance(row, RowError):
                raise row
            return pair_from_dict(row, where)
    raise ReasrmDataError(f"{path}: no pair on line {line}")


# TRL passes prompts and completions as strings or as conversations (lists of messages).


def context_of(prompt: str | list[dict]) -> tuple[dict, ...]:
    """A TRL prompt as the pair schema's conversation."""
    if isinstance(prompt, str):
        return ({"role": "user", "content": prompt},)
    return tuple({"role": m["role"], "content": m["content"]} for m in prompt)


def completion_text(completion: str | list[dict]) -> str:
    """A TRL completion as text: a string as it is, a conversation as its assistant messages, joined."""
    if isinstance(completion, str):
        return completion
    return "".join(m["content"] for m in completion if m.get("role", "assistant") == "assistant")
