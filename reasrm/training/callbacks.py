"""Trainer callbacks of the training stages (imported by a run only: transformers takes seconds to load)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

from transformers import TrainerCallback

from reasrm import processes
from reasrm.runs import read_jsonl_prefix
from reasrm.training.validation import BATCH, validate

log = logging.getLogger(__name__)


class HeldOutValidation(TrainerCallback):
    """Validates the model on held-out pairs (``reasrm.training.validation``) at the start, every
    ``eval_steps`` optimizer steps (0: never in between) and at the end; each result is one line of
    ``validation.jsonl`` (with its ``step``) and is logged to the trainer's loggers as
    ``validation/<figure>``. A resumed run first drops the lines of steps after its checkpoint (and a last
    line cut off mid-write), so no step is missing or doubled.

    Every rank validates (each its share of the pairs, on the whole weights: TRL's
    ``unwrap_model_for_generation`` gathers them under ZeRO-3); the main process writes the line."""

    def __init__(
        self,
        path: Path,
        jobs,
        prompt,
        tokenizer,
        max_new_tokens: int,
        eval_steps: int,
        batch_size: int = BATCH,
        start: dict | None = None,
    ):
        self.path, self.jobs, self.prompt, self.tokenizer = Path(path), jobs, prompt, tokenizer
        self.max_new_tokens, self.eval_steps, self.batch_size = max_new_tokens, eval_steps, batch_size
        self.trainer = None  # set by the stage once the trainer exists: its model, accelerator and log()
        self.records: list[dict] = []
        self._logging = False
        self.start = start  # the starting checkpoint's figures, measured by its own stage on the same pairs

    def on_train_begin(self, args, state, control, **kwargs):
        self.records = processes.on_main(lambda: self._keep_until(state.global_step))
        self._validate(state)

    def _keep_until(self, step: int) -> list[dict]:
        records = read_jsonl_prefix(self.path, "step") if self.path.exists() else []
        records = [r for r in records if r["step"] <= step]
        self.path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
        return records

    def on_log(self, args, state, control, **kwargs):
        # After the step's own log line (TRL's reward figures go there) and before its checkpoint is saved.
        if not self._logging and self.eval_steps and state.global_step % self.eval_steps == 0:
            self._validate(state)

    def on_train_end(self, args, state, control, **kwargs):
        self._validate(state)

    def _validate(self, state) -> None:
        from trl.models import unwrap_model_for_generation

        if any(r["step"] == state.global_step for r in self.records):
            return
        if state.global_step == 0 and self.start is not None:
            stats = self.start
        else:
            trainer = self.trainer
            with unwrap_model_for_generation(trainer.model_wrapped, trainer.accelerator) as model:
                stats = validate(model, self.tokenizer, self.prompt, self.jobs, self.max_new_tokens, self.batch_size)
        record = {"step": state.global_step, **{k: v for k, v in stats.items() if k != "step"}}
        self.records.append(record)
        if processes.is_main():
            with self.path.open("a", encoding="utf-8") as handle:
                handle.write(json.dumps(record) + "\n")
        log.info(
            "validation at step %d: valid %.3f, right in both orders %.3f (blind to the content: %s), "
            "A-rate %s, flip rate %s",
            state.global_step,
            stats["valid"],
            stats.get("both_right", 0.0),
            _fmt(stats.get("both_right_chance")),
            _fmt(stats["a_rate"]),
            _fmt(stats.get("flip_rate")),
        )
        figures = {k: v for k, v in stats.items() if isinstance(v, float | int) and k not in ("pairs", "calls")}
        self._logging = True
        try:
            self.trainer.log({f"validation/{k}": v for k, v in figures.items()})
        finally:
            self._logging = False


def _fmt(value) -> str:
    return "-" if value is None else f"{value:.3f}"
