"""Run a worker: `python -m worker` or `service-integration worker`.

SIGTERM and SIGINT stop polling, let in-flight activities finish within
WORKER_GRACEFUL_SHUTDOWN_SECONDS, then exit; activities still running after that are
cancelled and Temporal retries them on another worker.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import Client
from temporalio.worker import Worker
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions
from temporalio.workflow import NondeterminismError

from activities.credentials import Credentials
from activities.definitions import DefinitionActivities
from activities.http_step import StepActivities
from activities.mocks import mock_step
from activities.shaping import Shaping
from activities.start import StartActivities
from core.logs import configure_logging
from core.outbound import OutboundPolicy
from core.settings import Settings, get_settings
from core.temporal import connect, ensure_search_attributes
from definitions.expressions import ExpressionLimits, configure_limits
from registry.db import open_database, session_factory
from workflows.dynamic import StoredWorkflow
from workflows.integrity import register_signing_key

log = logging.getLogger("worker")

# Modules the sandbox shares with the worker instead of re-importing them for every
# workflow run: pure models and functions, no I/O.
PASSTHROUGH_MODULES = (
    "definitions",
    "steps",
    "schemas",
    "jsonata",
    # Workflow code, deterministic by review and by the replay gate: shared rather than
    # re-imported (and, without .pyc files, recompiled) for every workflow run.
    "workflows.integrity",
    "workflows.interpreter",
    "workflows.journal",
    "workflows.stored",
    "workflows.tasks",
    "core.signing",
    "core.temporal",
    "pydantic",
    "pydantic_core",
)


def workflow_runner(*extra_passthrough: str) -> SandboxedWorkflowRunner:
    return SandboxedWorkflowRunner(
        restrictions=SandboxRestrictions.default.with_passthrough_modules(
            *PASSTHROUGH_MODULES, *extra_passthrough
        )
    )


def workflow_options() -> dict[str, Any]:
    """How every worker (and the replay gate) runs StoredWorkflow."""
    return {
        "workflows": [StoredWorkflow],
        "workflow_runner": workflow_runner(),
        # A history this code cannot replay (a change to the workflow's commands shipped
        # without workflow.patched()) fails its execution at once with the mismatch in
        # the error, instead of retrying the workflow task forever while the execution
        # shows RUNNING. The replay gate (tests/replay) keeps that from shipping. So does
        # any other exception workflow code raises (an OverflowError, a RecursionError, a
        # bug): retrying a deterministic workflow task cannot fix it, so the execution
        # fails with its type and message instead of retrying forever.
        "workflow_failure_exception_types": [NondeterminismError, Exception],
    }


async def connect_when_up(settings: Settings, stop: asyncio.Event) -> Client | None:
    """A connected client, retrying until Temporal answers; None if `stop` is set first."""
    while not stop.is_set():
        try:
            client = await connect(
                settings.temporal_address,
                settings.temporal_namespace,
                tls=settings.temporal_tls,
                api_key=settings.temporal_api_key,
                encryption_keys=getattr(settings, "encryption_keys", ""),
            )
            await ensure_search_attributes(client)
            return client
        except Exception as exc:  # noqa: BLE001 - not reachable yet; say so and retry
            log.warning("Temporal at %s not reachable yet: %s", settings.temporal_address, exc)
            try:
                await asyncio.wait_for(stop.wait(), timeout=1.0)
            except TimeoutError:
                pass
    return None


def build_worker(
    client: Client,
    settings: Settings,
    *,
    sessions: async_sessionmaker[AsyncSession],
    http: httpx.AsyncClient,
) -> Worker:
    """The worker for the task queue: the stored-workflow workflow and its activities."""
    policy = OutboundPolicy(
        allowed_hosts=settings.allowed_hosts,
        payload_limit_bytes=settings.payload_limit_bytes,
        follow_redirects=settings.follow_redirects,
    )
    steps = StepActivities(
        http,
        policy,
        signing_key=getattr(settings, "definition_signing_key", ""),
        credentials=Credentials(
            sessions=sessions, encryption_keys=settings.encryption_keys, http=http, policy=policy
        ),
        shaping=Shaping(sessions=sessions),
    )
    definitions = DefinitionActivities(
        sessions, signing_key=getattr(settings, "definition_signing_key", "")
    )
    # Expressions run on the worker's budget (docs/workflow-language.md, "Limits").
    configure_limits(
        ExpressionLimits(
            fuel=settings.expression_fuel,
            max_depth=settings.expression_max_depth,
            max_string_length=settings.expression_max_string_length,
            max_array_length=settings.expression_max_array_length,
            max_object_keys=settings.expression_max_object_keys,
            max_value_size=settings.expression_max_value_size,
        )
    )
    # Workflow code checks the options it is handed under the same key.
    register_signing_key(settings.task_queue, getattr(settings, "definition_signing_key", ""))
    return Worker(
        client,
        task_queue=settings.task_queue,
        activities=[
            steps.call_service,
            StartActivities(definitions, steps).start,
            # Still served: executions started by name before the `start-activity`
            # patch replay (and may still run) the load as a local activity.
            definitions.load_definition,
            mock_step,
        ],
        **workflow_options(),
        max_concurrent_activities=settings.worker_max_concurrent_activities,
        max_concurrent_workflow_tasks=settings.worker_max_concurrent_workflow_tasks,
        graceful_shutdown_timeout=timedelta(seconds=settings.worker_graceful_shutdown_seconds),
    )


def outbound_http() -> httpx.AsyncClient:
    """The HTTP client a worker calls services with, sized for its concurrency."""
    return httpx.AsyncClient(
        limits=httpx.Limits(max_connections=500, max_keepalive_connections=100)
    )


async def run_worker(settings: Settings, *, stop: asyncio.Event) -> None:
    """Poll the task queue until `stop` is set, then shut down gracefully.

    Temporal may not be up yet (or may be restarting): the worker keeps trying to
    connect, every second, instead of exiting.
    """
    client = await connect_when_up(settings, stop)
    if client is None:
        return
    async with (
        open_database(settings.resolved_database_url) as engine,
        outbound_http() as http,
        build_worker(client, settings, sessions=session_factory(engine), http=http),
    ):
        log.info(
            "worker polling task queue %r on %s (namespace %s)",
            settings.task_queue,
            settings.temporal_address,
            settings.temporal_namespace,
        )
        await stop.wait()
        log.info("worker shutting down; in-flight activities may finish")


def main() -> None:
    configure_logging()  # an expected step failure is one line (core/logs.py)
    settings = get_settings()

    async def _run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await run_worker(settings, stop=stop)

    asyncio.run(_run())


if __name__ == "__main__":
    main()
