"""Fault tests get their own Temporal dev server and stack: they kill and restart them."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from core.devserver import DevServer
from harness.stack import Stack, start_dev_server, wait_for_workers


@pytest.fixture(scope="module")
def fault_temporal(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevServer]:
    folder = tmp_path_factory.mktemp("fault-temporal")
    server = start_dev_server(folder)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def fault_stack(
    fault_temporal: DevServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    logs = tmp_path_factory.mktemp("fault-stack")
    stack = Stack(
        temporal_address=fault_temporal.address,
        database_url=f"sqlite+aiosqlite:///{logs / 'registry.db'}",
        log_dir=logs,
    )
    stack.start_worker()
    stack.start_gateway()
    wait_for_workers(stack.url)
    yield stack
    stack.stop()
