"""Expressions from stored definitions are untrusted: each evaluation runs on a budget,
parsing never crashes, and what is not deterministic is refused or made so
(definitions/expressions.py)."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Iterator
from typing import Any

import jsonata
import pytest

from definitions.expressions import (
    MAX_EXPRESSION_BYTES,
    Evaluator,
    ExpressionError,
    ExpressionLimitError,
    ExpressionLimits,
    _plain,
    check,
    compiled,
    configure_limits,
    current_limits,
)

NOW = 1_700_000_000_000  # 2023-11-14T22:13:20Z

ITEMS = [
    {"id": i, "name": f"item {i}", "price": i * 1.5, "tags": ["a", "b"][: i % 3]}
    for i in range(5000)
]
BINDINGS: dict[str, Any] = {
    "input": {
        "items": ITEMS,
        "text": "Hello, Wörld! café 123 ２３ foo_bar\tbaz\u00a0qux\nline2",
        "n": 7,
        "csv": "a,b,,c",
    },
    "vars": {"seen": None},
    "steps": {"fetch": {"output": {"x": [1, 2, 3]}}},
}


def evaluator(bindings: dict[str, Any] | None = None, *, seed: int = 7) -> Evaluator:
    return Evaluator(
        BINDINGS if bindings is None else bindings,
        now_millis=lambda: NOW,
        random=random.Random(seed).random,
    )


def evaluate(body: str, bindings: dict[str, Any] | None = None) -> Any:
    return evaluator(bindings).expression("{% " + body + " %}")


def refused_by(body: str) -> ExpressionLimitError:
    started = time.perf_counter()
    with pytest.raises(ExpressionLimitError) as caught:
        evaluate(body)
    assert time.perf_counter() - started < 5, "a limit stops it early (about a second at most)"
    return caught.value


@pytest.fixture
def limits() -> Iterator[None]:
    saved = current_limits()
    yield
    configure_limits(saved)


# ------------------------------------------------------------------- the known attacks


@pytest.mark.parametrize(
    ("body", "limit"),
    [
        ("($loop := function($n){ $loop($n+1) }; $loop(0))", "fuel"),
        ("$count([1..10000].[1..10000])", "fuel"),
        ('$length($reduce([1..31], function($a,$b){$a & $a}, "x"))', "max_string_length"),
        ('$pad("", 1000000000, "a")', "max_string_length"),
        ("($f := function($n){ $n = 0 ? 0 : 1 + $f($n-1) }; $f(100000))", "max_depth"),
        ("[1..10000000]", "max_array_length"),
        ("$reduce([1..40], function($acc, $x){ [$acc, $acc] }, [1..1000])", "max_array_length"),
        ('$reduce([1..60], function($a, $x){ {"l": $a, "r": $a} }, {"x": 1})', "max_value_size"),
        ('$replace("a", /a/, "aa", 1e9)', "fuel"),
        ('$count($match($pad("", 1000000, "ab"), /(a)(b)?/))', "fuel"),
    ],
)
def test_a_runaway_expression_is_stopped_by_a_limit(body: str, limit: str) -> None:
    error = refused_by(body)
    assert error.limit == limit
    assert limit in error.reason and "move the work into a service action" in error.reason


def test_an_object_with_too_many_keys_is_refused(limits: None) -> None:
    configure_limits(ExpressionLimits(max_object_keys=100))
    assert refused_by("$merge([1..200].{$string($): $})").limit == "max_object_keys"
    assert refused_by("[1..200]{$string($): $}").limit == "max_object_keys"


def test_sharing_cannot_hide_the_size_of_a_value() -> None:
    # Each step doubles the value while adding two references: its size counts both.
    pretty = '$string($reduce([1..30], function($a, $x){ {"l": $a, "r": $a} }, {"x": 1}), true)'
    assert refused_by(pretty).limit == "max_value_size"
    deep = '$reduce([1..300], function($a, $x){ {"in": $a} }, {})'
    assert refused_by(deep).limit == "max_depth"


def test_catastrophic_backtracking_is_gone_on_re2() -> None:
    started = time.perf_counter()
    assert evaluate('$contains($pad("", 40, "a") & "b", /^(a|a)*$/)') is False
    assert evaluate('$contains($pad("", 40, "a"), /^(a|a)*$/)') is True
    assert time.perf_counter() - started < 1


def test_a_limit_error_is_an_expression_error_with_the_limit_named() -> None:
    error = refused_by('$pad("", 1000000000, "a")')
    assert isinstance(error, ExpressionError)
    assert error.limit == "max_string_length"
    assert "1048576" in error.reason


def test_a_limit_caught_inside_the_library_still_fails_the_evaluation() -> None:
    # `and`/`or` turn errors into "Unexpected"; the budget remembers it ran out.
    assert refused_by("true and ($loop := function($n){ $loop($n+1) }; $loop(0))").limit == "fuel"


def test_configured_limits_apply_to_later_evaluations(limits: None) -> None:
    configure_limits(ExpressionLimits(fuel=50))
    assert refused_by("$sum([1..100].($ * 2))").limit == "fuel"
    configure_limits(ExpressionLimits())
    assert evaluate("$sum([1..100].($ * 2))") == 10100


def test_evaluations_on_threads_share_the_parsed_expression_but_not_the_budget() -> None:
    results: dict[str, Any] = {}

    def run(name: str, body: str) -> None:
        try:
            results[name] = evaluate(body)
        except ExpressionLimitError as exc:
            results[name] = exc.limit

    loop = "($loop := function($n){ $n < $input.n ? $loop($n+1) : $n }; $loop(0))"
    threads = [
        threading.Thread(target=run, args=("runaway", loop.replace("$input.n", "1e12"))),
        *(threading.Thread(target=run, args=(f"ok{i}", loop)) for i in range(4)),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == {"runaway": "fuel", **{f"ok{i}": 7 for i in range(4)}}


# ------------------------------------------------------------------------------ parsing


@pytest.mark.parametrize(
    "body",
    [
        "/* unterminated comment",
        "[1!2]",
        "function($x)<n<n>>{$x}",
        "function($x)<(sa<n>)>>{$x}",
        "(" * 9000 + "1" + ")" * 9000,
        "(" * 4000 + "1" + ")" * 4000,
        "-" * 5000 + "1",
        "$." * 2000 + "a",
    ],
)
def test_what_crashes_the_parser_is_a_message(body: str) -> None:
    started = time.perf_counter()
    reason = check("{% " + body + " %}")
    assert isinstance(reason, str) and reason
    assert time.perf_counter() - started < 1
    with pytest.raises(ExpressionError):
        evaluate(body)


def test_an_expression_over_8_kib_is_refused_before_parsing() -> None:
    body = "1 + " * (9 * 1024 // 4) + "1"
    reason = check("{% " + body + " %}")
    assert reason == (
        f"the expression is {len(body)} bytes; the limit is {MAX_EXPRESSION_BYTES}: move the "
        "logic into a service action or split it into steps"
    )
    with pytest.raises(ExpressionLimitError) as caught:
        evaluate(body)
    assert caught.value.limit == "max_expression_bytes"


def test_nesting_within_the_limit_parses() -> None:
    assert check("{% " + "(" * 100 + "1" + ")" * 100 + " %}") is None
    assert "nests brackets" in (check("{% " + "(" * 101 + "1" + ")" * 101 + " %}") or "")


@pytest.mark.parametrize(
    "body",
    ['$contains("aab", /(a)\\1/)', '$match("ab", /a(?=b)/)', '$match("ab", /(?<=a)b/)'],
)
def test_a_regex_re2_cannot_run_is_refused_at_save_time(body: str) -> None:
    reason = check("{% " + body + " %}") or ""
    assert "cannot run on RE2" in reason and "backreferences and lookaround" in reason


@pytest.mark.parametrize(
    "body",
    ["$__evaluate_entry", "($__evaluate_exit := 0; 1)", "function($__x){ 1 }", "[1]@$__f"],
)
def test_names_starting_with_double_underscore_are_reserved(body: str) -> None:
    assert "reserved" in (check("{% " + body + " %}") or "")


def test_the_parse_cache_is_bounded() -> None:
    for i in range(1100):
        compiled(f"{i} + 1")
    assert len(compiled._entries) <= 1024
    assert compiled._text <= 128 * 1024


# ------------------------------------------------------------------------ determinism


@pytest.mark.parametrize("body", ['$eval("1 + 1")', '"1 + 1" ~> $eval', '($e := $eval; $e("1"))'])
def test_eval_is_refused_in_every_form(body: str) -> None:
    assert "$eval" in (check("{% " + body + " %}") or "")
    # A definition stored before this check cannot run it either.
    assert refused_by(body).limit == "eval"


def test_eval_in_a_string_is_only_text() -> None:
    assert check('{% "$eval(x)" %}') is None


@pytest.mark.parametrize(
    "body", ["$shuffle([1, 2, 3])", "[1, 2, 3] ~> $shuffle", "($s := $shuffle; $s([1, 2, 3]))"]
)
def test_shuffle_is_refused_at_save_time_in_every_form(body: str) -> None:
    assert "not deterministic" in (check("{% " + body + " %}") or "")


@pytest.mark.parametrize("body", ["[1..20] ~> $shuffle", "($s := $shuffle; $s([1..20]))"])
def test_shuffle_reached_anyway_uses_the_workflow_random(body: str) -> None:
    first = evaluator(seed=3).expression("{% " + body + " %}")
    assert first == evaluator(seed=3).expression("{% " + body + " %}")
    assert sorted(first) == list(range(1, 21)) and first != list(range(1, 21))


def test_to_millis_fills_missing_date_parts_from_the_workflow_clock() -> None:
    # The library takes them from the machine's clock (utcnow).
    assert evaluate('$toMillis("12:30", "[H]:[m]")') == 1_699_965_000_000


def test_a_date_picture_wider_than_the_limit_is_refused() -> None:
    assert refused_by('$fromMillis(0, "[Y,100000000]")').limit == "max_picture_width"
    assert refused_by('$now("[D,1000]")').limit == "max_picture_width"
    assert evaluate('$fromMillis(0, "[Y0001]-[M01]-[D01]")') == "1970-01-01"


def test_format_number_options_must_be_single_characters() -> None:
    with pytest.raises(ExpressionError, match="must be one character"):
        evaluate('$formatNumber(1234.5, "#,##0.0", {"exponent-separator": "(a+)+b"})')


# ------------------------------------------------------------ ordinary expressions


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("1 + 2 * 3", 7),
        ("$input.items[id < 3].name", ["item 0", "item 1", "item 2"]),
        ("$count($map($input.items, function($x){ $x.id * 2 }))", 5000),
        ("$count($filter($input.items, function($x){ $x.id % 7 = 0 }))", 715),
        ("$reduce($input.items, function($a, $x){ $a + $x.id }, 0)", 12497500),
        ("$sum([1..1000].($ * 2))", 1001000),
        ('$match("x1y22", /\\d+/).match', ["1", "22"]),
        ('$replace("John Smith", /(\\w+)\\s(\\w+)/, "$2, $1")', "Smith, John"),
        ('$split("a1b22c", /\\d+/)', ["a", "b", "c"]),
        ('$uppercase($substring("hello", 0, 3))', "HEL"),
        ("$now()", "2023-11-14T22:13:20.000Z"),
        ("$millis()", NOW),
        ("$steps.fetch.output.x[1]", 2),
        ("$exists($vars.seen)", True),
    ],
)
def test_ordinary_expressions_give_their_usual_results(body: str, expected: Any) -> None:
    assert evaluate(body) == expected


@pytest.mark.parametrize(
    "body",
    [
        "$input.items[id < 5].{'id': id, 'label': $uppercase(name)}",
        "$input.items{ $string(id % 3): $count(tags) }",
        "$input.items^(>price)[[0..2]].name",
        "$match($input.text, /(\\w+)/)",
        "$match($input.text, /[\\w]+/i)",
        "$match($input.text, /\\d+/).match",
        "$split($input.text, /\\s/)",
        '$replace($input.text, /(\\w)(\\w*)/, "$2$1")',
        '$replace($input.text, /l/, "$0$0", 2)',
        '$replace($input.text, /x/, "$1")',
        '$replace($input.text, /(l)/, "$12")',
        '$replace($input.text, "l", "$0L$$")',
        '$replace("aaa", /a*/, "-")',
        '$split("abc", /x*/)',
        "$split($input.csv, /(,)/)",
        '$match("a\\nb\\nc", /^b$/m).match',
        "$contains($input.text, /wörld/i)",
        '$join($input.items[id < 5].name, "; ")',
        "$string($input.items[3], true)",
        '$distinct([1, 1.0, "1", [1], [1.0], {"a": 1}, {"a": 1}, true])',
        '$spread([{"a": 1}, {"b": 2, "c": 3}, 5])',
        '$pad("x", -5, "ab")',
        '$formatNumber(1234.5678, "#,##0.00")',
        '$toMillis("2023-11-14", "[Y]-[M]-[D]")',
        '($input ~> |items[id < 2]|{"seen": true}|).items[seen].id',
    ],
)
def test_results_match_the_library_on_pythons_re(body: str) -> None:
    # The plain library (Python's re, its own functions) is the reference.
    expected = _plain(jsonata.Jsonata(body).evaluate(None, dict(BINDINGS)))
    assert evaluate(body) == expected
