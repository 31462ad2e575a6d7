"""Schemathesis over every operation of the gateway's OpenAPI schema, as CI runs it:
every phase (examples, coverage, fuzzing, stateful) and every check.

The fuzzer talks to a gateway and a worker of its own: their registry is a SQLite file
of this module (so what the fuzzer registers stays out of the other tests' lists), and
both run with ALLOWED_HOSTS set to loopback, so any execution the fuzzer manages to start
calls nothing but this machine; an endpoint elsewhere fails at once with OutboundRefused.
MAX_EXECUTE_TIMEOUT=2 bounds every execute (the schema says so, and the fuzzer keeps to
it), and tests/fuzz/schemathesis.toml says what the schema cannot (rules of state
answered 422, a fresh Idempotency-Key per request, the long poll's length).

The run is the `schemathesis run` command, under a fixed seed, on two workers; it fails
on any finding: a server error, an answer outside the schema (status, content type,
headers, body), a valid request refused or an invalid one accepted, a wrong `Allow`, a
resource still there after its DELETE, and the rest of `--checks all`.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from harness.stack import Stack

# The fuzzer's registry is its own SQLite file anyway. What only PostgreSQL refuses (NUL
# characters) is checked on both backends by tests/limits.
pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)

ROOT = Path(__file__).resolve().parents[2]
CONFIG = Path(__file__).with_name("schemathesis.toml")
PHASES = "examples,coverage,fuzzing,stateful"
MAX_EXAMPLES = 40
"""Fuzzed cases per operation and mode; with the other phases about 2,500 requests over
20 operations, under a minute on two cores."""
SEED = 1
LOOPBACK = "127.0.0.0/8,::1/128,localhost"
MAX_EXECUTE_SECONDS = "2"

RUN_SCHEMATHESIS = (
    "import sys; sys.setrecursionlimit(20_000); "
    "from schemathesis.cli import schemathesis; schemathesis()"
)
"""The `schemathesis` command, with room on the stack for Hypothesis' deeply nested
strategies of our free-form JSON fields."""


@pytest.fixture(scope="module")
def fuzz_gateway(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A worker and a gateway on their own task queue and registry, calling only loopback."""
    env = {
        "TASK_QUEUE": f"fuzz-{uuid.uuid4().hex[:8]}",
        "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('fuzz') / 'registry.db'}",
        "ALLOWED_HOSTS": LOOPBACK,
        "DEFAULT_EXECUTE_TIMEOUT": MAX_EXECUTE_SECONDS,
        "MAX_EXECUTE_TIMEOUT": MAX_EXECUTE_SECONDS,
    }
    with stack.pair(**env) as url:
        yield url


def test_gateway_passes_every_phase_and_every_check(fuzz_gateway: str, tmp_path: Path) -> None:
    root = fuzz_gateway.removesuffix("/api")
    document = httpx.get(f"{root}/openapi.json", timeout=10).json()
    operations = sum(len(methods) for methods in document["paths"].values())
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            RUN_SCHEMATHESIS,
            "--config-file",
            str(CONFIG),
            "run",
            f"{root}/openapi.json",
            "--phases",
            PHASES,
            "--checks",
            "all",
            "--max-examples",
            str(MAX_EXAMPLES),
            "--seed",
            str(SEED),
            "--workers",
            "2",
            "--request-timeout",
            "30",
            "--no-color",
            "--report",
            "ndjson",
            "--report-dir",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    output = result.stdout + result.stderr
    print(output[-6000:])
    assert result.returncode == 0, output[-20000:]
    tested = re.search(r"Tested: (\d+)", output)
    assert tested is not None and int(tested.group(1)) == operations, output[-3000:]
