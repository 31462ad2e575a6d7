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

The loop itself is tenacity's (`Retrying` for `call`, `AsyncRetrying` for
`call_async`): `stop_after_attempt(max_retries + 1)`, a retry condition built from
`retry_on`, the policy's own wait strategy, and the caller's sleep.

Backoff is exponential with jitter. Before retry `n` (1 for the first retry) the
nominal delay is `d = min(max_delay, base_delay * 2 ** (n - 1))`, and a random
part of up to `jitter * d` is taken off, so the wait lies in
`[d * (1 - jitter), d]` (with the default `jitter=0.5`, between half of `d` and
`d`). It never exceeds `max_delay`, and clients that failed together do not all
come back at the same moment. (tenacity's own `wait_exponential_jitter` adds its
jitter on top of `d` instead, so the policy gives tenacity its own wait strategy.)

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
from typing import Any, NoReturn, TypeVar

from tenacity import (
    AsyncRetrying,
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
)
from tenacity.wait import wait_base

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

        def blocking_sleep(seconds: float) -> None:
            waited = sleep(float(seconds))
            if inspect.isawaitable(waited):
                _discard(waited)
                raise TypeError("RetryPolicy.call needs a blocking sleep; use call_async")

        retrying = Retrying(sleep=blocking_sleep, **self._tenacity_options())
        return retrying(fn)

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

        async def attempt() -> T:
            # tenacity awaits only coroutine functions; `fn` may be a plain callable
            # (a lambda) that returns an awaitable.
            return await fn()

        async def awaitable_sleep(seconds: float) -> None:
            waited = sleep(float(seconds))
            if inspect.isawaitable(waited):
                await waited

        retrying = AsyncRetrying(sleep=awaitable_sleep, **self._tenacity_options())
        result: T = await retrying(attempt)
        return result

    def _tenacity_options(self) -> dict[str, Any]:
        """What `Retrying` and `AsyncRetrying` share: when to stop, retry and give up."""
        return {
            "stop": stop_after_attempt(self.max_attempts),
            "wait": _JitteredExponentialWait(self),
            "retry": retry_if_exception(self.retry_on),
            "before_sleep": self._log_retry,
            "retry_error_callback": _give_up,
        }

    def _log_retry(self, state: RetryCallState) -> None:
        log.warning(
            "attempt %d of %d failed (%s); retrying in %.2f s",
            state.attempt_number,
            self.max_attempts,
            state.outcome.exception() if state.outcome is not None else None,
            state.next_action.sleep if state.next_action is not None else 0.0,
        )


class _JitteredExponentialWait(wait_base):
    """tenacity wait strategy: `policy.delay(n)` before retry `n`.

    Exponential from `base_delay`, capped at `max_delay`, with up to `jitter` of
    the delay taken off at random (see the module's docstring).
    """

    def __init__(self, policy: RetryPolicy) -> None:
        self._policy = policy

    def __call__(self, retry_state: RetryCallState) -> float:
        # attempt_number counts the attempt that just failed: retry n follows attempt n.
        return self._policy.delay(retry_state.attempt_number)


def _give_up(state: RetryCallState) -> NoReturn:
    """tenacity's `retry_error_callback`: the retries ran out on a retryable error."""
    error = state.outcome.exception() if state.outcome is not None else None
    if error is None:  # pragma: no cover - tenacity stops only after a failed attempt here
        raise RuntimeError("the retries ran out without an error")
    raise MaxRetriesExceededError(state.attempt_number, error) from error


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
