"""Performance parity, in one command: `python -m bench.parity` (about 2-3 minutes).

Only the comparison of the issue: our stored 3-step workflow started by name with the
SDK (c) against the same 3 steps hand-written (b, bench/baseline.py), each served by
its own worker process, on one dev server, in one run:

    b           hand-written workflow, 3 activities (baseline worker process)
    c           ours, started by name (`python -m worker` code, definition cache on)
    c-la        ours, started by name, the definition loaded by the si:load-definition
                local activity (the code before the start-activity patch,
                bench/variants.py); its own worker process
    c'          ours, started with the pinned definition, as the gateway starts it
                (same worker process as c)

Rounds are interleaved: each round runs `--sequential` executions of every variant in
turn (one of each, the order rotated every round), then `--total` executions of each
variant with `--in-flight` in flight, one variant after the other (order rotated too).
p50 is over all the sequential executions of all rounds; throughput is the completions
of all rounds over their seconds. Everything listens on 127.0.0.1.

`--profile py-spy|cprofile DIR` runs the workers of b, c and c-la under a profiler
instead (py-spy: collapsed stacks and a speedscope JSON per worker; cprofile: every thread of
the worker, pstats files and a summary per execution), with the same load shape;
figures of a profiled run are not the benchmark's (docs/profiling.md).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import pickle
import pstats
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import temporalio
from temporalio.client import Client

from bench import baseline
from bench.history import breakdown
from bench.language import IDLE, area
from bench.procs import Child, cpu_seconds, machine, spawn, wait_for_quiet, wait_http
from bench.report import table
from bench.run import INPUT, _quiet_sdk_logs, pin
from bench.stack import BASELINE_TASK_QUEUE, TASK_QUEUE, VARIANT_TASK_QUEUE, Stack
from bench.stats import Call, Latencies, Throughput, interleaved, throughput
from bench.stubs import SERVICES
from bench.tuning import RECOMMENDED_SERVER, SERVER_PRESETS, preset_server
from core.devserver import free_port
from core.temporal import connect
from executions.models import ExecuteRequest
from executions.service import ExecutionService

VARIANTS = {
    "b": "hand-written workflow, 3 activities",
    "b-la": "hand-written, after a no-op local activity (the floor of recording a lookup)",
    "c": "ours, SDK by name (definition cache)",
    "c-la": "ours, SDK by name, local-activity load (before si:start)",
    "c'": "ours, SDK with pinned definition (gateway's start)",
    "c-lowlat": "ours, SDK by name, the workflow stored with mode low_latency",
    "c-la-lowlat": "ours, SDK by name, mode low_latency, before si:start",
}
OWNER = {
    "b": "baseline worker",
    "b-la": "baseline worker",
    "c": "worker",
    "c'": "worker",
    "c-la": "variant worker",
    "c-lowlat": "worker",
    "c-la-lowlat": "variant worker",
}


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def _worker_command(which: str, *extra: str, profile: tuple[str, Path] | None) -> list[str]:
    """The worker's command line, wrapped in the profiler when asked."""
    args = [sys.executable, "-m", "bench.parity_worker", which]
    if profile is None:
        return args + list(extra)
    tool, out = profile
    if tool == "cprofile":
        return args + ["--cprofile", str(out.with_suffix(".pstats"))] + list(extra)
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    return [
        py_spy,
        "record",
        "--format",
        "raw",
        "--full-filenames",
        "--rate",
        "250",
        "--nonblocking",
        "--gil",
        "--output",
        str(out.with_suffix(".collapsed.txt")),
        "--",
        *args,
        *extra,
    ]


def start_stack(
    workdir: Path,
    preset: str,
    variants: list[str],
    profile: tuple[str, Path] | None,
    *,
    bytecode_cache: bool = True,
) -> Stack:
    """Stubs, dev server, a gateway (migrates and registers, then stops), the workers."""
    stack = Stack(workdir, server_preset=preset)
    try:
        ports = [free_port() for _ in SERVICES]
        stack.stubs = spawn(
            "stubs",
            [sys.executable, "-m", "bench.stubs", *map(str, ports)],
            log=workdir / "stubs.log",
            ready_line="ready",
        )
        stack.endpoints = {s: f"http://127.0.0.1:{p}" for s, p in zip(SERVICES, ports, strict=True)}
        (workdir / "temporal").mkdir(exist_ok=True)
        stack.server = preset_server(
            preset,
            db_file=workdir / "temporal" / "temporal.db",
            port=free_port(),
            ui_port=None,
            log_file=workdir / "temporal" / "server.log",
        ).start()
        stack.database_url = f"sqlite+aiosqlite:///{workdir / 'registry.db'}"
        # The stubs listen on loopback, which the worker's outbound policy refuses unless
        # allowed (core/outbound.py).
        env = {**stack.env(), "ALLOWED_HOSTS": "127.0.0.1"}
        if bytecode_cache:
            # As in the image, where pip byte-compiles the project: without .pyc files
            # (PYTHONDONTWRITEBYTECODE and a source checkout) each worker's sandbox
            # compiles its workflow module again for every new run (docs/benchmarks.md).
            env.pop("PYTHONDONTWRITEBYTECODE", None)
            env["PYTHONPYCACHEPREFIX"] = str(workdir / "pycache")
        port = free_port()
        stack.gateway = spawn(
            "gateway",
            [sys.executable, "-m", "cli", "gateway"],
            env={**env, "GATEWAY_PORT": str(port)},
            log=workdir / "gateway.log",
        )
        stack.gateway_url = f"http://127.0.0.1:{port}/api"
        wait_http(f"{stack.gateway_url}/health", child=stack.gateway)
        stack.register()
        stack.gateway.stop()  # registered: it would only add noise
        stack.gateway = None
        profiled = profile[1] if profile else None

        def ours(name: str, profile_name: str, *extra: str, **more_env: str) -> Child:
            return spawn(
                name,
                _worker_command(
                    "ours",
                    *extra,
                    profile=(profile[0], profiled / profile_name) if profile and profiled else None,
                ),
                env={**env, **more_env},
                log=workdir / f"{name.replace(' ', '-')}.log",
                ready_line="worker polling task queue",
            )

        if {"c", "c'", "c-lowlat"} & set(variants):
            stack.worker = ours("worker", "c-worker")
        if {"c-la", "c-la-lowlat"} & set(variants):
            stack.variant_worker = ours(
                "variant worker", "c-la-worker", "--local-load", TASK_QUEUE=VARIANT_TASK_QUEUE
            )
        if {"b", "b-la"} & set(variants):
            stack.baseline_worker = spawn(
                "baseline worker",
                _worker_command(
                    "baseline",
                    "--",
                    "--address",
                    stack.server.address,
                    "--task-queue",
                    BASELINE_TASK_QUEUE,
                    "--endpoints",
                    *(stack.endpoints[s] for s in SERVICES),
                    profile=(profile[0], profiled / "b-worker") if profile and profiled else None,
                ),
                env=env,
                log=workdir / "baseline-worker.log",
                ready_line="ready",
            )
    except BaseException:
        stack.stop()
        raise
    return stack


def _python_child(child: Child) -> int:
    """The worker's pid: the child itself, or the child of py-spy wrapping it."""
    for task in Path(f"/proc/{child.pid}/task").iterdir():
        children = (task / "children").read_text().split()
        if children:
            return int(children[0])
    return child.pid


def stop_workers(stack: Stack) -> None:
    """Stop each worker by its own pid (under py-spy: the worker first, so py-spy writes
    its file when its child exits)."""
    for child in (stack.worker, stack.variant_worker, stack.baseline_worker):
        if child is None or not child.alive():
            continue
        inner = _python_child(child)
        if inner != child.pid:
            os.kill(inner, signal.SIGTERM)
            try:
                child.process.wait(60)
            except subprocess.TimeoutExpired:
                child.stop()
        else:
            child.stop(timeout=60)


class Calls:
    def __init__(self, ours: Client, base: Client, pinned: Any) -> None:
        self.ours, self.base, self.pinned = ours, base, pinned
        self.service = ExecutionService(ours, task_queue=TASK_QUEUE)
        self.ids: dict[str, list[str]] = defaultdict(list)

    def _keep(self, variant: str, workflow_id: str) -> None:
        self.ids[variant].append(workflow_id)
        del self.ids[variant][:-40]

    def call(self, variant: str) -> Call:
        def hand_written(workflow_type: str) -> Call:
            async def run() -> None:
                workflow_id = f"parity-{uuid.uuid4().hex}"
                await self.base.execute_workflow(
                    workflow_type,
                    baseline.PipelineInput(document_url=INPUT["document_url"]),
                    id=workflow_id,
                    task_queue=BASELINE_TASK_QUEUE,
                )
                self._keep(variant, workflow_id)

            return run

        def by_name(task_queue: str, name: str = "bench-doc") -> Call:
            async def run() -> None:
                workflow_id = f"parity-{uuid.uuid4().hex}"
                await self.ours.execute_workflow(name, INPUT, id=workflow_id, task_queue=task_queue)
                self._keep(variant, workflow_id)

            return run

        async def pinned() -> None:
            workflow_id = f"parity-{uuid.uuid4().hex}"
            handle = await self.service.start(
                self.pinned, ExecuteRequest(input_data=INPUT), execution_id=workflow_id
            )
            await handle.result()
            self._keep("c'", workflow_id)

        return {
            "b": hand_written("DocumentPipeline"),
            "b-la": hand_written("DocumentPipelineRecorded"),
            "c": by_name(TASK_QUEUE),
            "c-la": by_name(VARIANT_TASK_QUEUE),
            "c-lowlat": by_name(TASK_QUEUE, "bench-doc-lowlat"),
            "c-la-lowlat": by_name(VARIANT_TASK_QUEUE, "bench-doc-lowlat"),
            "c'": pinned,
        }[variant]


def _rotated(items: list[str], by: int) -> list[str]:
    by %= max(1, len(items))
    return items[by:] + items[:by]


async def measure(args: argparse.Namespace, stack: Stack) -> dict[str, Any]:
    assert stack.server is not None
    ours = await connect(stack.server.address, "default")
    base = await Client.connect(stack.server.address)  # the samples' default converter
    calls = Calls(ours, base, await pin(stack.database_url, "bench-doc"))
    variants = list(args.variants)
    pids = {
        name: _python_child(child)
        for name, child in stack.children().items()
        if name in OWNER.values()
    }
    pids["dev server"] = stack.server_pid() or 0
    sequential = {v: Latencies() for v in variants}
    loaded: dict[str, list[Throughput]] = {v: [] for v in variants}
    cpu: dict[str, Counter[str]] = {v: Counter() for v in variants}
    per_round: list[dict[str, Any]] = []
    others: list[float] = []
    for index in range(args.rounds):
        order = _rotated(variants, index)
        others.append(wait_for_quiet(stack.pids(), threshold=0.3, max_wait=10))
        log(f"round {index + 1}: {args.sequential} sequential each ({', '.join(order)})")
        seq = await interleaved(
            {v: calls.call(v) for v in order},
            rounds=args.sequential,
            warmup=3 if index == 0 else 1,
        )
        this_round: dict[str, Any] = {"p50": {}, "per_second": {}}
        for v in order:
            sequential[v].values += seq[v].values
            sequential[v].errors += seq[v].errors
            sequential[v].first_error = sequential[v].first_error or seq[v].first_error
            this_round["p50"][v] = seq[v].p50
        for v in order:
            others.append(wait_for_quiet(stack.pids(), threshold=0.3, max_wait=5))
            log(f"round {index + 1}: {v}, {args.total} executions, {args.in_flight} in flight")
            before = {k: cpu_seconds(p) for k, p in pids.items()}
            result = await throughput(calls.call(v), total=args.total, in_flight=args.in_flight)
            after = {k: cpu_seconds(p) for k, p in pids.items()}
            loaded[v].append(result)
            for k in pids:
                cpu[v][k] += after[k] - before[k]
            this_round["per_second"][v] = result.per_second
        per_round.append(this_round)
    hops = {}
    for variant, ids in calls.ids.items():
        hops[variant] = await breakdown([ours.get_workflow_handle(i) for i in ids[-30:]])
    return {
        "sequential": sequential,
        "loaded": loaded,
        "cpu": cpu,
        "per_round": per_round,
        "hops": hops,
        "others": others,
    }


def _rate(results: list[Throughput]) -> float:
    seconds = sum(r.seconds for r in results)
    return sum(r.completed for r in results) / seconds if seconds else float("nan")


def render(figures: dict[str, Any], settings: dict[str, Any], *, markdown: bool) -> str:
    out: list[str] = []

    def heading(text: str) -> None:
        out.append(f"\n#### {text}\n" if markdown else f"\n== {text} ==")

    heading("Machine and settings")
    out.append(table(["", "value"], [[k, v] for k, v in settings.items()], markdown=markdown))
    seq, loaded, cpu = figures["sequential"], figures["loaded"], figures["cpu"]
    heading("Executions")
    rows = []
    for v in seq:
        done = max(1, sum(r.completed for r in loaded[v]))
        errors = seq[v].errors + sum(r.latencies.errors for r in loaded[v])
        rows.append(
            [
                v,
                VARIANTS[v],
                seq[v].p50,
                seq[v].p95,
                len(seq[v].values),
                _rate(loaded[v]),
                cpu[v].get(OWNER[v], 0.0) * 1000 / done,
                cpu[v].get("dev server", 0.0) * 1000 / done,
                errors or "",
            ]
        )
    out.append(
        table(
            [
                "",
                "what",
                "p50 ms",
                "p95 ms",
                "n",
                "exec/s loaded",
                "worker CPU ms/exec",
                "dev server CPU ms/exec",
                "errors",
            ],
            rows,
            markdown=markdown,
        )
    )
    firsts = [f"{v}: {s.first_error}" for v, s in seq.items() if s.first_error]
    firsts += [
        f"{v}: {r.latencies.first_error}"
        for v, rs in loaded.items()
        for r in rs
        if r.latencies.first_error
    ]
    if firsts:
        out.append("\nFirst errors: " + "; ".join(firsts[:4]))
    heading("Ratios (targets of the parity issue)")
    rows = []
    if "b" in seq:
        for v in ("c", "c-la", "c'"):
            if v not in seq:
                continue
            p = seq[v].p50 / seq["b"].p50
            t = _rate(loaded[v]) / _rate(loaded["b"])
            target = v == "c"
            rows.append(
                [
                    f"p50 {v}/b",
                    f"{p:.2f}",
                    "<= 1.05" if target else "-",
                    ("yes" if p <= 1.05 else "no") if target else "",
                ]
            )
            rows.append(
                [
                    f"throughput {v}/b",
                    f"{t:.2f}",
                    ">= 0.95" if target else "-",
                    ("yes" if t >= 0.95 else "no") if target else "",
                ]
            )
    out.append(table(["", "value", "target", "met"], rows, markdown=markdown))
    if "b" in seq:

        def cpu_per_exec(v: str) -> float:
            done = max(1, sum(r.completed for r in loaded[v]))
            return (cpu[v].get(OWNER[v], 0.0) + cpu[v].get("dev server", 0.0)) * 1000 / done

        for v in ("c", "c-la", "c'"):
            if v in seq:
                rows_cpu = cpu_per_exec("b") / cpu_per_exec(v)
                out.append(
                    f"\nWorker + dev server CPU per execution, b/{v}: {rows_cpu:.2f} (the "
                    "throughput ratio a CPU-bound machine would give, whatever the background)."
                )
    rounds = figures["per_round"]
    if "b" in seq and "c" in seq and rounds:
        p50s = sorted(r["p50"]["c"] / r["p50"]["b"] for r in rounds)
        rates = sorted(r["per_second"]["c"] / r["per_second"]["b"] for r in rounds)
        out.append(
            f"\nPer round, c/b: p50 {', '.join(f'{x:.2f}' for x in p50s)} "
            f"(median {statistics.median(p50s):.2f}); throughput "
            f"{', '.join(f'{x:.2f}' for x in rates)} (median {statistics.median(rates):.2f})."
        )
    heading("Per round (sequential p50 ms; exec/s)")
    names = list(seq)
    rows = [
        [i + 1, *(r["p50"].get(v) for v in names), *(r["per_second"].get(v) for v in names)]
        for i, r in enumerate(figures["per_round"])
    ]
    out.append(
        table(
            ["round", *(f"p50 {v}" for v in names), *(f"exec/s {v}" for v in names)],
            rows,
            markdown=markdown,
        )
    )
    heading("Where the time goes (server event times of the last executions, median ms)")
    rows = []
    for v, hop in figures["hops"].items():
        rows.append(
            [
                v,
                hop.get("server_total", {}).get("p50"),
                hop.get("wft_dispatch", {}).get("per_execution"),
                hop.get("wft_run", {}).get("p50"),
                hop.get("activity_dispatch", {}).get("p50"),
                hop.get("activity_run", {}).get("p50"),
            ]
        )
    out.append(
        table(
            ["", "start->close", "WFTs/exec", "WFT run", "activity dispatch", "activity run"],
            rows,
            markdown=markdown,
        )
    )
    others = figures["others"]
    out.append(
        f"\nOther processes used {min(others):.2f}-{max(others):.2f} cores at the start of "
        "the rounds (the machine is shared)."
    )
    return "\n".join(out)


# ---------------------------------------------------------------------- profiles


def _frame_file(frame: str) -> tuple[str, str]:
    """`function (path:line)` of a py-spy frame -> (path, function)."""
    if frame.endswith(")") and " (" in frame:
        function, where = frame[:-1].rsplit(" (", 1)
        return where.rsplit(":", 1)[0], function
    return "~", frame


def collapsed_summary(path: Path, executions: int, rate: int) -> tuple[str, dict[str, float]]:
    """Samples of a py-spy collapsed file by area of the leaf frame, per execution.

    Stacks that are the process starting (imports at module level) are left out.
    """
    by_area: Counter[str] = Counter()
    project: Counter[str] = Counter()
    startup = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames = stack.split(";")
        n = int(count)
        if any("_find_and_load" in f for f in frames[:12]) and not any(
            "_run_once" in f for f in frames
        ):
            startup += n
            continue
        file, function = _frame_file(frames[-1])
        by_area[area(file, function)] += n
        for f in frames:
            file, function = _frame_file(f)
            if "/work/main/" in file and "/site-packages/" not in file and "/bench/" not in file:
                project[f"{Path(file).parent.name}/{Path(file).name}:{function}"] += n
    total = sum(by_area.values())
    rows = [
        [name, n, f"{n / total * 100:.0f}%", f"{n / rate * 1000 / executions:.2f}"]
        for name, n in by_area.most_common()
    ]
    text = (
        f"{path.name}: {total} samples at {rate}/s while busy ({startup} startup samples left "
        f"out), {executions} executions\n"
        + table(["area (leaf frame)", "samples", "share", "ms per execution"], rows, markdown=True)
    )
    if project:
        rows = [
            [where, n, f"{n / rate * 1000 / executions:.3f}"]
            for where, n in project.most_common(15)
        ]
        text += "\n\n" + table(
            ["project function (inclusive)", "samples", "ms per execution"], rows, markdown=True
        )
    return text, {k: v / rate * 1000 / executions for k, v in by_area.items()}


def to_speedscope(path: Path, out: Path, name: str) -> None:
    """A speedscope JSON of py-spy's collapsed stacks (startup stacks included)."""
    frames: list[dict[str, Any]] = []
    index: dict[str, int] = {}
    samples: list[list[int]] = []
    weights: list[int] = []
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        ids = []
        for frame in stack.split(";"):
            if frame not in index:
                file, function = _frame_file(frame)
                short = file.split("/site-packages/")[-1].replace("/work/main/", "")
                index[frame] = len(frames)
                frames.append({"name": function, "file": short})
            ids.append(index[frame])
        samples.append(ids)
        weights.append(int(count))
    document = {
        "$schema": "https://www.speedscope.app/file-format-schema.json",
        "shared": {"frames": frames},
        "profiles": [
            {
                "type": "sampled",
                "name": name,
                "unit": "none",
                "startValue": 0,
                "endValue": sum(weights),
                "samples": samples,
                "weights": weights,
            }
        ],
        "name": name,
        "exporter": "bench/parity.py",
    }
    out.write_text(json.dumps(document, separators=(",", ":")))


def pstats_summary(path: Path, executions: int, top: int = 25) -> str:
    stats = pstats.Stats(str(path))
    table_of: dict[tuple[str, int, str], Any] = stats.stats  # type: ignore[attr-defined]
    by_area: dict[str, float] = defaultdict(float)
    busiest: list[tuple[float, int, str]] = []
    project: list[tuple[float, int, str]] = []
    for (file, line, function), (_, calls, tottime, cumtime, _) in table_of.items():
        if function in IDLE:
            continue
        by_area[area(file, function)] += tottime
        where = function if file == "~" else f"{Path(file).name}:{line}({function})"
        busiest.append((tottime, calls, where))
        if "/work/main/" in file and "/site-packages/" not in file and "/bench/" not in file:
            rel = file.split("/work/main/")[-1]
            project.append((cumtime, calls, f"{rel}:{line}({function})"))
    busy = sum(by_area.values())
    rows = [
        [name, f"{s:.2f}", f"{s / busy * 100:.0f}%", f"{s / executions * 1000:.2f}"]
        for name, s in sorted(by_area.items(), key=lambda kv: -kv[1])
    ]
    top_rows = [[w[:90], c, f"{s:.3f}"] for s, c, w in sorted(busiest, reverse=True)[:top]]
    project_rows = [
        [w[:90], c, f"{s / executions * 1000:.3f}"]
        for s, c, w in sorted(project, reverse=True)[:15]
    ]
    return (
        f"{path.name}: {busy:.2f} s busy in Python threads (profiler overhead included), "
        f"{executions} executions (startup included)\n"
        + table(["area", "s", "share", "ms per execution"], rows, markdown=True)
        + "\n\n"
        + table(["function (tottime)", "calls", "s"], top_rows, markdown=True)
        + "\n\n"
        + table(
            ["project function (cumulative)", "calls", "ms per execution"],
            project_rows,
            markdown=True,
        )
    )


async def profile_run(args: argparse.Namespace, stack: Stack, tool: str, out: Path) -> str:
    assert stack.server is not None
    ours = await connect(stack.server.address, "default")
    base = await Client.connect(stack.server.address)
    calls = Calls(ours, base, await pin(stack.database_url, "bench-doc"))
    done: Counter[str] = Counter()
    variants = [v for v in args.variants if v != "c'"]
    for index in range(args.rounds):
        for v in _rotated(variants, index):
            log(f"profile ({tool}) round {index + 1}: {v}")
            seq = await interleaved({v: calls.call(v)}, rounds=args.sequential, warmup=0)
            tp = await throughput(calls.call(v), total=args.total, in_flight=args.in_flight)
            done[v] += len(seq[v].values) + tp.completed
    stop_workers(stack)
    parts = []
    for v in variants:
        name = f"{v}-worker"
        if tool == "py-spy":
            collapsed = out / f"{name}.collapsed.txt"
            to_speedscope(collapsed, out / f"{name}.speedscope.json", f"{VARIANTS[v]} ({name})")
            text, _ = collapsed_summary(collapsed, done[v], 250)
        else:
            text = pstats_summary(out / f"{name}.pstats", done[v])
        parts.append(f"### {v}: {VARIANTS[v]}\n\n{text}")
    return "\n\n".join(parts)


async def main_async(args: argparse.Namespace) -> str:
    started = time.monotonic()
    _quiet_sdk_logs()
    settings: dict[str, Any] = {
        **machine(),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "temporalio": temporalio.__version__,
        "server preset": f"{args.server_preset}: {' '.join(SERVER_PRESETS[args.server_preset])}",
        "workers": "one process per variant: b bench.baseline; c and c' python -m worker's "
        "main(); c-la the same with the workflow before si:start (bench/variants.py); "
        "200 concurrent activities and workflow tasks each",
        "rounds": args.rounds,
        "sequential per round": args.sequential,
        "bytecode cache": "no (PYTHONDONTWRITEBYTECODE)"
        if args.no_bytecode_cache
        else "yes (PYTHONPYCACHEPREFIX in the temp folder)",
        "throughput per round": f"{args.total} executions, {args.in_flight} in flight",
    }
    with tempfile.TemporaryDirectory(prefix="parity-") as tmp:
        profile = None
        if args.profile:
            out = Path(args.profile[1]).resolve()
            out.mkdir(parents=True, exist_ok=True)
            profile = (args.profile[0], out)
        variants = [v for v in args.variants if v != "c'"] if profile else list(args.variants)
        stack = start_stack(
            Path(tmp),
            args.server_preset,
            variants,
            profile,
            bytecode_cache=not args.no_bytecode_cache,
        )
        try:
            if profile:
                text = await profile_run(args, stack, profile[0], profile[1])
            else:
                figures = await measure(args, stack)
                if args.save:
                    args.save.write_bytes(pickle.dumps(figures))
                settings["run time"] = f"{time.monotonic() - started:.0f} s"
                text = render(figures, settings, markdown=args.markdown)
        finally:
            stop_workers(stack)
            stack.stop()
    return text


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--sequential", type=int, default=30)
    parser.add_argument("--total", type=int, default=200)
    parser.add_argument("--in-flight", type=int, default=100)
    parser.add_argument("--variants", nargs="*", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument(
        "--server-preset", choices=sorted(SERVER_PRESETS), default=RECOMMENDED_SERVER
    )
    parser.add_argument("--markdown", action="store_true")
    parser.add_argument(
        "--no-bytecode-cache",
        action="store_true",
        help="run the workers as this checkout does (PYTHONDONTWRITEBYTECODE kept)",
    )
    parser.add_argument("--save", type=Path, default=None, help="pickle the raw figures here")
    parser.add_argument(
        "--profile",
        nargs=2,
        metavar=("py-spy|cprofile", "DIR"),
        default=None,
        help="profile the workers of b and c instead of measuring",
    )
    args = parser.parse_args()
    if args.profile and args.profile[0] not in ("py-spy", "cprofile"):
        parser.error("--profile takes py-spy or cprofile, then a folder")
    print(asyncio.run(main_async(args)))


if __name__ == "__main__":
    main()
