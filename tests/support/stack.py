"""The real stack for the tests: worker and gateway processes against a dev server."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from core.devserver import DevServer, free_port

ROOT = Path(__file__).resolve().parents[2]
GATEWAY_COMMAND = ["cli", "gateway"]
"""`python -m cli gateway`: the gateway with its embedded worker wired (cli/gateway.py)."""


@dataclass
class Stack:
    temporal_address: str
    database_url: str
    log_dir: Path
    task_queue: str = field(default_factory=lambda: f"tq-{uuid.uuid4().hex[:8]}")
    workers: list[subprocess.Popen[bytes]] = field(default_factory=list)
    gateways: list[tuple[subprocess.Popen[bytes], str]] = field(default_factory=list)
    extra_env: dict[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return self.gateways[0][1]

    def env(self, **overrides: str) -> dict[str, str]:
        return {
            **os.environ,
            "TEMPORAL_ADDRESS": self.temporal_address,
            "TEMPORAL_NAMESPACE": "default",
            "TASK_QUEUE": self.task_queue,
            "DATABASE_URL": self.database_url,
            "DATA_DIR": str(self.log_dir),
            "ENVIRONMENT": "test",
            # The test services listen on loopback, which outbound calls refuse by default.
            "ALLOWED_HOSTS": "127.0.0.1",
            "WORKER_GRACEFUL_SHUTDOWN_SECONDS": "5",
            **self.extra_env,
            **overrides,
        }

    def _spawn(self, command: list[str], name: str, **env: str) -> subprocess.Popen[bytes]:
        log = open(self.log_dir / f"{name}.log", "ab")  # noqa: SIM115
        return subprocess.Popen(
            [sys.executable, "-m", *command],
            cwd=ROOT,
            env=self.env(**env),
            stdout=log,
            stderr=subprocess.STDOUT,
        )

    def start_worker(self, **env: str) -> subprocess.Popen[bytes]:
        worker = self._spawn(["worker"], f"worker-{len(self.workers)}", **env)
        self.workers.append(worker)
        return worker

    def start_gateway(self, *, wait: bool = True, **env: str) -> str:
        port = free_port()
        process = self._spawn(
            GATEWAY_COMMAND, f"gateway-{len(self.gateways)}", GATEWAY_PORT=str(port), **env
        )
        url = f"http://127.0.0.1:{port}/api"
        self.gateways.append((process, url))
        if wait:
            wait_until_up(url, process)
        return url

    @contextmanager
    def pair(self, **env: str) -> Iterator[str]:
        """A worker and a gateway of their own (e.g. their own TASK_QUEUE); yields its URL."""
        worker = self.start_worker(**env)
        url = self.start_gateway(**env)
        gateway = self.gateways[-1][0]
        wait_for_workers(url)
        try:
            yield url
        finally:
            for process in (gateway, worker):
                process.terminate()
                process.wait(30)

    def stop(self) -> None:
        for process in [*self.workers, *(p for p, _ in self.gateways)]:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in [*self.workers, *(p for p, _ in self.gateways)]:
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()


def wait_until_up(url: str, process: subprocess.Popen[bytes], *, timeout: float = 60) -> None:
    """Wait until the gateway answers /health (any status: it may report degraded)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"gateway exited with {process.returncode}; see its log")
        try:
            httpx.get(f"{url}/health", timeout=2)
            return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise TimeoutError(f"gateway at {url} did not answer in {timeout}s")


def wait_for_workers(url: str, *, count: int = 1, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body = httpx.get(f"{url}/health", timeout=5).json()
        workers = body["components"]["workers"]
        if workers.get("count", 0) >= count and workers["status"] == "healthy":
            return
        time.sleep(0.2)
    raise TimeoutError(f"{count} worker(s) did not start polling in {timeout}s")


def start_dev_server(folder: Path) -> DevServer:
    """A headless Temporal dev server on a free port, its state and log in `folder`."""
    return DevServer(
        db_file=folder / "temporal.db",
        port=free_port(),
        ui_port=None,
        log_file=folder / "temporal.log",
    ).start()
