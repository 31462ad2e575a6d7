"""The hand-written baseline (b): a static workflow making the 3 stub calls as 3 activities.

Written the way temporalio/samples-python writes a workflow: dataclass inputs and
outputs, one activity per call on a class that holds the HTTP client, explicit
timeouts and retry policies, the default data converter and the default sandbox.
`DocumentPipelineLocal` is the same workflow with local activities, to compare with
our low-latency mode.

Run a worker for it: `python -m bench.baseline --address HOST:PORT --task-queue Q
--endpoints URL_EXTRACT URL_ANALYZE URL_SUMMARIZE` (the settings of `python -m worker`:
200 concurrent activities and workflow tasks; `--tuning` adds bench/tuning.py options).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
from dataclasses import dataclass
from datetime import timedelta

from temporalio import activity, workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    import httpx


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
    """The three calls; `endpoints` maps extract/analyze/summarize to base URLs."""

    def __init__(self, http: httpx.AsyncClient, endpoints: dict[str, str]) -> None:
        self._http = http
        self._endpoints = endpoints

    async def _post(self, service: str, body: dict) -> dict:
        response = await self._http.post(f"{self._endpoints[service]}/{service}", json=body)
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
    async def load_config(self, name: str) -> dict:
        """A no-op local activity (bench only): the floor cost of recording a value
        looked up at start, as our by-name start records its definition."""
        return {"name": name, "steps": ["extract", "analyze", "summarize"]}

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
class DocumentPipelineRecorded:
    """DocumentPipeline after one no-op local activity: what recording a lookup costs."""

    @workflow.run
    async def run(self, input: PipelineInput) -> SummarizeOutput:
        await workflow.execute_local_activity_method(
            ServiceActivities.load_config,
            "document-pipeline",
            start_to_close_timeout=TIMEOUT,
            retry_policy=RETRY,
        )
        return await DocumentPipeline().run(input)


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


@workflow.defn
class Empty:
    """No activity: the cost of starting a workflow and running one workflow task."""

    @workflow.run
    async def run(self, input: PipelineInput) -> str:
        return input.document_url


async def run_worker(
    address: str, task_queue: str, endpoints: dict[str, str], tuning: dict, stop: asyncio.Event
) -> None:
    from temporalio.client import Client
    from temporalio.worker import Worker

    from bench.tuning import worker_options

    client = await Client.connect(address)
    limits = httpx.Limits(max_connections=500, max_keepalive_connections=100)
    async with httpx.AsyncClient(limits=limits) as http:
        activities = ServiceActivities(http, endpoints)
        worker = Worker(
            client,
            task_queue=task_queue,
            workflows=[DocumentPipeline, DocumentPipelineRecorded, DocumentPipelineLocal, Empty],
            activities=[
                activities.extract,
                activities.analyze,
                activities.summarize,
                activities.load_config,
            ],
            # The settings `python -m worker` uses (WORKER_MAX_CONCURRENT_* defaults).
            max_concurrent_activities=200,
            max_concurrent_workflow_tasks=200,
            **worker_options(tuning),
        )
        async with worker:
            print("ready", flush=True)
            await stop.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--address", required=True)
    parser.add_argument("--task-queue", required=True)
    parser.add_argument("--endpoints", nargs=3, required=True, metavar="URL")
    parser.add_argument("--tuning", default="{}", help="JSON of bench.tuning worker options")
    args = parser.parse_args()
    endpoints = dict(zip(("extract", "analyze", "summarize"), args.endpoints, strict=True))

    async def _run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await run_worker(args.address, args.task_queue, endpoints, json.loads(args.tuning), stop)

    asyncio.run(_run())


if __name__ == "__main__":
    main()
