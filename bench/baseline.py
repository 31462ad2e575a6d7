"""The hand-written baseline (b): a static workflow making the 3 stub calls as 3 activities.

Written the way temporalio/samples-python writes a workflow: dataclass inputs and
outputs, one activity per call on a class that holds the HTTP client, explicit
timeouts and retry policies, the default data converter and the default sandbox.
`DocumentPipelineLocal` is the same workflow with local activities, to compare with
our low-latency mode.

Run a worker for it: `python -m bench.baseline --address HOST:PORT --task-queue Q
--endpoint URL` (the settings of `python -m worker`: 200 concurrent activities and
workflow tasks); it posts each call to `<URL>/<extract|analyze|summarize>`, the
`document` behaviour of harness/services.py.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from temporalio import activity, workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    import httpx

if TYPE_CHECKING:
    from bench.workload import Bench


@dataclass
class PipelineInput:
    document_url: str


@dataclass
class ExtractInput:
    document_url: str


@dataclass
class ExtractOutput:
    text: str


@dataclass
class AnalyzeInput:
    text: str


@dataclass
class AnalyzeOutput:
    sentiment: str
    score: float


@dataclass
class SummarizeInput:
    text: str
    sentiment: str


@dataclass
class SummarizeOutput:
    summary: str


class ServiceActivities:
    """The three calls, each a POST to `<endpoint>/<its name>`."""

    def __init__(self, http: httpx.AsyncClient, endpoint: str) -> None:
        self._http = http
        self._endpoint = endpoint

    async def _post(self, action: str, body: dict[str, Any]) -> dict[str, Any]:
        response = await self._http.post(f"{self._endpoint}/{action}", json=body)
        response.raise_for_status()
        return response.json()

    @activity.defn
    async def extract(self, input: ExtractInput) -> ExtractOutput:
        out = await self._post("extract", {"document_url": input.document_url})
        return ExtractOutput(text=out["text"])

    @activity.defn
    async def analyze(self, input: AnalyzeInput) -> AnalyzeOutput:
        out = await self._post("analyze", {"text": input.text})
        return AnalyzeOutput(sentiment=out["sentiment"], score=out["score"])

    @activity.defn
    async def summarize(self, input: SummarizeInput) -> SummarizeOutput:
        out = await self._post("summarize", {"text": input.text, "sentiment": input.sentiment})
        return SummarizeOutput(summary=out["summary"])


TIMEOUT = timedelta(seconds=30)
RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=30),
    maximum_attempts=5,
)


@workflow.defn
class DocumentPipeline:
    @workflow.run
    async def run(self, input: PipelineInput) -> SummarizeOutput:
        extracted = await workflow.execute_activity_method(
            ServiceActivities.extract,
            ExtractInput(document_url=input.document_url),
            start_to_close_timeout=TIMEOUT,
            retry_policy=RETRY,
        )
        analyzed = await workflow.execute_activity_method(
            ServiceActivities.analyze,
            AnalyzeInput(text=extracted.text),
            start_to_close_timeout=TIMEOUT,
            retry_policy=RETRY,
        )
        return await workflow.execute_activity_method(
            ServiceActivities.summarize,
            SummarizeInput(text=extracted.text, sentiment=analyzed.sentiment),
            start_to_close_timeout=TIMEOUT,
            retry_policy=RETRY,
        )


@workflow.defn
class DocumentPipelineLocal:
    """The same three calls as local activities (no task-queue round trip per call)."""

    @workflow.run
    async def run(self, input: PipelineInput) -> SummarizeOutput:
        extracted = await workflow.execute_local_activity_method(
            ServiceActivities.extract,
            ExtractInput(document_url=input.document_url),
            start_to_close_timeout=TIMEOUT,
            retry_policy=RETRY,
        )
        analyzed = await workflow.execute_local_activity_method(
            ServiceActivities.analyze,
            AnalyzeInput(text=extracted.text),
            start_to_close_timeout=TIMEOUT,
            retry_policy=RETRY,
        )
        return await workflow.execute_local_activity_method(
            ServiceActivities.summarize,
            SummarizeInput(text=extracted.text, sentiment=analyzed.sentiment),
            start_to_close_timeout=TIMEOUT,
            retry_policy=RETRY,
        )


def baseline_command(bench: Bench) -> list[str]:
    """`python -m` arguments of this worker against `bench`'s dev server and stubs."""
    from bench.workload import BASELINE_TASK_QUEUE  # not at the top: the sandbox imports this

    return [
        "bench.baseline",
        "--address",
        bench.server.address,
        "--task-queue",
        BASELINE_TASK_QUEUE,
        "--endpoint",
        bench.document_endpoint,
    ]


async def run_worker(address: str, task_queue: str, endpoint: str, stop: asyncio.Event) -> None:
    from temporalio.client import Client
    from temporalio.worker import Worker

    client = await Client.connect(address)
    limits = httpx.Limits(max_connections=500, max_keepalive_connections=100)
    async with httpx.AsyncClient(limits=limits) as http:
        activities = ServiceActivities(http, endpoint)
        worker = Worker(
            client,
            task_queue=task_queue,
            workflows=[DocumentPipeline, DocumentPipelineLocal],
            activities=[activities.extract, activities.analyze, activities.summarize],
            # The settings `python -m worker` uses (WORKER_MAX_CONCURRENT_* defaults).
            max_concurrent_activities=200,
            max_concurrent_workflow_tasks=200,
        )
        async with worker:
            print("ready", flush=True)
            await stop.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--address", required=True)
    parser.add_argument("--task-queue", required=True)
    parser.add_argument("--endpoint", required=True, metavar="URL")
    args = parser.parse_args()

    async def _run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await run_worker(args.address, args.task_queue, args.endpoint, stop)

    asyncio.run(_run())


if __name__ == "__main__":
    main()
