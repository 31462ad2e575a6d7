"""The bare FastAPI app of (g): same process setup as the gateway, no database.

Served by uvicorn with the flags of cli/gateway.py (log_level="info",
access_log=False, one process), so f/g compares the registry's work with the cost of
FastAPI and uvicorn alone.

    GET /api/ping           a constant small JSON object (the bare endpoint, g)
    GET /api/static-page    a page of 20 services built once, answered through the
                            gateway's response model: the serialisation share of f
    GET /api/db-page        the same page as GET /api/services?page=N, read from the
                            registry's SQLite file with sqlite3 in a thread and
                            answered as JSON bytes: a floor for f without the ORM,
                            the async driver and model validation (with --database)

Run: `python -m bench.bare --port PORT`; `start(bench)` runs it beside the stack.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sqlite3
import subprocess
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import uvicorn
from fastapi import FastAPI, Query, Response

from core.devserver import free_port
from definitions.models import ActionSpec
from harness.stack import wait_until_up
from registry.schemas import DefinitionStatus, ServicePublic, ServicesPage

if TYPE_CHECKING:
    from bench.workload import Bench


def _page() -> ServicesPage:
    now = datetime.now(UTC)
    action = ActionSpec(
        name="extract",
        input_schema={"type": "object", "properties": {"document_url": {"type": "string"}}},
        output_schema={"type": "object", "properties": {"text": {"type": "string"}}},
    )
    items = [
        ServicePublic(
            id=f"00000000-0000-0000-0000-{i:012d}",
            name=f"svc-{i:05d}",
            description="bulk-registered for the benchmark",
            endpoint=f"http://127.0.0.1:9/svc-{i:05d}",
            actions=[action],
            metadata={},
            status=DefinitionStatus.ACTIVE,
            health_path="/health",
            created_at=now,
            updated_at=now,
        )
        for i in range(20)
    ]
    return ServicesPage.of(items, total=10_000, page=1, per_page=20)


class _PageReader:
    """Pages of the services table with one sqlite3 connection, used from a thread."""

    COLUMNS = (
        "id, name, description, endpoint, actions, metadata, status, health_path, "
        "created_at, updated_at"
    )

    def __init__(self, path: Path) -> None:
        self._connection = sqlite3.connect(path, check_same_thread=False)
        self._lock = threading.Lock()

    def page(self, page: int, per_page: int) -> bytes:
        with self._lock:
            total = self._connection.execute("SELECT count(*) FROM services").fetchone()[0]
            rows = self._connection.execute(
                f"SELECT {self.COLUMNS} FROM services ORDER BY created_at, id LIMIT ? OFFSET ?",
                (per_page, (page - 1) * per_page),
            ).fetchall()
        items = [
            {
                "id": r[0],
                "name": r[1],
                "description": r[2],
                "endpoint": r[3],
                "actions": json.loads(r[4]),
                "metadata": json.loads(r[5]),
                "status": r[6],
                "health_path": r[7],
                "created_at": r[8],
                "updated_at": r[9],
            }
            for r in rows
        ]
        body = {
            "items": items,
            "total": total,
            "page": page,
            "per_page": per_page,
            "pages": (total + per_page - 1) // per_page,
        }
        return json.dumps(body, separators=(",", ":")).encode()


def create_app(database: Path | None = None) -> FastAPI:
    app = FastAPI(title="bare")
    page = _page()
    reader = _PageReader(database) if database else None

    @app.get("/api/ping")
    async def ping() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/api/static-page", response_model=ServicesPage)
    async def static_page() -> ServicesPage:
        return page

    @app.get("/api/db-page")
    async def db_page(
        page: int = Query(default=1, ge=1), per_page: int = Query(default=20, ge=1, le=100)
    ) -> Response:
        if reader is None:
            return Response(status_code=404)
        body = await asyncio.to_thread(reader.page, page, per_page)
        return Response(body, media_type="application/json")

    return app


def start(bench: Bench) -> tuple[subprocess.Popen[bytes], str]:
    """The bare app in a process of the stack, reading the registry's SQLite file; its URL."""
    port = free_port()
    database = bench.workdir / "registry.db"
    command = ["bench.bare", "--port", str(port), "--database", str(database)]
    process = bench.stack.spawn(command, "bare")
    url = f"http://127.0.0.1:{port}"
    wait_until_up(f"{url}/api", process)  # any answer will do: a 404 of /api/health
    return process, url


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--database", type=Path, default=None, help="the registry's SQLite file")
    args = parser.parse_args()
    uvicorn.run(
        create_app(args.database),
        host="127.0.0.1",
        port=args.port,
        log_level="info",
        access_log=False,
    )


if __name__ == "__main__":
    main()
