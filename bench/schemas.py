"""The project's JSON Schema validation (schemas/validation.py: jsonschema, regexes on RE2,
formats in linear time) against jsonschema-rs (Rust, `RegexOptions()`: the linear-time
`regex` crate), on the two cases that matter to a step:

- a typical step input (an object with a uri, a uuid, an enum, a nested object and a
  patterned array), valid, validated 10,000 times with the schema compiled once;
- the catastrophic pattern `^(a|a)*$` against 100,000 characters (refused and accepted).

Then it checks, for jsonschema-rs, the guarantees the project's validator keeps
(tests/schemas/test_patterns.py): ECMA-262 regex semantics, lone surrogates, an
unrunnable pattern reported as a violation, `format: regex` refusing lookaround, draft 3,
and the messages' wording. docs/benchmarks.md ("JSON Schema: jsonschema-rs") has the
figures and the decision.

jsonschema-rs is not a dependency: `pip install jsonschema-rs` to compare.
Run: `python -m bench.schemas [--runs N] [--iterations N]`.
"""

from __future__ import annotations

import argparse
import functools
import json
import statistics
import time
from collections.abc import Callable
from itertools import islice
from typing import Any

from schemas.rules import FORMATS
from schemas.validation import validator, violations

STEP_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "document_url": {"type": "string", "format": "uri"},
        "request_id": {"type": "string", "format": "uuid"},
        "language": {"type": "string", "enum": ["en", "de", "fr", "es"]},
        "options": {
            "type": "object",
            "properties": {
                "max_pages": {"type": "integer", "minimum": 1, "maximum": 500},
                "ocr": {"type": "boolean"},
            },
            "additionalProperties": False,
        },
        "tags": {
            "type": "array",
            "items": {"type": "string", "pattern": "^[a-z0-9-]{1,32}$"},
            "maxItems": 20,
        },
    },
    "required": ["document_url", "language"],
}
STEP_INPUT: dict[str, Any] = {
    "document_url": "https://example.com/reports/2026/q1.pdf",
    "request_id": "3f2b8c1e-6a1d-4c1e-9a6b-2d7f0e5c9b14",
    "language": "en",
    "options": {"max_pages": 40, "ocr": True},
    "tags": ["finance", "quarterly", "q1-2026"],
}
EVIL = "^(a|a)*$"
EVIL_SCHEMA: dict[str, Any] = {"type": "object", "properties": {"text": {"pattern": EVIL}}}
EVIL_SIZE = 100_000


def median_seconds(work: Callable[[], object], runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        work()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def rs_validator(schema: dict[str, Any], *, our_formats: bool) -> Any:
    """A jsonschema-rs validator on the linear-time regex engine, formats asserted: its
    own format checks, or the project's (schemas.rules.FORMATS, called back in Python)."""
    import jsonschema_rs

    return jsonschema_rs.validator_for(
        schema,
        validate_formats=True,
        pattern_options=jsonschema_rs.RegexOptions(),
        formats=dict(FORMATS) if our_formats else None,
    )


_RS_CACHE: dict[str, Any] = {}


def rs_violations(schema: dict[str, Any], instance: Any, *, limit: int = 5) -> list[str]:
    """`violations()` on jsonschema-rs: the same cache key, up to `limit` messages with paths."""
    key = json.dumps(schema, sort_keys=True, separators=(",", ":"))
    compiled = _RS_CACHE.get(key)
    if compiled is None:
        compiled = _RS_CACHE[key] = rs_validator(schema, our_formats=False)
    return [
        f"{'/'.join(map(str, error.instance_path)) or '(root)'}: {error.message}"
        for error in islice(compiled.iter_errors(instance), limit)
    ]


def step_input(iterations: int, runs: int) -> None:
    print(f"typical step input, valid, {iterations:,} validations (median of {runs} runs):")
    assert violations(STEP_SCHEMA, STEP_INPUT) == []
    compiled = validator(STEP_SCHEMA)
    rows: list[tuple[str, Callable[[], object]]] = [
        (
            "project: violations() (cache key + iter_errors)",
            lambda: violations(STEP_SCHEMA, STEP_INPUT),
        ),
        (
            "project: compiled validator, iter_errors",
            lambda: list(compiled.iter_errors(STEP_INPUT)),
        ),
    ]
    try:
        rs_own = rs_validator(STEP_SCHEMA, our_formats=False)
        rs_ours = rs_validator(STEP_SCHEMA, our_formats=True)
    except ImportError:
        print("  (jsonschema-rs not installed: pip install jsonschema-rs)")
    else:
        assert rs_violations(STEP_SCHEMA, STEP_INPUT) == []
        rows += [
            (
                "jsonschema-rs: same API (cache key + iter_errors)",
                lambda: rs_violations(STEP_SCHEMA, STEP_INPUT),
            ),
            (
                "jsonschema-rs: compiled, iter_errors, its formats",
                lambda: list(rs_own.iter_errors(STEP_INPUT)),
            ),
            (
                "jsonschema-rs: compiled, iter_errors, our formats",
                lambda: list(rs_ours.iter_errors(STEP_INPUT)),
            ),
            ("jsonschema-rs: compiled, is_valid, its formats", lambda: rs_own.is_valid(STEP_INPUT)),
        ]
    for label, work in rows:

        def batch(work: Callable[[], object] = work) -> None:
            for _ in range(iterations):
                work()

        total = median_seconds(batch, runs)
        print(f"  {label:<52} {total * 1e3:9.1f} ms  {total / iterations * 1e6:7.2f} us/call")


def evil_pattern(runs: int) -> None:
    refused = {"text": "a" * (EVIL_SIZE - 1) + "!"}
    accepted = {"text": "a" * EVIL_SIZE}
    print(f"pattern {EVIL!r}, {EVIL_SIZE:,} characters (median of {runs} runs):")
    assert len(violations(EVIL_SCHEMA, refused)) == 1 and violations(EVIL_SCHEMA, accepted) == []
    rows: list[tuple[str, Callable[[Any], object]]] = [
        ("project (RE2)", lambda instance: violations(EVIL_SCHEMA, instance)),
    ]
    try:
        rs = rs_validator(EVIL_SCHEMA, our_formats=False)
    except ImportError:
        print("  (jsonschema-rs not installed)")
    else:
        assert len(list(rs.iter_errors(refused))) == 1 and rs.is_valid(accepted)
        rows.append(
            ("jsonschema-rs (regex crate)", lambda instance: list(rs.iter_errors(instance)))
        )
    for label, work in rows:
        no = median_seconds(functools.partial(work, refused), runs)
        yes = median_seconds(functools.partial(work, accepted), runs)
        print(f"  {label:<28} refused {no * 1e3:8.3f} ms   accepted {yes * 1e3:8.3f} ms")


def _rs_outcome(schema: dict[str, Any], instance: Any) -> str:
    try:
        found = rs_violations(schema, instance)
    except Exception as exc:  # noqa: BLE001 - the failure is the finding
        return f"raises {type(exc).__name__}"
    return "refused" if found else "accepted"


GUARANTEES: list[tuple[str, dict[str, Any], Any, str]] = [
    # (what, schema, instance, what the project's validator answers)
    ("ECMA '.' excludes U+2028", {"pattern": "^a.c$"}, "a\u2028c", "refused"),
    ("ECMA '.' excludes CR", {"pattern": "^a.c$"}, "a\rc", "refused"),
    ("ECMA '[]' matches nothing", {"pattern": "^[]$"}, "a", "refused"),
    ("ECMA '[^]' matches any char", {"pattern": "^[^]$"}, "\n", "accepted"),
    ("Annex B: '{' is a literal", {"pattern": "{"}, "{", "accepted"),
    ("lone surrogate in the input", {"pattern": "^a"}, "a\ud800", "accepted"),
    ("lookahead: a violation", {"pattern": "^(?=a)b"}, "ab", "refused"),
    ("format regex refuses lookahead", {"format": "regex"}, "(?=a)b", "refused"),
    (
        "draft 3 schema",
        {
            "$schema": "http://json-schema.org/draft-03/schema#",
            "properties": {"a": {"required": True}},
        },
        {},
        "refused",
    ),
]


def guarantees() -> None:
    try:
        import jsonschema_rs  # noqa: F401
    except ImportError:
        return
    print("guarantees of the project's validator, on jsonschema-rs:")
    kept = 0
    for what, schema, instance, expected in GUARANTEES:
        ours = "refused" if violations(schema, instance) else "accepted"
        assert ours == expected, (what, ours)
        theirs = _rs_outcome(schema, instance)
        kept += theirs == expected
        mark = "kept  " if theirs == expected else "BROKEN"
        print(f"  {mark} {what:<34} project {expected:<8}  jsonschema-rs {theirs}")
    ours_msg = violations({"pattern": "^b"}, "ab")[0]
    theirs_msg = rs_violations({"pattern": "^b"}, "ab")[0]
    kept += ours_msg == theirs_msg
    mark = "kept  " if ours_msg == theirs_msg else "BROKEN"
    print(f"  {mark} message wording: {ours_msg!r} vs {theirs_msg!r}")
    print(f"  {kept} of {len(GUARANTEES) + 1} kept")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="runs per case (median printed)")
    parser.add_argument("--iterations", type=int, default=10_000, help="validations per run")
    args = parser.parse_args()
    step_input(args.iterations, args.runs)
    evil_pattern(args.runs)
    guarantees()


if __name__ == "__main__":
    main()
