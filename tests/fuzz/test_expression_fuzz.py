"""Property-based tests of the expression checks: random token soup, and valid
expressions truncated and mutated, never make the check raise, and never make the
gateway answer anything but 200 or 422.

Most examples run in-process against `definitions.expressions.check`; a few dozen go
through `POST /api/workflows/validate` of the shared stack (SQLite only: validate
stores nothing). Under a fixed seed and without Hypothesis' example database, so a run
is repeatable and writes nothing to the working tree.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from definitions.expressions import check
from harness.stack import Stack

TOKENS = [
    "$", "$$", "$x", "$input", "$steps.a.output", "$vars", "$item", "$index", "$pad",
    "$match", "$map", "$sum", "$string", "$eval", "$shuffle", "$now()", "(", ")", "[", "]",
    "{", "}", "function", "λ", "<", ">", "<n>", "<s-:n>", "<a<n>>", "/*", "*/", '"', "'",
    "`", "..", "~>", ":=", "?", ":", "??", "?:", ";", ",", ".", "&", "+", "-", "*", "**",
    "/", "%", "=", "!=", "<=", ">=", "!", "and", "or", "in", "true", "false", "null", "^(",
    "#", "@", "|", "\\", "/a*/", "/[/", "/(a|b)+/i", "0", "1", "42", "1e308", "-0.5", "1e",
    "a", "b", "Price", "`a b`", "'s'", '"s"', " ", "\n",
]  # fmt: skip
"""Pieces of JSONata, valid and not, that token soup is made of."""

VALID = [
    "$input.document_url",
    "$steps.`extract-text`.output.text",
    "$count($steps.each.output[$exists(error)])",
    "[$steps.each.output.($exists(sentiment) ? sentiment : null)]",
    "$input.amount > 1000 ? 'big' : 'small'",
    "'HTTP ' & $error.status_code",
    "function($x)<n:n>{$x * 2}",
    "$map([1, 2, 3], function($v, $i) { $v + $i })",
    "$reduce([1, 2, 3], function($a, $b) { $a + $b }, 0)",
    "$sort($input.items, function($l, $r) { $l.price > $r.price })",
    "($a := 1; $b := [1..5]; $a + $sum($b))",
    "{'a': 1, 'b': [1, 2, {'c': null}], 'd': $input.x}",
    "$pad('x', 5, '#') & $substring('hello', 1, 2)",
    "$match('abc', /a.c/i)[0].match",
    "$replace('abc', /b+/, 'x') ~> $uppercase()",
    "Account.Order[0].Product.(Price * Quantity)",
    "$input.items[price > 10]{`name`: price}",
    "/* a comment */ $input.x ?: 'default'",
    "$input.x ?? 0",
    "**.name[0]",
    "$formatNumber(1234.5, '#,##0.00') & $string($millis())",
    "$each({'a': 1}, function($v, $k) { $k & '=' & $v })",
    "$zip([1, 2], [3, 4])[1][0]",
    "x@$o#$i.{'o': $o, 'i': $i}",
    '"double" & \'single\' & "with \\"escape\\""',
    "-$abs(-1) * 2 % 3 / 4",
    "$not(true) and false or $boolean(0) in [false]",
    "[1..3].($ * $)",
    "$lookup({'a': 1}, 'a') = 1 and $keys({'a': 1}) != []",
    "$string($toMillis('2020-01-01T00:00:00Z'))",
]
"""Expressions that parse: cut short or mutated they make the likely parser mistakes."""

TEXT = st.text(alphabet=st.sampled_from(sorted(set("".join(TOKENS)) | set("éü€😀\x00\t"))))


def _token_soup() -> st.SearchStrategy[str]:
    return st.lists(
        st.tuples(st.sampled_from(TOKENS), st.sampled_from(["", "", " "])), max_size=40
    ).map(lambda pieces: "".join(token + gap for token, gap in pieces))


@st.composite
def _mutated(draw: st.DrawFn) -> str:
    """A valid expression cut short, or with pieces deleted, inserted and repeated."""
    text = draw(st.sampled_from(VALID))
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        at = draw(st.integers(min_value=0, max_value=len(text)))
        kind = draw(st.sampled_from(["truncate", "delete", "insert", "repeat", "close"]))
        if kind == "truncate":
            text = text[:at]
        elif kind == "delete":
            text = text[:at] + text[at + draw(st.integers(min_value=1, max_value=5)) :]
        elif kind == "insert":
            text = text[:at] + draw(st.sampled_from(TOKENS)) + text[at:]
        elif kind == "repeat":
            text = text[:at] * draw(st.integers(min_value=2, max_value=4)) + text[at:]
        else:  # unbalanced: an opening without its close, or a close too many
            text = draw(st.sampled_from(["(", "[", "{", "function(", "/*", '"'])) + text
    return text


EXPRESSIONS = st.one_of(_token_soup(), _mutated(), TEXT.filter(lambda t: len(t) < 60))

PLACES = {
    "succeed output": lambda e: {"steps": [{"id": "s", "type": "succeed", "output": e}]},
    "top-level output": lambda e: {
        "steps": [{"id": "s", "type": "succeed"}],
        "output": {"v": e},
    },
    "fail cause": lambda e: {"steps": [{"id": "f", "type": "fail", "error": "E", "cause": e}]},
    "wait seconds": lambda e: {"steps": [{"id": "w", "type": "wait", "seconds": e}]},
    "choice when": lambda e: {
        "steps": [
            {"id": "c", "type": "choice", "choices": [{"when": e, "next": "s"}], "default": "s"},
            {"id": "s", "type": "succeed"},
        ]
    },
}


@settings(max_examples=3000, deadline=None, database=None, derandomize=True)
@given(EXPRESSIONS)
def test_check_answers_a_reason_or_none_and_never_raises(expression: str) -> None:
    reason = check("{% " + expression + " %}")
    assert reason is None or (isinstance(reason, str) and reason)


@pytest.fixture(scope="module")
def gateway(stack: Stack) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=stack.url, timeout=30) as client:
        yield client


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@settings(
    max_examples=60,
    deadline=None,
    database=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(expression=EXPRESSIONS, place=st.sampled_from(sorted(PLACES)))
def test_validate_answers_200_or_422_never_5xx(
    gateway: httpx.Client, expression: str, place: str
) -> None:
    body: dict[str, Any] = {"name": "fuzzed", **PLACES[place]("{% " + expression + " %}")}
    answer = gateway.post("/workflows/validate", json=body)
    assert answer.status_code in (200, 422), (place, expression, answer.text[:500])
