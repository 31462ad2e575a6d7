"""Retry policies: the guide's table, the delays with their jitter, and what is retried."""

from __future__ import annotations

import random
from dataclasses import replace

import pytest

from shared.utils.src.exceptions import (
    CircuitOpenError,
    MaxRetriesExceededError,
    ResourceNotFoundError,
    ServiceUnavailableError,
)
from shared.utils.src.retry import RETRY_POLICIES, Operation, RetryPolicy

# The client guide's table, written out: retries, base delay, max delay, and the
# nominal delays (before jitter) that follow from it.
GUIDE_TABLE = {
    "create": (3, 0.5, 4.0, [0.5, 1.0, 2.0]),
    "update": (3, 0.5, 4.0, [0.5, 1.0, 2.0]),
    "delete": (2, 1.0, 4.0, [1.0, 2.0]),
    "read": (2, 0.5, 2.0, [0.5, 1.0]),
}


def unavailable() -> ServiceUnavailableError:
    return ServiceUnavailableError("service-integration", "down for the test")


class Flaky:
    """Fails with `errors` in turn, then returns "done"."""

    def __init__(self, *errors: Exception) -> None:
        self.errors = list(errors)
        self.calls = 0

    def __call__(self) -> str:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return "done"

    async def call_async(self) -> str:
        return self()


@pytest.mark.parametrize("operation", list(GUIDE_TABLE))
def test_policy_table_matches_the_guide(operation: str) -> None:
    retries, base, maximum, nominal = GUIDE_TABLE[operation]
    policy = RETRY_POLICIES[Operation(operation)]
    assert (policy.max_retries, policy.base_delay, policy.max_delay) == (retries, base, maximum)
    assert [policy.nominal_delay(n) for n in range(1, retries + 1)] == nominal


@pytest.mark.parametrize("operation", list(GUIDE_TABLE))
def test_jitter_keeps_each_delay_between_half_and_full_nominal(operation: str) -> None:
    policy = replace(RETRY_POLICIES[Operation(operation)], random=random.Random(7).random)
    _, _, maximum, nominal = GUIDE_TABLE[operation]
    for n, expected in enumerate(nominal, start=1):
        drawn = [policy.delay(n) for _ in range(500)]
        assert all(expected / 2 <= d <= expected <= maximum for d in drawn)
        assert max(drawn) - min(drawn) > expected / 4, "jitter must actually vary the delay"


def test_jitter_extremes_are_exact() -> None:
    policy = RETRY_POLICIES[Operation.CREATE]
    assert replace(policy, random=lambda: 0.0).delay(2) == 1.0
    assert replace(policy, random=lambda: 1.0).delay(2) == 0.5
    assert replace(policy, jitter=0.0, random=lambda: 0.9).delay(3) == 2.0


def test_delay_never_exceeds_max_delay() -> None:
    policy = RetryPolicy(max_retries=10, base_delay=0.5, max_delay=2.0, random=lambda: 0.0)
    assert [policy.delay(n) for n in range(1, 7)] == [0.5, 1.0, 2.0, 2.0, 2.0, 2.0]


@pytest.mark.parametrize("operation", list(GUIDE_TABLE))
def test_call_sleeps_the_table_delays_then_raises_max_retries(operation: str) -> None:
    retries, _, _, nominal = GUIDE_TABLE[operation]
    policy = replace(RETRY_POLICIES[Operation(operation)], random=lambda: 0.0)
    slept: list[float] = []
    errors = [unavailable() for _ in range(retries + 1)]
    flaky = Flaky(*errors)

    with pytest.raises(MaxRetriesExceededError) as caught:
        policy.call(flaky, sleep=slept.append)

    assert flaky.calls == retries + 1
    assert slept == nominal
    assert caught.value.attempts == retries + 1
    assert caught.value.last_error is errors[-1]
    assert caught.value.__cause__ is errors[-1]


@pytest.mark.parametrize("operation", list(GUIDE_TABLE))
async def test_call_async_sleeps_the_table_delays_then_raises_max_retries(operation: str) -> None:
    retries, _, _, nominal = GUIDE_TABLE[operation]
    policy = replace(RETRY_POLICIES[Operation(operation)], random=lambda: 0.0)
    slept: list[float] = []

    async def record(seconds: float) -> None:
        slept.append(seconds)

    flaky = Flaky(*[unavailable() for _ in range(retries + 1)])
    with pytest.raises(MaxRetriesExceededError) as caught:
        await policy.call_async(flaky.call_async, sleep=record)

    assert flaky.calls == retries + 1
    assert slept == nominal
    assert caught.value.attempts == retries + 1


def test_success_after_failures_returns_the_result() -> None:
    slept: list[float] = []
    flaky = Flaky(unavailable(), unavailable())
    assert RETRY_POLICIES[Operation.READ].call(flaky, sleep=slept.append) == "done"
    assert flaky.calls == 3
    assert len(slept) == 2


@pytest.mark.parametrize(
    "error",
    [
        ResourceNotFoundError("workflow", "wf-1"),
        CircuitOpenError("service-integration", "open"),
        ValueError("a bug"),
    ],
    ids=["4xx", "circuit-open", "other"],
)
def test_only_unavailability_is_retried(error: Exception) -> None:
    slept: list[float] = []
    flaky = Flaky(error)
    with pytest.raises(type(error)) as caught:
        RETRY_POLICIES[Operation.CREATE].call(flaky, sleep=slept.append)
    assert caught.value is error
    assert flaky.calls == 1
    assert slept == []


def test_zero_retries_still_reports_max_retries() -> None:
    policy = RetryPolicy(max_retries=0, base_delay=0.1, max_delay=0.1)
    with pytest.raises(MaxRetriesExceededError) as caught:
        policy.call(Flaky(unavailable()), sleep=lambda _: None)
    assert caught.value.attempts == 1


def test_blocking_call_refuses_an_async_sleep() -> None:
    async def async_sleep(_: float) -> None:
        return None

    with pytest.raises(TypeError, match="call_async"):
        RETRY_POLICIES[Operation.READ].call(Flaky(unavailable()), sleep=async_sleep)


@pytest.mark.parametrize(
    "options",
    [
        {"max_retries": -1, "base_delay": 0.5, "max_delay": 1},
        {"max_retries": 1, "base_delay": 2, "max_delay": 1},
        {"max_retries": 1, "base_delay": 0.5, "max_delay": 1, "jitter": 1.5},
    ],
)
def test_policy_refuses_nonsense(options: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        RetryPolicy(**options)  # type: ignore[arg-type]


async def test_call_async_awaits_what_a_plain_callable_returns() -> None:
    # The client passes lambdas that return coroutines, not coroutine functions.
    flaky = Flaky(unavailable())
    slept: list[float] = []
    result = await RETRY_POLICIES[Operation.READ].call_async(
        lambda: flaky.call_async(), sleep=slept.append
    )
    assert result == "done"
    assert flaky.calls == 2
    assert len(slept) == 1


def test_each_retry_is_logged_with_its_delay(caplog: pytest.LogCaptureFixture) -> None:
    policy = replace(RETRY_POLICIES[Operation.CREATE], random=lambda: 0.0)
    with caplog.at_level("WARNING", logger="shared.utils.src.retry"):
        policy.call(Flaky(unavailable(), unavailable()), sleep=lambda _: None)
    assert [r.getMessage() for r in caplog.records] == [
        "attempt 1 of 4 failed (down for the test); retrying in 0.50 s",
        "attempt 2 of 4 failed (down for the test); retrying in 1.00 s",
    ]
