"""Performance parity, in one command: `python -m bench.parity` (about 3 minutes).

Only the comparison of the issue: our stored 3-step workflow started by name with the
SDK (c) against the same 3 steps hand-written (b, bench/baseline.py), each served by
its own worker process, on one dev server, in one run:

    b           hand-written workflow, 3 activities (`python -m bench.baseline`)
    c           ours, started by name (`python -m worker`, as deployed)
    c'          ours, started with the pinned definition, as the gateway starts it
                (same worker process as c)
    c-lowlat    ours, started by name, the workflow stored with `mode: low_latency`

The stack is the tests' (bench/workload.py `running_stack`: harness/stack.py and the
stub services of harness/services.py); a gateway registers the workflows, then stops.
Rounds are interleaved: each round runs `--sequential` executions of every variant in
turn (one of each, the order rotated every round), then `--total` executions of each
variant with `--in-flight` in flight, one variant after the other (order rotated too).
p50 is over all the sequential executions of all rounds; throughput is the completions
of all rounds over their seconds. Everything listens on 127.0.0.1.

`--profile py-spy|cprofile DIR` runs the workers of b and c under a profiler instead
(py-spy: collapsed stacks and a speedscope JSON per worker; cprofile: every thread of
the worker, pstats files and a summary per execution; bench/profiles.py), with the same
load shape; figures of a profiled run are not the benchmark's (docs/profiling.md).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import pickle
import pstats
import signal
import statistics
import subprocess
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import temporalio
from temporalio.client import Client

from bench import baseline
from bench.baseline import baseline_command
from bench.history import breakdown
from bench.procs import cpu_seconds, machine, wait_for_quiet
from bench.profiles import collapsed_summary, py_spy_prefix, stats_summary, to_speedscope
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
    register,
    running_stack,
)
from core.temporal import connect
from executions.models import ExecuteRequest
from executions.service import ExecutionService
from harness.stack import WORKER_READY, stop_process

VARIANTS = {
    "b": "hand-written workflow, 3 activities",
    "c": "ours, SDK by name (si:start: pin + first attempt)",
    "c'": "ours, SDK with pinned definition (gateway's start)",
    "c-lowlat": "ours, SDK by name, the workflow stored with mode low_latency",
}
OWNER = {"b": "baseline worker", "c": "worker", "c'": "worker", "c-lowlat": "worker"}
PROFILED = {"b": "b-worker", "c": "c-worker"}
"""The workers `--profile` profiles, by the variant they serve, and their files' names."""


def start_workers(
    bench: Bench, variants: Sequence[str], profile: tuple[str, Path] | None
) -> dict[str, subprocess.Popen[bytes]]:
    """A gateway registers the workflows and stops; then a worker process per owner."""
    bench.stack.start_gateway()
    gateway = bench.stack.gateways[-1][0]
    register(bench.stack.url, bench.document_endpoint)
    stop_process(gateway)  # registered: it would only add noise

    def command(module: list[str], variant: str) -> tuple[list[str], list[str]]:
        """(prefix, command) of a worker, under the profiler when asked."""
        if profile is None:
            return [], module
        tool, out = profile
        if tool == "cprofile":
            return [], ["bench.profiles", str(out / f"{PROFILED[variant]}.pstats"), *module]
        return py_spy_prefix(out / f"{PROFILED[variant]}.collapsed.txt"), module

    workers: dict[str, subprocess.Popen[bytes]] = {}
    if {"c", "c'", "c-lowlat"} & set(variants):
        prefix, module = command(["worker"], "c")
        workers["worker"] = bench.stack.spawn(
            module, "worker", prefix=prefix, ready_line=WORKER_READY
        )
    if "b" in variants:
        prefix, module = command(baseline_command(bench), "b")
        workers["baseline worker"] = bench.stack.spawn(
            module, "baseline-worker", prefix=prefix, ready_line="ready"
        )
    return workers


def _python_child(process: subprocess.Popen[bytes]) -> int:
    """The worker's pid: the process itself, or the child of py-spy wrapping it."""
    for task in Path(f"/proc/{process.pid}/task").iterdir():
        children = (task / "children").read_text().split()
        if children:
            return int(children[0])
    return process.pid


def stop_workers(workers: dict[str, subprocess.Popen[bytes]]) -> None:
    """Stop each worker by its own pid (under py-spy: the worker first, so py-spy writes
    its file when its child exits)."""
    for process in workers.values():
        if process.poll() is not None:
            continue
        inner = _python_child(process)
        if inner != process.pid:
            os.kill(inner, signal.SIGTERM)
            try:
                process.wait(60)
            except subprocess.TimeoutExpired:
                stop_process(process)
        else:
            stop_process(process, timeout=60)


class Calls:
    def __init__(self, ours: Client, base: Client, pinned: Any) -> None:
        self.ours, self.base, self.pinned = ours, base, pinned
        self.service = ExecutionService(ours, task_queue=TASK_QUEUE)
        self.ids: dict[str, list[str]] = defaultdict(list)

    def _keep(self, variant: str, workflow_id: str) -> None:
        self.ids[variant].append(workflow_id)
        del self.ids[variant][:-40]

    def call(self, variant: str) -> Call:
        async def hand_written() -> None:
            workflow_id = f"parity-{uuid.uuid4().hex}"
            await self.base.execute_workflow(
                "DocumentPipeline",
                baseline.PipelineInput(document_url=INPUT["document_url"]),
                id=workflow_id,
                task_queue=BASELINE_TASK_QUEUE,
            )
            self._keep(variant, workflow_id)

        def by_name(name: str) -> Call:
            async def run() -> None:
                workflow_id = f"parity-{uuid.uuid4().hex}"
                await self.ours.execute_workflow(name, INPUT, id=workflow_id, task_queue=TASK_QUEUE)
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
            "b": hand_written,
            "c": by_name("bench-doc"),
            "c-lowlat": by_name("bench-doc-lowlat"),
            "c'": pinned,
        }[variant]


def _rotated(items: list[str], by: int) -> list[str]:
    by %= max(1, len(items))
    return items[by:] + items[:by]


async def _calls(bench: Bench) -> Calls:
    ours = await connect(bench.server.address, "default")
    base = await Client.connect(bench.server.address)  # the samples' default converter
    return Calls(ours, base, await pin(bench.database_url, "bench-doc"))


async def measure(
    args: argparse.Namespace, bench: Bench, workers: dict[str, subprocess.Popen[bytes]]
) -> dict[str, Any]:
    calls = await _calls(bench)
    variants = list(args.variants)
    pids = {name: _python_child(process) for name, process in workers.items()}
    pids["dev server"] = bench.server_pid()
    sequential = {v: Latencies() for v in variants}
    loaded: dict[str, list[Throughput]] = {v: [] for v in variants}
    cpu: dict[str, defaultdict[str, float]] = {v: defaultdict(float) for v in variants}
    per_round: list[dict[str, Any]] = []
    others: list[float] = []
    for index in range(args.rounds):
        order = _rotated(variants, index)
        others.append(wait_for_quiet(bench.pids(), threshold=0.3, max_wait=args.quiet_wait))
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
            others.append(wait_for_quiet(bench.pids(), threshold=0.3, max_wait=args.quiet_wait / 2))
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
        hops[variant] = await breakdown([calls.ours.get_workflow_handle(i) for i in ids[-30:]])
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
        for v in ("c", "c'", "c-lowlat"):
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

        for v in ("c", "c'", "c-lowlat"):
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


async def profile_run(
    args: argparse.Namespace,
    bench: Bench,
    workers: dict[str, subprocess.Popen[bytes]],
    tool: str,
    out: Path,
) -> str:
    calls = await _calls(bench)
    done: Counter[str] = Counter()
    variants = [v for v in args.variants if v in PROFILED]
    for index in range(args.rounds):
        for v in _rotated(variants, index):
            log(f"profile ({tool}) round {index + 1}: {v}")
            seq = await interleaved({v: calls.call(v)}, rounds=args.sequential, warmup=0)
            tp = await throughput(calls.call(v), total=args.total, in_flight=args.in_flight)
            done[v] += len(seq[v].values) + tp.completed
    stop_workers(workers)
    parts = []
    for v in variants:
        name = PROFILED[v]
        if tool == "py-spy":
            collapsed = out / f"{name}.collapsed.txt"
            to_speedscope(collapsed, out / f"{name}.speedscope.json", f"{VARIANTS[v]} ({name})")
            text = collapsed_summary(collapsed, done[v], 250)
        else:
            stats = pstats.Stats(str(out / f"{name}.pstats"))
            label = f"{name}.pstats, {done[v]} executions (startup included; unit = one execution)"
            text = stats_summary(stats, label, done[v], markdown=True)
        parts.append(f"### {v}: {VARIANTS[v]}\n\n{text}")
    return "\n\n".join(parts)


async def main_async(args: argparse.Namespace) -> str:
    started_at = time.monotonic()
    quiet_sdk_logs()
    settings: dict[str, Any] = {
        **machine(),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "temporalio": temporalio.__version__,
        "dev server": "headless, core/devserver.py settings (harness/stack.py)",
        "workers": "one process per variant: b python -m bench.baseline; c, c' and c-lowlat "
        "python -m worker; 200 concurrent activities and workflow tasks each",
        "rounds": args.rounds,
        "sequential per round": args.sequential,
        "bytecode cache": "no (PYTHONDONTWRITEBYTECODE)"
        if args.no_bytecode_cache
        else "yes (PYTHONPYCACHEPREFIX in the temp folder)",
        "throughput per round": f"{args.total} executions, {args.in_flight} in flight",
    }
    profile = None
    if args.profile:
        out = Path(args.profile[1]).resolve()
        out.mkdir(parents=True, exist_ok=True)
        profile = (args.profile[0], out)
    variants = [v for v in args.variants if v in PROFILED] if profile else list(args.variants)
    with running_stack(prefix="parity-", bytecode_cache=not args.no_bytecode_cache) as bench:
        workers = start_workers(bench, variants, profile)
        try:
            if profile:
                return await profile_run(args, bench, workers, profile[0], profile[1])
            figures = await measure(args, bench, workers)
        finally:
            stop_workers(workers)
    if args.save:
        args.save.write_bytes(pickle.dumps(figures))
    settings["run time"] = f"{time.monotonic() - started_at:.0f} s"
    return render(figures, settings, markdown=args.markdown)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.parity",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--sequential", type=int, default=30)
    parser.add_argument("--total", type=int, default=200)
    parser.add_argument("--in-flight", type=int, default=100)
    parser.add_argument("--variants", nargs="*", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument(
        "--quiet-wait",
        type=float,
        default=10.0,
        help="longest wait for other processes to use under 0.3 cores, per round (half of "
        "it per throughput phase)",
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
    args = parser.parse_args(argv)
    if args.profile and args.profile[0] not in ("py-spy", "cprofile"):
        parser.error("--profile takes py-spy or cprofile, then a folder")
    print(asyncio.run(main_async(args)))


if __name__ == "__main__":
    main()
