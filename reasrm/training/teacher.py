"""The teacher: reasoning chains for stage one (distillation), verified, cached and resumable.

A chain is the judge's whole answer to one rendered pair: ``<type>``, ``<rubric>``/``<justify>`` or
``<solution>``, ``<eval>`` with quotes, ``<answer>``. A chain is **verified** before it is kept: its
verdict, parsed in **strict** mode (the RL reward's), names the chosen response, and it has every section
the prompt asked for (``reasrm.training.rewards.format_score`` is 1; a prompt that asks for no ``<type>``,
such as ``rm-r1-reasoning``, needs only the verdict).

Backends:
- ``hf`` / ``vllm`` / ``openai``: a teacher model (RM-R1 used strong instruct and reasoning models; point
  ``openai`` at any OpenAI-compatible server, e.g. several vLLM servers behind one URL; ``hf`` with no
  model is the embedded default, its own teacher). Two passes, as in RM-R1:
  1. pass 1 asks plainly;
  2. pass 2 (``hint_pass``) takes each pair with no verified chain back to the teacher with its failed
     chain and the correct verdict, asking for a corrected, self-contained chain. The result is verified
     like pass 1 and also rejected (status ``mentions_hint``) when it gives the hint away
     (:data:`HINT_TELLS`). The hint is never part of the SFT prompt; kept chains say their ``pass``.
  With ``samples: k`` (temperature > 0) each pass draws up to k chains per pair (seeds ``seed``..
  ``seed+k-1``) and keeps the first ``keep`` that verify: rejection sampling (DeepSeek-GRM's rejective
  fine-tuning), which is also how a weak or local teacher yields real chains.
  Every reply is stored in a sqlite cache the moment it arrives (:mod:`reasrm.backends.cache`): a run
  killed at any moment and restarted sends only the requests not yet answered.
- ``template``: no model. Writes the chain from the pair itself: the rubric pack's criteria (or, for a
  pair with a ``reference``, the reference as the solution), quotes of both responses, and the label as
  the verdict. It teaches the output format and the pack, not judgement: use it for CPU smoke runs, the
  embedded default and verifiable data, and a real teacher for a real judge.

Every pair's outcome is one line of ``chains.jsonl`` (``id``, ``chosen_slot``, ``messages``, ``kept``,
``chains``: the kept ones, ``pass``, ``status``: ``ok`` or why the last attempt failed, ``attempts``: pass,
sample, status and tokens of every chain drawn, ``rejected``: the last failed chain of a dropped pair); a
rerun skips finished pairs. ``teacher_report.json`` (and a table in the log) counts it all per pass and
per domain.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, replace
from pathlib import Path

from reasrm import processes
from reasrm.backends import (
    BACKENDS,
    Generation,
    GenerationConfig,
    backend_machine_problems,
    check_backend,
    load_backend,
)
from reasrm.backends.cache import CachedBackend, CacheStats
from reasrm.backends.vllm import VLLMSettings
from reasrm.config import Problem, option
from reasrm.data.pairs import Pair, Shown, other_slot
from reasrm.prompts import JudgePrompt, escape
from reasrm.rubrics import RubricPack, load_pack
from reasrm.runs import Progress, ResumableJsonl, judge_in_chunks
from reasrm.training.rewards import format_score
from reasrm.verdict import (
    EVAL,
    FAILED,
    JUSTIFY,
    RUBRIC,
    SOLUTION,
    TOO_LONG,
    TYPE,
    answer,
    element,
    parse_verdict,
    winner,
)

log = logging.getLogger(__name__)

TEACHER_BACKENDS = ("template", *BACKENDS)
TEMPLATE_EVALS = ("joint", "per_quote")
CORRECTION = (
    "(Note for the annotator, not part of the task: the evaluation above does not hold up; the better "
    "response is Chatbot {slot}. Write a new, complete evaluation of the same task in the required format "
    "that reaches [[{slot}]] on the merits of the responses. It must stand on its own: do not mention this "
    "note, an earlier evaluation, or that the verdict was given to you.)"
)
HINT = "\n\n" + CORRECTION.replace("the evaluation above does not hold up; ", "")  # no failed chain to show
# Phrases that give the pass-2 hint away: a chain holding one is rejected (status mentions_hint).
HINT_TELLS = (
    "note for the annotator",
    "the annotator",
    "the note",
    "this note",
    "the hint",
    "was told",
    "were told",
    "been told",
    "i am told",
    "as instructed",
    "was given to me",
    "given verdict",
    "provided verdict",
    "correct verdict is",
    "the verdict was given",
    "earlier evaluation",
    "previous evaluation",
    "evaluation above",
    "my previous",
    "my earlier",
    "not part of the task",
)
_TELL = re.compile("|".join(re.escape(t) for t in HINT_TELLS), re.IGNORECASE)
MENTIONS_HINT, MISSING_SECTIONS, WRONG_VERDICT = "mentions_hint", "missing_sections", "wrong_verdict"


@dataclass
class TeacherConfig:
    backend: str = option(
        f"One of {', '.join(TEACHER_BACKENDS)} (template: chains from the pack and the label).", "template"
    )
    model: str | None = option(
        "Teacher model (hf/vllm: hub id or folder, null = the embedded default; openai: the served model's name).", None
    )
    base_url: str | None = option("openai backend: the server, e.g. http://127.0.0.1:8000/v1.", None)
    template_eval: str = option(
        "template backend, pairs with a reference: 'joint' (after both quotes, one sentence names the response "
        "that agrees with the solution) or 'per_quote' (each quote judged against the solution right after it, "
        "the letter read off those judgments).",
        "per_quote",
    )
    hint_pass: bool = option("Pass 2: re-ask failed pairs with their failed chain and the verdict (RM-R1).", True)
    samples: int = option("Chains drawn per pair per pass (rejection sampling; > 1 needs temperature > 0).", 1, ge=1)
    keep: int = option("Verified chains kept per pair (at most samples).", 1, ge=1)
    concurrency: int = option("openai backend: requests in flight.", 8, ge=1)
    cache: str | None = option(
        "Reply cache (sqlite) shared by reruns; null = teacher_cache.sqlite in the output.", None
    )
    generation: GenerationConfig = option(
        "How the teacher generates.", factory=lambda: GenerationConfig(max_new_tokens=1024, batch_size=8)
    )
    vllm: VLLMSettings = option(
        "The vllm backend's engine (GPU memory share, tensor parallel size).", factory=VLLMSettings
    )

    def machine_check(self, prefix: str = "teacher.") -> list[Problem]:
        return backend_machine_problems(self.backend, prefix, self.vllm)

    def check(self, prefix: str = "teacher.") -> list[Problem]:
        problems = self.generation.check(f"{prefix}generation.")
        problems += check_backend(self.backend, self.base_url, prefix, TEACHER_BACKENDS, self.vllm)
        if self.backend == "openai" and not self.model:
            problems.append((f"{prefix}model", "required with the openai backend: the served model's name"))
        if self.samples > 1 and self.generation.temperature == 0:
            problems.append(
                (
                    f"{prefix}samples",
                    f"{self.samples} samples need {prefix}generation.temperature > 0 "
                    "(greedy decoding draws the same chain every time)",
                )
            )
        if self.template_eval not in TEMPLATE_EVALS:
            problems.append(
                (f"{prefix}template_eval", f"one of {', '.join(TEMPLATE_EVALS)}, got {self.template_eval!r}")
            )
        if self.keep > self.samples >= 1:
            problems.append((f"{prefix}keep", f"must be at most samples ({self.samples}), got {self.keep}"))
        return problems


def generate_chains(
    jobs: list[tuple[Pair, Shown]],
    prompt: JudgePrompt,
    cfg: TeacherConfig,
    path: str | Path,
    resume: bool = True,
    backend=None,
) -> list[dict]:
    """One record per pair (see the module docstring), appended to ``path`` as they finish; with ``resume``,
    pairs already there are not redone. Writes ``teacher_report.json`` beside ``path``. Returns all
    records, in the order of ``jobs``. ``backend``: an already loaded model backend to use instead of
    loading ``cfg.backend`` (a notebook's, say); its replies are cached all the same.

    Under a launcher each pair's requests are sent once: every rank takes its share of each chunk of
    pairs to its own model (its own GPU), or to the server, and the main process writes the gathered
    records; every rank returns all of them. Splitting the pairs keeps every GPU busy and the ranks
    meeting after every chunk, well inside the launcher's collective timeout, however long the pass."""
    path = Path(path)
    started = time.perf_counter()
    stats = CacheStats()
    with ResumableJsonl(path, resume=resume) as out:
        pending = [(pair, slots) for pair, slots in jobs if pair.id not in out.done]
        if pending and cfg.backend == "template":  # no model: every rank writes the same chains, quickly
            with Progress(len(pending), "teacher (template)", unit="pair") as bar:
                for pair, slots in pending:
                    out.write(_template_record(pair, slots, prompt, cfg.template_eval))
                    bar.update(1)
        elif pending:
            kwargs = {"concurrency": cfg.concurrency} if cfg.backend == "openai" else {}
            cache = cfg.cache or path.with_name("teacher_cache.sqlite")
            backend = backend or load_backend(cfg.backend, cfg.model, cfg.base_url, cfg.vllm, **kwargs)
            backend = CachedBackend(backend, cache, cfg.backend, cfg.model)
            try:
                judge_in_chunks(
                    pending,
                    lambda part, on_calls: _model_passes(part, prompt, cfg, backend, on_calls),
                    out,
                    cfg.generation.batch_size,
                    desc="teacher",
                )
            finally:
                backend.close()
            stats = CacheStats(
                *(
                    sum(getattr(s, k) for s in processes.gather([backend.stats]))
                    for k in ("requests", "hits", "retries", "failures")
                )
            )
        by_id = {r["id"]: r for r in out.records}
    records = [by_id[pair.id] for pair, _ in jobs]
    if processes.is_main():
        report = teacher_report(records, [p for p, _ in jobs], stats, time.perf_counter() - started, len(pending))
        path.with_name("teacher_report.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
        log.info("teacher (%s):\n%s", path.with_name("teacher_report.json"), "\n".join(report_lines(report)))
    return records


def _template_record(pair: Pair, slots: Shown, prompt: JudgePrompt, evaluation: str) -> dict:
    messages = prompt.messages(pair, slots)
    chain = template_chain(pair, slots, prompt.pack_for(pair), evaluation)
    attempt = {"pass": 1, "sample": 0, "status": check_chain(Generation(chain, 0, 0, 0.0), slots, True)}
    return _record(pair, slots, messages, [attempt], [chain] if attempt["status"] == "ok" else [], chain)


def _model_passes(part, prompt: JudgePrompt, cfg: TeacherConfig, backend, on_calls) -> list[dict]:
    """Pass 1 for a chunk of pairs, ``samples`` draws each; pass 2 (the failed chain and the verdict) for
    the pairs with no verified chain. A pair stops drawing once it has ``keep`` verified chains."""
    messages = [prompt.messages(pair, slots) for pair, slots in part]
    asks_sections = [_asks_sections(m) for m in messages]
    attempts: list[list[dict]] = [[] for _ in part]
    kept: list[list[str]] = [[] for _ in part]
    failed = [""] * len(part)
    for attempt in (1, 2):
        todo = list(range(len(part))) if attempt == 1 else [k for k in range(len(part)) if not kept[k]]
        if attempt == 2 and not cfg.hint_pass:
            break
        for sample in range(cfg.samples):
            todo = [k for k in todo if len(kept[k]) < cfg.keep]
            if not todo:
                break
            conversations = [
                messages[k] if attempt == 1 else _with_hint(messages[k], part[k][1].chosen_slot, failed[k])
                for k in todo
            ]
            settings = replace(cfg.generation, seed=cfg.generation.seed + sample)
            for k, g in zip(todo, backend.generate(conversations, settings), strict=True):
                status = check_chain(g, part[k][1], asks_sections[k], hinted=attempt == 2)
                attempts[k].append(
                    {
                        "pass": attempt,
                        "sample": sample,
                        "status": status,
                        "tokens_in": g.prompt_tokens,
                        "tokens_out": g.completion_tokens,
                    }
                )
                if status == "ok":
                    kept[k].append(g.text)
                else:
                    failed[k] = g.text
    on_calls(len(part))
    return [_record(pair, slots, messages[k], attempts[k], kept[k], failed[k]) for k, (pair, slots) in enumerate(part)]


def check_chain(generation: Generation, slots: Shown, asks_sections: bool, hinted: bool = False) -> str:
    """``ok`` for a chain worth training on, else why not: ``failed`` / ``too_long`` (no chain), a strict
    verdict status (``missing``, ``several``, ...), ``wrong_verdict``, ``missing_sections`` (a section the
    prompt asked for is absent), ``mentions_hint`` (a pass-2 chain that gives the hint away)."""
    if generation.error is not None:
        return FAILED
    if generation.too_long:
        return TOO_LONG
    verdict = parse_verdict(generation.text, mode="strict")
    if not verdict.ok:
        return verdict.status
    if winner(verdict.choice, slots.chosen_slot) != "chosen":
        return WRONG_VERDICT
    if asks_sections and format_score(generation.text) < 1:
        return MISSING_SECTIONS
    if hinted and mentions_hint(generation.text):
        return MENTIONS_HINT
    return "ok"


def mentions_hint(text: str) -> bool:
    """Whether a chain gives the pass-2 hint away (one of :data:`HINT_TELLS`, any case)."""
    return _TELL.search(text) is not None


def _asks_sections(messages: list[dict]) -> bool:
    """Whether the rendered prompt asks for the structured chain (it names the ``<type>`` section)."""
    return any(f"<{TYPE}>" in (m.get("content") or "") for m in messages)


def _record(pair: Pair, slots: Shown, messages: list[dict], attempts: list[dict], chains: list[str], failed: str):
    record = {
        "id": pair.id,
        "chosen_slot": slots.chosen_slot,
        "kept": bool(chains),
        "pass": attempts[-1]["pass"] if attempts else 1,
        "status": "ok" if chains else attempts[-1]["status"],
        "messages": messages,
        "chains": chains,
        "attempts": attempts,
    }
    if not chains:
        record["rejected"] = failed
    return record


def _with_hint(messages: list[dict], slot: str, failed_chain: str) -> list[dict]:
    """Pass 2's conversation: the task, the failed chain as the teacher's reply, then the correction asked
    for (with no chain to show, e.g. after a failed call, the hint is appended to the task)."""
    if not failed_chain.strip():
        *head, last = messages
        return [*head, {**last, "content": last["content"] + HINT.format(slot=slot)}]
    return [
        *messages,
        {"role": "assistant", "content": failed_chain},
        {"role": "user", "content": CORRECTION.format(slot=slot)},
    ]


# ---------------------------------------------------------------------------------------------------
# The report
# ---------------------------------------------------------------------------------------------------


def teacher_report(records: list[dict], pairs: list[Pair], stats: CacheStats, seconds: float, sent: int) -> dict:
    """Per pass and per domain: pairs sent, pairs kept, chains kept, chains rejected by reason, tokens in and
    out (from ``records``, so a resumed run's report covers the whole file); this run's requests, cache
    hits, retries, failures, wall time and pairs/s."""
    domain = {pair.id: pair.domain or "(none)" for pair in pairs}
    passes: dict = defaultdict(
        lambda: {
            "pairs_sent": 0,
            "pairs_kept": 0,
            "chains_drawn": 0,
            "chains_kept": 0,
            "rejected": Counter(),
            "tokens_in": 0,
            "tokens_out": 0,
        }
    )
    domains: dict = defaultdict(lambda: {"pairs": 0, "pairs_kept": 0, "chains_kept": 0, "dropped": Counter()})
    for r in records:
        for n in sorted({a["pass"] for a in r["attempts"]}):
            row, drawn = passes[f"pass {n}"], [a for a in r["attempts"] if a["pass"] == n]
            row["pairs_sent"] += 1
            row["pairs_kept"] += r["kept"] and r["pass"] == n
            row["chains_drawn"] += len(drawn)
            row["chains_kept"] += sum(a["status"] == "ok" for a in drawn)
            row["rejected"].update(a["status"] for a in drawn if a["status"] != "ok")
            row["tokens_in"] += sum(a.get("tokens_in", 0) for a in drawn)
            row["tokens_out"] += sum(a.get("tokens_out", 0) for a in drawn)
        row = domains[domain.get(r["id"], "(none)")]
        row["pairs"] += 1
        row["pairs_kept"] += r["kept"]
        row["chains_kept"] += len(r["chains"])
        if not r["kept"]:
            row["dropped"][r["status"]] += 1
    return {
        "pairs": len(records),
        "pairs_kept": sum(r["kept"] for r in records),
        "chains_kept": sum(len(r["chains"]) for r in records),
        "passes": {k: {**v, "rejected": dict(v["rejected"])} for k, v in sorted(passes.items())},
        "domains": {k: {**v, "dropped": dict(v["dropped"])} for k, v in sorted(domains.items())},
        "this_run": {
            "pairs_sent": sent,
            "requests": stats.requests,
            "cache_hits": stats.hits,
            "retries": stats.retries,
            "failures": stats.failures,
            "seconds": round(seconds, 2),
            "pairs_per_second": round(sent / seconds, 3) if sent and seconds else None,
        },
    }


def report_lines(report: dict) -> list[str]:
    """The report as a table for the log."""
    lines = [f"  {'':<14} {'sent':>6} {'kept':>6} {'chains':>7} {'tok in':>9} {'tok out':>9}  rejected (chains)"]
    for name, row in report["passes"].items():
        rejected = ", ".join(f"{k} {v}" for k, v in sorted(row["rejected"].items())) or "-"
        lines.append(
            f"  {name:<14} {row['pairs_sent']:>6} {row['pairs_kept']:>6} {row['chains_kept']:>7} "
            f"{row['tokens_in']:>9} {row['tokens_out']:>9}  {rejected}"
        )
    lines.append(f"  {'domain':<14} {'pairs':>6} {'kept':>6} {'chains':>7}  dropped (pairs)")
    for name, row in report["domains"].items():
        dropped = ", ".join(f"{k} {v}" for k, v in sorted(row["dropped"].items())) or "-"
        lines.append(f"  {name:<14} {row['pairs']:>6} {row['pairs_kept']:>6} {row['chains_kept']:>7}  {dropped}")
    run = report["this_run"]
    lines.append(
        f"  this run: {run['pairs_sent']} pairs sent, {run['requests']} requests, {run['cache_hits']} "
        f"from the cache, {run['retries']} retries, {run['failures']} failures, {run['seconds']:.1f} s"
        + (f", {run['pairs_per_second']} pairs/s" if run["pairs_per_second"] else "")
    )
    return lines


# ---------------------------------------------------------------------------------------------------
# The template teacher
# ---------------------------------------------------------------------------------------------------


def template_chain(pair: Pair, slots: Shown, pack: RubricPack | None, evaluation: str = "per_quote") -> str:
    """A chain in the RM-R1 structure built from the pair: the pack's criteria (or the shipped ``chat``
    pack's for a pair without one) or, for reasoning packs and pairs with a reference, the reference as
    the solution; quotes of both responses; the label as the verdict. ``evaluation`` (``TEMPLATE_EVALS``,
    reasoning chains only): ``joint`` names the response that agrees with the solution once, after both
    quotes; ``per_quote`` judges each quote right after it and reads the letter off those judgments."""
    best = slots.chosen_slot
    if best is None:
        raise ValueError(f"pair {pair.id!r}: the template teacher needs a labelled pair")
    worse = other_slot(best)
    quote_a, quote_b = element("quote_A", _clip(slots.response_a)), element("quote_B", _clip(slots.response_b))
    if pair.reference and (pack is None or pack.self_generated or pack.task_type == "reasoning"):
        named = f"Chatbot {best} agrees with the solution; Chatbot {worse} does not."
        if evaluation == "per_quote":
            judged = {best: "matches the solution.", worse: "does not match the solution."}
            text = f"A: {quote_a} {judged['A']} B: {quote_b} {judged['B']} So {named}"
        else:
            text = f"A: {quote_a} B: {quote_b} {named}"
        sections = [element(TYPE, "Reasoning"), element(SOLUTION, escape(pair.reference)), element(EVAL, text)]
        return "\n".join([*sections, answer(best)])
    criteria_pack = pack if pack is not None and not pack.self_generated else load_pack("chat")
    items = "\n".join(
        f"  {k}. {c.id} ({c.weight:.0%}): {c.description}" for k, c in enumerate(criteria_pack.criteria, start=1)
    )
    top = max(criteria_pack.criteria, key=lambda c: c.weight)
    rubric = f"\n{items}\n  {element(JUSTIFY, f' {criteria_pack.weights_justification} ')}\n"
    text = (
        f"\n  Chatbot A: {quote_a}\n  Chatbot B: {quote_b}\n  On {top.id}, the heaviest criterion, Chatbot "
        f"{best} does better ({top.good.rstrip('.').lower()}), while Chatbot {worse} falls short "
        f"({top.poor.rstrip('.').lower()}).\n"
    )
    return "\n\n".join([element(TYPE, "Chat"), element(RUBRIC, rubric), element(EVAL, text), answer(best)])


def _clip(text: str, width: int = 300) -> str:
    flat = " ".join(text.split())
    return escape(flat if len(flat) <= width else flat[: width - 3] + "...")
