"""How long validating the evil input of `^(a|a)*$` takes: the project's validator (RE2)
against a plain jsonschema validator (Python's backtracking `re`).

The evil input is n-1 `a` followed by `!`. The project's validator is timed at 1,000,
10,000 and 100,000 characters; the plain one only at sizes that finish (it doubles with
every character), and the last of those is extrapolated to 41 characters.

Run: `python -m bench.regex [--runs N]`.
"""

from __future__ import annotations

import argparse
import functools
import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any

from jsonschema import Draft202012Validator

from activities.schemas import validator, violations

EVIL = "^(a|a)*$"
SCHEMA: dict[str, Any] = {"type": "string", "pattern": EVIL}
PROJECT_SIZES = (1_000, 10_000, 100_000)
PLAIN_SIZES = (16, 18, 20, 22, 24)


def evil_input(size: int) -> str:
    return "a" * (size - 1) + "!"


def median_seconds(work: Callable[[], object], runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        work()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _all_errors(validator: Draft202012Validator, instance: str) -> list[Any]:
    return list(validator.iter_errors(instance))


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.regex", description=(__doc__ or "").splitlines()[0]
    )
    parser.add_argument("--runs", type=int, default=7, help="runs per size (median printed)")
    args = parser.parse_args(argv)

    print(f"pattern {EVIL!r}, input: n-1 'a' then '!', median of {args.runs} runs")
    validator(SCHEMA)  # compiled once, as in the worker
    print("project validator (RE2, activities.schemas.violations):")
    for size in PROJECT_SIZES:
        text = evil_input(size)
        seconds = median_seconds(functools.partial(violations, SCHEMA, text), args.runs)
        assert violations(SCHEMA, text), "the evil input must be refused"
        print(f"  {size:>7,} chars  {seconds * 1e3:9.3f} ms")

    plain = Draft202012Validator(SCHEMA)
    plain_runs = min(args.runs, 3)
    print(f"plain jsonschema Draft202012Validator (Python re), median of {plain_runs} runs:")
    seconds = 0.0
    for size in PLAIN_SIZES:
        text = evil_input(size)
        seconds = median_seconds(functools.partial(_all_errors, plain, text), plain_runs)
        print(f"  {size:>7,} chars  {seconds * 1e3:9.3f} ms")
    last = PLAIN_SIZES[-1]
    hours = seconds * 2 ** (41 - last) / 3600
    print(f"  about x2 per character: 41 chars would take ~{hours:.0f} h (extrapolated)")


if __name__ == "__main__":
    main()
