"""A reply cache in front of any backend: every reply is stored the moment it arrives.

The teacher's replies are the expensive part of stage one (a paid API or a GPU fleet, hours for 72k
pairs). :class:`CachedBackend` keeps each one in a sqlite file, one committed row per reply, keyed by a
hash of (backend, model, the rendered conversation, the sampling settings). A run killed at any moment
(SIGKILL included: a sqlite commit is atomic) and started again sends only the requests that were not
answered; a rerun over a complete cache sends none. Failed calls (the backend gave up) and prompts over
the length limit are not stored, so they are asked again.

Point several runs at one file (``teacher.cache``) to reuse a teacher's replies across students.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from reasrm.backends.generation import Generation, GenerationConfig

# The settings that change a reply (batch_size does not).
SAMPLING_KEYS = ("max_new_tokens", "temperature", "top_p", "seed", "max_prompt_tokens")


@dataclass
class CacheStats:
    requests: int = 0  # calls sent to the backend
    hits: int = 0  # calls answered from the cache
    retries: int = 0  # extra attempts the backend made (rate limits, server errors, timeouts)
    failures: int = 0  # calls the backend gave up on


class CachedBackend:
    def __init__(self, backend, path: str | Path, backend_name: str, model: str | None):
        self.backend = backend
        self.path = Path(path)
        self.identity = {"backend": backend_name, "model": model}
        self.stats = CacheStats()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS replies (key TEXT PRIMARY KEY, text TEXT NOT NULL, "
            "prompt_tokens INTEGER NOT NULL, completion_tokens INTEGER NOT NULL)"
        )
        self._db.commit()

    def key(self, conversation: list[dict], settings: GenerationConfig) -> str:
        sampling = {k: getattr(settings, k) for k in SAMPLING_KEYS}
        if settings.temperature == 0:
            sampling.pop("seed")  # greedy: the seed changes nothing
        blob = json.dumps([self.identity, conversation, sampling], sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(blob.encode("utf-8")).hexdigest()

    def generate(
        self,
        conversations: Sequence[list[dict]],
        settings: GenerationConfig,
        on_batch: Callable[[int], None] | None = None,
    ) -> list[Generation]:
        keys = [self.key(c, settings) for c in conversations]
        results: list[Generation | None] = [self._get(k) for k in keys]
        missing = [i for i, r in enumerate(results) if r is None]
        self.stats.hits += len(keys) - len(missing)
        if on_batch is not None and len(keys) > len(missing):
            on_batch(len(keys) - len(missing))
        if not missing:
            return results

        def store(index: int, generation: Generation) -> None:
            self.stats.requests += 1
            self.stats.retries += generation.retries
            if generation.error is not None:
                self.stats.failures += 1
            elif not generation.too_long:
                self._put(keys[missing[index]], generation)

        replies = self.backend.generate([conversations[i] for i in missing], settings, on_batch, on_reply=store)
        for i, generation in zip(missing, replies, strict=True):
            results[i] = generation
        return results

    def _get(self, key: str) -> Generation | None:
        row = self._db.execute(
            "SELECT text, prompt_tokens, completion_tokens FROM replies WHERE key = ?", (key,)
        ).fetchone()
        return None if row is None else Generation(row[0], row[1], row[2], 0.0, cached=True)

    def _put(self, key: str, generation: Generation) -> None:
        self._db.execute(
            "INSERT OR REPLACE INTO replies VALUES (?, ?, ?, ?)",
            (key, generation.text, generation.prompt_tokens, generation.completion_tokens),
        )
        self._db.commit()

    def close(self) -> None:
        self._db.close()
