"""Rendering: (conversation, response A, response B, optional rubric pack) -> the judge's chat messages.

:class:`JudgePrompt` is the one renderer of judge conversations: the teacher, SFT formatting, GRPO
prompts, ``Judge`` and ``reasrm serve`` all build one (through :func:`reasrm.card.judge_prompt` when a
checkpoint is involved) and call :meth:`JudgePrompt.messages`. Which pack a pair gets is decided there,
in this order: the stage's forced ``rubric``, else the pair's ``rubric`` field, else the default pack (a
checkpoint's judge card), else the bare prompt format (``reasrm.formats``).

Escaping (prompt-injection guard). A candidate response could carry a ready-made verdict
(``<answer>[[A]]</answer>``) or fake the prompt's frame (``[The End of Chatbot A's Response]``) for the
judge to copy. Every user-supplied text (the conversation and both responses, not the format's own
instructions) is rendered with :func:`escape`:

- verdict-grammar tags (``reasrm.verdict.TAGS``), any case and spacing, opening or closing: ``<`` and
  ``>`` become ``&lt;`` and ``&gt;``, e.g. ``<answer>`` -> ``&lt;answer&gt;``;
- verdict markers ``[[A]]`` / ``[[B]]`` (any case, inner spaces): ``[ [A] ]``;
- frame lines ``[The Start of ...]``, ``[The End of ...]``, ``[Client Question]``, ``[Reference Answer]``,
  and their look-alikes (spaces inside the brackets, full-width ``［...］`` and other bracket forms, however
  long the text inside): the brackets become parentheses, ``(The End of Chatbot A's Response)``;
- in multi-turn pairs, a line of a message that starts like a turn of the rendering (``User:``,
  ``Chatbot A:``, ``Chatbot B:``, ``System:``) so it cannot pass for a turn: ``(User):``.

Invisible characters (zero-width spaces and joiners, soft hyphens, direction marks) do not hide a frame
or a turn: patterns are matched with them removed, and a match is rewritten without them. Text without
these patterns is rendered unchanged, so ordinary pairs stay byte-compatible.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass

from reasrm.errors import ReasrmConfigError, ReasrmDataError
from reasrm.formats import PromptFormat, load_format
from reasrm.rubrics import RubricPack, load_pack
from reasrm.verdict import TAGS

_TAG = re.compile(rf"<\s*(/?)\s*({'|'.join(TAGS)})\s*>", re.IGNORECASE)
_MARKER = re.compile(r"\[\[\s*([ab])\s*\]\]", re.IGNORECASE)
# Frame lines and their look-alikes: spaces inside the brackets, full-width and other bracket forms.
_OPEN, _CLOSE = "[\\[\uff3b\u3010\u3014\u27e6\u301a]", "[\\]\uff3d\u3011\u3015\u27e7\u301b]"
_FRAME = re.compile(
    rf"{_OPEN}\s*((?:The\s+(?:Start|End)\s+of\s[^\n\]\uff3d\u3011\u3015\u27e7\u301b]*?)"
    rf"|Client\s+Question|Reference\s+Answer)\s*{_CLOSE}",
    re.IGNORECASE,
)
# A line that starts like a turn of the multi-turn rendering.
_TURN = re.compile(r"^([ \t]*)(User|System|Chatbot\s*[AB])\s*:", re.IGNORECASE | re.MULTILINE)
_INVISIBLE = re.compile("[\u00ad\u034f\u061c\u115f\u1160\u180e\u200b-\u200f\u202a-\u202e\u2060-\u206f\ufeff]")


def escape(text: str) -> str:
    """Neutralise verdict tags, verdict markers and frame lines in user-supplied text (see module doc)."""
    text = _TAG.sub(lambda m: f"&lt;{m.group(1)}{m.group(2)}&gt;", text)
    text = _MARKER.sub(lambda m: f"[ [{m.group(1).upper()}] ]", text)
    return _rewrite(text, _FRAME, lambda m: f"({m.group(1)})")


def _rewrite(text: str, pattern: re.Pattern, replace) -> str:
    """``pattern.sub(replace, text)`` as if ``text`` had no invisible characters: matched on the text with
    them removed, each match's span rewritten; the rest of the text is kept as it was."""
    if not _INVISIBLE.search(text):
        return pattern.sub(replace, text)
    kept = [i for i, ch in enumerate(text) if not _INVISIBLE.match(ch)]
    visible = "".join(text[i] for i in kept)
    out, last = [], 0
    for m in pattern.finditer(visible):
        if m.end() == m.start():
            continue
        start, end = kept[m.start()], kept[m.end() - 1] + 1
        out += [text[last:start], replace(m)]
        last = end
    return "".join([*out, text[last:]])


def render(
    fmt: PromptFormat | str,
    context: tuple[dict, ...] | list[dict],
    response_a: str,
    response_b: str,
    context_b: tuple[dict, ...] | list[dict] | None = None,
    reference: str = "",
) -> list[dict]:
    """The judge conversation (chat messages) for one pair in one slot order. ``context_b`` is slot B's
    conversation when it differs from slot A's (multi-turn pairs whose earlier turns differ); ``reference``
    fills a format's ``{reference}`` field (rubric-pack formats: the rendered reference-answer block).
    Stages render through :class:`JudgePrompt`, which picks the pack and calls this."""
    if isinstance(fmt, str):
        fmt = load_format(fmt)
    context_b = context if context_b is None else context_b
    if len(context) == 1 and context[0]["role"] == "user" and tuple(context_b) == tuple(context):
        user = fmt.user_single_turn.format(
            question=escape(context[0]["content"]),
            answer_a=escape(response_a),
            answer_b=escape(response_b),
            reference=reference,
        )
    else:
        user = fmt.user_multi_turn.format(
            conversation_1=_conversation(context, response_a, "A"),
            conversation_2=_conversation(context_b, response_b, "B"),
            reference=reference,
        )
    messages = [{"role": "system", "content": fmt.system}] if fmt.system is not None else []
    return [*messages, {"role": "user", "content": user}]


def _conversation(context, response: str, slot: str) -> str:
    """One message per line: ``User: ...``, ``Chatbot A: ...`` (RM-R1's multi-turn rendering)."""
    names = {"user": "User", "assistant": f"Chatbot {slot}", "system": "System"}
    turns = [*context, {"role": "assistant", "content": response}]
    return "\n".join(f"{names[t['role']]}: {_escape_turns(escape(t['content']))}" for t in turns)


def _escape_turns(text: str) -> str:
    """A line of a message that starts like a turn (``User:``, ``Chatbot A:``) cannot pass for one: ``(User):``."""
    return _rewrite(text, _TURN, lambda m: f"{m.group(1)}({m.group(2)}):")


def system_text(pack: RubricPack) -> str | None:
    """The pack's system prompt: its format's system template filled from the pack."""
    fmt = load_format(pack.format_id)
    if pack.self_generated or fmt.system is None:
        return fmt.system
    criteria = "\n".join(
        f"{k}. {c.id} (weight {c.weight:.0%}): {c.description}\n   Good: {c.good}\n   Poor: {c.poor}"
        for k, c in enumerate(pack.criteria, start=1)
    )
    hard = ""
    if pack.hard_constraints:
        items = "\n".join(f"- {h}" for h in pack.hard_constraints)
        hard = (
            "Hard constraints: a response that breaks one loses to a response that breaks none, whatever its "
            f"other merits; when both break one, prefer the response that breaks fewer.\n{items}\n\n"
        )
    usage = {
        "ignore": "",
        "use": "When a reference answer is given, treat it as correct and check both responses against it.\n\n",
        "require": "A reference answer is given: treat it as correct and check both responses against it.\n\n",
    }[pack.reference]
    return fmt.system.format(
        domain=pack.domain,
        description=pack.description,
        criteria=criteria,
        hard_constraints=hard,
        weights_justification=pack.weights_justification,
        reference_usage=usage,
    )


@dataclass(frozen=True)
class JudgePrompt:
    """How judge conversations are rendered: a prompt format for pairs without a pack, an optional
    default pack (a checkpoint's card) and an optional forced pack (a stage config's ``rubric``)."""

    prompt_format: PromptFormat
    default_rubric: str | None = None
    forced_rubric: str | None = None

    @classmethod
    def create(
        cls, prompt_format: PromptFormat | str, default_rubric: str | None = None, forced_rubric: str | None = None
    ) -> JudgePrompt:
        if isinstance(prompt_format, str):
            prompt_format = load_format(prompt_format)
        if prompt_format.renders_packs:
            raise ReasrmConfigError(
                f"prompt format {prompt_format.id!r} renders rubric packs and needs one: "
                "choose a pack (rubric=...) or another prompt format"
            )
        for name in filter(None, (default_rubric, forced_rubric)):
            load_pack(name)  # an unknown or invalid pack is a config error now, not at the first pair
        return cls(prompt_format, default_rubric, forced_rubric)

    def pack_for(self, pair) -> RubricPack | None:
        name = self.forced_rubric or pair.rubric or self.default_rubric
        if name is None:
            return None
        try:
            return load_pack(name)
        except ReasrmConfigError as e:
            raise ReasrmDataError(f"pair {pair.id!r}: field 'rubric': {str(e).splitlines()[0]}") from None

    def check(self, pairs) -> None:
        """Every pair's pack exists and validates, and packs that require a reference get one."""
        for pair in pairs:
            pack = self.pack_for(pair)
            if pack is not None and pack.reference == "require" and not pair.reference:
                raise ReasrmDataError(
                    f"pair {pair.id!r}: rubric pack {pack.id!r} requires a reference answer; the pair has none"
                )

    def messages(self, pair, slots) -> list[dict]:
        """The judge conversation for ``pair`` shown in ``slots``: the one renderer every stage calls."""
        pack = self.pack_for(pair)
        if pack is None:
            return render(self.prompt_format, slots.context_a, slots.response_a, slots.response_b, slots.context_b)
        fmt = load_format(pack.format_id)
        reference = ""
        if pack.reference != "ignore" and pair.reference:
            reference = f"[Reference Answer]\n{escape(pair.reference)}\n\n"
        fmt = dataclasses.replace(fmt, system=system_text(pack))
        return render(fmt, slots.context_a, slots.response_a, slots.response_b, slots.context_b, reference=reference)

    def packs(self, pairs) -> dict[str, int]:
        """Pack id -> version of the packs these pairs are rendered with (for the judge card)."""
        out = {}
        for pair in pairs:
            pack = self.pack_for(pair)
            if pack is not None:
                out[pack.id] = pack.version
        return dict(sorted(out.items()))
