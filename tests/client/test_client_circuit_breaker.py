"""The circuit breaker: it opens, fails fast, half-opens and closes; 5xx count, 4xx never."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from shared.utils.src.circuit_breaker import CircuitBreaker, CircuitState, is_service_failure
from shared.utils.src.exceptions import (
    CircuitOpenError,
    ConflictError,
    ResourceNotFoundError,
    ServiceIntegrationError,
    ServiceUnavailableError,
    UnexpectedResponseError,
    ValidationError,
)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Service:
    """Counts calls; fails with `error` while it is set."""

    def __init__(self) -> None:
        self.calls = 0
        self.error: Exception | None = None

    def __call__(self) -> str:
        self.calls += 1
        if self.error is not None:
            raise self.error
        return "ok"

    async def call_async(self) -> str:
        return self()


def down() -> ServiceUnavailableError:
    return ServiceUnavailableError("service-integration", "down")


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def breaker(clock: Clock) -> CircuitBreaker:
    return CircuitBreaker(failure_threshold=3, recovery_timeout=10.0, clock=clock)


def fail(breaker: CircuitBreaker, service: Service, times: int) -> None:
    for _ in range(times):
        with pytest.raises(ServiceUnavailableError):
            breaker.call(service)


def test_opens_after_threshold_consecutive_failures(breaker: CircuitBreaker) -> None:
    service = Service()
    service.error = down()
    fail(breaker, service, 2)
    assert breaker.state is CircuitState.CLOSED
    with pytest.raises(CircuitOpenError, match="now open after 3 consecutive failures") as caught:
        breaker.call(service)  # the failure that opens it is reported as the opening
    assert caught.value.__cause__ is service.error
    assert breaker.state is CircuitState.OPEN
    assert service.calls == 3


def test_success_resets_the_count(breaker: CircuitBreaker) -> None:
    service = Service()
    service.error = down()
    fail(breaker, service, 2)
    service.error = None
    breaker.call(service)
    service.error = down()
    fail(breaker, service, 2)
    assert breaker.state is CircuitState.CLOSED
    assert breaker.failure_count == 2


def test_open_circuit_fails_fast_without_calling(breaker: CircuitBreaker, clock: Clock) -> None:
    service = Service()
    service.error = down()
    fail(breaker, service, 3)
    clock.now = 4.0
    with pytest.raises(CircuitOpenError) as caught:
        breaker.call(service)
    assert service.calls == 3
    assert isinstance(caught.value, ServiceUnavailableError)
    assert caught.value.service_name == "service-integration"
    assert caught.value.retry_after == pytest.approx(6.0)
    assert "was not sent" in str(caught.value)


def test_half_open_after_recovery_then_closes_on_success(
    breaker: CircuitBreaker, clock: Clock
) -> None:
    service = Service()
    service.error = down()
    fail(breaker, service, 3)
    clock.now = 9.99
    assert breaker.state is CircuitState.OPEN
    clock.now = 10.0
    assert breaker.state is CircuitState.HALF_OPEN
    service.error = None
    assert breaker.call(service) == "ok"
    assert breaker.state is CircuitState.CLOSED
    assert breaker.failure_count == 0


def test_failed_trial_opens_again_for_a_full_timeout(breaker: CircuitBreaker, clock: Clock) -> None:
    service = Service()
    service.error = down()
    fail(breaker, service, 3)
    clock.now = 10.0
    fail(breaker, service, 1)  # the trial
    assert breaker.state is CircuitState.OPEN
    clock.now = 19.0
    with pytest.raises(CircuitOpenError):
        breaker.call(service)
    assert service.calls == 4
    clock.now = 20.0
    assert breaker.state is CircuitState.HALF_OPEN


def test_half_open_lets_one_trial_through_at_a_time(breaker: CircuitBreaker, clock: Clock) -> None:
    service = Service()
    service.error = down()
    fail(breaker, service, 3)
    clock.now = 10.0
    breaker.before_call()  # the trial is in flight
    with pytest.raises(CircuitOpenError, match="trial call in flight"):
        breaker.before_call()
    breaker.record_success()
    assert breaker.state is CircuitState.CLOSED


@pytest.mark.parametrize(
    "error",
    [
        ResourceNotFoundError("workflow", "wf-1"),
        ValidationError([{"loc": ["body"], "msg": "bad", "type": "value_error"}]),
        ConflictError("name taken"),
    ],
    ids=["404", "422", "409"],
)
def test_client_errors_never_count(breaker: CircuitBreaker, error: Exception) -> None:
    service = Service()
    service.error = error
    for _ in range(10):
        with pytest.raises(type(error)):
            breaker.call(service)
    assert breaker.state is CircuitState.CLOSED
    assert breaker.failure_count == 0


def answered(status: int) -> httpx.Response:
    return httpx.Response(status, request=httpx.Request("GET", "http://127.0.0.1:1/api/workflows"))


def server_error(status: int = 500) -> UnexpectedResponseError:
    return UnexpectedResponseError(f"answered {status}", response=answered(status))


def test_5xx_answers_count_and_open_the_circuit(breaker: CircuitBreaker) -> None:
    service = Service()
    service.error = server_error(500)
    for count in (1, 2):
        with pytest.raises(UnexpectedResponseError):
            breaker.call(service)
        assert breaker.failure_count == count
    with pytest.raises(CircuitOpenError) as caught:
        breaker.call(service)
    assert caught.value.__cause__ is service.error
    assert caught.value.response is not None and caught.value.response.status_code == 500
    assert breaker.state is CircuitState.OPEN


@pytest.mark.parametrize(
    ("error", "counts"),
    [
        (server_error(500), True),
        (server_error(501), True),
        (server_error(599), True),
        (ServiceUnavailableError("service-integration", "down", response=answered(503)), True),
        (ServiceUnavailableError("service-integration", "no answer"), True),
        (UnexpectedResponseError("a 200 that is not a JSON object", response=answered(200)), False),
        (ResourceNotFoundError("workflow", "wf-1", response=answered(404)), False),
        (ServiceIntegrationError("refused with 418", response=answered(418)), False),
        (ServiceIntegrationError("unsupported scheme; check base_url"), False),
        (CircuitOpenError("service-integration", "open", response=answered(503)), False),
        (ValueError("a bug"), False),
    ],
    ids=[
        "500",
        "501",
        "599",
        "503",
        "no-answer",
        "200-not-json",
        "404",
        "418",
        "no-response",
        "circuit-open",
        "not-ours",
    ],
)
def test_is_service_failure(error: Exception, counts: bool) -> None:
    assert is_service_failure(error) is counts


def test_client_error_on_trial_closes_the_circuit(breaker: CircuitBreaker, clock: Clock) -> None:
    service = Service()
    service.error = down()
    fail(breaker, service, 3)
    clock.now = 10.0
    service.error = ResourceNotFoundError("workflow", "wf-1")
    with pytest.raises(ResourceNotFoundError):
        breaker.call(service)
    assert breaker.state is CircuitState.CLOSED


async def test_async_calls_follow_the_same_transitions(
    breaker: CircuitBreaker, clock: Clock
) -> None:
    service = Service()
    service.error = down()
    for _ in range(3):
        with pytest.raises(ServiceUnavailableError):
            await breaker.call_async(service.call_async)
    with pytest.raises(CircuitOpenError):
        await breaker.call_async(service.call_async)
    assert service.calls == 3
    clock.now = 10.0
    service.error = None
    assert await breaker.call_async(service.call_async) == "ok"
    assert breaker.state is CircuitState.CLOSED


async def test_cancelled_trial_does_not_block_the_next(
    breaker: CircuitBreaker, clock: Clock
) -> None:
    service = Service()
    service.error = down()
    fail(breaker, service, 3)
    clock.now = 10.0

    async def hang() -> None:
        await asyncio.sleep(3600)

    task = asyncio.create_task(breaker.call_async(hang))
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    service.error = None
    assert breaker.call(service) == "ok"


def test_refuses_nonsense() -> None:
    with pytest.raises(ValueError):
        CircuitBreaker(failure_threshold=0)
    with pytest.raises(ValueError):
        CircuitBreaker(recovery_timeout=-1)
