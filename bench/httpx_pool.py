"""httpx under concurrency: CPU per request of one AsyncClient, by pool size.

The worker makes every step's call with one httpx.AsyncClient
(worker/main.py outbound_http: max_connections=500). httpcore's pool walks all its
connections and queued requests on every request (encode/httpx#3215), so the CPU a
request costs grows with how many are in flight. This measures it against the stub
services, next to the minimal client of bench/rawhttp.py.

Run: `python -m bench.httpx_pool` (about half a minute).
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
from pathlib import Path

import httpx

from bench.procs import spawn
from bench.rawhttp import RawClient
from bench.report import table
from bench.stubs import SERVICES
from core.devserver import free_port

REQUESTS = 2000


async def _measure(url: str, concurrency: int, max_connections: int | None) -> tuple[float, float]:
    """(requests/s, CPU ms per request) of `concurrency` lanes posting to `url`."""
    if max_connections is None:
        client = RawClient()

        async def post() -> None:
            await client.json("POST", url, json_body={"document_url": "x"})
    else:
        limits = httpx.Limits(
            max_connections=max_connections, max_keepalive_connections=max_connections
        )
        http = httpx.AsyncClient(limits=limits)

        async def post() -> None:
            (await http.post(url, json={"document_url": "x"})).raise_for_status()

    per_lane = max(1, REQUESTS // concurrency)

    async def lane() -> None:
        for _ in range(per_lane):
            await post()

    started, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(lane() for _ in range(concurrency)))
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    if max_connections is None:
        client.close()
    else:
        await http.aclose()
    done = per_lane * concurrency
    return done / elapsed, cpu * 1000 / done


async def run(url: str) -> list[list[object]]:
    rows: list[list[object]] = []
    for concurrency in (1, 10, 50, 200):
        for pool in (10, 50, 500, None):
            rate, cpu = await _measure(url, concurrency, pool)
            rows.append(
                [concurrency, "minimal client" if pool is None else f"httpx, {pool}", rate, cpu]
            )
    return rows


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="bench-httpx-") as tmp:
        ports = [free_port() for _ in SERVICES]
        stubs = spawn(
            "stubs",
            [sys.executable, "-m", "bench.stubs", *map(str, ports)],
            log=Path(tmp) / "stubs.log",
            ready_line="ready",
        )
        try:
            rows = asyncio.run(run(f"http://127.0.0.1:{ports[0]}/extract"))
        finally:
            stubs.stop()
    print(
        table(
            ["in flight", "client, max_connections", "requests/s", "client CPU ms/request"],
            rows,
            markdown=False,
        )
    )


if __name__ == "__main__":
    main()
