"""Append-only JSONL outputs that an interrupted run can resume without redoing or duplicating lines."""

from __future__ import annotations

import json
from pathlib import Path

from reasrm.errors import ReasrmError


class ResumableJsonl:
    """One JSON object per line, keyed by ``key``; each line is flushed as soon as it is written.

    ``resume=True`` keeps the lines already there (a last line cut off mid-write is removed) and exposes
    their keys in ``done``; ``overwrite=True`` starts afresh; otherwise an existing non-empty file is an
    error, so no run silently destroys another's output.
    """

    def __init__(self, path: str | Path, key: str = "id", resume: bool = False, overwrite: bool = False):
        self.path = Path(path)
        self.key = key
        self.records: list[dict] = []
        exists = self.path.is_file() and self.path.stat().st_size > 0
        if exists and not (resume or overwrite):
            raise ReasrmError(f"{self.path} exists: pass --resume to continue it or --overwrite to replace it")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if exists and resume:
            self.records = self._read_complete_lines()
        elif exists:
            self.path.write_text("")
        self.done = {r[key] for r in self.records}
        self._handle = self.path.open("a", encoding="utf-8")

    def _read_complete_lines(self) -> list[dict]:
        data = self.path.read_bytes()
        end = data.rfind(b"\n") + 1
        if end < len(data):  # the previous run stopped mid-line: drop the partial line
            with self.path.open("r+b") as handle:
                handle.truncate(end)
        records = []
        for number, line in enumerate(data[:end].decode("utf-8").splitlines(), start=1):
            try:
                record = json.loads(line)
            except json.JSONDecodeError as e:
                raise ReasrmError(f"{self.path}:{number}: cannot resume: invalid JSON ({e.msg})") from None
            if not isinstance(record, dict) or self.key not in record:
                raise ReasrmError(f"{self.path}:{number}: cannot resume: the line has no {self.key!r}")
            records.append(record)
        return records

    def write(self, record: dict) -> None:
        self._handle.write(json.dumps(record, ensure_ascii=False) + "\n")
        self._handle.flush()
        self.records.append(record)
        self.done.add(record[self.key])

    def close(self) -> None:
        self._handle.close()

    def __enter__(self) -> ResumableJsonl:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
