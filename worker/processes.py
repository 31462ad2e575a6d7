"""Several worker processes on one task queue: `service-integration worker --processes N`.

One Python worker uses at most about one core (the workflow sandbox, the SDK's
Python side and the HTTP client all run on one event loop), so a machine with more
cores runs several. This module is their supervisor:

- it starts N children, each `python -m worker` (worker/main.py `main()`), with the
  environment of the supervisor: same TEMPORAL_ADDRESS, same TASK_QUEUE. Temporal
  hands tasks to whichever child polls, so they share the queue without any
  coordination; each has its own identity (`<pid>@<host>`);
- a child that dies (crash, OOM kill, SIGKILL) is started again after a backoff of
  1 s, doubling up to 30 s while it keeps dying within a minute of its start, so a
  worker that cannot start does not spin;
- SIGTERM or SIGINT is forwarded to every child as SIGTERM, and each drains as a
  single worker does (stops polling, lets in-flight activities finish within
  WORKER_GRACEFUL_SHUTDOWN_SECONDS). The supervisor waits for them, kills any still
  alive 15 s after that grace, and exits 0. A second signal kills the children at once;
- on Linux each child gets SIGTERM if the supervisor itself dies (PR_SET_PDEATHSIG),
  so no orphaned worker keeps polling.

N = 1 (the default, or WORKER_PROCESSES) runs the worker in this process, as before.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from types import FrameType

log = logging.getLogger("worker.processes")

ENV_VARIABLE = "WORKER_PROCESSES"
FIRST_BACKOFF = 1.0
MAX_BACKOFF = 30.0
STABLE_AFTER = 60.0
"""A child that ran this long before dying is restarted after FIRST_BACKOFF again."""
KILL_MARGIN = 15.0
"""Seconds after WORKER_GRACEFUL_SHUTDOWN_SECONDS before a draining child is killed."""
TICK = 0.2


def default_processes() -> int:
    """WORKER_PROCESSES from the environment, else 1."""
    raw = os.environ.get(ENV_VARIABLE, "").strip()
    if not raw:
        return 1
    try:
        value = int(raw)
    except ValueError:
        raise SystemExit(f"{ENV_VARIABLE} must be a whole number, not {raw!r}") from None
    if value < 1:
        raise SystemExit(f"{ENV_VARIABLE} must be at least 1, not {value}")
    return value


def child_command() -> list[str]:
    """The command of one child: the deployed worker, `python -m worker`."""
    return [sys.executable, "-m", "worker"]


def _die_with_parent() -> None:  # pragma: no cover - runs in the child before exec
    """Ask Linux to send this child SIGTERM when the supervisor dies."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


@dataclass
class Slot:
    """One of the N places a child runs in, and its restart state."""

    index: int
    process: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    restart_at: float | None = None
    backoff: float = FIRST_BACKOFF
    restarts: int = 0


@dataclass
class Supervisor:
    processes: int
    command: list[str] = field(default_factory=child_command)
    graceful_seconds: float = 30.0
    stopping: bool = False
    forced: bool = False
    slots: list[Slot] = field(default_factory=list)

    def _start(self, slot: Slot) -> None:
        env = {**os.environ, "WORKER_PROCESS_INDEX": str(slot.index)}
        env.pop(ENV_VARIABLE, None)
        slot.process = subprocess.Popen(
            self.command,
            env=env,
            preexec_fn=_die_with_parent if sys.platform == "linux" else None,  # noqa: PLW1509
        )
        slot.started_at = time.monotonic()
        slot.restart_at = None
        log.info("worker process %d started (pid %d)", slot.index, slot.process.pid)

    def pids(self) -> list[int]:
        return [s.process.pid for s in self.slots if s.process and s.process.poll() is None]

    def _signal(self, signum: int, _frame: FrameType | None) -> None:
        if self.stopping:
            self.forced = True
            return
        self.stopping = True

    def _forward(self, signum: int) -> None:
        for slot in self.slots:
            if slot.process is not None and slot.process.poll() is None:
                try:
                    slot.process.send_signal(signum)
                except ProcessLookupError:
                    pass

    def _reap(self, now: float) -> None:
        """Note children that died and when to start them again."""
        for slot in self.slots:
            if slot.process is None or slot.restart_at is not None:
                continue
            code = slot.process.poll()
            if code is None:
                continue
            ran = now - slot.started_at
            if ran >= STABLE_AFTER:
                slot.backoff = FIRST_BACKOFF
            slot.restart_at = now + slot.backoff
            log.warning(
                "worker process %d (pid %d) exited with %s after %.1f s; restarting in %.1f s",
                slot.index,
                slot.process.pid,
                code,
                ran,
                slot.backoff,
            )
            slot.backoff = min(MAX_BACKOFF, slot.backoff * 2)

    def run(self) -> int:
        previous = {
            sig: signal.signal(sig, self._signal) for sig in (signal.SIGTERM, signal.SIGINT)
        }
        try:
            self.slots = [Slot(index) for index in range(self.processes)]
            for slot in self.slots:
                if not self.stopping:
                    self._start(slot)
            while not self.stopping:
                now = time.monotonic()
                self._reap(now)
                for slot in self.slots:
                    if slot.restart_at is not None and now >= slot.restart_at:
                        slot.restarts += 1
                        self._start(slot)
                time.sleep(TICK)
            return self._drain()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _drain(self) -> int:
        """Forward SIGTERM, wait for every child to finish its in-flight work, exit 0."""
        log.info(
            "stopping %d worker process(es); in-flight activities may finish (up to %.0f s)",
            len(self.pids()),
            self.graceful_seconds,
        )
        self._forward(signal.SIGTERM)
        deadline = time.monotonic() + self.graceful_seconds + KILL_MARGIN
        while self.pids():
            if self.forced or time.monotonic() > deadline:
                log.warning("killing worker processes %s", self.pids())
                self._forward(signal.SIGKILL)
            time.sleep(TICK / 2)
        for slot in self.slots:
            if slot.process is not None:
                slot.process.wait()
        log.info("all worker processes stopped")
        return 0


def run(processes: int) -> int:
    """Run `processes` workers on the task queue; 1 runs it in this process."""
    if processes < 1:
        raise SystemExit("--processes must be at least 1")
    if processes == 1:
        from worker.main import main as worker_main

        worker_main()
        return 0
    from core.logs import configure_logging

    configure_logging()  # an expected step failure is one line (core/logs.py)
    from core.settings import get_settings

    settings = get_settings()
    log.info(
        "supervising %d worker processes on task queue %r (pid %d)",
        processes,
        settings.task_queue,
        os.getpid(),
    )
    return Supervisor(processes, graceful_seconds=settings.worker_graceful_shutdown_seconds).run()


def main() -> None:
    sys.exit(run(default_processes()))


if __name__ == "__main__":
    main()
