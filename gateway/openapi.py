"""The OpenAPI document states this gateway's own limits, as its settings set them.

Routes declare what holds everywhere (`?timeout=` at most 3600 s); a limit that a
setting lowers (MAX_EXECUTE_TIMEOUT) is written into the document when it is built, so
a client generated from it, or a fuzzer, never sends what the gateway refuses.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI

EXECUTE_SUFFIX = "/execute"


def _cap_maximum(schema: Any, limit: float) -> None:
    if isinstance(schema, dict):
        if "maximum" in schema:
            schema["maximum"] = min(schema["maximum"], limit)
        for value in schema.values():
            _cap_maximum(value, limit)
    elif isinstance(schema, list):
        for value in schema:
            _cap_maximum(value, limit)


def cap_execute_timeout(document: dict[str, Any], limit: float) -> dict[str, Any]:
    """Set the maximum of every execute operation's `timeout` query parameter to `limit`."""
    for path, operations in document.get("paths", {}).items():
        if not path.endswith(EXECUTE_SUFFIX):
            continue
        for operation in operations.values():
            for parameter in operation.get("parameters", []):
                if parameter.get("in") == "query" and parameter.get("name") == "timeout":
                    _cap_maximum(parameter.get("schema"), limit)
                    parameter["description"] = (
                        f"seconds to wait for the end, at most {limit:g} (MAX_EXECUTE_TIMEOUT)"
                    )
    return document


def install(app: FastAPI, *, max_execute_timeout: float) -> None:
    """Make `app.openapi()` answer the document with this gateway's limits."""
    build: Callable[[], dict[str, Any]] = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = cap_execute_timeout(build(), max_execute_timeout)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
