"""What processes cost (CPU seconds, peak RSS), what the machine is, and how busy.

CPU and memory are read from /proc, so no extra package is needed: utime + stime of
/proc/<pid>/stat, and VmHWM of /proc/<pid>/status (the peak resident set size).
"""

from __future__ import annotations

import os
import sys
import time
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
