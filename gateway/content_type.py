"""Request bodies are JSON: any other media type is a 415 that says what to send.

Without this guard a form, multipart or XML body reached FastAPI's body parser, which
answers some of them with a 500; now every body with a Content-Type that is not JSON
(or with none at all) is refused before any route runs.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

from gateway.errors import UnsupportedMediaTypeError, answer_for

BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


def is_json(content_type: bytes) -> bool:
    """`application/json` or `application/<anything>+json`, parameters aside."""
    media_type = content_type.split(b";", 1)[0].strip().lower()
    return media_type == b"application/json" or (
        media_type.startswith(b"application/") and media_type.endswith(b"+json")
    )


def _has_body(headers: dict[bytes, bytes]) -> bool:
    length = headers.get(b"content-length")
    if length is not None:
        return length.strip() not in (b"", b"0")
    return b"transfer-encoding" in headers


class RequireJsonBody:
    """Answers 415 to a POST, PUT or PATCH whose body is not declared as JSON."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] in BODY_METHODS:
            headers = {name.lower(): value for name, value in scope.get("headers") or []}
            content_type = headers.get(b"content-type")
            if _has_body(headers) and (content_type is None or not is_json(content_type)):
                sent = content_type.decode("latin-1")[:100] if content_type else None
                response = answer_for(UnsupportedMediaTypeError(sent)).response()
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)
