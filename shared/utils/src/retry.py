"""Retry policies: what is retried, how many times, and how long to wait in between.

The client guide's table, one policy per kind of operation (`RETRY_POLICIES`):

    ==========  =======  ==========  =========
    operation   retries  base delay  max delay
    ==========  =======  ==========  =========
    create      3        0.5 s       4 s
    update      3        0.5 s       4 s
    delete      2        1 s         4 s
    read        2        0.5 s       2 s
    ==========  =======  ==========  =========

Backoff is exponential with jitter. Before retry `n` (1 for the first retry) the
nominal delay is `d = min(max_delay, base_delay * 2 ** (n - 1))`, and a random
part of up to `jitter * d` is taken off, so the wait lies in
`[d * (1 - jitter), d]` (with the default `jitter=0.5`, between half of `d` and
`d`). It never exceeds `max_delay`, and clients that failed together do not all
come back at the same moment.

Only `ServiceUnavailableError` is retried. `CircuitOpenError`, although a kind of
`ServiceUnavailableError`, is not: the breaker is open precisely so that calls
fail fast. Every other error goes straight to the caller. When the retries run
out, `MaxRetriesExceededError(attempts, last_error)` is raised from the last error.
A `Retry-After` sent by the gateway is kept on the error (`retry_after`) for the
caller to see; it does not change the delays of the table.

The sleep is passed to `call`/`call_async`, and the source of randomness is a
field, so tests can record the delays instead of waiting for them.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import random as _random
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType
from typing import Any, TypeVar

from shared.utils.src.exceptions import (
    CircuitOpenError,
    MaxRetriesExceededError,
    ServiceUnavailableError,
)

__all__ = [
    "RETRY_POLICIES",
    "Operation",
    "RetryPolicy",
    "is_retryable",
]

T = TypeVar("T")

log = logging.getLogger(__name__)

Sleep = Callable[[float], Any]
"""`time.sleep`, `asyncio.sleep`, or a stand-in; `call_async` awaits what it returns."""


class Operation(StrEnum):
    """The kinds of operation the retry table distinguishes."""

    CREATE = "create"
    UPDATE = "update"
    DELETE = "delete"
    READ = "read"


def is_retryable(error: BaseException) -> bool:
    """True for unavailability worth another try; False for a circuit that is open."""
    return isinstance(error, ServiceUnavailableError) and not isinstance(error, CircuitOpenError)


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently to retry one call.

    Args:
        max_retries: Retries after the first attempt (so `max_retries + 1` attempts).
        base_delay: Nominal seconds before the first retry; doubled for each next one.
        max_delay: Upper bound of any delay, in seconds.
        jitter: Fraction of the nominal delay that may be taken off at random (0 to 1).
        retry_on: Which errors are retried; `is_retryable` by default.
        random: Source of numbers in [0, 1) for the jitter.
    """

    max_retries: int
    base_delay: float
    max_delay: float
    jitter: float = 0.5
    retry_on: Callable[[BaseException], bool] = field(default=is_retryable, compare=False)
    random: Callable[[], float] = field(default=_random.random, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.max_retries < 0:
            raise ValueError(f"max_retries must be 0 or more, not {self.max_retries}")
        if self.base_delay < 0 or self.max_delay < self.base_delay:
            raise ValueError(
                f"need 0 <= base_delay <= max_delay, got base_delay={self.base_delay}, "
                f"max_delay={self.max_delay}"
            )
        if not 0 <= self.jitter <= 1:
            raise ValueError(f"jitter is a fraction between 0 and 1, not {self.jitter}")

    @property
    def max_attempts(self) -> int:
        """Attempts in all, the first one included."""
        return self.max_retries + 1

    def nominal_delay(self, retry: int) -> float:
        """The delay before retry `retry` (from 1) without jitter."""
        if retry < 1:
            raise ValueError(f"retries are numbered from 1, not {retry}")
        return float(min(self.max_delay, self.base_delay * 2 ** (retry - 1)))

    def delay(self, retry: int) -> float:
        """The delay before retry `retry` (from 1), jitter included."""
        nominal = self.nominal_delay(retry)
        return nominal - nominal * self.jitter * self.random()

    def call(self, fn: Callable[[], T], *, sleep: Sleep = time.sleep) -> T:
        """Call `fn` until it succeeds, fails for good, or the retries run out.

        Args:
            fn: The call to make; it takes no arguments.
            sleep: Waits the given seconds; must not return an awaitable.

        Returns:
            What `fn` returned.

        Raises:
            MaxRetriesExceededError: every attempt failed with a retryable error.
            Exception: the first error that `retry_on` rejects, unchanged.
        """
        attempt = 0
        while True:
            attempt += 1
            try:
                return fn()
            except Exception as exc:  # noqa: BLE001 - sorted by retry_on below
                delay = self._next_delay(attempt, exc)
            waited = sleep(delay)
            if inspect.isawaitable(waited):
                _discard(waited)
                raise TypeError("RetryPolicy.call needs a blocking sleep; use call_async")

    async def call_async(
        self, fn: Callable[[], Awaitable[T]], *, sleep: Sleep = asyncio.sleep
    ) -> T:
        """Await `fn()` until it succeeds, fails for good, or the retries run out.

        Args:
            fn: Makes the awaitable to await; called once per attempt.
            sleep: Waits the given seconds; awaited if it returns an awaitable.

        Returns:
            What `fn()` gave.

        Raises:
            MaxRetriesExceededError: every attempt failed with a retryable error.
            Exception: the first error that `retry_on` rejects, unchanged.
        """
        attempt = 0
        while True:
            attempt += 1
            try:
                return await fn()
            except Exception as exc:  # noqa: BLE001 - sorted by retry_on below
                delay = self._next_delay(attempt, exc)
            waited = sleep(delay)
            if inspect.isawaitable(waited):
                await waited

    def _next_delay(self, attempt: int, error: Exception) -> float:
        """The wait before the next attempt, or raise if there is none."""
        if not self.retry_on(error):
            raise error
        if attempt > self.max_retries:
            raise MaxRetriesExceededError(attempt, error) from error
        delay = self.delay(attempt)
        log.warning(
            "attempt %d of %d failed (%s); retrying in %.2f s",
            attempt,
            self.max_attempts,
            error,
            delay,
        )
        return delay


def _discard(awaitable: Any) -> None:
    close = getattr(awaitable, "close", None)
    if close is not None:
        close()


RETRY_POLICIES: Mapping[Operation, RetryPolicy] = MappingProxyType(
    {
        Operation.CREATE: RetryPolicy(max_retries=3, base_delay=0.5, max_delay=4.0),
        Operation.UPDATE: RetryPolicy(max_retries=3, base_delay=0.5, max_delay=4.0),
        Operation.DELETE: RetryPolicy(max_retries=2, base_delay=1.0, max_delay=4.0),
        Operation.READ: RetryPolicy(max_retries=2, base_delay=0.5, max_delay=2.0),
    }
)
"""The client guide's retry table, by kind of operation."""
