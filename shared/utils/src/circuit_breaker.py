"""A circuit breaker: stop calling a service that keeps failing, and try again later.

    CLOSED ──(failure_threshold consecutive failures)──> OPEN
    OPEN ──(recovery_timeout elapsed)──> HALF_OPEN      (one trial call is let through)
    HALF_OPEN ──(trial succeeds)──> CLOSED
    HALF_OPEN ──(trial fails)──> OPEN                    (for another recovery_timeout)

While OPEN, and while a trial is in flight in HALF_OPEN, calls fail at once with
`CircuitOpenError` and the wrapped function is not called, so nothing touches
the network. As in pybreaker, the failure that opens the circuit is raised as a
`CircuitOpenError` too (from the failure, whose request and response it keeps),
so a retry loop around the breaker stops there instead of waiting for nothing.

Only failures that `is_failure` accepts count. By default (`is_service_failure`)
that is a `ServiceUnavailableError` (502/503/504, no answer, a timeout; but not
`CircuitOpenError`) and any other error that carries a 5xx answer, such as the
`UnexpectedResponseError` of a 500: the service answered, but it is failing. Any
other outcome, a 4xx error included, proves the service is working and counts as
a success. Counting is not retrying: the retry policy retries only
`ServiceUnavailableError`, so a 500 is counted once and raised at once.

There is no global registry of breakers: whoever calls a service owns the
breaker for it (the Service Integration client holds one for its base URL). The
clock is injectable.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Awaitable, Callable
from enum import StrEnum
from typing import TypeVar

from shared.utils.src.exceptions import (
    CircuitOpenError,
    ServiceIntegrationError,
    ServiceUnavailableError,
)

__all__ = ["CircuitBreaker", "CircuitState", "is_service_failure", "is_unavailability"]

T = TypeVar("T")


class CircuitState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


def is_unavailability(error: BaseException) -> bool:
    """True for errors that say the service is down (not for a breaker that is open)."""
    return isinstance(error, ServiceUnavailableError) and not isinstance(error, CircuitOpenError)


def is_service_failure(error: BaseException) -> bool:
    """True for errors that say the service is down or failing: the breaker's default.

    That is unavailability (`is_unavailability`) and any other error carrying a 5xx
    answer (a 500 is an `UnexpectedResponseError`). Not a 4xx, not an answer the
    client could not read (a 200 that is not JSON), not a breaker that is open.
    """
    if isinstance(error, CircuitOpenError):
        return False
    if is_unavailability(error):
        return True
    if isinstance(error, ServiceIntegrationError):
        status = error.status_code
        return status is not None and status >= 500
    return False


class CircuitBreaker:
    """Closed, open or half-open; thread-safe; usable from sync and async code.

    Args:
        name: The protected service, as named in `CircuitOpenError.service_name`.
        failure_threshold: Consecutive failures that open the circuit.
        recovery_timeout: Seconds the circuit stays open before a trial call.
        clock: Monotonic seconds; `time.monotonic` by default.
        is_failure: Which errors count as failures; `is_service_failure` by default.
    """

    def __init__(
        self,
        name: str = "service-integration",
        *,
        failure_threshold: int = 5,
        recovery_timeout: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
        is_failure: Callable[[BaseException], bool] = is_service_failure,
    ) -> None:
        if failure_threshold < 1:
            raise ValueError(f"failure_threshold must be 1 or more, not {failure_threshold}")
        if recovery_timeout < 0:
            raise ValueError(f"recovery_timeout must be 0 or more, not {recovery_timeout}")
        self.name = name
        self.failure_threshold = failure_threshold
        self.recovery_timeout = recovery_timeout
        self._clock = clock
        self._is_failure = is_failure
        self._lock = threading.Lock()
        self._state = CircuitState.CLOSED
        self._failures = 0
        self._opened_at = 0.0
        self._trial_in_flight = False

    @property
    def state(self) -> CircuitState:
        """The state a call made now would meet (OPEN turns HALF_OPEN once the timeout ran)."""
        with self._lock:
            if self._state is CircuitState.OPEN and self._recovered():
                return CircuitState.HALF_OPEN
            return self._state

    @property
    def failure_count(self) -> int:
        """Consecutive failures counted since the last success."""
        return self._failures

    def before_call(self) -> None:
        """Let a call through, or refuse it.

        Raises:
            CircuitOpenError: the circuit is open, or half-open with its trial in flight.
        """
        with self._lock:
            if self._state is CircuitState.OPEN and self._recovered():
                self._state = CircuitState.HALF_OPEN
                self._trial_in_flight = False
            if self._state is CircuitState.CLOSED:
                return
            if self._state is CircuitState.HALF_OPEN and not self._trial_in_flight:
                self._trial_in_flight = True
                return
            raise self._open_error()

    def record_success(self) -> None:
        """The call got an answer: close the circuit and forget past failures."""
        with self._lock:
            self._state = CircuitState.CLOSED
            self._failures = 0
            self._trial_in_flight = False

    def record_failure(self) -> bool:
        """The service was unavailable or failing: count it; open the circuit at the threshold.

        Returns:
            True if this failure opened the circuit.
        """
        with self._lock:
            self._failures += 1
            self._trial_in_flight = False
            if self._state is CircuitState.OPEN:
                return False
            if self._state is CircuitState.HALF_OPEN or self._failures >= self.failure_threshold:
                self._state = CircuitState.OPEN
                self._opened_at = self._clock()
                return True
            return False

    def record_error(self, error: Exception) -> CircuitOpenError | None:
        """Record a call that raised `error`.

        Returns:
            The `CircuitOpenError` to raise instead of `error` if `error` opened the
            circuit; None if `error` should be raised as it is.
        """
        if not self._is_failure(error):
            self.record_success()
            return None
        if not self.record_failure():
            return None
        with self._lock:
            return self._open_error(cause=error)

    def release(self) -> None:
        """The call ended without telling anything (e.g. it was cancelled)."""
        with self._lock:
            self._trial_in_flight = False

    def call(self, fn: Callable[[], T]) -> T:
        """Call `fn` through the breaker.

        Raises:
            CircuitOpenError: the circuit is open (`fn` was not called), or the
                failure of `fn` has just opened it.
        """
        self.before_call()
        try:
            result = fn()
        except Exception as exc:
            opened = self.record_error(exc)
            if opened is not None:
                raise opened from exc
            raise
        except BaseException:
            self.release()
            raise
        self.record_success()
        return result

    async def call_async(self, fn: Callable[[], Awaitable[T]]) -> T:
        """Await `fn()` through the breaker.

        Raises:
            CircuitOpenError: the circuit is open (`fn` was not called), or the
                failure of `fn` has just opened it.
        """
        self.before_call()
        try:
            result = await fn()
        except Exception as exc:
            opened = self.record_error(exc)
            if opened is not None:
                raise opened from exc
            raise
        except BaseException:  # cancelled: says nothing about the service
            self.release()
            raise
        self.record_success()
        return result

    def reset(self) -> None:
        """Close the circuit and forget every failure."""
        self.record_success()

    def _recovered(self) -> bool:
        return self._clock() - self._opened_at >= self.recovery_timeout

    def _open_error(self, cause: Exception | None = None) -> CircuitOpenError:
        remaining = max(0.0, self.recovery_timeout - (self._clock() - self._opened_at))
        if self._state is CircuitState.HALF_OPEN:
            detail = "half-open with a trial call in flight; the call was not sent"
            remaining = 0.0
        elif cause is not None:
            detail = (
                f"now open after {self._failures} consecutive failures, the last: {cause}; "
                f"calls fail fast for {remaining:.1f} s"
            )
        else:
            detail = (
                f"open after {self._failures} consecutive failures; the call was not sent, "
                f"and a trial call is let through in {remaining:.1f} s"
            )
        return CircuitOpenError(
            self.name,
            f"circuit breaker for {self.name} is {detail}. "
            "Check that the service is up (its /health endpoint)",
            retry_after=remaining,
            request=getattr(cause, "request", None),
            response=getattr(cause, "response", None),
        )
