"""Verifiable preference pairs whose correct answer is known by construction (the embedded default data).

Five task families of graded difficulty (level 1-3; the whole mix, ``WHOLE_MIX``), each answered
correctly (chosen) and with one plausible mistake (rejected): comparing two numbers (two-digit,
three-digit with the same first digit, decimals such as 3.9 vs 3.11 — the first within reach of a 135M
judge, the last a classic trap), multi-digit arithmetic (off by one, swapped digits, wrong operator, a
dropped carry, wrong sign), unit conversion (wrong factor, divided instead of multiplied, off by one),
sorting (two neighbours swapped, wrong direction, an element lost) and evaluating a short Python
expression (off by one, ``/`` for ``//``, a character lost). Four more two-digit families at level 1
(``TWO_DIGIT`` with comparison: the smaller of two numbers, the number after n, the tens digit of n, even or
odd), each within a 135M judge's reach, measure whether stage two teaches beyond one family
(``bench/families.py``). Every pair carries a worked ``reference``.
Pair ``i`` depends only on ``(seed, i)`` and the family weights: any size, and a larger build extends a
smaller one.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator


def comparison(rng: random.Random, level: int) -> dict:
    if level == 1:
        a, b = rng.sample(range(10, 100), 2)
    elif level == 2:
        hundreds = rng.randint(1, 9) * 100
        a, b = (hundreds + x for x in rng.sample(range(100), 2))
    else:  # 3.9 vs 3.11: the one with more decimal digits looks larger and is not always
        whole, short, long = rng.randint(0, 20), rng.randint(1, 9), rng.randint(10, 99)
        a, b = f"{whole}.{short}", f"{whole}.{long:02d}"
        if float(a) == float(b):
            b = f"{whole}.{long + 1:02d}"
    a, b = (a, b) if rng.random() < 0.5 else (b, a)
    big, small = (a, b) if float(a) > float(b) else (b, a)
    return {
        "domain": "math",
        "prompt": f"Which is larger, {a} or {b}?",
        "chosen": f"{big} is larger.",
        "rejected": f"{small} is larger.",
        "reference": f"{big} is larger than {small}.",
        "mistake": "more_digits" if level == 3 and len(str(small)) > len(str(big)) else "smaller_picked",
    }


def _off_by_one(rng: random.Random, value: int) -> int:
    return value + rng.choice((-1, 1))


def _swap_digits(rng: random.Random, value: int) -> int:
    digits = list(str(abs(value)))
    spots = [k for k in range(len(digits) - 1) if digits[k] != digits[k + 1]]
    if not spots:
        return _off_by_one(rng, value)
    k = rng.choice(spots)
    digits[k], digits[k + 1] = digits[k + 1], digits[k]
    swapped = int("".join(digits))
    return -swapped if value < 0 else swapped


def arithmetic(rng: random.Random, level: int) -> dict:
    digits = {1: (10, 99), 2: (100, 999), 3: (100, 999)}[level]
    a, b = rng.randint(*digits), rng.randint(*digits)
    op = rng.choice(("+", "-") if level < 3 else ("+", "-", "*"))
    if level == 2 and op == "*":
        b = rng.randint(2, 9)
    value = {"+": a + b, "-": a - b, "*": a * b}[op]
    mistake = rng.choice(("off_by_one", "swap_digits", "wrong_operator", "carry", "sign"))
    if mistake == "wrong_operator":
        wrong = {"+": a - b, "-": a + b, "*": a + b}[op]
    elif mistake == "carry":
        wrong = value + rng.choice((-10, 10))
    elif mistake == "sign" and value != 0:
        wrong = -value
    elif mistake == "swap_digits":
        wrong = _swap_digits(rng, value)
    else:
        mistake, wrong = "off_by_one", _off_by_one(rng, value)
    symbol = {"+": "+", "-": "-", "*": "×"}[op]
    question = f"What is {a} {symbol} {b}?"
    return {
        "domain": "math",
        "prompt": question,
        "chosen": f"{a} {symbol} {b} = {value}",
        "rejected": f"{a} {symbol} {b} = {wrong}",
        "reference": f"{a} {symbol} {b} = {value}",
        "mistake": mistake,
    }


_UNITS = [
    ("metres", "centimetres", 100),
    ("kilometres", "metres", 1000),
    ("kilograms", "grams", 1000),
    ("hours", "minutes", 60),
    ("minutes", "seconds", 60),
    ("litres", "millilitres", 1000),
    ("centimetres", "millimetres", 10),
]


def unit_conversion(rng: random.Random, level: int) -> dict:
    big, small, factor = rng.choice(_UNITS)
    amount = {1: rng.randint(2, 300), 2: rng.randint(301, 9999), 3: rng.randint(11, 999) + rng.choice((0.5, 0.25))}[
        level
    ]
    value = amount * factor
    mistake = rng.choice(("wrong_factor", "divided", "off_by_one"))
    if mistake == "wrong_factor":
        wrong_factor = rng.choice([f for f in (10, 60, 100, 1000) if f != factor])
        wrong, shown = amount * wrong_factor, f"{_num(amount)} × {wrong_factor}"
    elif mistake == "divided":
        wrong, shown = amount / factor, f"{_num(amount)} ÷ {factor}"
    else:
        wrong, shown = value + rng.choice((-1, 1)), f"{_num(amount)} × {factor}"
    return {
        "domain": "reasoning",
        "prompt": f"How many {small} are in {_num(amount)} {big}?",
        "chosen": f"{_num(amount)} × {factor} = {_num(value)} {small}",
        "rejected": f"{shown} = {_num(wrong)} {small}",
        "reference": f"1 {big[:-1]} = {factor} {small}, so {_num(amount)} {big} = {_num(value)} {small}",
        "mistake": mistake,
    }


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else f"{x:g}"


def sorting(rng: random.Random, level: int) -> dict:
    size = {1: 4, 2: 6, 3: 8}[level]
    numbers = rng.sample(range(1, 100 if level < 3 else 1000), size)
    descending = rng.random() < 0.5
    right = sorted(numbers, reverse=descending)
    mistake = rng.choice(("neighbours_swapped", "wrong_direction", "element_lost"))
    if mistake == "neighbours_swapped":
        wrong = right[:]
        k = rng.randrange(size - 1)
        wrong[k], wrong[k + 1] = wrong[k + 1], wrong[k]
    elif mistake == "wrong_direction":
        wrong = right[::-1]
    else:
        wrong = right[:]
        del wrong[rng.randrange(size)]
    order = "descending" if descending else "ascending"
    return {
        "domain": "reasoning",
        "prompt": f"Sort these numbers in {order} order: {', '.join(map(str, numbers))}.",
        "chosen": ", ".join(map(str, right)),
        "rejected": ", ".join(map(str, wrong)),
        "reference": f"In {order} order: {', '.join(map(str, right))}",
        "mistake": mistake,
    }


_WORDS = [
    "apple",
    "judge",
    "reward",
    "python",
    "banana",
    "model",
    "vector",
    "token",
    "river",
    "planet",
    "garden",
    "silver",
    "window",
    "rocket",
    "pencil",
    "orange",
    "castle",
    "bridge",
    "forest",
    "candle",
    "mirror",
    "ticket",
    "butter",
    "engine",
    "violin",
    "harbor",
    "jacket",
    "marble",
    "saddle",
    "tunnel",
]


def python_expression(rng: random.Random, level: int) -> dict:
    a, b, c = rng.randint(10, 999), rng.randint(2, 19), rng.randint(1, 99)
    w1, w2 = rng.sample(_WORDS, 2)
    templates = {
        1: [f"{a} // {b}", f"{a} % {b}", f'len("{w1}") + {c}', f"{a} - {b} * {c % 10}"],
        2: [
            f"sum(range({c + 5}))",
            f"max([{a}, {b}, {c}]) - min([{a}, {b}, {c}])",
            f'len("{w1}" + "{w2}") * {b}',
            f"sorted([{a}, {b}, {c}])[1]",
        ],
        3: [
            f"sum(x * x for x in range({c % 40 + 3}))",
            f"[i * {b} for i in range({c % 30 + 2})][-1]",
            f'("{w1}" + "{w2}").upper()[::-1]',
            f'"{w1}"[{c % 4}:] + "{w2}"[:{c % 5 + 1}]',
        ],
    }[level]
    expression = rng.choice(templates)
    value = eval(
        expression, {"__builtins__": {"len": len, "sum": sum, "range": range, "max": max, "min": min, "sorted": sorted}}
    )
    if isinstance(value, str):
        mistake = "character_lost"
        k = rng.randrange(len(value)) if value else 0
        wrong = value[:k] + value[k + 1 :] if len(value) > 1 else value + value
        shown_right, shown_wrong = repr(value), repr(wrong)
    else:
        mistake = "true_division" if "//" in expression and a % b else "off_by_one"
        wrong = a / b if mistake == "true_division" else value + rng.choice((-1, 1))
        shown_right, shown_wrong = str(value), f"{wrong:g}" if isinstance(wrong, float) else str(wrong)
    return {
        "domain": "code",
        "prompt": f"What does this Python expression evaluate to?\n{expression}",
        "chosen": f"It evaluates to {shown_right}.",
        "rejected": f"It evaluates to {shown_wrong}.",
        "reference": f"{expression} == {shown_right}",
        "mistake": mistake,
    }


def _number(rng: random.Random, level: int) -> int:
    """A two-digit number at level 1, three-digit above."""
    return rng.randint(10, 99) if level == 1 else rng.randint(100, 999)


def minimum(rng: random.Random, level: int) -> dict:
    a, b = rng.sample(range(10, 100) if level == 1 else range(100, 1000), 2)
    small, big = min(a, b), max(a, b)
    return {
        "domain": "math",
        "prompt": f"Which is smaller, {a} or {b}?",
        "chosen": f"{small} is smaller.",
        "rejected": f"{big} is smaller.",
        "reference": f"{small} is smaller than {big}.",
        "mistake": "larger_picked",
    }


def successor(rng: random.Random, level: int) -> dict:
    n = _number(rng, level)
    wrong = rng.choice((n - 1, n + 2))
    return {
        "domain": "math",
        "prompt": f"What number comes right after {n}?",
        "chosen": f"{n + 1} comes after {n}.",
        "rejected": f"{wrong} comes after {n}.",
        "reference": f"{n} + 1 = {n + 1}, so {n + 1} comes after {n}.",
        "mistake": "before" if wrong < n else "skipped",
    }


def tens_digit(rng: random.Random, level: int) -> dict:
    n = _number(rng, level)
    while len(set(str(n)[-2:])) < 2:  # the tens and ones digits differ: the mistake is a different answer
        n = _number(rng, level)
    tens, ones = str(n)[-2], str(n)[-1]
    return {
        "domain": "math",
        "prompt": f"What is the tens digit of {n}?",
        "chosen": f"The tens digit of {n} is {tens}.",
        "rejected": f"The tens digit of {n} is {ones}.",
        "reference": f"{n} has {tens} tens, so its tens digit is {tens}.",
        "mistake": "ones_digit",
    }


def parity(rng: random.Random, level: int) -> dict:
    n = _number(rng, level)
    right, wrong = ("even", "odd") if n % 2 == 0 else ("odd", "even")
    return {
        "domain": "math",
        "prompt": f"Is {n} even or odd?",
        "chosen": f"{n} is {right}.",
        "rejected": f"{n} is {wrong}.",
        "reference": f"{n} ends in {n % 10}, so {n} is {right}.",
        "mistake": "parity",
    }


FAMILIES: dict[str, Callable[[random.Random, int], dict]] = {
    "comparison": comparison,
    "arithmetic": arithmetic,
    "unit_conversion": unit_conversion,
    "sorting": sorting,
    "python_expression": python_expression,
    "minimum": minimum,
    "successor": successor,
    "tens_digit": tens_digit,
    "parity": parity,
}
WHOLE_MIX = ("comparison", "arithmetic", "unit_conversion", "sorting", "python_expression")  # graded, levels 1-3
TWO_DIGIT = ("comparison", "minimum", "successor", "tens_digit", "parity")  # a 135M judge learns each at level 1


def verifiable(
    n: int, seed: int, families: dict[str, int] | None = None, levels: list[int] | None = None
) -> Iterator[dict]:
    """``n`` pair rows; pair ``i`` depends only on ``(seed, i)``, ``families`` (family -> weight: its
    share of the cycle pairs are dealt from; default every family once) and ``levels`` (the difficulty
    levels drawn from, uniformly; default 1-3)."""
    names = [name for name, weight in (families or dict.fromkeys(WHOLE_MIX, 1)).items() for _ in range(weight)]
    for i in range(n):
        rng = random.Random(f"{seed}:{i}")
        family = names[i % len(names)]
        level = rng.randint(1, 3) if levels is None else rng.choice(sorted(levels))
        row = FAMILIES[family](rng, level)
        mistake = row.pop("mistake")
        row.update(id=f"verifiable-{seed}-{i}", meta={"family": family, "level": level, "mistake": mistake})
        yield row


GENERATORS: dict[str, Callable[..., Iterator[dict]]] = {"verifiable": verifiable}


def whole_mix(n: int = 4400) -> dict:
    """The demo recipe's parameters for the whole graded mix: every family once, levels 1-3, ``n`` pairs
    (the benchmarks' mix; 10% held out)."""
    return {"n": n, "families": "{" + ", ".join(f"{name}: 1" for name in WHOLE_MIX) + "}", "levels": "[1, 2, 3]"}
