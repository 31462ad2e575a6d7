"""JSONata expressions in definitions: parse once, evaluate deterministically.

A string `"{% <expr> %}"` in an expression field is evaluated against the bindings
`$input`, `$context`, `$steps`, `$vars`, `$execution` (and `$result`, `$error`, `$item`,
`$index` where they apply); any other value is a literal, and objects and lists are
evaluated member by member. Evaluation happens in workflow code, so `$now()`,
`$millis()` and `$random()` are bound to the workflow's deterministic clock and random,
and functions that would read anything else are refused at save time.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from functools import lru_cache
from typing import Any

import jsonata
from jsonata import jexception

from definitions.language import expression_body, is_expression

REFUSED_FUNCTIONS = ("shuffle",)
"""Functions whose result depends on more than the bindings and the workflow's own
deterministic clock and random."""

_STEP_REFERENCE = re.compile(r"\$steps\.(?:`([^`]+)`|([A-Za-z0-9_]+))")
_FUNCTION_CALL = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)\s*\(")


class ExpressionError(ValueError):
    """An expression that does not parse, or that failed while evaluating."""

    def __init__(self, expression: str, message: str) -> None:
        super().__init__(f"expression {expression!r}: {message}")
        self.expression = expression
        self.reason = message


@lru_cache(maxsize=2048)
def compiled(body: str) -> jsonata.Jsonata:
    """The parsed expression (cached: a definition's expressions parse once per worker)."""
    try:
        return jsonata.Jsonata(body)
    except jexception.JException as exc:
        raise ExpressionError(body, _describe(exc)) from None


def _describe(exc: BaseException) -> str:
    message = getattr(exc, "message", None) or str(exc) or type(exc).__name__
    return str(message)


def check(value: str) -> str | None:
    """Why an expression string cannot be used, or None: it must parse, and call no
    refused function."""
    body = expression_body(value)
    if not body:
        return "the expression is empty"
    try:
        compiled(body)
    except ExpressionError as exc:
        return f"does not parse: {exc.reason}"
    for name in _FUNCTION_CALL.findall(body):
        if name in REFUSED_FUNCTIONS:
            return f"${name}() is not deterministic, so a workflow cannot use it"
    return None


def step_references(value: str) -> set[str]:
    """The step ids an expression reads through `$steps.<id>` (or $steps.`<id>`)."""
    return {quoted or plain for quoted, plain in _STEP_REFERENCE.findall(value)}


def expressions_in(value: Any) -> list[str]:
    """Every `{% %}` string inside a value (an object's members, a list's items)."""
    if is_expression(value):
        return [value]
    if isinstance(value, dict):
        return [e for member in value.values() for e in expressions_in(member)]
    if isinstance(value, list):
        return [e for item in value for e in expressions_in(item)]
    return []


class Evaluator:
    """Evaluates values against one set of bindings, with the workflow's clock and random.

    Args:
        bindings: variable name (without `$`) -> value.
        now_millis: the workflow's current time, in milliseconds since the epoch.
        random: the workflow's deterministic random number generator (0 <= n < 1).
    """

    def __init__(
        self,
        bindings: Mapping[str, Any],
        *,
        now_millis: Callable[[], int],
        random: Callable[[], float],
    ) -> None:
        self._bindings = dict(bindings)
        self._bindings["now"] = jsonata.Jsonata.JLambda(
            lambda picture=None, timezone=None: _format_millis(now_millis(), picture, timezone)
        )
        self._bindings["millis"] = jsonata.Jsonata.JLambda(lambda: now_millis())
        self._bindings["random"] = jsonata.Jsonata.JLambda(lambda: random())

    def with_bindings(self, **extra: Any) -> Evaluator:
        child = object.__new__(Evaluator)
        child._bindings = {**self._bindings, **extra}
        return child

    def value(self, value: Any) -> Any:
        """The value with every expression in it evaluated."""
        if is_expression(value):
            return self.expression(value)
        if isinstance(value, dict):
            return {key: self.value(member) for key, member in value.items()}
        if isinstance(value, list):
            return [self.value(item) for item in value]
        return value

    def expression(self, value: str) -> Any:
        body = expression_body(value)
        try:
            result = compiled(body).evaluate(None, self._bindings)
        except ExpressionError:
            raise
        except Exception as exc:  # noqa: BLE001 - JSONata raises many types; name it
            raise ExpressionError(body, _describe(exc)) from None
        return _plain(result)


def _format_millis(millis: int, picture: str | None, timezone: str | None) -> str | None:
    from jsonata.functions import Functions

    return Functions.datetime_from_millis(millis, picture, timezone)


def _plain(value: Any) -> Any:
    """JSONata's sequences and lambdas as plain JSON values (sequences are lists)."""
    if isinstance(value, list):
        return [_plain(item) for item in value]
    if isinstance(value, dict):
        return {str(key): _plain(member) for key, member in value.items()}
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return value
    if callable(value):
        return None
    return value
