"""Where a worker's CPU goes: cProfile on every thread, py-spy, and their summaries by area.

    python -m bench.profiles FILE MODULE [ARGS...]

runs `python -m MODULE ARGS...` (e.g. `worker`, `bench.baseline ...`) with cProfile on
its main thread and, through `threading.setprofile`, on every thread it starts (the
sandbox's activation threads, aiosqlite's thread), and writes the merged stats to FILE
(pstats format) when it exits (SIGTERM included). bench/parity.py starts its workers
this way for `--profile cprofile`, and behind `py_spy_prefix()` for `--profile py-spy`;
bench/language.py profiles a worker inside its own process with `every_thread()`.
"""

from __future__ import annotations

import cProfile
import io
import json
import pstats
import runpy
import shutil
import signal
import sys
import threading
from collections import Counter, defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bench.report import table

ROOT = str(Path(__file__).resolve().parent.parent) + "/"

IDLE = (
    "<method 'get' of '_queue.SimpleQueue' objects>",
    "<method 'poll' of 'select.epoll' objects>",
    "<method 'poll' of 'select.poll' objects>",
    "<method 'acquire' of '_thread.lock' objects>",
    "<built-in method time.sleep>",
)
"""Functions where a thread waits for work: their time is not CPU, so left out."""

AREAS = (
    ("/temporalio/worker/workflow_sandbox/", "temporalio sandbox"),
    ("/temporalio/", "temporalio SDK (Python)"),
    ("/httpx/", "httpx/httpcore/h11/anyio"),
    ("/httpcore/", "httpx/httpcore/h11/anyio"),
    ("/h11/", "httpx/httpcore/h11/anyio"),
    ("/anyio/", "httpx/httpcore/h11/anyio"),
    ("/jsonata/", "jsonata"),
    ("/pydantic", "pydantic"),
    ("/google/protobuf/", "protobuf"),
    ("/jsonschema", "jsonschema"),
    ("/referencing/", "jsonschema"),
    ("/asyncio/", "asyncio"),
    ("selectors.py", "asyncio"),
    ("importlib", "imports"),
)


def area(file: str, function: str) -> str:
    """Which part of the stack a profiled function belongs to."""
    if file == "~":
        if "WorkerRef" in function or "temporal_sdk_bridge" in function:
            return "temporal core bridge calls (Rust)"
        if "socket" in function:
            return "sockets"
        if "pydantic_core" in function or "SchemaValidator" in function:
            return "pydantic"
        if function in ("<built-in method builtins.exec>", "<built-in method builtins.compile>"):
            return "temporalio sandbox"
        return "other built-ins"
    for marker, name in AREAS:
        if marker in file:
            return name
    if _in_project(file):
        return "project: " + file[len(ROOT) :].split("/", 1)[0]
    return "other (stdlib, libraries)"


def _in_project(file: str) -> bool:
    return file.startswith(ROOT) and "/site-packages/" not in file and "/bench/" not in file


# ---------------------------------------------------------------------- cProfile


@contextmanager
def every_thread() -> Iterator[list[cProfile.Profile]]:
    """cProfile on this thread and on every thread started inside the block."""
    profiles: list[cProfile.Profile] = []

    def start_profile(*_: Any) -> None:
        profile = cProfile.Profile()
        profiles.append(profile)
        profile.enable()  # replaces this hook for the thread that called it

    main = cProfile.Profile()
    profiles.append(main)
    threading.setprofile(start_profile)
    main.enable()
    try:
        yield profiles
    finally:
        main.disable()
        threading.setprofile(None)  # type: ignore[arg-type]


def merged(profiles: list[cProfile.Profile]) -> pstats.Stats | None:
    """The profiles' stats as one (None if none ran anything)."""
    stats: pstats.Stats | None = None
    for profile in profiles:
        profile.disable()
        try:
            if stats is None:
                stats = pstats.Stats(profile)
            else:
                stats.add(profile)
        except TypeError:  # a thread that never ran anything profiled
            continue
    return stats


def stats_summary(
    stats: pstats.Stats,
    label: str,
    units: int,
    *,
    top: int = 25,
    callers: str | None = None,
    markdown: bool = False,
) -> str:
    """CPU time by area, the busiest functions and the project's, idle waits left out."""
    table_of: dict[tuple[str, int, str], Any] = stats.stats  # type: ignore[attr-defined]
    by_area: dict[str, float] = defaultdict(float)
    busiest: list[tuple[float, int, str]] = []
    project: list[tuple[float, int, str]] = []
    for (file, line, function), (_, calls, tottime, cumtime, _) in table_of.items():
        if function in IDLE:
            continue
        by_area[area(file, function)] += tottime
        where = function if file == "~" else f"{Path(file).name}:{line}({function})"
        busiest.append((tottime, calls, where))
        if _in_project(file):
            project.append((cumtime, calls, f"{file[len(ROOT) :]}:{line}({function})"))
    busy = sum(by_area.values())
    rows = [
        [name, f"{s:.2f}", f"{s / busy * 100:.0f}%", f"{s / units * 1000:.2f}"]
        for name, s in sorted(by_area.items(), key=lambda kv: -kv[1])
    ]
    top_rows = [[w[:90], c, f"{s:.3f}"] for s, c, w in sorted(busiest, reverse=True)[:top]]
    project_rows = [
        [w[:90], c, f"{s / units * 1000:.3f}"] for s, c, w in sorted(project, reverse=True)[:15]
    ]
    text = (
        f"{label}: {busy:.2f} s busy in Python threads (profiler overhead included)\n"
        + table(["area", "s", "share", "ms per unit"], rows, markdown=markdown)
        + "\n\n"
        + table(["function (tottime)", "calls", "s"], top_rows, markdown=markdown)
        + "\n\n"
        + table(
            ["project function (cumulative)", "calls", "ms per unit"],
            project_rows,
            markdown=markdown,
        )
    )
    if callers:
        buffer = io.StringIO()
        stats.stream = buffer  # type: ignore[attr-defined]
        stats.sort_stats("tottime").print_callers(callers)
        text += "\n\n" + buffer.getvalue()
    return text


# ---------------------------------------------------------------------- py-spy


def py_spy_prefix(output: Path) -> list[str]:
    """The command that runs a process under py-spy: collapsed stacks of the threads
    holding the GIL (Python CPU work; waits are left out), 250 samples a second."""
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    return [
        py_spy,
        "record",
        "--format",
        "raw",
        "--full-filenames",
        "--rate",
        "250",
        "--nonblocking",
        "--gil",
        "--output",
        str(output),
        "--",
    ]


def _frame_file(frame: str) -> tuple[str, str]:
    """`function (path:line)` of a py-spy frame -> (path, function)."""
    if frame.endswith(")") and " (" in frame:
        function, where = frame[:-1].rsplit(" (", 1)
        return where.rsplit(":", 1)[0], function
    return "~", frame


def collapsed_summary(path: Path, executions: int, rate: int) -> str:
    """Samples of a py-spy collapsed file by area of the leaf frame, per execution.

    Stacks that are the process starting (imports at module level) are left out.
    """
    by_area: Counter[str] = Counter()
    project: Counter[str] = Counter()
    startup = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames = stack.split(";")
        n = int(count)
        if any("_find_and_load" in f for f in frames[:12]) and not any(
            "_run_once" in f for f in frames
        ):
            startup += n
            continue
        file, function = _frame_file(frames[-1])
        by_area[area(file, function)] += n
        for f in frames:
            file, function = _frame_file(f)
            if _in_project(file):
                project[f"{Path(file).parent.name}/{Path(file).name}:{function}"] += n
    total = sum(by_area.values())
    rows = [
        [name, n, f"{n / total * 100:.0f}%", f"{n / rate * 1000 / executions:.2f}"]
        for name, n in by_area.most_common()
    ]
    text = (
        f"{path.name}: {total} samples at {rate}/s while busy ({startup} startup samples left "
        f"out), {executions} executions\n"
        + table(["area (leaf frame)", "samples", "share", "ms per execution"], rows, markdown=True)
    )
    if project:
        rows = [
            [where, n, f"{n / rate * 1000 / executions:.3f}"]
            for where, n in project.most_common(15)
        ]
        text += "\n\n" + table(
            ["project function (inclusive)", "samples", "ms per execution"], rows, markdown=True
        )
    return text


def to_speedscope(path: Path, out: Path, name: str) -> None:
    """A speedscope JSON of py-spy's collapsed stacks (startup stacks included)."""
    frames: list[dict[str, Any]] = []
    index: dict[str, int] = {}
    samples: list[list[int]] = []
    weights: list[int] = []
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        ids = []
        for frame in stack.split(";"):
            if frame not in index:
                file, function = _frame_file(frame)
                short = file.split("/site-packages/")[-1].replace(ROOT, "")
                index[frame] = len(frames)
                frames.append({"name": function, "file": short})
            ids.append(index[frame])
        samples.append(ids)
        weights.append(int(count))
    document = {
        "$schema": "https://www.speedscope.app/file-format-schema.json",
        "shared": {"frames": frames},
        "profiles": [
            {
                "type": "sampled",
                "name": name,
                "unit": "none",
                "startValue": 0,
                "endValue": sum(weights),
                "samples": samples,
                "weights": weights,
            }
        ],
        "name": name,
        "exporter": "bench/profiles.py",
    }
    out.write_text(json.dumps(document, separators=(",", ":")))


# ---------------------------------------------------------------------- a profiled process


def main() -> None:
    if len(sys.argv) < 3:
        raise SystemExit("usage: python -m bench.profiles FILE MODULE [ARGS...]")
    out, module, args = sys.argv[1], sys.argv[2], sys.argv[3:]
    # SIGTERM ends the run as Ctrl-C would, so the stats are written on the way out
    # (a worker stops on either).
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    sys.argv = [module, *args]
    with every_thread() as profiles:
        try:
            runpy.run_module(module, run_name="__main__", alter_sys=True)
        except KeyboardInterrupt:
            pass
    stats = merged(profiles)
    if stats is not None:
        stats.dump_stats(out)


if __name__ == "__main__":
    main()
