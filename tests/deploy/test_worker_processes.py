"""`service-integration worker --processes 2`: two workers on one task queue, supervised.

Against the test dev server, with a gateway in front: the health endpoint sees two
pollers, the steps of a batch of executions run on both; a child killed with SIGKILL
is started again; SIGTERM to the supervisor lets the children finish the activity in
flight before it exits.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from harness.stack import Stack, wait_for_workers
from tests.support.builders import action, chain, create_workflow, register, service

PROCESSES = 2


def supervisor_command() -> list[str]:
    """The console script installed beside this Python, else `python -m cli`."""
    script = Path(sys.executable).parent / "service-integration"
    if script.exists():
        return [str(script), "worker", "--processes", str(PROCESSES)]
    return [sys.executable, "-m", "cli", "worker", "--processes", str(PROCESSES)]


def children_of(pid: int) -> set[int]:
    """Pids of the live (not zombie) processes whose parent is `pid`, from /proc."""
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError):
            continue
        state, parent = stat[0], int(stat[1])
        if parent == pid and state != "Z":
            found.add(int(entry.name))
    return found


def wait_for_children(
    pid: int, count: int, *, other_than: frozenset[int] = frozenset(), timeout: float = 30
) -> set[int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = children_of(pid)
        if len(found) == count and not found & other_than:
            return found
        time.sleep(0.1)
    raise TimeoutError(f"{pid} has children {children_of(pid)}, wanted {count} new ones")


def pollers(url: str) -> list[str]:
    return httpx.get(f"{url}/health", timeout=5).json()["components"]["workers"]["pollers"]


def wait_for_poller(url: str, pid: int, *, timeout: float = 30) -> list[str]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = pollers(url)
        if any(identity.split("@")[0] == str(pid) for identity in found):
            return found
        time.sleep(0.2)
    raise TimeoutError(f"no poller with pid {pid} in {pollers(url)}")


@pytest.fixture(scope="module")
def supervised(temporal, tmp_path_factory) -> Iterator[tuple[Stack, subprocess.Popen[bytes]]]:
    folder = tmp_path_factory.mktemp("processes")
    stack = Stack(
        temporal_address=temporal.address,
        database_url=f"sqlite+aiosqlite:///{folder / 'registry.db'}",
        log_dir=folder,
    )
    stack.start_gateway()  # it migrates the registry before the workers read it
    log = open(folder / "supervisor.log", "ab")  # noqa: SIM115
    supervisor = subprocess.Popen(
        supervisor_command(), env=stack.env(), stdout=log, stderr=subprocess.STDOUT
    )
    try:
        wait_for_workers(stack.url, count=PROCESSES, timeout=60)
        yield stack, supervisor
    finally:
        if supervisor.poll() is None:
            supervisor.send_signal(signal.SIGTERM)
            supervisor.wait(30)
        stack.stop()
        log.close()


def supervisor_log(stack: Stack) -> str:
    return (stack.log_dir / "supervisor.log").read_text(errors="replace")


async def run_batch(url: str, workflow_id: str, count: int) -> list[dict]:
    """Start `count` executions at once; the records once all have completed."""
    async with httpx.AsyncClient(base_url=url, timeout=30) as http:
        started = await asyncio.gather(
            *(
                http.post(f"/workflows/{workflow_id}/executions", json={"input_data": {"i": i}})
                for i in range(count)
            )
        )
        ids = [answer.json()["execution_id"] for answer in started]
        records = await asyncio.gather(
            *(http.get(f"/executions/{i}", params={"wait": 60}) for i in ids)
        )
    return [record.json() for record in records]


async def test_two_processes_share_the_queue_restart_and_drain(supervised, services) -> None:
    stack, supervisor = supervised
    url = stack.url
    first = wait_for_children(supervisor.pid, PROCESSES)

    # Health: both children poll the task queue, each with its own identity.
    health = httpx.get(f"{url}/health", timeout=5).json()["components"]["workers"]
    assert health["status"] == "healthy"
    assert health["count"] == PROCESSES, health
    assert {int(identity.split("@")[0]) for identity in health["pollers"]} == first

    # Executions: their steps run on both processes.
    suffix = uuid.uuid4().hex[:6]
    token = services.token()
    async with httpx.AsyncClient(base_url=url, timeout=30) as api:
        svc = f"slow-{suffix}"
        await register(
            api, service(svc, services.endpoint("slow", token), [action("one"), action("two")])
        )
        workflow = await create_workflow(
            api, f"processes-{suffix}", chain(("a", svc, "one"), ("b", svc, "two"))
        )
    records = await run_batch(url, workflow["id"], 20)
    assert [r["status"] for r in records] == ["COMPLETED"] * 20, records[0]
    workers = {step["worker"] for record in records for step in record["steps"]}
    assert {int(w.split("@")[0]) for w in workers} == first, workers

    # SIGKILL one child: the supervisor starts another, which polls and runs steps.
    victim = min(first)
    os.kill(victim, signal.SIGKILL)
    now = wait_for_children(supervisor.pid, PROCESSES, other_than=frozenset({victim}))
    (replacement,) = now - first
    wait_for_poller(url, replacement)
    assert f"pid {victim}) exited with -9" in supervisor_log(stack)
    records = await run_batch(url, workflow["id"], 10)
    assert [r["status"] for r in records] == ["COMPLETED"] * 10
    workers = {step["worker"] for record in records for step in record["steps"]}
    assert {int(w.split("@")[0]) for w in workers} <= now

    # SIGTERM with an activity in flight: the child finishes it, then all exit.
    hang = services.token()
    async with httpx.AsyncClient(base_url=url, timeout=30) as api:
        held = f"hang-{suffix}"
        await register(api, service(held, services.endpoint("hang", hang), [action("hold")]))
        slow = await create_workflow(api, f"drain-{suffix}", chain(("h", held, "hold")))
        answer = await api.post(f"/workflows/{slow['id']}/executions", json={"input_data": {}})
        execution_id = answer.json()["execution_id"]
        deadline = time.monotonic() + 30
        while not services.calls[hang] and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert services.calls[hang], "the held step never reached the service"

        supervisor.send_signal(signal.SIGTERM)
        await asyncio.sleep(1.0)
        assert supervisor.poll() is None, "the supervisor left before its children drained"
        assert children_of(supervisor.pid), "the children left with an activity in flight"
        services.release(hang)
        code = await asyncio.to_thread(supervisor.wait, 30)
        assert code == 0
        assert not children_of(supervisor.pid)
        assert "all worker processes stopped" in supervisor_log(stack)

        # The held step completed on its first attempt, on a drained child: nothing was
        # cut off. (The execution itself waits for a worker to run its last task.)
        record = (await api.get(f"/executions/{execution_id}")).json()
        (step,) = record["steps"]
        assert step["status"] == "COMPLETED", record
        assert step["attempts"] == 1, record
        assert int(step["worker"].split("@")[0]) in now
        assert len(services.calls[hang]) == 1

        # A plain worker picks the execution up and finishes it.
        stack.start_worker()
        answer = await api.get(f"/executions/{execution_id}", params={"wait": 30})
        assert answer.json()["status"] == "COMPLETED", answer.json()


def test_processes_default_from_the_environment(monkeypatch) -> None:
    from worker.processes import default_processes

    monkeypatch.delenv("WORKER_PROCESSES", raising=False)
    assert default_processes() == 1
    monkeypatch.setenv("WORKER_PROCESSES", "3")
    assert default_processes() == 3
    for wrong in ("0", "two"):
        monkeypatch.setenv("WORKER_PROCESSES", wrong)
        with pytest.raises(SystemExit, match="WORKER_PROCESSES"):
            default_processes()
