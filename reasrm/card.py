"""The judge card: ``reasrm_judge.json`` saved with every checkpoint, read by ``Judge.from_pretrained``.

It records how the checkpoint must be prompted and read (prompt format, verdict grammar version, rubric
pack) and where it came from (base model, data recipe, stage config digest). Released checkpoints
without a card (e.g. RM-R1's) need the prompt format named by the user.

:func:`judge_prompt` is the one place a checkpoint's card becomes the way it is prompted: the format the
user names, else the card's, else (the embedded default) ``rm-r1-instruct``; the card's pack as the
default pack; a forced pack on top.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from dataclasses import dataclass
from pathlib import Path

from reasrm.errors import ReasrmConfigError, ReasrmError
from reasrm.formats import available_formats
from reasrm.prompts import JudgePrompt
from reasrm.verdict import GRAMMAR_VERSION

CARD_FILE = "reasrm_judge.json"
EMBEDDED_FORMAT = "rm-r1-instruct"  # what the embedded default is prompted with when nothing else is named
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
    lora: dict | None = None  # LoRA settings when trained with adapters (r, alpha, target_modules, merged)
    launch: dict | None = None  # processes, sharding strategy and global batch of the run that trained it

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


def read_card(name_or_path: str | None) -> JudgeCard | None:
    """The judge card of a checkpoint (a local folder, a GGUF file's folder, or a hub repo), if it has one."""
    if name_or_path is None:
        return None
    path = Path(name_or_path).expanduser()
    folder = path.parent if path.suffix == ".gguf" else path
    if folder.is_dir():
        return JudgeCard.load(folder)
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import HfHubHTTPError

    try:  # a hub repo written by reasrm carries its card; offline or absent means "no card"
        return JudgeCard.load(Path(hf_hub_download(name_or_path, CARD_FILE)).parent)
    except (OSError, ValueError, HfHubHTTPError):
        return None


def judge_prompt(
    name_or_path: str | None, card: JudgeCard | None, prompt_format: str | None = None, rubric: str | None = None
) -> JudgePrompt:
    """How the checkpoint ``name_or_path`` (None: the embedded default) with ``card`` is prompted: the
    format named here, else the card's, else the embedded default's; the card's pack as the default
    pack; ``rubric`` forced on every pair."""
    if prompt_format is None and card is not None:
        prompt_format = card.prompt_format
    if prompt_format is None and name_or_path is None:
        prompt_format = EMBEDDED_FORMAT
    if prompt_format is None:
        raise ReasrmConfigError(
            f"{name_or_path} has no judge card ({CARD_FILE}), so its prompt format is unknown: "
            f"name it with --prompt-format / prompt_format= (one of {', '.join(available_formats())})"
        )
    return JudgePrompt.create(prompt_format, card.rubric_pack if card else None, rubric)


def check_pack_versions(used: dict[str, int], card: JudgeCard | None) -> None:
    """Warn (once per pack) when a pack's version differs from the one the checkpoint was trained with."""
    trained = (card.rubric_packs or {}) if card is not None else {}
    for pack, version in used.items():
        if pack in trained and trained[pack] != version and (pack, version) not in _warned:
            _warned.add((pack, version))
            log.warning(
                "rubric pack %s is at version %d; this judge was trained with version %d", pack, version, trained[pack]
            )


_warned: set[tuple[str, int]] = set()
