"""Schemathesis hooks for tests/fuzz/schemathesis.toml (loaded by the CLI)."""

from __future__ import annotations

import uuid
from typing import Any

import schemathesis
from hypothesis.internal import lambda_sources


@schemathesis.hook
def before_call(context: Any, case: Any, kwargs: dict[str, Any]) -> None:
    """A fresh Idempotency-Key for every request that sends one: a key sent again with
    another request is a 422 by design (tests/gateway/test_idempotency.py), which says
    nothing about the request the fuzzer meant to send."""
    headers = case.headers or {}
    for name in list(headers):
        if name.lower() == "idempotency-key":
            headers[name] = uuid.uuid4().hex


_describe_lambda = lambda_sources.lambda_description


def _lambda_description(function: Any) -> str:
    # CPython 3.11.7 fails to parse some of schemathesis' strategy sources, which
    # Hypothesis parses to describe a lambda, with "SystemError: AST constructor
    # recursion depth mismatch"; the description is for messages only.
    try:
        return _describe_lambda(function)
    except SystemError:
        return "lambda: <source not shown>"


lambda_sources.lambda_description = _lambda_description
