"""The real stack for the tests and the benchmarks: worker and gateway processes against a
dev server, and the stub services in a process of their own."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from core.devserver import DevServer, free_port

ROOT = Path(__file__).resolve().parents[1]
WORKER_COMMAND = ["worker"]
"""`python -m worker`: the worker process as deployed (worker/main.py)."""
GATEWAY_COMMAND = ["cli", "gateway"]
"""`python -m cli gateway`: the gateway with its embedded worker wired (cli/gateway.py)."""
WORKER_READY = "worker polling task queue"
"""What a worker logs once it polls its task queue (worker/main.py)."""


@dataclass
class Stack:
    temporal_address: str
    database_url: str
    log_dir: Path
    task_queue: str = field(default_factory=lambda: f"tq-{uuid.uuid4().hex[:8]}")
    workers: list[subprocess.Popen[bytes]] = field(default_factory=list)
    gateways: list[tuple[subprocess.Popen[bytes], str]] = field(default_factory=list)
    extra_env: dict[str, str] = field(default_factory=dict)
    started: list[subprocess.Popen[bytes]] = field(default_factory=list)
    """Every process `spawn` started (workers and gateways included); `stop` stops them."""

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

    def spawn(
        self,
        command: Sequence[str],
        name: str,
        *,
        env: Mapping[str, str] | None = None,
        prefix: Sequence[str] = (),
        ready_line: str | None = None,
        timeout: float = 60,
    ) -> subprocess.Popen[bytes]:
        """`python -m <command>` in the stack's environment, its output in `<log_dir>/<name>.log`.

        Args:
            command: the module and its arguments (`["worker"]`, `["cli", "gateway"]`).
            name: the name of its log file.
            env: variables over the stack's environment (`TASK_QUEUE`, ...).
            prefix: a command to run it behind (a profiler: `py-spy record ... --`).
            ready_line: return once the log shows this line.
            timeout: how long to wait for `ready_line`.

        Raises:
            RuntimeError: the process exited before logging `ready_line`.
            TimeoutError: it did not log `ready_line` within `timeout`.
        """
        log_path = self.log_dir / f"{name}.log"
        log = open(log_path, "ab")  # noqa: SIM115 - owned by the child for its lifetime
        process = subprocess.Popen(
            [*prefix, sys.executable, "-m", *command],
            cwd=ROOT,
            env=self.env(**(env or {})),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        self.started.append(process)
        if ready_line is not None:
            wait_for_line(log_path, ready_line, process, timeout=timeout)
        return process

    def start_worker(self, **env: str) -> subprocess.Popen[bytes]:
        worker = self.spawn(WORKER_COMMAND, f"worker-{len(self.workers)}", env=env)
        self.workers.append(worker)
        return worker

    def start_gateway(self, *, wait: bool = True, **env: str) -> str:
        return self._start_gateway(env, wait=wait)

    def _start_gateway(self, env: Mapping[str, str], *, wait: bool = True) -> str:
        port = free_port()
        process = self.spawn(
            GATEWAY_COMMAND,
            f"gateway-{len(self.gateways)}",
            env={**env, "GATEWAY_PORT": str(port)},
        )
        url = f"http://127.0.0.1:{port}/api"
        self.gateways.append((process, url))
        if wait:
            wait_until_up(url, process)
        return url

    def start_services(self) -> tuple[subprocess.Popen[bytes], str]:
        """The stub services (harness/services.py) in a process of their own; and their URL."""
        port = free_port()
        process = self.spawn(["harness.services", str(port)], "services", ready_line="ready")
        return process, f"http://127.0.0.1:{port}"

    @contextmanager
    def pair(self, **env: str) -> Iterator[str]:
        """A worker and a gateway of their own (e.g. their own TASK_QUEUE); yields its URL."""
        worker = self.start_worker(**env)
        url = self._start_gateway(env)
        gateway = self.gateways[-1][0]
        wait_for_workers(url)
        try:
            yield url
        finally:
            for process in (gateway, worker):
                process.terminate()
                process.wait(30)

    def stop(self) -> None:
        processes = list(
            {
                id(p): p for p in [*self.workers, *(p for p, _ in self.gateways), *self.started]
            }.values()
        )
        for process in processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in processes:
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()


def stop_process(process: subprocess.Popen[bytes], *, timeout: float = 20) -> None:
    """SIGTERM `process` (by its own pid), and SIGKILL it if it is not gone in `timeout`."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def wait_for_line(
    log: Path,
    line: str,
    process: subprocess.Popen[bytes],
    *,
    count: int = 1,
    timeout: float = 60,
) -> None:
    """Wait until `log` holds `line` `count` times (e.g. once per worker process)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = log.read_text(errors="replace") if log.exists() else ""
        if text.count(line) >= count:
            return
        if process.poll() is not None:
            raise RuntimeError(
                f"{log.stem} exited with {process.returncode} before logging {line!r}:\n"
                f"{text[-2000:]}"
            )
        time.sleep(0.05)
    raise TimeoutError(f"{log.stem} did not log {line!r} {count} time(s) in {timeout:.0f}s")


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


def start_dev_server(folder: Path, *, extra_args: Sequence[str] = ()) -> DevServer:
    """A headless Temporal dev server on a free port, its state and log in `folder`.

    `extra_args` go to `temporal server start-dev` after the project's settings (e.g.
    `--metrics-port`).
    """
    return DevServer(
        db_file=folder / "temporal.db",
        port=free_port(),
        ui_port=None,
        log_file=folder / "temporal.log",
        extra_args=list(extra_args),
    ).start()
