"""Percentiles, and the two load shapes: one at a time, and N in flight."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

Call = Callable[[], Awaitable[object]]


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100); NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


@dataclass
class Latencies:
    """Milliseconds of each call, and how many failed."""

    values: list[float] = field(default_factory=list)
    errors: int = 0
    first_error: str | None = None

    @property
    def p50(self) -> float:
        return percentile(self.values, 50)

    @property
    def p95(self) -> float:
        return percentile(self.values, 95)

    @property
    def p99(self) -> float:
        return percentile(self.values, 99)

    def note_error(self, exc: BaseException) -> None:
        self.errors += 1
        if self.first_error is None:
            self.first_error = f"{type(exc).__name__}: {exc}"[:300]


async def timed(call: Call, into: Latencies) -> None:
    started = time.perf_counter()
    try:
        await call()
    except Exception as exc:  # noqa: BLE001 - counted and reported, the run goes on
        into.note_error(exc)
        return
    into.values.append((time.perf_counter() - started) * 1000)


async def interleaved(
    calls: dict[str, Call], *, rounds: int, warmup: int = 3, rotate: bool = False
) -> dict[str, Latencies]:
    """Each call once per round, in turn, so background noise hits every variant alike;
    with `rotate`, the order rotated each round, so neither does the position in a round
    (what ran just before)."""
    results = {name: Latencies() for name in calls}
    names = list(calls)
    for index in range(warmup + rounds):
        shift = index % len(names) if rotate else 0
        for name in names[shift:] + names[:shift]:
            await timed(calls[name], results[name] if index >= warmup else Latencies())
    return results


@dataclass
class Throughput:
    completed: int
    seconds: float
    latencies: Latencies

    @property
    def per_second(self) -> float:
        return self.completed / self.seconds if self.seconds > 0 else math.nan


async def throughput(call: Call, *, total: int, in_flight: int) -> Throughput:
    """Run `total` calls with `in_flight` of them running at any time."""
    latencies = Latencies()
    remaining = iter(range(total))

    async def lane() -> None:
        for _ in remaining:
            await timed(call, latencies)

    started = time.perf_counter()
    await asyncio.gather(*(lane() for _ in range(min(in_flight, total))))
    seconds = time.perf_counter() - started
    return Throughput(completed=len(latencies.values), seconds=seconds, latencies=latencies)
