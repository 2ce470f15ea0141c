"""What every backend takes and gives: generation settings in, one :class:`Generation` per conversation out."""

from __future__ import annotations

from dataclasses import dataclass

from reasrm.config import Problem, option


@dataclass
class GenerationConfig:
    """How the judge generates. Greedy (temperature 0) by default, so verdicts are reproducible."""

    max_new_tokens: int = option("Most tokens the judge may write per pair.", 512)
    temperature: float = option("0 means greedy decoding; above 0 samples.", 0.0)
    top_p: float = option("Nucleus sampling mass (used only when temperature > 0).", 1.0)
    batch_size: int = option("Judge calls generated together (hf backend).", 16)
    seed: int = option("Seed for sampling (temperature > 0).", 0)
    max_prompt_tokens: int | None = option(
        "Longer judge prompts are not generated: status too_long (null = the model's context minus "
        "max_new_tokens; hf backend).",
        None,
    )

    def check(self, prefix: str = "") -> list[Problem]:
        problems = []
        if self.max_new_tokens < 1:
            problems.append((f"{prefix}max_new_tokens", f"must be >= 1, got {self.max_new_tokens}"))
        if self.temperature < 0:
            problems.append((f"{prefix}temperature", f"must be >= 0 (0 = greedy), got {self.temperature}"))
        if not 0 < self.top_p <= 1:
            problems.append((f"{prefix}top_p", f"must be in (0, 1], got {self.top_p}"))
        if self.batch_size < 1:
            problems.append((f"{prefix}batch_size", f"must be >= 1, got {self.batch_size}"))
        if self.max_prompt_tokens is not None and self.max_prompt_tokens < 1:
            problems.append((f"{prefix}max_prompt_tokens", f"must be >= 1, got {self.max_prompt_tokens}"))
        return problems


@dataclass(frozen=True)
class Generation:
    text: str
    prompt_tokens: int
    completion_tokens: int
    seconds: float  # this call's share of its batch's wall time
    error: str | None = None  # set when the backend gave up on this call (the judge reports it as failed)
    too_long: bool = False  # the prompt was over the limit and was not generated (status too_long)
    retries: int = 0  # extra attempts this call took (openai backend: rate limits, server errors, timeouts)
    cached: bool = False  # answered from a reply cache (reasrm.backends.cache), not generated now
    completion_ids: tuple[int, ...] | None = None  # the generated tokens, end-of-turn included (hf backend)


# Every backend's ``generate(conversations, settings, on_batch=None, on_reply=None)``: ``on_batch(n)`` after
# each n finished calls (progress bars), ``on_reply(i, generation)`` as the reply to ``conversations[i]``
# arrives (the reply cache stores it then).
