"""Child processes of the benchmark, and what they cost (CPU seconds, peak RSS).

CPU and memory are read from /proc, so no extra package is needed: utime + stime of
/proc/<pid>/stat, and VmHWM of /proc/<pid>/status (the peak resident set size).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds used so far by `pid` (its threads included)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def peak_rss_mb(pid: int) -> float:
    """Peak resident set size of `pid` in MiB (VmHWM)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def machine_busy_seconds() -> float:
    """CPU seconds all cores spent busy since boot (from /proc/stat)."""
    parts = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    values = [int(v) for v in parts]
    idle = values[3] + values[4]  # idle + iowait
    return (sum(values[:8]) - idle) / CLOCK_TICKS


def machine() -> dict[str, str]:
    """What the figures were measured on."""
    model = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    memory = "unknown"
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            memory = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    return {
        "cpu": f"{os.cpu_count()} x {model}",
        "memory": memory,
        "kernel": os.uname().release,
        "python": sys.version.split()[0],
    }


@dataclass
class Child:
    """A process started by the benchmark; stopped by its own pid only."""

    name: str
    process: subprocess.Popen[bytes]
    log: Path | None = None

    @property
    def pid(self) -> int:
        return self.process.pid

    def cpu(self) -> float:
        return cpu_seconds(self.pid)

    def peak_rss_mb(self) -> float:
        return peak_rss_mb(self.pid)

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self, *, timeout: float = 20.0) -> None:
        if not self.alive():
            return
        self.process.terminate()
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def spawn(
    name: str,
    args: list[str],
    *,
    env: dict[str, str] | None = None,
    log: Path,
    ready_line: str | None = None,
    timeout: float = 60.0,
) -> Child:
    """Start `args` with stdout and stderr in `log`; with `ready_line`, wait for it there.

    Raises:
        RuntimeError: the child exited, or did not get ready within `timeout`; the
            message ends with the tail of its log.
    """
    out = open(log, "wb")  # noqa: SIM115 - owned by the child for its lifetime
    process = subprocess.Popen(
        args,
        env=env,
        stdout=out,
        stderr=subprocess.STDOUT,
        cwd=Path(__file__).resolve().parent.parent,
    )
    child = Child(name, process, log)
    if ready_line is None:
        return child
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ready_line in log.read_text(errors="replace"):
            return child
        if process.poll() is not None:
            break
        time.sleep(0.05)
    child.stop()
    tail = log.read_text(errors="replace")[-2000:]
    raise RuntimeError(f"{name} did not log {ready_line!r} within {timeout:.0f}s:\n{tail}")


def wait_http(url: str, *, timeout: float = 60.0, child: Child | None = None) -> None:
    """Wait until `url` answers (any status)."""
    import httpx

    deadline = time.monotonic() + timeout
    while True:
        try:
            httpx.get(url, timeout=1.0)
            return
        except httpx.HTTPError:
            pass
        if child is not None and not child.alive():
            tail = child.log.read_text(errors="replace")[-2000:] if child.log else ""
            raise RuntimeError(f"{child.name} exited with {child.process.returncode}:\n{tail}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"{url} did not answer within {timeout:.0f}s")
        time.sleep(0.1)


def others_cpu(ours: list[int], *, seconds: float = 1.0) -> float:
    """Cores kept busy over `seconds` by processes other than `ours` (0 = idle machine)."""

    def ours_cpu() -> float:
        total = 0.0
        for pid in ours:
            try:
                total += cpu_seconds(pid)
            except (FileNotFoundError, ProcessLookupError):
                pass
        return total

    busy, mine = machine_busy_seconds(), ours_cpu()
    time.sleep(seconds)
    return max(0.0, (machine_busy_seconds() - busy) - (ours_cpu() - mine)) / seconds


def wait_for_quiet(ours: list[int], *, threshold: float, max_wait: float) -> float:
    """Wait (up to `max_wait` seconds) until others use under `threshold` cores.

    Returns:
        The last reading, in cores; the machine is shared, so this is reported next
        to the figures rather than assumed to be zero.
    """
    deadline = time.monotonic() + max_wait
    reading = others_cpu(ours)
    while reading > threshold and time.monotonic() < deadline:
        reading = others_cpu(ours)
    return reading
