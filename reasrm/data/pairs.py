"""The pair schema: one definition of a preference pair (labelled) or a pair to judge (unlabelled).

A row gives the conversation as ``prompt`` (a string: one user turn) or ``context`` (``{role, content}``
messages ending with a user turn), and either ``chosen``/``rejected`` (labelled) or
``response_a``/``response_b`` (unlabelled, judged as given). Optional: ``id`` (else a hash of the
content), ``domain``, ``rubric``, ``reference``, ``meta``. Other keys are kept in ``meta``.

Which slot the chosen response is shown in is not part of the pair: :func:`chosen_slot` decides it from
the seed and the pair id, so it is reproducible and independent of file order.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from reasrm.errors import ReasrmDataError

Slot = Literal["A", "B"]
ROLES = ("system", "user", "assistant")
_KNOWN = {
    "id",
    "prompt",
    "context",
    "chosen",
    "rejected",
    "response_a",
    "response_b",
    "domain",
    "rubric",
    "reference",
    "meta",
}


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
    rubric: str | None = None
    reference: str | None = None
    meta: dict = field(default_factory=dict)

    @property
    def labelled(self) -> bool:
        return self.chosen is not None

    def slots(self, seed: int, swap: bool = False) -> tuple[str, str, Slot | None]:
        """(response in slot A, response in slot B, slot of the chosen response or None if unlabelled)."""
        if self.labelled:
            slot = chosen_slot(self.id, seed)
            if swap:
                slot = "B" if slot == "A" else "A"
            a, b = (self.chosen, self.rejected) if slot == "A" else (self.rejected, self.chosen)
            return a, b, slot
        a, b = (self.response_b, self.response_a) if swap else (self.response_a, self.response_b)
        return a, b, None


def chosen_slot(pair_id: str, seed: int) -> Slot:
    """The slot the chosen response takes: a seeded hash of the pair id (so ~50/50, reproducible)."""
    digest = hashlib.sha256(f"{seed}\x00{pair_id}".encode()).digest()
    return "A" if digest[0] % 2 == 0 else "B"


def content_id(context: tuple[dict, ...], first: str, second: str) -> str:
    blob = json.dumps([list(context), first, second], ensure_ascii=False, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def pair_from_dict(row: object, where: str) -> Pair:
    """Validate one input row. ``where`` (e.g. ``pairs.jsonl:3``) starts every error message."""
    if not isinstance(row, dict):
        raise ReasrmDataError(f"{where}: expected a JSON object, got {type(row).__name__}")

    def text(key: str, required: bool = True) -> str | None:
        value = row.get(key)
        if value is None and not required:
            return None
        if not isinstance(value, str):
            got = "nothing" if value is None else type(value).__name__
            raise ReasrmDataError(f"{where}: field '{key}': expected a string, got {got}")
        if required and not value.strip():
            raise ReasrmDataError(f"{where}: field '{key}': empty")
        return value

    if ("prompt" in row) == ("context" in row):
        raise ReasrmDataError(f"{where}: give exactly one of 'prompt' (a string) or 'context' (messages)")
    context = ({"role": "user", "content": text("prompt")},) if "prompt" in row else _context(row["context"], where)

    labelled = "chosen" in row or "rejected" in row
    unlabelled = "response_a" in row or "response_b" in row
    if labelled == unlabelled:
        raise ReasrmDataError(
            f"{where}: give either 'chosen' and 'rejected' (labelled) or 'response_a' and 'response_b'"
        )
    first, second = ("chosen", "rejected") if labelled else ("response_a", "response_b")
    one, two = text(first), text(second)
    if labelled and one == two:
        raise ReasrmDataError(f"{where}: field 'rejected': identical to 'chosen', so the label means nothing")

    raw_id = row.get("id")
    if raw_id is not None and not isinstance(raw_id, (str, int)):
        raise ReasrmDataError(f"{where}: field 'id': expected a string or integer, got {type(raw_id).__name__}")
    meta = row.get("meta", {})
    if not isinstance(meta, dict):
        raise ReasrmDataError(f"{where}: field 'meta': expected an object, got {type(meta).__name__}")
    meta = {**meta, **{k: v for k, v in row.items() if k not in _KNOWN}}
    return Pair(
        id=str(raw_id) if raw_id is not None else content_id(context, one, two),
        context=context,
        chosen=one if labelled else None,
        rejected=two if labelled else None,
        response_a=None if labelled else one,
        response_b=None if labelled else two,
        domain=text("domain", required=False),
        rubric=text("rubric", required=False),
        reference=text("reference", required=False),
        meta=meta,
    )


def _context(value: object, where: str) -> tuple[dict, ...]:
    if not isinstance(value, list) or not value:
        raise ReasrmDataError(f"{where}: field 'context': expected a non-empty list of messages")
    messages = []
    for i, message in enumerate(value):
        key = f"context[{i}]"
        if not isinstance(message, dict) or set(message) - {"role", "content"}:
            raise ReasrmDataError(f"{where}: field '{key}': expected an object with 'role' and 'content'")
        if message.get("role") not in ROLES:
            raise ReasrmDataError(f"{where}: field '{key}.role': expected one of {ROLES}, got {message.get('role')!r}")
        if not isinstance(message.get("content"), str):
            raise ReasrmDataError(f"{where}: field '{key}.content': expected a string")
        messages.append({"role": message["role"], "content": message["content"]})
    if messages[-1]["role"] != "user":
        raise ReasrmDataError(f"{where}: field 'context': the last message must be a user turn")
    return tuple(messages)


def iter_jsonl(path: Path) -> Iterator[tuple[int, object]]:
    """(line number, parsed value) for each non-blank line; invalid JSON is an error naming the line."""
    try:
        handle = path.open(encoding="utf-8")
    except OSError as e:
        raise ReasrmDataError(f"{path}: cannot read: {e.strerror}") from None
    with handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                yield number, json.loads(line)
            except json.JSONDecodeError as e:
                raise ReasrmDataError(f"{path}:{number}: invalid JSON: {e.msg} (column {e.colno})") from None


def read_pairs(path: str | Path) -> list[Pair]:
    """Read and validate a JSONL file of pairs; ids must be unique (they key resumable outputs)."""
    path = Path(path)
    pairs: list[Pair] = []
    seen: dict[str, int] = {}
    for number, row in iter_jsonl(path):
        pair = pair_from_dict(row, f"{path}:{number}")
        if pair.id in seen:
            raise ReasrmDataError(f"{path}:{number}: field 'id': {pair.id!r} already used on line {seen[pair.id]}")
        seen[pair.id] = number
        pairs.append(pair)
    if not pairs:
        raise ReasrmDataError(f"{path}: no pairs in the file")
    return pairs
