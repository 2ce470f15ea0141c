"""What every command shares: its output (one policy), the chunked resumable judging loop, and the summary.

**Output policy** (``judge``, ``eval``, ``teacher``, ``distill``, ``rl``, ``policy``, ``data build``): an
output that holds a previous run is never replaced by accident. ``resume=true`` continues it, and only
when the result-affecting settings saved beside it are unchanged; ``overwrite=true`` replaces it (a
folder only when reasrm wrote it); the two exclude each other, which ``reasrm validate`` already reports
(:func:`output_problems`, called by every schema's ``check()``). The resolved config is saved beside the
output, so the run can be reproduced and resumed. A run holds an exclusive lock on its output for as long
as the process lives (:func:`lock_output`): a second run on the same output is refused with the holder's
PID instead of interleaving its records with the first one's.

**Judging loop**: the items not yet in a resumable JSONL go to the model a chunk (a few batches) at a
time, and each record is appended and flushed as its chunk lands: a killed run loses at most one chunk,
and a resumed one redoes nothing that was written.

**Summary**: status counts, validity, the A-rate, accuracy next to the label-prior baseline, and over
pairs judged in both orders the flip rate and the share right in both. Plain accuracy hides a judge that
always answers "B"; these figures do not.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import shutil
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path

import yaml

from reasrm import processes
from reasrm.config import Problem, save_config, to_yaml
from reasrm.errors import ReasrmConfigError, ReasrmError
from reasrm.verdict import winner

log = logging.getLogger(__name__)

# ---------------------------------------------------------------------------------------------------
# The output policy
# ---------------------------------------------------------------------------------------------------


def output_problems(cfg) -> list[Problem]:
    """The output rules a config breaks (reported by ``reasrm validate``, before anything runs)."""
    problems = []
    if isinstance(getattr(cfg, "output", None), str) and not cfg.output.strip():
        problems.append(("output", "is empty: name the file or folder to write"))
    if getattr(cfg, "resume", False) and getattr(cfg, "overwrite", False):
        problems.append(("resume", "resume and overwrite exclude each other: set one of them"))
    return problems


_LOCKS: dict[Path, object] = {}  # outputs this process holds (re-entrant: a stage, then its resume)


def lock_output(output: str | Path) -> None:
    """Hold an exclusive lock on ``output`` until this process ends (``fcntl.flock`` on a hidden
    ``.NAME.lock`` beside it, which outlives an overwrite of the output). Another process holding it:
    a clear error naming its PID."""
    _check_parents(output)
    _os_errors_as_config_errors(lambda: _lock(Path(output)))


def _lock(output: Path) -> None:
    lock = output.resolve()
    lock = lock.parent / f".{lock.name}.lock"
    if lock in _LOCKS:
        return
    lock.parent.mkdir(parents=True, exist_ok=True)
    handle = lock.open("a+", encoding="utf-8")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "unknown"
        handle.close()
        raise ReasrmConfigError(
            f"{output} is in use by another reasrm run (PID {holder}; lock {lock}): wait for "
            "it to finish or choose another output"
        ) from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"{os.getpid()}\n")
    handle.flush()
    _LOCKS[lock] = handle


def _check_parents(output: str | Path) -> None:
    """Refuse a place no output can go: an empty name, a device or other special file, a path below a file,
    a folder that cannot be written to."""
    if not str(output).strip() or Path(output).name in ("", ".", ".."):
        raise ReasrmConfigError(f"output {str(output)!r}: name a file or folder to write")
    output = Path(output)
    if output.exists() and not (output.is_file() or output.is_dir()):
        raise ReasrmConfigError(f"{output}: cannot write there: it is not a regular file or folder (a device?)")
    file = next((p for p in output.absolute().parents if p.exists() and not p.is_dir()), None)
    if file is not None:
        raise ReasrmConfigError(f"{output}: cannot write there: {file} is a file, not a folder")
    nearest = next(p for p in output.absolute().parents if p.exists())
    if not os.access(nearest, os.W_OK) or nearest.resolve().parts[1:2] in (("proc",), ("sys",)):
        raise ReasrmConfigError(f"{output}: cannot write there: {nearest} is not writable")


def _os_errors_as_config_errors(step):
    """``step()``, with an OSError (a read-only or full disk, a permission) as one clean line naming it."""
    try:
        return step()
    except OSError as e:
        where = e.filename or "the output"
        raise ReasrmConfigError(f"{where}: cannot write there: {e.strerror or e}") from None


def discard_output(output: str | Path, saved: Path) -> None:
    """Remove what a run that failed before its first result created: the empty output, the config saved
    for it and its lock (a failed run leaves no files behind). The main process's job under a launcher."""
    if not processes.is_main():
        return
    output = Path(output)
    if output.is_file() and output.stat().st_size == 0:
        output.unlink()
    elif output.is_dir():
        for path in output.iterdir():
            if path.is_file() and path.stat().st_size == 0:
                path.unlink()
        if not any(p != saved for p in output.iterdir()):
            shutil.rmtree(output)
    saved.unlink(missing_ok=True)
    lock = output.resolve().parent / f".{output.resolve().name}.lock"
    if lock in _LOCKS:
        _LOCKS.pop(lock).close()
        lock.unlink(missing_ok=True)


def check_output(
    output: str | Path,
    saved: Path,
    cfg,
    result_keys: tuple[str, ...] = (),
    resume: bool = False,
    overwrite: bool = False,
) -> str:
    """What a run of ``cfg`` may do with ``output``, whose resolved config goes to ``saved`` (inside ``output``
    when it is a folder, beside it when it is a file): ``"new"`` (nothing there yet), ``"resume"`` (a previous
    run with the same ``result_keys``) or ``"replace"`` (overwriting a previous run). Anything else is
    refused with the way out. Changes nothing."""
    output = Path(output)
    _check_parents(output)
    is_file = saved.parent != output
    if resume and overwrite:
        raise ReasrmConfigError("resume and overwrite exclude each other: set one of them")
    if output.exists() and is_file != output.is_file():
        raise ReasrmConfigError(
            f"{output} is a {'folder' if is_file else 'file'}: expected a "
            f"{'file' if is_file else 'folder'} for this output"
        )
    taken = output.is_file() and output.stat().st_size > 0 if is_file else output.is_dir() and any(output.iterdir())
    if not taken:
        return "new"
    if resume:
        check_resume(saved, cfg, result_keys)
        return "resume"
    if not overwrite:
        hint = "continue it with resume=true (--resume) or " if result_keys else ""
        raise ReasrmConfigError(f"{output} holds a previous run: {hint}replace it with overwrite=true (--overwrite)")
    if not saved.is_file():  # an input, or anything else reasrm did not write, is never replaced
        what = "is not empty and" if not is_file else "holds data that"
        raise ReasrmConfigError(
            f"{output} {what} was not written by reasrm (no {saved.name} beside it): choose another output"
        )
    return "replace"


def prepare_output(
    output: str | Path,
    saved: Path,
    cfg,
    result_keys: tuple[str, ...] = (),
    resume: bool = False,
    overwrite: bool = False,
) -> Path:
    """Claim ``output`` for a run of ``cfg`` as :func:`check_output` allows: a previous run is kept (resume)
    or removed (overwrite); the resolved config is saved to ``saved`` unless resuming. Returns the Path.
    Under a launcher the main process alone claims it (the lock is the run's, not a rank's); the others
    wait for it and raise its error if it refuses."""
    return processes.on_main(
        lambda: _os_errors_as_config_errors(lambda: _claim(Path(output), saved, cfg, result_keys, resume, overwrite))
    )


def _claim(output: Path, saved: Path, cfg, result_keys: tuple[str, ...], resume: bool, overwrite: bool) -> Path:
    lock_output(output)
    state = check_output(output, saved, cfg, result_keys, resume, overwrite)
    if state == "replace" and output.is_file():
        output.unlink()
    elif state == "replace":
        shutil.rmtree(output)
    (output if saved.parent == output else output.parent).mkdir(parents=True, exist_ok=True)
    if state != "resume":
        save_config(cfg, saved)
    return output


def check_resume(saved: Path, cfg, keys: tuple[str, ...]) -> None:
    """Refuse to resume an output made with settings (``keys``) that change results."""
    if not saved.is_file():
        raise ReasrmConfigError(
            f"cannot resume {cfg.output}: {saved} is missing, so its settings are unknown; "
            "use overwrite=true to start again"
        )
    before = yaml.safe_load(saved.read_text(encoding="utf-8")) or {}
    now = yaml.safe_load(to_yaml(cfg))
    for key in keys:
        if before.get(key) != now.get(key):
            raise ReasrmConfigError(
                f"cannot resume {cfg.output}: '{key}' was {before.get(key)!r} (see {saved}), now {now.get(key)!r}; "
                "use the same settings or overwrite=true"
            )


class ResumableJsonl:
    """One JSON object per line, keyed by ``key``; each line is flushed as soon as it is written.

    ``resume=True`` keeps the lines already there (a last line cut off mid-write is removed) and exposes
    their keys in ``done``; otherwise the file starts empty. Whether an existing output may be continued
    or replaced is :func:`prepare_output`'s decision, made before. Under a launcher only the main process
    touches the file: every rank gets its records (read once and broadcast), and every rank calls
    :meth:`write` with the same records, which the main process alone appends.
    """

    def __init__(self, path: str | Path, key: str = "id", resume: bool = False):
        self.path = Path(path)
        self.key = key
        self.records: list[dict] = processes.on_main(lambda: self._open(resume))
        self.done = {r[key] for r in self.records}
        self._handle = self.path.open("a", encoding="utf-8") if processes.is_main() else None

    def _open(self, resume: bool) -> list[dict]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if resume and self.path.is_file():
            return read_jsonl_prefix(self.path, self.key)
        self.path.write_text("")
        return []

    def write(self, record: dict) -> None:
        if self._handle is not None:
            self._handle.write(json.dumps(record, ensure_ascii=False) + "\n")
            self._handle.flush()
        self.records.append(record)
        self.done.add(record[self.key])

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()

    def __enter__(self) -> ResumableJsonl:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def read_jsonl_prefix(path: Path, key: str) -> list[dict]:
    """The complete lines of a JSONL file a killed run was appending to: a last line cut off mid-write is
    removed from the file; any other bad line is an error naming it."""
    data = path.read_bytes()
    end = data.rfind(b"\n") + 1
    if end < len(data):  # the previous run stopped mid-line: drop the partial line
        with path.open("r+b") as handle:
            handle.truncate(end)
        log.warning("%s: dropped a last line cut off mid-write (%d bytes)", path, len(data) - end)
    records = []
    for number, line in enumerate(data[:end].decode("utf-8", errors="replace").splitlines(), start=1):
        try:
            record = json.loads(line)
        except json.JSONDecodeError as e:
            raise ReasrmError(f"{path}:{number}: cannot resume: invalid JSON ({e.msg})") from None
        if not isinstance(record, dict) or key not in record:
            raise ReasrmError(f"{path}:{number}: cannot resume: the line has no {key!r}")
        records.append(record)
    return records


# ---------------------------------------------------------------------------------------------------
# Progress
# ---------------------------------------------------------------------------------------------------

_QUIET = False
LOG_EVERY = 30.0  # seconds between progress lines in a non-interactive log


def set_quiet(quiet: bool) -> None:
    """``--quiet``: no progress bars or progress lines."""
    global _QUIET
    _QUIET = quiet


class Progress:
    """Progress of long work (calls done / total, rate): a tqdm bar on a terminal, a log line every
    :data:`LOG_EVERY` seconds and at the end otherwise; nothing under ``--quiet`` or on the other ranks."""

    def __init__(self, total: int | None, desc: str, unit: str = "call"):
        self.total, self.desc, self.unit, self.done = total, desc, unit, 0  # total None: not known ahead
        self._show = not _QUIET and processes.is_main() and total != 0
        self._bar = None
        if self._show and sys.stderr.isatty():
            from tqdm.auto import tqdm

            self._bar = tqdm(total=total, desc=desc, unit=unit)
        self._started = self._logged = time.monotonic()
        self._logged_done = 0

    def update(self, n: int = 1) -> None:
        n = n if self.total is None else min(n, self.total - self.done)
        self.done += n
        if self._bar is not None:
            self._bar.update(n)
        elif self._show and time.monotonic() - self._logged >= LOG_EVERY:
            self._line()

    def set(self, done: int) -> None:
        """Move to ``done`` (the count gathered from every rank)."""
        self.update(done - self.done)

    def _line(self) -> None:
        self._logged, self._logged_done = time.monotonic(), self.done
        rate = self.done / max(self._logged - self._started, 1e-9)
        of = "" if self.total is None else f"/{self.total}"
        log.info("%s: %d%s %ss (%.2f %s/s)", self.desc, self.done, of, self.unit, rate, self.unit)

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc) -> None:
        if self._bar is not None:
            self._bar.close()
        elif self._show and exc[0] is None and self.done != self._logged_done and self._logged != self._started:
            self._line()  # the last count, after periodic lines


# ---------------------------------------------------------------------------------------------------
# The judging loop
# ---------------------------------------------------------------------------------------------------

BATCHES_PER_CHUNK = 4  # room to sort a chunk by length into batches, while lines still land often


Step = Callable[[list, Callable[[int], None]], Iterable[dict]]  # (items, on_calls) -> records


def judge_in_chunks(
    pending: list, step: Step, out: ResumableJsonl, batch_size: int, calls_per_item: int = 1, desc: str = "judging"
) -> None:
    """Send ``pending`` items (those not in ``out`` yet) to ``step`` a chunk at a time, appending every
    record it returns to ``out`` as the chunk lands. ``step(items, on_calls)`` reports finished judge
    calls to ``on_calls(n)`` (the progress bar counts calls). Under a launcher every rank calls this with
    the same items: each judges its share of every chunk, and the records are gathered in the items'
    order before they are written (by the main process), so the file reads as one process would write it."""
    world = processes.world_size()
    chunk = batch_size * BATCHES_PER_CHUNK * world
    with Progress(len(pending) * calls_per_item, desc) as bar:
        for start in range(0, len(pending), chunk):
            part = pending[start : start + chunk]
            mine = list(step(processes.share(part), lambda n: bar.update(n * world)))
            for record in processes.gather(mine):
                out.write(record)
            bar.set((start + len(part)) * calls_per_item)


# ---------------------------------------------------------------------------------------------------
# The summary
# ---------------------------------------------------------------------------------------------------


def summarize(pairs: list[list[dict]]) -> dict:
    """Headline figures over judge calls grouped by pair. Each call is a dict with ``order`` ("AB" or
    "BA": the pair's first slot order or the other), ``chosen_slot`` (None when unlabelled) and
    ``verdict`` (``choice``, ``status``).

    - ``statuses``: calls per status; ``valid``: share of calls with a verdict;
    - ``a_rate``: share of valid verdicts that are "A";
    - ``accuracy``: share of labelled calls whose verdict names the chosen response (invalid = wrong), next
      to ``label_prior``, what always answering the commoner slot would score (``chosen_in_a`` is that
      slot's share);
    - over pairs judged in both orders with two valid verdicts: ``flip_rate``, the share whose verdict
      followed the slot (the same letter twice, so a different response each time); over pairs judged in
      both orders: ``both_right``, the share right in both, next to ``both_right_chance``, what a judge
      blind to the content would score with this run's verdict rates (each call "A" with the share of
      calls answering "A", "B" likewise, independently): share_A x share_B. A constant judge scores 0 and
      a fair coin 0.25, so a "gain" in both-right that stays under the chance figure is position drift,
      not content.
    """
    calls = [c for group in pairs for c in group]
    statuses = Counter(c["verdict"]["status"] for c in calls)
    valid = [c for c in calls if c["verdict"]["choice"] is not None]
    labelled = [c for c in calls if c["chosen_slot"] is not None]
    a_count = sum(c["verdict"]["choice"] == "A" for c in valid)
    out: dict = {
        "pairs": len(pairs),
        "calls": len(calls),
        "statuses": dict(statuses.most_common()),
        "valid": len(valid) / len(calls) if calls else None,
        "a_rate": a_count / len(valid) if valid else None,
    }
    if labelled:
        out["accuracy"] = sum(_right(c) for c in labelled) / len(labelled)
        out["chosen_in_a"] = sum(c["chosen_slot"] == "A" for c in labelled) / len(labelled)
        out["label_prior"] = max(out["chosen_in_a"], 1 - out["chosen_in_a"])
    both = [g for g in pairs if sorted(c["order"] for c in g) == ["AB", "BA"]]
    both_valid = [g for g in both if all(c["verdict"]["choice"] is not None for c in g)]
    if both_valid:
        out["flip_rate"] = sum(g[0]["verdict"]["choice"] == g[1]["verdict"]["choice"] for g in both_valid) / len(
            both_valid
        )
    if both and all(c["chosen_slot"] is not None for g in both for c in g):
        out["both_right"] = sum(right_in_both(g) for g in both) / len(both)
        choices = [c["verdict"]["choice"] for g in both for c in g]
        out["both_right_chance"] = choices.count("A") * choices.count("B") / len(choices) ** 2
    return out


def _right(call: dict) -> bool:
    return winner(call["verdict"]["choice"], call["chosen_slot"]) == "chosen"


def right_in_both(group: list[dict]) -> bool:
    """Whether every call of a pair (its two slot orders) named the chosen response."""
    return all(_right(c) for c in group)


def paired_gain(before: str, after: str, rounds: int = 2000, seed: int = 0) -> tuple[float, float, float]:
    """The mean gain in pairs right in both orders between two validations of the same pairs (their ``right``
    strings, one character per pair), with a paired-bootstrap 95% interval: (gain, low, high)."""
    import random

    diffs = [int(b) - int(a) for a, b in zip(before, after, strict=True)]
    rng = random.Random(seed)
    means = sorted(sum(rng.choices(diffs, k=len(diffs))) / len(diffs) for _ in range(rounds))
    return sum(diffs) / len(diffs), means[int(0.025 * rounds)], means[int(0.975 * rounds) - 1]


def summary_lines(stats: dict) -> list[str]:
    """The summary as the lines a command prints."""
    lines = [f"  status      {', '.join(f'{k} {v}' for k, v in stats['statuses'].items())}"]
    if stats["a_rate"] is not None:
        lines.append(f"  A-rate      {stats['a_rate']:.3f} of valid verdicts")
    if "accuracy" in stats:
        lines.append(
            f"  accuracy    {stats['accuracy']:.3f} per call (invalid counts as wrong; label-prior baseline "
            f"{stats['label_prior']:.3f})"
        )
    if "flip_rate" in stats:
        lines.append(f"  flip rate   {stats['flip_rate']:.3f} of pairs judged validly in both orders")
    if "both_right" in stats:
        lines.append(
            f"  both right  {stats['both_right']:.3f} of pairs judged in both orders (a judge blind to the "
            f"content, at these verdict rates: {stats['both_right_chance']:.3f})"
        )
    return lines
