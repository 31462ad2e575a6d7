"""Schema regexes run in linear time (RE2): an evil pattern cannot freeze the worker."""

from __future__ import annotations

import faulthandler
import sys
import threading
from collections.abc import Callable
from typing import Any

import pytest

from activities.schemas import validator, violations
from schemas.rules import UnsupportedPattern, pattern_problems, translate

EVIL = "^(a|a)*$"
BOUND_SECONDS = 10.0  # a backtracking engine takes hours: a correctness bound, not a timing
BACKSTOP_SECONDS = 30.0


def within_bound(work: Callable[[], Any]) -> Any:
    """work(), run in a thread; the test fails if it has not finished in BOUND_SECONDS.

    Python's `re` holds the GIL while it backtracks, so join() could never return to fail
    the test: faulthandler's watchdog (a C thread, no GIL needed) then dumps the stacks and
    ends the run with an error after BACKSTOP_SECONDS, rather than let it hang for hours.
    """
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["value"] = work()
        except BaseException as exc:  # handed back to the test below
            outcome["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    faulthandler.dump_traceback_later(BACKSTOP_SECONDS, exit=True, file=sys.__stderr__)
    try:
        thread.start()
        thread.join(BOUND_SECONDS)
    finally:
        faulthandler.cancel_dump_traceback_later()
    assert not thread.is_alive(), f"validation still running after {BOUND_SECONDS}s"
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


def evil_input(size: int) -> str:
    return "a" * (size - 1) + "!"


# --- the evil pattern -------------------------------------------------------------------


@pytest.mark.parametrize("size", [41, 100_000])
def test_evil_pattern_is_refused_within_the_bound(size: int) -> None:
    schema = {"type": "object", "properties": {"text": {"type": "string", "pattern": EVIL}}}
    found = within_bound(lambda: violations(schema, {"text": evil_input(size)}))
    assert len(found) == 1
    assert found[0].startswith("text: 'aaaa")
    assert found[0].endswith(f"!' does not match '{EVIL}'")


@pytest.mark.parametrize("size", [41, 100_000])
def test_evil_pattern_accepts_a_matching_input_within_the_bound(size: int) -> None:
    assert within_bound(lambda: violations({"pattern": EVIL}, "a" * size)) == []


@pytest.mark.parametrize("size", [41, 100_000])
def test_evil_pattern_properties_key_is_matched_within_the_bound(size: int) -> None:
    schema = {
        "type": "object",
        "patternProperties": {EVIL: {"type": "integer"}},
        "additionalProperties": False,
    }
    found = within_bound(lambda: violations(schema, {evil_input(size): 1, "aaa": "x"}))
    assert "aaa: 'x' is not of type 'integer'" in found
    assert any("does not match any of the regexes" in f for f in found)


def test_evil_unevaluated_properties_are_matched_within_the_bound() -> None:
    schema = {"patternProperties": {EVIL: True}, "unevaluatedProperties": False}
    found = within_bound(lambda: violations(schema, {evil_input(41): 1, "aaa": 2}))
    assert found == [
        f"(root): Unevaluated properties are not allowed ('{evil_input(41)}' was unexpected)"
    ]


def test_evil_pattern_reached_through_a_ref_to_the_root_stays_on_re2() -> None:
    # $ref "#" re-reads the root's $schema; the validator must stay the RE2 one.
    schema = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "properties": {"text": {"pattern": EVIL}, "child": {"$ref": "#"}},
    }
    found = within_bound(lambda: violations(schema, {"child": {"text": evil_input(41)}}))
    assert len(found) == 1 and found[0].startswith("child/text:")


@pytest.mark.parametrize(
    "draft",
    [
        "http://json-schema.org/draft-04/schema#",
        "http://json-schema.org/draft-06/schema#",
        "http://json-schema.org/draft-07/schema#",
        "https://json-schema.org/draft/2019-09/schema",
        "https://json-schema.org/draft/2020-12/schema",
    ],
)
def test_every_draft_is_detected_and_runs_its_patterns_on_re2(draft: str) -> None:
    schema = {"$schema": draft, "properties": {"text": {"pattern": EVIL}}}
    assert validator(schema).META_SCHEMA["$schema"] == draft
    found = within_bound(lambda: violations(schema, {"text": evil_input(41)}))
    assert len(found) == 1


def test_draft_2019_unevaluated_properties_use_re2() -> None:
    schema = {
        "$schema": "https://json-schema.org/draft/2019-09/schema",
        "patternProperties": {EVIL: True},
        "unevaluatedProperties": False,
    }
    found = within_bound(lambda: violations(schema, {evil_input(41): 1, "aaa": 2}))
    assert len(found) == 1 and "Unevaluated properties are not allowed" in found[0]


# --- ordinary patterns behave as before ------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "accepted", "refused"),
    [
        ("^abc$", ["abc"], ["xabc", "abcx", "ab"]),
        ("abc", ["abc", "xxabcxx"], ["ab", "ABC"]),  # unanchored: search semantics
        ("^[a-z]+$", ["hello"], ["Hello", "hello1", ""]),
        ("^[^0-9]*$", ["abc", ""], ["a1"]),
        (r"^\d{3}-\d{4}$", ["555-1234"], ["55-1234", "555-12345", "abc-defg"]),
        (r"^\w+$", ["snake_case1"], ["kebab-case", "with space"]),
        (r"^\S+$", ["no-space"], ["has space", "tab\there"]),
        (r"^\s*$", [" \t\n", "\u00a0\u3000"], ["x"]),
        ("^é+ü$", ["ééü"], ["eu", "éu"]),
        (r"^\u00e9$", ["é"], ["e"]),
        (r"^\p{Greek}+$", ["αβγ"], ["abc"]),
        ("^.$", ["😀", "é"], ["\n", "ab"]),
        ("^[😀-😂]$", ["😁"], ["😃"]),
        (r"^a.c$", ["abc", "a-c"], ["a\nc", "a\u2028c"]),
        ("^(?:ab|cd)+$", ["abcdab"], ["abc"]),
        ("^(?<year>[0-9]{4})-[0-9]{2}$", ["2024-05"], ["24-05"]),
        ("^a{2,3}$", ["aa", "aaa"], ["a", "aaaa"]),
        (r"^\$[0-9]+\.[0-9]{2}$", ["$10.00"], ["10.00", "$10,00"]),
        (r"^[\w.+-]+@[\w-]+\.[\w.]+$", ["a.b+c@d-e.org"], ["no-at.org", "a@b"]),
        ("^[]$", [], ["", "a", "]"]),  # ECMA: [] matches nothing
        ("^[^]$", ["a", "\n"], ["", "ab"]),  # ECMA: [^] matches any character
        ("{", ["{"], ["}"]),  # Annex B: a brace starting no quantifier is literal
    ],
)
def test_ordinary_patterns_accept_and_refuse(
    pattern: str, accepted: list[str], refused: list[str]
) -> None:
    schema = {"type": "string", "pattern": pattern}
    for text in accepted:
        assert violations(schema, text) == [], (pattern, text)
    for text in refused:
        assert violations(schema, text) == [f"(root): {text!r} does not match {pattern!r}"], (
            pattern,
            text,
        )


def test_dollar_matches_only_at_the_end_as_in_ecma() -> None:
    # Python's `$` also matched before a final newline; ECMA-262's (and RE2's) does not.
    assert violations({"pattern": "^abc$"}, "abc\n") != []


def test_pattern_ignores_non_strings() -> None:
    assert violations({"pattern": "^a$"}, 5) == []


def test_string_with_a_lone_surrogate_is_matched_not_crashed() -> None:
    assert violations({"pattern": "^a"}, "a\ud800") == []
    assert violations({"pattern": "^b"}, "a\ud800") != []


def test_pattern_re2_cannot_run_is_a_violation_not_a_crash() -> None:
    found = violations({"pattern": "^(?=a)b"}, "ab")
    assert found == [
        "(root): pattern '^(?=a)b' uses a lookahead, which this service does not run "
        "(it runs patterns in linear time with RE2); rewrite it without lookaround or "
        "backreferences"
    ]


# --- patternProperties -----------------------------------------------------------------


def test_pattern_properties_validate_the_keys_they_match() -> None:
    schema = {
        "type": "object",
        "patternProperties": {"^x-": {"type": "string"}, r"^\d+$": {"type": "integer"}},
        "additionalProperties": False,
    }
    assert violations(schema, {"x-trace": "t", "42": 1}) == []
    assert violations(schema, {"x-trace": 1}) == ["x-trace: 1 is not of type 'string'"]
    assert violations(schema, {"42": "no"}) == ["42: 'no' is not of type 'integer'"]
    assert violations(schema, {"other": 1}) == [
        "(root): 'other' does not match any of the regexes: '^\\\\d+$', '^x-'"
    ]


def test_additional_properties_schema_applies_to_unmatched_keys_only() -> None:
    schema = {
        "properties": {"id": {"type": "integer"}},
        "patternProperties": {"^x-": True},
        "additionalProperties": {"type": "boolean"},
    }
    assert violations(schema, {"id": 1, "x-a": "s", "flag": True}) == []
    assert violations(schema, {"flag": "s"}) == ["flag: 's' is not of type 'boolean'"]
    assert violations({"additionalProperties": False}, {"a": 1}) == [
        "(root): Additional properties are not allowed ('a' was unexpected)"
    ]


def test_unevaluated_properties_count_keys_matched_by_pattern_properties() -> None:
    schema = {
        "allOf": [{"patternProperties": {"^x-": True}}],
        "properties": {"id": True},
        "unevaluatedProperties": False,
    }
    assert violations(schema, {"id": 1, "x-a": 2}) == []
    assert violations(schema, {"id": 1, "y": 2}) == [
        "(root): Unevaluated properties are not allowed ('y' was unexpected)"
    ]


def test_pattern_properties_key_re2_cannot_run_is_a_violation() -> None:
    found = violations({"patternProperties": {"(a)\\1": {}}}, {"aa": 1})
    assert len(found) == 1 and "uses a backreference" in found[0]


# --- format ----------------------------------------------------------------------------


def test_format_regex_accepts_regexes_this_service_runs() -> None:
    schema = {"type": "string", "format": "regex"}
    for value in ["^[a-z]+$", EVIL, r"\d{3}", "(?<name>x)"]:
        assert violations(schema, value) == [], value


@pytest.mark.parametrize("value", ["(?=a)b", "(?<!a)b", "(a)\\1", "(unclosed", "[z-a]"])
def test_format_regex_refuses_what_this_service_cannot_run(value: str) -> None:
    assert violations({"format": "regex"}, value) == [f"(root): {value!r} is not a 'regex'"]


def test_other_formats_are_still_checked() -> None:
    assert violations({"format": "email"}, "nobody") != []
    assert violations({"format": "date"}, "2024-13-45") != []
    assert violations({"format": "date"}, "2024-05-01") == []


def test_compiled_validators_are_cached() -> None:
    schema = {"type": "string", "pattern": "^a"}
    assert validator(schema) is validator(dict(schema))


# --- pattern_problems ------------------------------------------------------------------


def test_good_schemas_have_no_pattern_problems() -> None:
    schema = {
        "type": "object",
        "properties": {
            "code": {"type": "string", "pattern": "^[A-Z]{3}$"},
            "pattern": {"type": "string", "pattern": r"^\d+$"},  # a property named pattern
        },
        "patternProperties": {"^x-": {"type": "string"}},
        "$defs": {"id": {"pattern": "^(?<n>[0-9]+)$"}},
        "enum": [{"pattern": "(?=data, not a schema)"}],
    }
    assert pattern_problems(schema) == []
    assert pattern_problems({}) == []
    assert pattern_problems(True) == []


def test_lookahead_is_found_at_its_location() -> None:
    schema = {"properties": {"code": {"type": "string", "pattern": "(?=a)b"}}}
    assert pattern_problems(schema) == [
        (
            ["properties", "code", "pattern"],
            "pattern '(?=a)b' uses a lookahead, which this service does not run (it runs "
            "patterns in linear time with RE2); rewrite it without lookaround or "
            "backreferences",
        )
    ]


def test_problems_are_found_in_nested_subschemas() -> None:
    schema = {
        "patternProperties": {"^(?!x)": {"type": "string"}},
        "$defs": {"pair": {"items": [{"pattern": r"(a)\1"}], "not": {"pattern": "(?<=a)b"}}},
        "properties": {
            "list": {"type": "array", "items": {"pattern": r"\k<n>(?<n>a)"}},
            "choice": {"anyOf": [{"pattern": "ok"}, {"pattern": "x{5000}"}]},
            "map": {"additionalProperties": {"patternProperties": {"(?<!a)": {}}}},
        },
    }
    found = dict((tuple(loc), msg) for loc, msg in pattern_problems(schema))
    assert set(found) == {
        ("patternProperties", "^(?!x)"),
        ("$defs", "pair", "items", 0, "pattern"),
        ("$defs", "pair", "not", "pattern"),
        ("properties", "list", "items", "pattern"),
        ("properties", "choice", "anyOf", 1, "pattern"),
        ("properties", "map", "additionalProperties", "patternProperties", "(?<!a)"),
    }
    assert (
        "patternProperties key '^(?!x)' uses a lookahead" in found[("patternProperties", "^(?!x)")]
    )
    assert "uses a backreference" in found[("$defs", "pair", "items", 0, "pattern")]
    assert "uses a lookbehind" in found[("$defs", "pair", "not", "pattern")]
    assert "uses a backreference" in found[("properties", "list", "items", "pattern")]
    assert "1000 repetitions" in found[("properties", "choice", "anyOf", 1, "pattern")]


def test_invalid_regexes_are_problems_too() -> None:
    [(loc, msg)] = pattern_problems({"items": {"pattern": "(unclosed"}})
    assert loc == ["items", "pattern"]
    assert msg.startswith("pattern '(unclosed' is not a regex this service can run")


# --- translation details ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "problem"),
    [
        ("(?=a)", "lookahead"),
        ("(?!a)", "lookahead"),
        ("(?<=a)", "lookbehind"),
        ("(?<!a)", "lookbehind"),
        (r"(a)\1", "backreference"),
        (r"(?<n>a)\k<n>", "backreference"),
        (r"\Z", "escape \\Z"),
        ("a{1001}", "1000 repetitions"),
    ],
)
def test_translate_names_what_re2_cannot_run(pattern: str, problem: str) -> None:
    with pytest.raises(UnsupportedPattern) as caught:
        translate(pattern)
    assert problem in str(caught.value)
