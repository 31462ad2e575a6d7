"""One task step as a Temporal activity (or local activity), and its failure.

Shared by the seed's chain and the workflow language, so a task runs, retries and fails
the same way in both.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError, TimeoutError

with workflow.unsafe.imports_passed_through():
    from definitions.contract import (
        MOCK_STEP_ACTIVITY,
        STEP_FAILED,
        StepFailure,
        TaskResult,
        unwrap,
    )
    from definitions.models import FirstAttempt, PinnedStep, StepCall, StepMock

HEARTBEAT_TIMEOUT = timedelta(seconds=5)
"""Steps whose timeout is longer than this heartbeat (every second while the call is in
flight), so a lost worker is noticed within 5 s instead of the step's whole timeout."""

StepError = (ActivityError, ApplicationError, TimeoutError)
"""What awaiting a step raises: an activity's failure comes as ActivityError with the
attempt's error as its cause; a local activity's comes as that error itself."""


def retry_policy(step: PinnedStep, *, after_attempts: int = 0) -> RetryPolicy:
    """The action's retry policy; with `after_attempts`, what is left of it after that many
    attempts made elsewhere (the first one inside `si:start`): fewer attempts, and the
    intervals the policy gives from there on."""
    policy = step.spec.retry_policy
    initial = policy.initial_interval
    if after_attempts:
        initial = min(initial * policy.backoff_coefficient**after_attempts, policy.maximum_interval)
    return RetryPolicy(
        initial_interval=timedelta(seconds=initial),
        backoff_coefficient=policy.backoff_coefficient,
        maximum_interval=timedelta(seconds=policy.maximum_interval),
        maximum_attempts=policy.maximum_attempts - after_attempts,
    )


def cause_of(error: BaseException) -> tuple[str, str, dict[str, Any]]:
    """Type, message and details of the last attempt's failure."""
    cause = error.cause if isinstance(error, ActivityError) else error
    if isinstance(cause, ApplicationError):
        details = cause.details[0] if cause.details and isinstance(cause.details[0], dict) else {}
        return cause.type or "ApplicationError", cause.message, details
    if isinstance(cause, TimeoutError):
        return "Timeout", f"{cause.type.name if cause.type else 'timeout'}: {cause.message}", {}
    if cause is not None:
        return type(cause).__name__, str(cause), {}
    return "ActivityError", str(error), {}


async def run_task(
    step: PinnedStep,
    call: StepCall,
    *,
    activity_id: str,
    summary: str | None = None,
    after_attempts: int = 0,
) -> TaskResult:
    """The step's output; a failure (once retries are exhausted) raises STEP_FAILED with
    StepFailure details, non-retryable. `after_attempts`: attempts already made (see
    retry_policy); the failure counts them."""
    activity_type = f"{step.service}.{step.action}"
    timeout = timedelta(seconds=step.spec.timeout)
    try:
        if step.spec.mode == "local":
            result = await workflow.execute_local_activity(
                activity_type,
                call,
                result_type=dict,
                activity_id=activity_id,
                start_to_close_timeout=timeout,
                retry_policy=retry_policy(step, after_attempts=after_attempts),
                summary=summary,
            )
        else:
            result = await workflow.execute_activity(
                activity_type,
                call,
                result_type=dict,
                activity_id=activity_id,
                start_to_close_timeout=timeout,
                heartbeat_timeout=HEARTBEAT_TIMEOUT if timeout > HEARTBEAT_TIMEOUT else None,
                retry_policy=retry_policy(step, after_attempts=after_attempts),
                summary=summary,
            )
    except StepError as error:
        raise step_failed(step, error, after_attempts=after_attempts) from error
    answered = unwrap(result)
    if answered.attempts is None or not after_attempts:
        return answered
    return TaskResult(answered.output, answered.attempts + after_attempts, answered.worker)


async def after_first_attempt(step: PinnedStep, call: StepCall, first: FirstAttempt) -> TaskResult:
    """The output of a step whose first attempt `si:start` made (activities/start.py):
    that attempt's, else the step retried as its own activity with what the retry policy
    has left, after the delay it gives (or the service's Retry-After), as Temporal would
    have retried it."""
    if not first.failed:
        return TaskResult(first.output or {}, 1, first.worker)
    error = ApplicationError(
        first.message or "",
        first.details,
        type=first.error_type,
        non_retryable=first.non_retryable,
    )
    policy = step.spec.retry_policy
    if first.non_retryable or policy.maximum_attempts <= 1:
        raise step_failed(step, error)
    delay = first.retry_after if first.retry_after is not None else policy.initial_interval
    await workflow.sleep(timedelta(seconds=delay))
    return await run_task(step, call, activity_id=call.step_id, after_attempts=1)


async def _answer_mock(mock: StepMock, activity_id: str, summary: str) -> Any:
    """A mocked step of a test run: a local activity that answers the mock, so the run is
    recorded like any other, and nothing is called or started."""
    return await workflow.execute_local_activity(
        MOCK_STEP_ACTIVITY,
        mock,
        activity_id=activity_id,
        start_to_close_timeout=timedelta(seconds=10),
        summary=summary,
    )


async def run_mock(step: PinnedStep, mock: StepMock, *, activity_id: str) -> Any:
    """A mocked task: answers the mock, calls no service."""
    try:
        return await _answer_mock(mock, activity_id, f"mock of {step.service}.{step.action}")
    except StepError as error:
        raise step_failed(step, error) from error


async def run_workflow_mock(step_id: str, name: str, mock: StepMock, activity_id: str) -> Any:
    """A mocked `workflow` step: answers the mock, starts no child."""
    try:
        return await _answer_mock(mock, activity_id, f"mock of workflow {name}")
    except StepError as error:
        error_type, message, details = cause_of(error)
        failure = StepFailure(
            step_id=step_id,
            service="",
            action="",
            error_type=error_type,
            message=message,
            status_code=details.get("status_code"),
        )
        raise ApplicationError(
            f"step '{step_id}' (workflow {name}) failed: {message}",
            failure.model_dump(),
            type=STEP_FAILED,
            non_retryable=True,
        ) from error


def step_failed(
    step: PinnedStep, error: BaseException, *, after_attempts: int = 0
) -> ApplicationError:
    """STEP_FAILED with StepFailure details, non-retryable: what a failed step ends with."""
    error_type, message, details = cause_of(error)
    attempts = details.get("attempt")
    failure = StepFailure(
        step_id=step.id,
        service=step.service,
        action=step.action,
        error_type=error_type,
        message=message,
        attempts=attempts + after_attempts if isinstance(attempts, int) else None,
        status_code=details.get("status_code"),
    )
    # The HTTP step's messages begin with the step already ("step 'each[2].text'
    # (svc.act) was refused with HTTP 404: ..."): the step is named once, as they say it.
    head, said, _ = message.partition(f"' ({step.service}.{step.action}) ")
    named = bool(said) and head.startswith("step '") and "'" not in head[len("step '") :]
    return ApplicationError(
        message if named else f"step '{step.id}' ({step.service}.{step.action}) failed: {message}",
        failure.model_dump(),
        type=STEP_FAILED,
        non_retryable=True,
    )
