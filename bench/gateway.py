"""The gateway's two comparisons of the issue, and nothing else, in one run (~2 minutes).

    python -m bench.gateway                 # --help for counts; --profile DIR for py-spy

1. POST /api/workflows/{id}/execute (d) against the SDK start of the same pinned
   definition (c': `ExecutionService.start` + `handle.result()`, as bench/run.py's c'),
   sequential and interleaved (one of each in turn after 3 warm-up rounds). Target:
   d - c' <= 3 ms at p50.
2. GET /api/services?page=N&per_page=20 (a random page of all of them) with 10,000
   services in the gateway's registry (f) against the bare FastAPI endpoint of
   bench/bare.py (g, GET /api/ping), with N connections: the two alternate, `--passes`
   times each, and each side's requests/s is its requests over its seconds. Target:
   f / g >= 0.50.

Everything runs on 127.0.0.1 in a temp folder: the tests' stack (bench/workload.py
`running_stack` and `serve`: the dev server, the stub services, `python -m cli gateway` with
its SQLite registry, `python -m worker`) and the bare app. The load generator is wrk
when installed, else the minimal keep-alive client of bench/registry_load.py `run_raw`
in a child process (httpx would spend more CPU per request than the endpoints it
measures).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import subprocess
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench import bare, gateway_path, registry_load
from bench.procs import cpu_seconds, machine, wait_for_quiet
from bench.rawhttp import RawClient
from bench.stats import Latencies, interleaved
from bench.workload import (
    INPUT,
    REGISTERED_SERVICES,
    TASK_QUEUE,
    Bench,
    log,
    pin,
    quiet_sdk_logs,
    running_stack,
    serve,
)
from core.temporal import connect
from executions.models import ExecuteRequest
from executions.service import ExecutionService


def py_spy(pid: int, out: Path, seconds: float) -> subprocess.Popen[bytes] | None:
    """py-spy record of `pid` for `seconds` into `out` (collapsed stacks), if installed."""
    exe = shutil.which("py-spy") or str(Path(__file__).resolve().parent.parent / ".venv/bin/py-spy")
    if not Path(exe).exists():
        return None
    return subprocess.Popen(
        [exe, "record", "-p", str(pid), "-d", str(int(seconds)), "-r", "250", "-f", "raw"]
        + ["-o", str(out), "--nonblocking"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


async def execute_phase(
    args: argparse.Namespace, bench: Bench, workflow_ids: dict[str, str]
) -> dict[str, Any]:
    ours = await connect(bench.server.address, "default")
    pinned = await pin(bench.database_url, "bench-doc")
    service = ExecutionService(ours, task_queue=TASK_QUEUE)
    raw = RawClient()
    workflow_id = workflow_ids["bench-doc"]
    gateway_url = bench.stack.url

    async def sdk() -> None:
        handle = await service.start(
            pinned, ExecuteRequest(input_data=INPUT), execution_id=f"bench-{uuid.uuid4().hex}"
        )
        await handle.result()

    async def gateway() -> None:
        body = await raw.json(
            "POST",
            f"{gateway_url}/workflows/{workflow_id}/execute?timeout=60",
            json_body={"input_data": INPUT},
        )
        if body["status"] != "COMPLETED":
            raise RuntimeError(
                f"execution {body['execution_id']} ended {body['status']}: {body.get('error')}"
            )

    async def wait_get() -> None:
        execution_id = f"bench-{uuid.uuid4().hex}"
        handle = await service.start(
            pinned, ExecuteRequest(input_data=INPUT), execution_id=execution_id
        )
        await service.wait(handle, 60)
        await service.get(execution_id)

    async def http_floor() -> None:
        await raw.json("GET", f"{gateway_url}/workflows/{workflow_id}")

    quiet = wait_for_quiet(bench.pids(), threshold=0.3, max_wait=20)
    log(f"execute: {args.rounds} rounds of c' and d, interleaved")
    profiler = None
    if args.profile:
        gateway_pid = bench.stack.gateways[0][0].pid
        profiler = py_spy(gateway_pid, args.profile / "execute.txt", args.rounds * 0.15)
    results = await interleaved(
        {
            "c'": sdk,
            "d": gateway,
            "in-process start + wait + get": wait_get,
            "http floor: GET /api/workflows/{id} (cached)": http_floor,
        },
        rounds=args.rounds,
    )
    if profiler is not None:
        profiler.wait()
    raw.close()
    log("execute: the steps of POST /execute, timed one by one in this process")
    steps = await gateway_path.measure(
        ours, database_url=bench.database_url, workflow_id=workflow_id, rounds=args.rounds // 3
    )
    return {"latencies": results, "background_cores": quiet, "steps": steps}


async def list_phase(args: argparse.Namespace, bench: Bench) -> dict[str, Any]:
    log(f"registry: inserting {args.services} services")
    ids, _ = await registry_load.insert_services(bench.database_url, args.services)
    per_page = 20
    pages = (args.services + REGISTERED_SERVICES + per_page - 1) // per_page
    list_paths = [f"/api/services?page={p}&per_page={per_page}" for p in range(1, pages + 1)]
    gateway, gateway_url = bench.stack.gateways[0]
    bare_app, bare_url = bare.start(bench)
    plans = {
        "f: list pages": (gateway_url.removesuffix("/api"), list_paths, gateway),
        "g: bare /api/ping": (bare_url, ["/api/ping"], bare_app),
    }

    async def run(name: str, seconds: float) -> registry_load.LoadResult:
        base_url, paths, _ = plans[name]
        if shutil.which("wrk"):
            return await registry_load.load(
                name,
                base_url,
                paths,
                seconds=int(seconds),
                connections=args.connections,
                workdir=bench.workdir,
            )
        return await registry_load.run_raw(
            name, base_url, paths, seconds=seconds, connections=args.connections
        )

    for name in plans:  # warm-up: imports, connections, the first cache fills
        await run(name, 1)
    totals: dict[str, dict[str, Any]] = {
        name: {"requests": 0, "seconds": 0.0, "errors": 0, "cpu": 0.0, "p99": []} for name in plans
    }
    quiet = []
    for index in range(args.passes):
        for name, (_, _, server) in plans.items():
            quiet.append(wait_for_quiet(bench.pids(), threshold=0.3, max_wait=20))
            log(f"load: {name}, {args.seconds} s, {args.connections} connections")
            profiler = None
            if args.profile and index == args.passes - 1 and name.startswith("f"):
                profiler = py_spy(server.pid, args.profile / "list.txt", args.seconds)
            cpu = cpu_seconds(server.pid)
            result = await run(name, args.seconds)
            if profiler is not None:
                profiler.wait()
            total = totals[name]
            total["cpu"] += cpu_seconds(server.pid) - cpu
            total["requests"] += result.requests
            total["seconds"] += result.requests / result.requests_per_second
            total["errors"] += result.errors
            total["p99"].append(result.p99_ms)
            total["tool"] = result.tool
    for total in totals.values():
        total["rps"] = total["requests"] / total["seconds"]
        total["cpu_ms_per_request"] = total["cpu"] * 1000 / max(1, total["requests"])
    return {"load": totals, "background_cores": quiet, "pages": pages, "ids": len(ids)}


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    quiet_sdk_logs()
    report: dict[str, Any] = {"machine": machine()}
    with running_stack(prefix="bench-gw-") as bench:
        workflow_ids = serve(bench)
        if "execute" in args.sections:
            report["execute"] = await execute_phase(args, bench, workflow_ids)
        if "list" in args.sections:
            report["list"] = await list_phase(args, bench)
    return report


def render(report: dict[str, Any]) -> str:
    lines = []
    if "execute" in report:
        lat: dict[str, Latencies] = report["execute"]["latencies"]
        c, d = lat["c'"], lat["d"]
        lines.append(
            f"execute: c' p50 {c.p50:.1f} ms p95 {c.p95:.1f}; d p50 {d.p50:.1f} ms p95 "
            f"{d.p95:.1f}; d - c' = {d.p50 - c.p50:+.1f} ms p50 (target <= 3 ms: "
            f"{'met' if d.p50 - c.p50 <= 3 else 'missed'}); n={len(d.values)}, errors "
            f"c' {c.errors} d {d.errors} {d.first_error or ''}; other processes "
            f"{report['execute']['background_cores']:.2f} cores"
        )
        for name, values in lat.items():
            if name.startswith("http floor"):
                lines.append(f"  {name}: p50 {values.p50:.2f} ms")
            elif name.startswith("in-process"):
                lines.append(
                    f"  {name}: p50 {values.p50:.1f} ms ({values.p50 - c.p50:+.1f} over c')"
                )
        steps = report["execute"]["steps"]
        lines.append("  steps (median ms): " + ", ".join(f"{k} {v:.2f}" for k, v in steps.items()))
    if "list" in report:
        load = report["list"]["load"]
        f, g = load["f: list pages"], load["g: bare /api/ping"]
        ratio = f["rps"] / g["rps"]
        for name, total in load.items():
            lines.append(
                f"{name}: {total['rps']:.1f} req/s ({total['requests']} in "
                f"{total['seconds']:.1f} s, {total.get('tool')}), p99 per pass "
                f"{', '.join(f'{p:.1f}' for p in total['p99'])} ms, server CPU "
                f"{total['cpu_ms_per_request']:.2f} ms/req, errors {total['errors']}"
            )
        lines.append(
            f"list f/g = {ratio:.2f} (target >= 0.50: {'met' if ratio >= 0.5 else 'missed'}); "
            f"other processes {', '.join(f'{q:.2f}' for q in report['list']['background_cores'])}"
            " cores"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.gateway", description=__doc__)
    parser.add_argument("--rounds", type=int, default=60, help="sequential rounds of c' and d")
    parser.add_argument("--services", type=int, default=10_000)
    parser.add_argument("--seconds", type=float, default=5, help="per load pass")
    parser.add_argument("--passes", type=int, default=2, help="load passes of f and g each")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument(
        "--sections", nargs="+", default=["execute", "list"], choices=["execute", "list"]
    )
    parser.add_argument("--profile", type=Path, default=None, help="py-spy output folder")
    parser.add_argument("--json", type=Path, default=None, help="write the figures here")
    args = parser.parse_args(argv)
    if args.profile:
        args.profile.mkdir(parents=True, exist_ok=True)
    report = asyncio.run(main_async(args))
    print(render(report))
    if args.json:
        args.json.write_text(json.dumps(report, default=lambda o: getattr(o, "__dict__", str(o))))


if __name__ == "__main__":
    main()
