"""The judge card: ``reasrm_judge.json`` saved with every checkpoint, read by ``Judge.from_pretrained``.

It records how the checkpoint must be prompted and read (prompt format, verdict grammar version, rubric
pack) and where it came from (base model, data recipe, stage config digest). Released checkpoints
without a card (e.g. RM-R1's) need the prompt format named by the user.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from dataclasses import dataclass
from pathlib import Path

from reasrm.errors import ReasrmError
from reasrm.verdict import GRAMMAR_VERSION

CARD_FILE = "reasrm_judge.json"
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class JudgeCard:
    prompt_format: str
    grammar_version: str = GRAMMAR_VERSION
    rubric_pack: str | None = None
    rubric_version: int | None = None
    rubric_packs: dict[str, int] | None = None  # every pack the training pairs were rendered with: id -> version
    base_model: str | None = None
    data_recipe: str | None = None
    config_digest: str | None = None

    def save(self, folder: str | Path) -> Path:
        path = Path(folder) / CARD_FILE
        path.write_text(json.dumps(dataclasses.asdict(self), indent=2) + "\n", encoding="utf-8")
        return path

    @classmethod
    def load(cls, folder: str | Path) -> JudgeCard | None:
        """The card in ``folder``, or None when there is none."""
        path = Path(folder) / CARD_FILE
        if not path.is_file():
            return None
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as e:
            raise ReasrmError(f"{path}: unreadable judge card: {e}") from None
        known = {f.name for f in dataclasses.fields(cls)}
        if not isinstance(data, dict) or "prompt_format" not in data or set(data) - known:
            raise ReasrmError(f"{path}: a judge card needs 'prompt_format' and only the keys {sorted(known)}")
        card = cls(**data)
        if card.grammar_version != GRAMMAR_VERSION:
            log.warning(
                "%s was trained for verdict grammar %s; this reasrm parses grammar %s",
                path,
                card.grammar_version,
                GRAMMAR_VERSION,
            )
        return card
