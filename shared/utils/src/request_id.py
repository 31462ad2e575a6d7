"""The request id of the work in progress, kept in a context variable.

A web application sets it once per incoming request (`request_id_scope`), and
everything below reads it: the Service Integration client sends it as
`X-Request-ID` on every request, so the gateway's logs and the caller's line up.
Each asyncio task sees the id of the context it was created in.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar, Token

REQUEST_ID_HEADER = "X-Request-ID"

_request_id: ContextVar[str | None] = ContextVar("request_id", default=None)


def new_request_id() -> str:
    """A fresh request id (a UUID4 in its canonical text form)."""
    return str(uuid.uuid4())


def current_request_id() -> str | None:
    """The request id of the current context, or None if none was set."""
    return _request_id.get()


def get_request_id() -> str:
    """The request id of the current context; a new one is made and set if there is none.

    Returns:
        The id, the same for every later call in this context.
    """
    value = _request_id.get()
    if value is None:
        value = new_request_id()
        _request_id.set(value)
    return value


def set_request_id(value: str) -> Token[str | None]:
    """Set the request id of the current context.

    Returns:
        A token for `reset_request_id`, to restore the previous id.
    """
    return _request_id.set(value)


def reset_request_id(token: Token[str | None]) -> None:
    """Restore the request id that was current before `set_request_id` returned `token`."""
    _request_id.reset(token)


@contextmanager
def request_id_scope(value: str | None = None) -> Iterator[str]:
    """Use `value` (or a new id) as the request id inside the `with` block.

    Example:
        >>> with request_id_scope("req-123"):
        ...     get_request_id()
        'req-123'
    """
    token = _request_id.set(value or new_request_id())
    try:
        yield _request_id.get() or ""
    finally:
        _request_id.reset(token)
