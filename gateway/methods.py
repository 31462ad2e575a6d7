"""405 answers name every method the path supports in `Allow`.

FastAPI makes one route per method, and Starlette's 405 lists the methods of the first
route whose path matched only: `Allow: POST` on a path that also answers GET. This
middleware writes the methods the OpenAPI document gives that path instead.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

_METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}


def _path_pattern(template: str) -> re.Pattern[str]:
    parts = re.split(r"(\{[^}/]+\})", template)
    return re.compile(
        "".join("[^/]+" if part.startswith("{") else re.escape(part) for part in parts) + "$"
    )


class AllowEveryMethod:
    """Rewrites the `Allow` header of a 405 from the operations documented for its path."""

    def __init__(self, app: ASGIApp, *, document: Callable[[], dict[str, Any]]) -> None:
        self.app = app
        self.document = document
        self._paths: list[tuple[re.Pattern[str], list[str], bool]] | None = None

    def allowed(self, path: str) -> list[str]:
        if self._paths is None:
            self._paths = [
                (
                    _path_pattern(template),
                    sorted(m.upper() for m in operations if m in _METHODS),
                    "{" not in template,
                )
                for template, operations in self.document().get("paths", {}).items()
            ]
        matching = [
            (documented, static)
            for pattern, documented, static in self._paths
            if pattern.match(path)
        ]
        # A path written out in full (/workflows/validate) is its own resource, even where a
        # template (/workflows/{workflow_id}) would also match it.
        if any(static for _, static in matching):
            matching = [(documented, static) for documented, static in matching if static]
        return sorted({method for documented, _ in matching for method in documented})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def rewrite(message: Message) -> None:
            if message["type"] == "http.response.start" and message["status"] == 405:
                methods = self.allowed(scope["path"])
                if methods:
                    headers = [
                        (name, value)
                        for name, value in message.get("headers", [])
                        if name.lower() != b"allow"
                    ]
                    headers.append((b"allow", ", ".join(methods).encode()))
                    message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, rewrite)
