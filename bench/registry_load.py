"""(f) and (g): the registry with 10,000 services under load, next to a bare endpoint.

The services are inserted in one transaction into the gateway's own SQLite registry,
through the registry's SQLAlchemy table (`registry.tables.ServiceRow`), with each
row's actions dumped by `ActionSpec.model_dump(mode="json")` as `registry.services.
register` stores them; `created_at` grows by a microsecond per row so the list order
is stable. This takes well under a second, where 10,000 POST /api/services would take
minutes; the rows are the same as registered ones.

The load generator is `wrk` (one thread, N connections, a Lua script picking a random
page or a random id per request) when installed, else an httpx loop with the same
bounded concurrency; `run_raw` is a third one, N keep-alive connections of a minimal
HTTP/1.1 client in a child process (bench/gateway.py uses it without wrk: httpx costs
more CPU per request than the endpoints it would measure).
"""

from __future__ import annotations

import asyncio
import json
import random
import re
import shutil
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from sqlalchemy import insert

from bench.stats import Latencies, timed
from definitions.models import ActionSpec
from registry.db import create_engine
from registry.tables import ServiceRow


async def insert_services(database_url: str, count: int) -> tuple[list[str], float]:
    """Insert `count` services; returns their ids and the seconds it took."""
    action = ActionSpec(
        name="extract",
        input_schema={"type": "object", "properties": {"document_url": {"type": "string"}}},
        output_schema={"type": "object", "properties": {"text": {"type": "string"}}},
    ).model_dump(mode="json")
    base = datetime.now(UTC)
    ids = [str(uuid.uuid4()) for _ in range(count)]
    rows = [
        {
            "id": ids[i],
            "name": f"svc-{i:05d}",
            "description": "bulk-registered for the benchmark",
            "endpoint": f"http://127.0.0.1:9/svc-{i:05d}",
            "actions": [action],
            "metadata_": {},
            "status": "ACTIVE",
            "health_path": "/health",
            "created_at": base + timedelta(microseconds=i),
            "updated_at": base + timedelta(microseconds=i),
        }
        for i in range(count)
    ]
    # Core executemany keys rows by column name ("metadata"), not by attribute.
    for row in rows:
        row["metadata"] = row.pop("metadata_")
    engine = create_engine(database_url)
    started = time.perf_counter()
    try:
        async with engine.begin() as connection:
            await connection.execute(insert(ServiceRow), rows)
    finally:
        await engine.dispose()
    return ids, time.perf_counter() - started


@dataclass
class LoadResult:
    name: str
    requests_per_second: float
    p50_ms: float
    p99_ms: float
    requests: int
    errors: int
    tool: str


def _lua(paths: list[str]) -> str:
    listed = ",\n".join(f'"{p}"' for p in paths)
    return (
        f"local paths = {{\n{listed}\n}}\n"
        "math.randomseed(42)\n"
        "request = function()\n"
        "  return wrk.format('GET', paths[math.random(#paths)])\n"
        "end\n"
    )


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def _ms(text: str) -> float:
    match = re.match(r"([0-9.]+)(us|ms|s)", text)
    if not match:
        return float("nan")
    return float(match.group(1)) * _UNITS[match.group(2)]


def run_wrk(
    name: str, base_url: str, paths: list[str], *, seconds: int, connections: int, workdir: Path
) -> LoadResult:
    script = workdir / f"wrk-{re.sub(r'[^a-z0-9]+', '-', name.lower())}.lua"
    script.write_text(_lua(paths))
    out = subprocess.run(
        [
            "wrk",
            "-t1",
            f"-c{connections}",
            f"-d{seconds}s",
            "--latency",
            "--timeout",
            "10s",
            "-s",
            str(script),
            base_url,
        ],
        capture_output=True,
        text=True,
        timeout=seconds + 60,
        check=True,
    ).stdout
    rps = re.search(r"Requests/sec:\s+([0-9.]+)", out)
    p50 = re.search(r"^\s+50%\s+(\S+)", out, re.M)
    p99 = re.search(r"^\s+99%\s+(\S+)", out, re.M)
    total = re.search(r"(\d+) requests in", out)
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    socket = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    errors = int(non_2xx.group(1)) if non_2xx else 0
    if socket:
        errors += sum(int(g) for g in socket.groups())
    return LoadResult(
        name=name,
        requests_per_second=float(rps.group(1)) if rps else float("nan"),
        p50_ms=_ms(p50.group(1)) if p50 else float("nan"),
        p99_ms=_ms(p99.group(1)) if p99 else float("nan"),
        requests=int(total.group(1)) if total else 0,
        errors=errors,
        tool="wrk",
    )


async def run_httpx(
    name: str, base_url: str, paths: list[str], *, seconds: int, connections: int
) -> LoadResult:
    latencies = Latencies()
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    rng = random.Random(42)
    async with httpx.AsyncClient(base_url=base_url, limits=limits, timeout=10) as http:

        async def get() -> None:
            (await http.get(rng.choice(paths))).raise_for_status()

        deadline = time.perf_counter() + seconds

        async def lane() -> None:
            while time.perf_counter() < deadline:
                await timed(get, latencies)

        started = time.perf_counter()
        await asyncio.gather(*(lane() for _ in range(connections)))
        elapsed = time.perf_counter() - started
    return LoadResult(
        name=name,
        requests_per_second=len(latencies.values) / elapsed,
        p50_ms=latencies.p50,
        p99_ms=latencies.p99,
        requests=len(latencies.values),
        errors=latencies.errors,
        tool="httpx",
    )


_RAW_LOADER = r"""
import asyncio, json, random, sys, time
host, port, seconds, connections, paths = json.loads(sys.stdin.read())
async def main():
    rng = random.Random(42)
    latencies, errors = [], 0
    deadline = time.perf_counter() + seconds
    async def lane():
        nonlocal errors
        reader, writer = await asyncio.open_connection(host, port)
        while time.perf_counter() < deadline:
            path = rng.choice(paths)
            started = time.perf_counter()
            writer.write(f"GET {path} HTTP/1.1\r\nhost: {host}:{port}\r\n\r\n".encode())
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n")[1:]:
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            await reader.readexactly(length)
            if not head.startswith(b"HTTP/1.1 2"):
                errors += 1
            latencies.append((time.perf_counter() - started) * 1000)
        writer.close()
    started = time.perf_counter()
    await asyncio.gather(*(lane() for _ in range(connections)))
    print(json.dumps([latencies, errors, time.perf_counter() - started]))
asyncio.run(main())
"""


async def run_raw(
    name: str, base_url: str, paths: list[str], *, seconds: float, connections: int
) -> LoadResult:
    """GETs of random `paths` on `connections` keep-alive connections, from a child
    process with a minimal HTTP/1.1 client (well under 0.1 ms of CPU per request)."""
    from urllib.parse import urlsplit

    parts = urlsplit(base_url)
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        _RAW_LOADER,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    request = json.dumps([parts.hostname, parts.port, seconds, connections, paths]).encode()
    out, _ = await process.communicate(request)
    values, errors, elapsed = json.loads(out)
    latencies = Latencies(values=values, errors=errors)
    return LoadResult(
        name=name,
        requests_per_second=len(values) / elapsed,
        p50_ms=latencies.p50,
        p99_ms=latencies.p99,
        requests=len(values),
        errors=errors,
        tool="raw",
    )


async def load(
    name: str, base_url: str, paths: list[str], *, seconds: int, connections: int, workdir: Path
) -> LoadResult:
    """requests/s and latency of GETs of random `paths` for `seconds`."""
    if shutil.which("wrk"):
        return await asyncio.to_thread(
            run_wrk,
            name,
            base_url,
            paths,
            seconds=seconds,
            connections=connections,
            workdir=workdir,
        )
    return await run_httpx(name, base_url, paths, seconds=seconds, connections=connections)
