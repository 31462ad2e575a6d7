"""JSON values the stack can store and send back, and the ones it must refuse up front.

Python's JSON parser accepts more than the stack can carry: a lone surrogate
(`"\\udc00"`) is no UTF-8 and fails when the answer is encoded; `NaN` and `Infinity`
are no JSON and fail when the answer is rendered or when PostgreSQL stores them; a NUL
character is refused by PostgreSQL's text and JSONB; a value nested hundreds of levels
deep overflows pydantic's serializer (255 levels) and recursive code. Found in a request,
each is a 422 naming where it is, instead of a 500 or a misleading 503 later.
"""

from __future__ import annotations

import json
import math
from typing import Any

STEP_VALUE_LIMIT = 4096
"""Bytes of serialized JSON a step's `input` or `output` is answered with at most; a
larger value is answered as `{"truncated": true, "size": <bytes>, "preview": <the first
STEP_VALUE_LIMIT bytes of its JSON>}` (the record's steps and the interpreter's journal)."""

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


def bounded(value: Any, limit: int = STEP_VALUE_LIMIT) -> Any:
    """A decoded payload as a step answers it: itself, or when its JSON is over `limit`
    bytes, `{"truncated": true, "size": <its bytes>, "preview": <its JSON's start>}`,
    itself at most `limit` bytes of JSON."""
    if value is None:
        return None
    try:
        text = _compact(value)
    except (TypeError, ValueError):
        text = repr(value)
    encoded = text.encode("utf-8", errors="replace")
    if len(encoded) <= limit:
        return value
    keep = limit
    while True:
        preview = encoded[: max(keep, 0)].decode("utf-8", errors="ignore")
        answer = {"truncated": True, "size": len(encoded), "preview": preview}
        over = len(_compact(answer).encode("utf-8")) - limit
        if over <= 0 or keep <= 0:
            return answer
        keep -= over


def _compact(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str)
