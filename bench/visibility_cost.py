"""What search-attribute upserts and `workflow.patched()` cost the Temporal server.

    python -m bench.visibility_cost [--executions 300] [--rounds 4]

A start by name (workflows/stored.py) calls `workflow.patched("start-activity")`, which
makes the SDK upsert the `TemporalChangeVersion` search attribute, and upserts
SiWorkflowId/SiWorkflowVersion itself. This measures, on its own dev server (the one
the tests run, harness/stack.py), the server's CPU per execution of a 2-activity
workflow and of the same workflow with: a patch; an upsert mid-run; a patch and an
upsert mid-run; an upsert with the last command; a patch and an upsert with the last
command. Each variant runs `--executions` executions with 50 in flight per round,
interleaved over `--rounds` rounds; the worker is in this process (unsandboxed: only
the server is measured).
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
import uuid
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path

from temporalio import activity, workflow
from temporalio.client import Client
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

from bench.procs import cpu_seconds
from definitions.contract import WORKFLOW_ID_KEY, WORKFLOW_VERSION_KEY
from harness.stack import start_dev_server

TIMEOUT = timedelta(seconds=10)


@activity.defn
async def noop(value: str) -> str:
    return value


async def _step() -> None:
    await workflow.execute_activity(noop, "x", start_to_close_timeout=TIMEOUT)


def _upsert() -> None:
    workflow.upsert_search_attributes(
        [WORKFLOW_ID_KEY.value_set("wf-1"), WORKFLOW_VERSION_KEY.value_set(1)]
    )


@workflow.defn(name="plain")
class Plain:
    @workflow.run
    async def run(self) -> None:
        await _step()
        await _step()


@workflow.defn(name="patch")
class Patch:
    @workflow.run
    async def run(self) -> None:
        workflow.patched("p")
        await _step()
        await _step()


@workflow.defn(name="upsert mid-run")
class UpsertMidRun:
    @workflow.run
    async def run(self) -> None:
        await _step()
        _upsert()
        await _step()


@workflow.defn(name="patch + upsert mid-run")
class PatchUpsertMidRun:
    @workflow.run
    async def run(self) -> None:
        workflow.patched("p")
        await _step()
        _upsert()
        await _step()


@workflow.defn(name="upsert with the last command")
class UpsertLast:
    @workflow.run
    async def run(self) -> None:
        await _step()
        await _step()
        _upsert()


@workflow.defn(name="patch + upsert with the last command")
class PatchUpsertLast:
    @workflow.run
    async def run(self) -> None:
        workflow.patched("p")
        await _step()
        await _step()
        _upsert()


VARIANTS = [Plain, Patch, UpsertMidRun, PatchUpsertMidRun, UpsertLast, PatchUpsertLast]


async def measure(executions: int, rounds: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="bench-vis-") as work:
        return await _measure(Path(work), executions, rounds)


async def _measure(work: Path, executions: int, rounds: int) -> dict[str, float]:
    server = start_dev_server(work)
    assert server.process is not None
    names = [v.__temporal_workflow_definition.name for v in VARIANTS]  # type: ignore[attr-defined]
    cpu = dict.fromkeys(names, 0.0)
    try:
        client = await Client.connect(server.address)
        async with Worker(
            client,
            task_queue="vis",
            workflows=VARIANTS,
            activities=[noop],
            workflow_runner=UnsandboxedWorkflowRunner(),
            max_concurrent_activities=200,
            max_concurrent_workflow_tasks=200,
        ):
            for index in range(rounds):
                for name in names[index % len(names) :] + names[: index % len(names)]:
                    gate = asyncio.Semaphore(50)

                    async def one(
                        workflow_type: str = name, gate: asyncio.Semaphore = gate
                    ) -> None:
                        async with gate:
                            await client.execute_workflow(
                                workflow_type, id=uuid.uuid4().hex, task_queue="vis"
                            )

                    time.sleep(1.0)  # let the server's background work settle
                    before = cpu_seconds(server.process.pid)
                    await asyncio.gather(*(one() for _ in range(executions)))
                    await asyncio.sleep(0.5)  # visibility tasks of the last executions
                    cpu[name] += cpu_seconds(server.process.pid) - before
    finally:
        server.stop()
    return {name: seconds * 1000 / (executions * rounds) for name, seconds in cpu.items()}


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.visibility_cost", description=__doc__)
    parser.add_argument("--executions", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=4)
    args = parser.parse_args(argv)
    figures = asyncio.run(measure(args.executions, args.rounds))
    plain = figures["plain"]
    print("| workflow (2 activities) | server CPU ms/exec | over plain |")
    print("|---|---|---|")
    for name, value in figures.items():
        print(f"| {name} | {value:.2f} | {value - plain:+.2f} |")


if __name__ == "__main__":
    main()
