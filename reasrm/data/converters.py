"""Row converters: a source's own schema -> rows of the pair schema (``reasrm.data.pairs``).

Each converter takes one raw row and returns the pair rows it holds (a benchmark row with a 3x3 grid of
comparisons holds nine). A row it cannot read raises :class:`BadRow` naming the field; the builder adds
the file and line. Recipes choose a converter by name; which dataset uses which lives in the recipe.
"""

from __future__ import annotations

from collections.abc import Callable


class BadRow(Exception):
    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


def _get(row: dict, key: str, kind: type | tuple[type, ...] = str):
    if key not in row or row[key] is None:
        raise BadRow("missing_field", f"field '{key}': missing")
    if not isinstance(row[key], kind):
        expected = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise BadRow("wrong_type", f"field '{key}': expected {expected}, got {type(row[key]).__name__}")
    return row[key]


def _rest(row: dict, *used: str) -> dict:
    """The row's other columns: kept in the pair's ``meta``, so nothing a source holds is lost."""
    return {k: v for k, v in row.items() if k not in used}


def _messages(value: object, key: str) -> list[dict]:
    if not isinstance(value, list) or not value:
        raise BadRow("wrong_type", f"field '{key}': expected a non-empty list of messages")
    out = []
    for i, message in enumerate(value):
        if not isinstance(message, dict) or "role" not in message or "content" not in message:
            raise BadRow("bad_context", f"field '{key}[{i}]': expected an object with 'role' and 'content'")
        out.append({"role": message["role"], "content": message["content"]})
    return out


def pairs(row: dict) -> list[dict]:
    """Already the pair schema: prompt|context, chosen, rejected, optional id/domain/rubric/reference/meta."""
    return [row]


def skywork(row: dict) -> list[dict]:
    """``chosen``/``rejected``: full conversations ending with the assistant answer (Skywork-Reward-Preference).
    Multi-turn rows whose earlier turns differ keep the rejected side's own conversation."""
    chosen, rejected = _messages(row.get("chosen"), "chosen"), _messages(row.get("rejected"), "rejected")
    for key, messages in (("chosen", chosen), ("rejected", rejected)):
        if messages[-1]["role"] != "assistant" or len(messages) < 2:
            raise BadRow("bad_context", f"field '{key}': expected user turns ending with an assistant answer")
    out = {"context": chosen[:-1], "chosen": chosen[-1]["content"], "rejected": rejected[-1]["content"]}
    if rejected[:-1] != chosen[:-1]:
        out["rejected_context"] = rejected[:-1]
    rest = _rest(row, "chosen", "rejected", "source")
    out["meta"] = {**rest, "origin": row["source"]} if "source" in row else rest
    return [out]


def code_preference(row: dict) -> list[dict]:
    """``input`` (the question), ``accepted``, ``rejected`` (Code-Preference-Pairs)."""
    return [
        {
            "prompt": _get(row, "input"),
            "chosen": _get(row, "accepted"),
            "rejected": _get(row, "rejected"),
            "meta": _rest(row, "input", "accepted", "rejected"),
        }
    ]


def math_step_dpo(row: dict) -> list[dict]:
    """``prompt``, ``initial_reason_steps``, ``full_chosen``, ``full_rejected`` (Math-Step-DPO): each answer is
    the shared reasoning prefix followed by its own continuation."""
    prefix = _get(row, "initial_reason_steps")
    return [
        {
            "prompt": _get(row, "prompt"),
            "chosen": prefix + _get(row, "full_chosen"),
            "rejected": prefix + _get(row, "full_rejected"),
            "meta": _rest(row, "prompt", "initial_reason_steps", "full_chosen", "full_rejected"),
        }
    ]


def rm_bench(row: dict) -> list[dict]:
    """``id``, ``prompt``, ``chosen[3]``, ``rejected[3]`` (RM-Bench): all nine (chosen[i], rejected[j]) pairs,
    each with its grid cell in ``meta`` (i, j: 0 concise, 1 detailed plain, 2 detailed markdown)."""
    chosen, rejected = _get(row, "chosen", list), _get(row, "rejected", list)
    if len(chosen) != 3 or len(rejected) != 3:
        raise BadRow(
            "wrong_type", f"fields 'chosen'/'rejected': expected 3 responses each, got {len(chosen)}, {len(rejected)}"
        )
    key = _get(row, "id", (str, int))
    base = {**_rest(row, "id", "prompt", "chosen", "rejected"), "benchmark_id": key}
    return [
        {
            "id": f"{key}:{i}{j}",
            "prompt": _get(row, "prompt"),
            "chosen": chosen[i],
            "rejected": rejected[j],
            "meta": {**base, "i": i, "j": j},
        }
        for i in range(3)
        for j in range(3)
    ]


def _rmb_context(row: dict) -> list[dict]:
    return _messages(row.get("conversation_input"), "conversation_input")


def _answer(value: object, key: str) -> str:
    if not isinstance(value, dict) or not isinstance(value.get("answer"), str):
        raise BadRow("wrong_type", f"field '{key}.answer': expected a string")
    return value["answer"]


def _rmb_domain(row: dict) -> str:
    """RMB's two sections: Harmlessness -> safety, Helpfulness -> chat (from ``category_path``)."""
    return "safety" if "/Harmlessness" in str(row.get("category_path", "")) else "chat"


def rmb_pairwise(row: dict) -> list[dict]:
    """``pair_uid``, ``conversation_input``, ``chosen{answer}``, ``reject{answer}``, ``category_path`` (RMB)."""
    return [
        {
            "id": str(_get(row, "pair_uid", (str, int))),
            "context": _rmb_context(row),
            "chosen": _answer(row.get("chosen"), "chosen"),
            "rejected": _answer(row.get("reject"), "reject"),
            "domain": _rmb_domain(row),
            "meta": {
                **_rest(row, "pair_uid", "conversation_input", "chosen", "reject"),
                "chosen_model": row["chosen"].get("llm_name"),
                "rejected_model": row["reject"].get("llm_name"),
            },
        }
    ]


def rmb_bon(row: dict) -> list[dict]:
    """``bon_uid``, ``conversation_input``, ``bon_best``, ``loser_list`` (RMB best-of-N): one pair per loser."""
    key = str(_get(row, "bon_uid", (str, int)))
    best = _answer(row.get("bon_best"), "bon_best")
    losers = _get(row, "loser_list", list)
    context, rest = _rmb_context(row), _rest(row, "bon_uid", "conversation_input", "bon_best", "loser_list")
    return [
        {
            "id": f"{key}:{k}",
            "context": context,
            "chosen": best,
            "rejected": _answer(loser, f"loser_list[{k}]"),
            "domain": _rmb_domain(row),
            "meta": {
                **rest,
                "bon_uid": key,
                "loser": k,
                "chosen_model": row["bon_best"].get("llm_name"),
                "rejected_model": loser.get("llm_name"),
            },
        }
        for k, loser in enumerate(losers)
    ]


# RewardBench subsets -> domain (its four sections, as its leaderboard weighs them).
_REWARDBENCH_DOMAINS = {
    "math-prm": "math",
    "hep-": "code",
    "refusals-": "safety",
    "xstest-": "safety",
    "donotanswer": "safety",
}


def rewardbench(row: dict) -> list[dict]:
    """``id``, ``prompt``, ``chosen``, ``rejected``, ``subset`` (RewardBench, split ``filtered``)."""
    subset = _get(row, "subset")
    domain = next((d for prefix, d in _REWARDBENCH_DOMAINS.items() if subset.startswith(prefix)), "chat")
    return [
        {
            "id": str(_get(row, "id", (str, int))),
            "prompt": _get(row, "prompt"),
            "chosen": _get(row, "chosen"),
            "rejected": _get(row, "rejected"),
            "domain": domain,
            "meta": _rest(row, "id", "prompt", "chosen", "rejected"),
        }
    ]


CONVERTERS: dict[str, Callable[[dict], list[dict]]] = {
    "pairs": pairs,
    "skywork": skywork,
    "code_preference": code_preference,
    "math_step_dpo": math_step_dpo,
    "rm_bench": rm_bench,
    "rmb_pairwise": rmb_pairwise,
    "rmb_bon": rmb_bon,
    "rewardbench": rewardbench,
}


def map_columns(row: dict, columns: dict[str, str]) -> dict:
    """Rename source columns to pair fields (``columns`` maps pair field -> source column)."""
    out = {k: v for k, v in row.items() if k not in columns.values()}
    for field_name, column in columns.items():
        if column not in row:
            raise BadRow("missing_field", f"field '{column}' (mapped to '{field_name}'): missing")
        out[field_name] = row[column]
    return out
