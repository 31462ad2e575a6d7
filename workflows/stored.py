"""What StoredWorkflow (workflows/dynamic.py) does, in a module the sandbox passes through.

The sandbox re-imports a workflow's own module for every new run; keeping the code here,
imported once per worker like workflows/interpreter.py and workflows/tasks.py, leaves
that per-run import a few lines (docs/profiling.md). Deterministic by review and by the
replay gate (tests/replay), like all workflow code.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RawValue, RetryPolicy
from temporalio.exceptions import ApplicationError, FailureError
from temporalio.workflow import ContinueAsNewError

from workflows.integrity import verify_options
from workflows.interpreter import FlowRun
from workflows.journal import Journal
from workflows.tasks import (
    HEARTBEAT_TIMEOUT,
    StepError,
    cause_of,
)

with workflow.unsafe.imports_passed_through():
    from definitions.contract import (
        CONTRACT_VERSION,
        INVALID_START,
        LOAD_DEFINITION_ACTIVITY,
        START_ACTIVITY,
        WORKFLOW_ID_KEY,
        WORKFLOW_VERSION_KEY,
        ExecutionMemo,
    )
    from definitions.models import (
        ExecutionOptions,
        FirstAttempt,
        PinnedDefinition,
        StartCall,
        StartOutcome,
    )

START_PATCH = "start-activity"
"""A start by name begins with the `si:start` activity (pin + the entry step's first
attempt) instead of the `si:load-definition` local activity; histories recorded before
it replay the local activity."""

START_TIMEOUT = timedelta(seconds=3600 + 60)
"""`si:start`'s start-to-close: the longest action timeout (3600 s) and the pin; it runs
the step under the step's own timeout, and heartbeats while the call is in flight."""

LOAD_DEFINITION_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=30),
    maximum_attempts=10,
)


def _error_document(error: FailureError) -> dict[str, Any]:
    """The execution's failure as the record reads it: type, message, first detail."""
    if isinstance(error, ApplicationError):
        details = error.details[0] if error.details else None
        return {"type": error.type, "message": error.message, "details": details}
    return {"type": type(error).__name__, "message": str(error), "details": None}


def _invalid_start(message: str) -> ApplicationError:
    """Fails the execution at once: retrying a workflow task cannot fix its arguments."""
    return ApplicationError(message, type=INVALID_START, non_retryable=True)


def _start_arguments(args: Sequence[RawValue]) -> tuple[dict[str, Any], ExecutionOptions]:
    """The workflow input (a JSON object) and the execution options, or InvalidStart."""
    if len(args) > 2:
        raise _invalid_start(
            f"a stored workflow takes the input and optionally {{'context': {{...}}}}; "
            f"it was started with {len(args)} arguments"
        )
    converter = workflow.payload_converter()
    data: Any = {}
    if args:
        try:
            data = converter.from_payload(args[0].payload)
        except Exception as exc:  # noqa: BLE001 - any undecodable input is the caller's
            raise _invalid_start(f"the workflow input cannot be decoded: {exc}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise _invalid_start(
            f'the workflow input must be a JSON object, e.g. {{"document_url": "..."}}; '
            f"got {type(data).__name__} {str(data)[:80]!r}"
        )
    if len(args) < 2:
        return data, ExecutionOptions()
    try:
        options = converter.from_payload(args[1].payload, ExecutionOptions)
    except Exception as exc:  # noqa: BLE001 - pydantic says which field is wrong
        raise _invalid_start(
            "the second argument must be an object like {'context': {...}}; "
            f"it cannot be used: {exc}"
        ) from None
    if not isinstance(options, ExecutionOptions):
        raise _invalid_start("the second argument must be an object like {'context': {...}}")
    return data, options


class StoredWorkflowBody:
    """Runs a pinned definition from its entry step along `next`.

    Arguments: the workflow input (a JSON object), then optionally the execution
    options (`definition`, `context`). Without a definition, as when a program starts
    the workflow by name with the Temporal SDK, it begins with the `si:start` activity,
    which pins the latest ACTIVE definition of that name (recorded in history as its
    result) and makes the first attempt of a chain's entry step.
    """

    journal: Journal | None = None
    """What ran so far (workflows/journal.py); answered to the si:journal query."""

    def journal_entries(self) -> list[dict[str, Any]]:
        return self.journal.public() if self.journal is not None else []

    outcome: dict[str, Any] | None = None
    """How the steps ended, once they have: answered to the si:outcome update."""

    async def run_stored(self, args: Sequence[RawValue]) -> Any:
        """Run, then answer the si:outcome update (if one waits) before closing."""
        try:
            result = await self._run_stored(args)
        except ContinueAsNewError:
            raise  # the next run answers
        except FailureError as error:
            await self._ended("FAILED", error=_error_document(error))
            raise
        except asyncio.CancelledError:
            await self._ended("CANCELED")
            raise
        await self._ended("COMPLETED", result=result)
        return result

    async def _ended(self, status: str, **fields: Any) -> None:
        """Set the outcome and let a waiting si:outcome update answer it. Issues no
        command: a run without the update closes in the same workflow task as before."""
        info = workflow.info()
        self.outcome = {
            "status": status,
            "run_id": info.run_id,
            "started_at": info.workflow_start_time.isoformat(),
            "closed_at": workflow.now().isoformat(),
            "steps": self.journal_entries(),
            **fields,
        }
        await workflow.wait_condition(workflow.all_handlers_finished)

    async def wait_outcome(self) -> dict[str, Any]:
        await workflow.wait_condition(lambda: self.outcome is not None)
        assert self.outcome is not None
        return self.outcome

    async def _run_stored(self, args: Sequence[RawValue]) -> Any:
        data, options = _start_arguments(args)
        context = dict(options.context)
        request_id = str(context.get("request_id") or workflow.uuid4())
        if options.definition is not None:
            verify_options(args[1], options)  # before any command (workflows/integrity.py)
            return await self._follow(options.definition, options, data, request_id)
        if not workflow.patched(START_PATCH):  # histories recorded before si:start
            definition = await self._load_definition(options.version)
            return await self._follow(definition, options, data, request_id)
        definition, first = await self._start(data, options, context, request_id)
        try:
            return await self._follow(definition, options, data, request_id, first)
        finally:
            # The search attributes a gateway start sets, upserted with the last command
            # (completion, failure, continue-as-new, cancellation): in the last workflow
            # task they cost no visibility write of their own, where an upsert mid-run
            # costs one. Until then the gateway knows the execution as ours by si:start
            # and lists it by its workflow type (executions/service.py).
            self._record(definition, memo=False)

    async def _follow(
        self,
        definition: PinnedDefinition,
        options: ExecutionOptions,
        data: dict[str, Any],
        request_id: str,
        first: FirstAttempt | None = None,
    ) -> Any:
        """Run the definition: a flow, or the seed's chain as the flow of task steps it is
        (workflows/interpreter.py)."""
        flow = FlowRun(
            definition,
            options,
            data=data,
            request_id=request_id,
            signatures={**definition.signatures, **options.signatures},
            first=first,
        )
        self.journal = flow.journal
        return await flow.run()

    async def _start(
        self,
        data: dict[str, Any],
        options: ExecutionOptions,
        context: dict[str, Any],
        request_id: str,
    ) -> tuple[PinnedDefinition, FirstAttempt | None]:
        """Pin by name and make the entry step's first attempt, in one activity
        (activities/start.py); its result records the definition in history."""
        name = workflow.info().workflow_type
        try:
            outcome = await workflow.execute_activity(
                START_ACTIVITY,
                StartCall(
                    contract=CONTRACT_VERSION,
                    name=name,
                    version=options.version,
                    execution_id=workflow.info().workflow_id,
                    input=data,
                    context=context,
                    request_id=request_id,
                    signatures=options.signatures,
                    run_first=not options.mocks,
                ),
                result_type=StartOutcome,
                activity_id=START_ACTIVITY,  # no step id can look like it
                start_to_close_timeout=START_TIMEOUT,
                heartbeat_timeout=HEARTBEAT_TIMEOUT,
                retry_policy=LOAD_DEFINITION_RETRY,
            )
        except StepError as error:
            raise self._not_runnable(name, error) from error
        return outcome.definition, outcome.first

    @staticmethod
    def _not_runnable(name: str, error: BaseException) -> ApplicationError:
        error_type, message, _ = cause_of(error)
        return ApplicationError(
            f"cannot run stored workflow '{name}': {message}",
            type=error_type,
            non_retryable=True,
        )

    async def _load_definition(self, version: int | None = None) -> PinnedDefinition:
        """Before the `start-activity` patch: the by-name load as a local activity."""
        name = workflow.info().workflow_type
        try:
            # A local activity: one database read, no task-queue round trip; its result
            # is recorded in history (a marker) all the same.
            definition = await workflow.execute_local_activity(
                LOAD_DEFINITION_ACTIVITY,
                args=[name] if version is None else [name, version],
                result_type=PinnedDefinition,
                activity_id=LOAD_DEFINITION_ACTIVITY,  # no step id can look like it
                start_to_close_timeout=timedelta(seconds=30),
                retry_policy=LOAD_DEFINITION_RETRY,
            )
        except StepError as error:
            raise self._not_runnable(name, error) from error
        self._record(definition)
        return definition

    @staticmethod
    def _record(definition: PinnedDefinition, *, memo: bool = True) -> None:
        """The search attributes (and memo) a gateway start sets, for a start by name.
        Since si:start, no memo: the gateway reads a by-name execution's workflow id,
        version and name from the search attributes and its type."""
        if definition.workflow_id is not None and definition.version is not None:
            workflow.upsert_search_attributes(
                [
                    WORKFLOW_ID_KEY.value_set(definition.workflow_id),
                    WORKFLOW_VERSION_KEY.value_set(definition.version),
                ]
            )
            if not memo:
                return
            workflow.upsert_memo(
                ExecutionMemo(
                    kind=definition.kind,
                    workflow_id=definition.workflow_id,
                    workflow_name=definition.name,
                    version=definition.version,
                ).to_memo()
            )
