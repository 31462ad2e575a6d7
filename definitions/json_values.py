"""JSON values the stack can store and send back, and the ones it must refuse up front.

Python's JSON parser accepts more than the stack can carry: a lone surrogate
(`"\\udc00"`) is no UTF-8 and fails when the answer is encoded; `NaN` and `Infinity`
are no JSON and fail when the answer is rendered or when PostgreSQL stores them; a NUL
character is refused by PostgreSQL's text and JSONB; a value nested hundreds of levels
deep overflows pydantic's serializer (255 levels) and recursive code. Found in a request,
each is a 422 naming where it is, instead of a 500 or a misleading 503 later.
"""

from __future__ import annotations

import math
from typing import Any

MAX_DEPTH = 64
"""Nesting levels allowed in a request value (schemas have their own, lower limit)."""


def _text_problem(text: str, *, nul: bool) -> str | None:
    if nul and "\x00" in text:
        return "contains a NUL character (\\u0000), which the registry cannot store; remove it"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "contains a lone surrogate (\\ud800-\\udfff), which is not valid Unicode"
    return None


def _at(where: str) -> str:
    return (where if len(where) <= 120 else f"{where[:120]}...") or "the value"


def unstorable(value: Any, *, nul: bool = True) -> str | None:
    """Why `value` cannot be stored and answered as JSON, or None if it can.

    Args:
        value: a parsed JSON value (dicts, lists, strings, numbers, booleans, None).
        nul: also refuse NUL characters (values kept in the registry database).

    Returns:
        A message naming the first offending place, e.g. `metadata/owner contains ...`.
    """
    pending: list[tuple[str, int, Any]] = [("", 0, value)]
    while pending:
        where, depth, item = pending.pop()
        if isinstance(item, str):
            problem = _text_problem(item, nul=nul)
            if problem:
                return f"{_at(where)} {problem}"
        elif isinstance(item, float) and not math.isfinite(item):
            return f"{_at(where)} is {item}; JSON has no NaN or Infinity"
        elif isinstance(item, dict | list):
            if depth >= MAX_DEPTH:
                return f"{_at(where)} nests deeper than {MAX_DEPTH} levels"
            children = item.items() if isinstance(item, dict) else enumerate(item)
            for key, child in children:
                name = str(key)
                problem = _text_problem(name, nul=nul)
                if problem:
                    return f"a key in {_at(where) if where else 'the object'} {problem}"
                pending.append((f"{where}/{name}" if where else name, depth + 1, child))
    return None


def answerable(value: Any) -> Any:
    """`value` if it renders as JSON; else a string that does (lone surrogates escaped,
    NaN and infinities spelled out). Containers come back as None: never echoed."""
    if isinstance(value, str):
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict | list | tuple):
        return None
    return value
