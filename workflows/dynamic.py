"""The one workflow that runs every stored workflow, and every one-action execution.

Its Temporal workflow type is the stored workflow's name (`document-sentiment`), so
the web UI shows that name; each step runs as the activity `<service>.<action>`.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RawValue, RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError, TimeoutError

with workflow.unsafe.imports_passed_through():
    from core.temporal import WORKFLOW_ID_KEY, WORKFLOW_VERSION_KEY
    from definitions.models import (
        LOAD_DEFINITION_ACTIVITY,
        ExecutionOptions,
        PinnedDefinition,
        PinnedStep,
        StepCall,
    )
    from workflows.dataflow import step_input

HEARTBEAT_TIMEOUT = timedelta(seconds=5)
"""Steps whose timeout is longer than this heartbeat (every second while the call is in
flight), so a lost worker is noticed within 5 s instead of the step's whole timeout."""

LOAD_DEFINITION_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=30),
    maximum_attempts=10,
)


def _retry_policy(step: PinnedStep) -> RetryPolicy:
    policy = step.spec.retry_policy
    return RetryPolicy(
        initial_interval=timedelta(seconds=policy.initial_interval),
        backoff_coefficient=policy.backoff_coefficient,
        maximum_interval=timedelta(seconds=policy.maximum_interval),
        maximum_attempts=policy.maximum_attempts,
    )


def _cause_of(error: ActivityError) -> tuple[str, str, dict[str, Any]]:
    """Type, message and details of the last attempt's failure."""
    cause = error.cause
    if isinstance(cause, ApplicationError):
        details = cause.details[0] if cause.details and isinstance(cause.details[0], dict) else {}
        return cause.type or "ApplicationError", cause.message, details
    if isinstance(cause, TimeoutError):
        return "Timeout", f"{cause.type.name if cause.type else 'timeout'}: {cause.message}", {}
    if cause is not None:
        return type(cause).__name__, str(cause), {}
    return "ActivityError", str(error), {}


@workflow.defn(dynamic=True, sandboxed=True)
class StoredWorkflow:
    """Runs a pinned definition from its entry step along `next`.

    Arguments: the workflow input (a JSON object), then optionally the execution
    options (`definition`, `context`). Without a definition, as when a program starts
    the workflow by name with the Temporal SDK, it loads the latest ACTIVE definition
    of that name through a local activity, so it is recorded in history all the same.
    """

    @workflow.run
    async def run(self, args: Sequence[RawValue]) -> dict[str, Any]:
        converter = workflow.payload_converter()
        data: dict[str, Any] = (
            dict(converter.from_payload(args[0].payload, dict) or {}) if args else {}
        )
        options = (
            converter.from_payload(args[1].payload, ExecutionOptions)
            if len(args) > 1
            else ExecutionOptions()
        )
        definition = options.definition or await self._load_definition()
        context = dict(options.context)
        request_id = str(context.get("request_id") or workflow.uuid4())

        step: PinnedStep | None = definition.step(definition.entry)
        output: dict[str, Any] = {}
        while step is not None:
            call = StepCall(
                execution_id=workflow.info().workflow_id,
                step_id=step.id,
                service=step.service,
                endpoint=step.endpoint,
                spec=step.spec,
                input=step_input(step.spec.input_schema, data),
                context=context,
                request_id=request_id,
            )
            output = await self._run_step(step, call)
            data.update(output)
            step = definition.step(step.next) if step.next is not None else None
        return output

    async def _load_definition(self) -> PinnedDefinition:
        name = workflow.info().workflow_type
        try:
            # A local activity: one database read, no task-queue round trip; its result
            # is recorded in history (a marker) all the same.
            definition = await workflow.execute_local_activity(
                LOAD_DEFINITION_ACTIVITY,
                name,
                result_type=PinnedDefinition,
                activity_id=LOAD_DEFINITION_ACTIVITY,  # no step id can look like it
                start_to_close_timeout=timedelta(seconds=30),
                retry_policy=LOAD_DEFINITION_RETRY,
            )
        except ActivityError as error:
            error_type, message, _ = _cause_of(error)
            raise ApplicationError(
                f"cannot run stored workflow '{name}': {message}",
                type=error_type,
                non_retryable=True,
            ) from error
        if definition.workflow_id is not None and definition.version is not None:
            workflow.upsert_search_attributes(
                [
                    WORKFLOW_ID_KEY.value_set(definition.workflow_id),
                    WORKFLOW_VERSION_KEY.value_set(definition.version),
                ]
            )
            workflow.upsert_memo(
                {
                    "workflow_id": definition.workflow_id,
                    "workflow_name": definition.name,
                    "version": definition.version,
                    "kind": definition.kind,
                }
            )
        return definition

    async def _run_step(self, step: PinnedStep, call: StepCall) -> dict[str, Any]:
        activity_type = f"{step.service}.{step.action}"
        timeout = timedelta(seconds=step.spec.timeout)
        try:
            if step.spec.mode == "local":
                return await workflow.execute_local_activity(
                    activity_type,
                    call,
                    result_type=dict,
                    activity_id=step.id,
                    start_to_close_timeout=timeout,
                    retry_policy=_retry_policy(step),
                )
            return await workflow.execute_activity(
                activity_type,
                call,
                result_type=dict,
                activity_id=step.id,
                start_to_close_timeout=timeout,
                heartbeat_timeout=HEARTBEAT_TIMEOUT if timeout > HEARTBEAT_TIMEOUT else None,
                retry_policy=_retry_policy(step),
            )
        except ActivityError as error:
            error_type, message, details = _cause_of(error)
            raise ApplicationError(
                f"step '{step.id}' ({activity_type}) failed: {message}",
                {
                    "step_id": step.id,
                    "service": step.service,
                    "action": step.action,
                    "error_type": error_type,
                    "message": message,
                    "attempts": details.get("attempt"),
                    "status_code": details.get("status_code"),
                },
                type="StepFailed",
                non_retryable=True,
            ) from error
