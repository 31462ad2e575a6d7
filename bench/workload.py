"""What every scenario starts and runs: the harness's stack and the 3-step document workflow.

`running_stack()` starts the stack the tests start (harness/stack.py: a headless dev
server with the project's settings, the stub services of harness/services.py in a
process of their own, and a `Stack` for the worker and gateway processes), everything
on 127.0.0.1 in a temp folder. `register()` registers, through a gateway, the stub's three
actions as three services and `bench-doc`, the workflow that chains them (and its
`mode: local` and `mode: low_latency` twins); bench/baseline.py is the same three calls
written by hand.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
from temporalio.runtime import LoggingConfig, Runtime, TelemetryConfig, TelemetryFilter

from core.devserver import DevServer
from definitions.models import PinnedDefinition
from harness.stack import Stack, start_dev_server, wait_for_workers

TASK_QUEUE = "bench-si"
BASELINE_TASK_QUEUE = "bench-baseline"
INPUT = {"document_url": "http://docs.example/report.pdf"}
ACTIONS = ("extract", "analyze", "summarize")
REGISTERED_SERVICES = 2 * len(ACTIONS)
"""The services `register` registers: each action once as an activity, once local."""

ACTION_SCHEMAS = {
    "extract": (
        {
            "type": "object",
            "properties": {"document_url": {"type": "string"}},
            "required": ["document_url"],
        },
        {"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]},
    ),
    "analyze": (
        {"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]},
        {
            "type": "object",
            "properties": {"sentiment": {"type": "string"}, "score": {"type": "number"}},
            "required": ["sentiment"],
        },
    ),
    "summarize": (
        {
            "type": "object",
            "properties": {"text": {"type": "string"}, "sentiment": {"type": "string"}},
            "required": ["text", "sentiment"],
        },
        {"type": "object", "properties": {"summary": {"type": "string"}}, "required": ["summary"]},
    ),
}
"""Input and output JSON Schemas of the stub actions, as a user would register them."""

RETRY_POLICY = {
    "initial_interval": 1,
    "backoff_coefficient": 2,
    "maximum_interval": 30,
    "maximum_attempts": 5,
}
"""The baseline's RetryPolicy (bench/baseline.py RETRY), so both retry alike."""


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def quiet_sdk_logs() -> None:
    """Keep the SDK core's warnings out of the figures.

    Under hundreds of executions in flight a worker in the bench process shares its CPU
    with the load generator, and the core warns about every workflow task over 5 s; the
    figures already show that load.
    """
    filter_ = TelemetryFilter(core_level="ERROR", other_level="ERROR")
    Runtime.set_default(
        Runtime(telemetry=TelemetryConfig(logging=LoggingConfig(filter=filter_))),
        error_if_already_set=False,
    )


@dataclass
class Bench:
    """A running stack: its folder, dev server, stub services and processes."""

    workdir: Path
    server: DevServer
    stack: Stack
    services: subprocess.Popen[bytes]
    services_url: str

    @property
    def document_endpoint(self) -> str:
        """The base URL of the three document actions (`<it>/extract`, ...)."""
        return f"{self.services_url}/document/bench"

    @property
    def database_url(self) -> str:
        return self.stack.database_url

    def server_pid(self) -> int:
        assert self.server.process is not None
        return self.server.process.pid

    def pids(self) -> list[int]:
        """This process, the dev server and every process the stack started."""
        alive = [p.pid for p in self.stack.started if p.poll() is None]
        return [os.getpid(), self.server_pid(), *alive]


@contextmanager
def running_stack(
    *,
    prefix: str,
    bytecode_cache: bool = True,
    server_args: Sequence[str] = (),
    keep: bool = False,
) -> Iterator[Bench]:
    """The stack in a temp folder, stopped (and the folder removed) on the way out.

    Args:
        prefix: of the temp folder's name.
        bytecode_cache: give the processes a bytecode cache in the folder
            (`PYTHONPYCACHEPREFIX`), as in the image, where pip byte-compiles the
            project; without one (a source checkout with PYTHONDONTWRITEBYTECODE) each
            worker's sandbox compiles its workflow modules again for every new run.
        server_args: more `temporal server start-dev` arguments (`--metrics-port N`).
        keep: keep the folder (the logs of every process).
    """
    workdir = Path(tempfile.mkdtemp(prefix=prefix))
    log(f"stack in {workdir}")
    env = {
        "API_KEYS": "",
        "PYTHONUNBUFFERED": "1",
        "WORKER_GRACEFUL_SHUTDOWN_SECONDS": "2",
        "GATEWAY_GRACEFUL_SHUTDOWN_SECONDS": "2",
    }
    if bytecode_cache:
        env |= {"PYTHONDONTWRITEBYTECODE": "", "PYTHONPYCACHEPREFIX": str(workdir / "pycache")}
    server = start_dev_server(workdir / "temporal", extra_args=server_args)
    stack = Stack(
        temporal_address=server.address,
        database_url=f"sqlite+aiosqlite:///{workdir / 'registry.db'}",
        log_dir=workdir,
        task_queue=TASK_QUEUE,
        extra_env=env,
    )
    try:
        yield Bench(workdir, server, stack, *stack.start_services())
    finally:
        stack.stop()
        server.stop()
        if keep:
            log(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


def serve(bench: Bench, *, worker: bool = True) -> dict[str, str]:
    """A gateway (which migrates the registry), the workflows registered through it, then
    a worker, as deployed (`python -m cli gateway`, `python -m worker`).

    Returns:
        The id of each registered workflow, by name.
    """
    url = bench.stack.start_gateway()
    ids = register(url, bench.document_endpoint)
    if worker:
        bench.stack.start_worker()
        wait_for_workers(url)
    return ids


def register(gateway_url: str, endpoint: str) -> dict[str, str]:
    """Register the stub actions and the 3-step workflows through the gateway's API.

    `bench-doc` runs its steps as activities; `bench-doc-local` runs the same steps,
    registered with `"mode": "local"`, as local activities; `bench-doc-lowlat` is
    `bench-doc` stored with the workflow's `"mode": "low_latency"`.

    Returns:
        The id of each workflow, by name.
    """
    ids: dict[str, str] = {}
    with httpx.Client(base_url=gateway_url, timeout=30) as http:
        for suffix, mode in (("", "activity"), ("-local", "local")):
            for action in ACTIONS:
                input_schema, output_schema = ACTION_SCHEMAS[action]
                answer = http.post(
                    "/services",
                    json={
                        "name": f"bench-{action}{suffix}",
                        "endpoint": endpoint,
                        "actions": [
                            {
                                "name": action,
                                "input_schema": input_schema,
                                "output_schema": output_schema,
                                "timeout": 30,
                                "retry_policy": RETRY_POLICY,
                                "mode": mode,
                            }
                        ],
                    },
                )
                answer.raise_for_status()
            answer = http.post(
                "/workflows", json={"name": f"bench-doc{suffix}", "steps": _steps(suffix)}
            )
            answer.raise_for_status()
            ids[f"bench-doc{suffix}"] = answer.json()["id"]
        answer = http.post(
            "/workflows",
            json={"name": "bench-doc-lowlat", "steps": _steps(""), "mode": "low_latency"},
        )
        answer.raise_for_status()
        ids["bench-doc-lowlat"] = answer.json()["id"]
    return ids


def _steps(suffix: str) -> list[dict[str, object]]:
    """extract -> analyze -> summarize, on the services registered with `suffix`."""
    return [
        {"id": action, "service": f"bench-{action}{suffix}", "action": action, "next": nxt}
        for action, nxt in zip(ACTIONS, [*ACTIONS[1:], None], strict=True)
    ]


async def pin(database_url: str, name: str) -> PinnedDefinition:
    """The definition the gateway would pin for `name`, read with the registry's code."""
    from registry import workflows
    from registry.db import create_engine, session_factory

    engine = create_engine(database_url)
    try:
        async with session_factory(engine)() as session:
            return await workflows.pin_by_name(session, name)
    finally:
        await engine.dispose()
