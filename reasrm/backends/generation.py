"""What every backend takes and gives: generation settings in, one :class:`Generation` per conversation out."""

from __future__ import annotations

from dataclasses import dataclass

from reasrm.config import Problem, option

MAX_SEED = 2**63 - 1  # torch's generators take a 64-bit seed
MIN_TEMPERATURE, MAX_TEMPERATURE = 1e-3, 10.0  # below, logits / temperature overflow: greedy is 0


@dataclass
class GenerationConfig:
    """How the judge generates. Greedy (temperature 0) by default, so verdicts are reproducible."""

    max_new_tokens: int = option("Most tokens the judge may write per pair.", 512, ge=1)
    temperature: float = option("0 means greedy decoding; above 0 samples.", 0.0, ge=0, le=MAX_TEMPERATURE)
    top_p: float = option("Nucleus sampling mass (used only when temperature > 0).", 1.0, gt=0, le=1)
    batch_size: int = option("Judge calls generated together (hf backend).", 16, ge=1)
    seed: int = option("Seed for sampling (temperature > 0).", 0, ge=0, le=MAX_SEED)
    max_prompt_tokens: int | None = option(
        "Longer judge prompts are not generated: status too_long (null = the model's context minus "
        "max_new_tokens; hf backend).",
        None,
        ge=1,
    )

    def check(self, prefix: str = "") -> list[Problem]:
        if 0 < self.temperature < MIN_TEMPERATURE:
            return [(f"{prefix}temperature", f"must be 0 (greedy) or >= {MIN_TEMPERATURE}, got {self.temperature}")]
        return []


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


# Every backend's ``generate(conversations, settings, on_batch=None, on_reply=None, keep=None)``:
# ``on_batch(n)`` after each n finished calls (progress bars), ``on_reply(i, generation)`` as the reply to
# ``conversations[i]`` arrives (the reply cache stores it then), ``keep(i)``: whether ``conversations[i]`` is
# still wanted (the hf backend drops a row that is not at its next decode step; the others finish it).
