"""Schemathesis over every operation of the gateway's OpenAPI schema.

The fuzzer talks to a gateway and a worker of its own: their registry is a SQLite file
of this module (so what the fuzzer registers stays out of the other tests' lists), and
both run with ALLOWED_HOSTS set to loopback, so any execution the fuzzer manages to start
calls nothing but this machine; an endpoint elsewhere fails at once with OutboundRefused.

Each response must be no server error (5xx) and must match the schema: a documented
status code, a documented content type, and a body of the documented shape.

Cases come from schemathesis' Hypothesis strategies (`APIOperation.as_strategy`), positive
and negative, run under a fixed seed (`derandomize`), one operation after the other; the
`schema.parametrize()` pytest integration is not used because it breaks on pytest >= 9.2
(it sets `Function._nodeid`, which pytest no longer has).
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.support.stack import Stack

# One run is enough to keep CI time down, and the fuzzer's registry is its own SQLite file
# anyway. What only PostgreSQL refuses (NUL characters) is checked on both backends by
# tests/limits; a run of this module against PostgreSQL found nothing more.
pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)

MAX_EXAMPLES = 200
"""Generated cases per operation, positive and negative together (Hypothesis stops early
when an operation has fewer distinct cases). About 3,400 requests over 18 operations,
about a minute on two cores."""

LOOPBACK = "127.0.0.0/8,::1/128,localhost"
MAX_WAIT_SECONDS = 2.0
"""Cap on the execute endpoints' `timeout` query parameter: an execution the fuzzer starts
against a loopback port nobody listens on retries for as long as its (fuzzed) retry policy
says, and the endpoint would otherwise wait up to an hour for it."""

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


@pytest.fixture(scope="module")
def fuzz_gateway(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A worker and a gateway on their own task queue and registry, calling only loopback."""
    env = {
        "TASK_QUEUE": f"fuzz-{uuid.uuid4().hex[:8]}",
        "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('fuzz') / 'registry.db'}",
        "ALLOWED_HOSTS": LOOPBACK,
        "DEFAULT_EXECUTE_TIMEOUT": str(MAX_WAIT_SECONDS),
    }
    with stack.pair(**env) as url:
        yield url


def _cap_wait(case: schemathesis.Case) -> None:
    timeout = (case.query or {}).get("timeout")
    if isinstance(timeout, int | float) and not isinstance(timeout, bool):
        case.query = {**case.query, "timeout": min(timeout, MAX_WAIT_SECONDS)}


def _fuzz(operation: Any, session: requests.Session, sent: Counter[str]) -> None:
    """Run MAX_EXAMPLES cases of one operation; raises on the first failing check."""
    strategy = st.one_of(
        operation.as_strategy(GenerationMode.POSITIVE),
        operation.as_strategy(GenerationMode.NEGATIVE),
    )

    @settings(
        max_examples=MAX_EXAMPLES,
        derandomize=True,
        database=None,
        deadline=None,
        phases=[Phase.explicit, Phase.generate, Phase.shrink],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=strategy)
    def run(case: schemathesis.Case) -> None:
        _cap_wait(case)
        sent[operation.label] += 1
        case.call_and_validate(session=session, checks=CHECKS, timeout=30)

    run()


def test_gateway_answers_every_operation_within_its_schema(fuzz_gateway: str) -> None:
    root = fuzz_gateway.removesuffix("/api")
    document = httpx.get(f"{root}/openapi.json", timeout=10).json()
    declared = {
        f"{method.upper()} {path}"
        for path, operations in document["paths"].items()
        for method in operations
    }
    schema = schemathesis.openapi.from_url(f"{root}/openapi.json")
    schema.config.update(base_url=root)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert {operation.label for operation in operations} == declared

    sent: Counter[str] = Counter()
    failures: dict[str, str] = {}
    with requests.Session() as session:
        for operation in operations:
            try:
                _fuzz(operation, session, sent)
            # schemathesis raises its check failures as a BaseExceptionGroup.
            except (Exception, BaseExceptionGroup) as exc:  # noqa: BLE001 - report them all
                failures[operation.label] = f"{type(exc).__name__}: {exc}"[:3000]

    print(f"fuzzed {len(operations)} operations with {sum(sent.values())} requests")
    assert not failures, "\n\n".join(f"== {label}\n{text}" for label, text in failures.items())
    assert set(sent) == declared, f"operations never called: {sorted(declared - set(sent))}"
