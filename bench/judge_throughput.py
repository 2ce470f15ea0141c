"""Judge throughput on the embedded default: reasrm's hf backend vs one `model.generate` per pair.

    make bench            # or: python bench/judge_throughput.py --pairs 16 --max-new-tokens 128

The same 16 pairs, rendered with the `rm-r1-instruct` prompt (~860 prompt tokens each), are judged three
ways in one run, greedy, so the figures are side by side on the same (shared, noisy) machine:
  (a) one `model.generate` per pair, as RM-R1's demo does;
  (c) reasrm's batching alone (finished rows leave the batch) without reusing the prompt prefix;
  (b) reasrm's hf backend: that batching plus a KV cache of the shared prompt prefix.
(b) and (c) run --repeats times and keep their best time; (a) runs once (it is the slow reference).
Prints pairs/s of each, the ratios, and the fraction of identical verdicts and identical texts against (a).
"""

from __future__ import annotations

import argparse
import time

import torch

from reasrm.backends import GenerationConfig
from reasrm.backends.hf import HFBackend
from reasrm.prompts import render
from reasrm.verdict import parse_verdict

QUESTIONS = [
    ("What is 47 + 38?", "47 + 38 = 85.", "47 + 38 = 75."),
    ("How many centimetres are in 3.5 metres?", "350 cm.", "35 cm."),
    ("Sort 9, 2, 7 in ascending order.", "2, 7, 9", "9, 7, 2"),
    ("What is 12 times 11?", "132", "121"),
    ("Which is heavier, 1 kg of feathers or 1 kg of iron?", "They weigh the same.", "The iron."),
    ("What is the capital of Japan?", "Tokyo.", "Kyoto."),
    ("Convert 2 hours into minutes.", "120 minutes.", "200 minutes."),
    ("What does len([1, 2, 3]) return in Python?", "3", "2"),
]


def pairs(n: int) -> list[list[dict]]:
    out = []
    for i in range(n):
        question, good, bad = QUESTIONS[i % len(QUESTIONS)]
        a, b = (good, bad) if i % 2 == 0 else (bad, good)
        out.append(render("rm-r1-instruct", ({"role": "user", "content": f"{question} (case {i})"},), a, b))
    return out


@torch.inference_mode()
def one_at_a_time(backend: HFBackend, conversations, max_new_tokens: int) -> list[str]:
    texts = []
    for conversation in conversations:
        ids = torch.tensor([backend.prompt_ids(conversation)])
        out = backend.model.generate(
            input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=max_new_tokens, do_sample=False
        )
        texts.append(backend.tokenizer.decode(out[0, ids.shape[1] :], skip_special_tokens=True))
    return texts


def timed(fn, repeats: int = 1):
    """Result and best wall time of ``repeats`` runs (the machine is shared: the best is the least disturbed)."""
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - started)
    return result, best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, default=16)
    parser.add_argument("--max-new-tokens", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=2, help="runs of (b) and (c); the best time is kept")
    args = parser.parse_args()

    torch.set_num_threads(torch.get_num_threads())
    backend = HFBackend.load(None)
    plain = HFBackend(backend.model, backend.tokenizer, prefix_cache=False)
    conversations = pairs(args.pairs)
    lengths = [len(backend.prompt_ids(c)) for c in conversations]
    settings = GenerationConfig(max_new_tokens=args.max_new_tokens, batch_size=args.batch_size)
    print(
        f"{args.pairs} pairs, prompt tokens {min(lengths)}-{max(lengths)} (mean {sum(lengths) / len(lengths):.0f}),"
        f" max {args.max_new_tokens} new tokens, greedy, {torch.get_num_threads()} threads, {backend.model.dtype}"
    )

    backend.generate(conversations[:1], GenerationConfig(max_new_tokens=4))  # warm-up (and prefix cache, as in use)
    baseline, t_a = timed(lambda: one_at_a_time(backend, conversations, args.max_new_tokens))
    batched, t_c = timed(lambda: [g.text for g in plain.generate(conversations, settings)], args.repeats)
    ours, t_b = timed(lambda: [g.text for g in backend.generate(conversations, settings)], args.repeats)

    def same(texts):
        verdicts = sum(
            parse_verdict(x, "lenient") == parse_verdict(y, "lenient") for x, y in zip(texts, baseline, strict=True)
        )
        return verdicts / len(texts), sum(x == y for x, y in zip(texts, baseline, strict=True)) / len(texts)

    n = args.pairs
    print(f"(a) one generate per pair      {n / t_a:6.3f} pairs/s  ({t_a:6.1f} s)")
    v, t = same(batched)
    print(
        f"(c) batching, no prefix reuse  {n / t_c:6.3f} pairs/s  ({t_c:6.1f} s)  {t_a / t_c:4.2f}x  "
        f"identical verdicts {v:.0%}, texts {t:.0%}"
    )
    v, t = same(ours)
    print(
        f"(b) reasrm hf backend          {n / t_b:6.3f} pairs/s  ({t_b:6.1f} s)  {t_a / t_b:4.2f}x  "
        f"identical verdicts {v:.0%}, texts {t:.0%}  (cached prefix {backend.cached_prefix_tokens} tokens)"
    )
    statuses = [parse_verdict(x, "lenient").status for x in ours]
    print(f"verdict statuses of (b): { {s: statuses.count(s) for s in sorted(set(statuses))} }")


if __name__ == "__main__":
    main()
