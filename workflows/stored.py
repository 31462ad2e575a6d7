"""What StoredWorkflow (workflows/dynamic.py) does, in a module the sandbox passes through.

The sandbox re-imports a workflow's own module for every new run; keeping the code here,
imported once per worker like workflows/interpreter.py and workflows/tasks.py, leaves
that per-run import a few lines (docs/profiling.md). Deterministic by review and by the
replay gate (tests/replay), like all workflow code.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RawValue, RetryPolicy
from temporalio.exceptions import ApplicationError

from workflows.integrity import verify_options
from workflows.interpreter import FlowRun, journal_error
from workflows.journal import Journal, StepStatus
from workflows.tasks import (
    HEARTBEAT_TIMEOUT,
    StepError,
    cause_of,
    run_mock,
    run_task,
    step_failed,
)

with workflow.unsafe.imports_passed_through():
    from definitions.chain import chain_step_call
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
        PinnedStep,
        StartCall,
        StartOutcome,
        StepCall,
    )

START_PATCH = "start-activity"
"""A start by name begins with the `si:start` activity (pin + the entry step's first
attempt) instead of the `si:load-definition` local activity; histories recorded before
it replay the local activity."""

CHAIN_MOCKS_PATCH = "chain-mocks"
"""A test run of a seed chain answers each step's mock (a si:mock-step local activity)
instead of calling its service; test runs recorded before called the services."""

START_TIMEOUT = timedelta(seconds=3600 + 60)
"""`si:start`'s start-to-close: the longest action timeout (3600 s) and the pin; it runs
the step under the step's own timeout, and heartbeats while the call is in flight."""

LOAD_DEFINITION_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=30),
    maximum_attempts=10,
)


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

    async def run_stored(self, args: Sequence[RawValue]) -> Any:
        data, options = _start_arguments(args)
        context = dict(options.context)
        request_id = str(context.get("request_id") or workflow.uuid4())
        if options.definition is not None:
            verify_options(args[1], options)  # before any command (workflows/integrity.py)
            return await self._follow(options.definition, options, data, context, request_id)
        if not workflow.patched(START_PATCH):  # histories recorded before si:start
            definition = await self._load_definition(options.version)
            return await self._follow(definition, options, data, context, request_id)
        definition, first = await self._start(data, options, context, request_id)
        try:
            return await self._follow(definition, options, data, context, request_id, first)
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
        context: dict[str, Any],
        request_id: str,
        first: FirstAttempt | None = None,
    ) -> Any:
        """Run the definition: a flow, or the seed's chain."""
        signatures = {**definition.signatures, **options.signatures}
        if definition.flow is not None:
            # The workflow language (workflows/interpreter.py); the seed's chains take the
            # loop below, which issues exactly the commands it always did.
            flow = FlowRun(
                definition, options, data=data, request_id=request_id, signatures=signatures
            )
            self.journal = flow.journal
            return await flow.run()  # type: ignore[no-any-return]
        journal = self.journal = Journal()

        step: PinnedStep | None = definition.step(definition.entry)
        output: dict[str, Any] = {}
        while step is not None:
            call = chain_step_call(
                step,
                data,
                contract=CONTRACT_VERSION,
                execution_id=workflow.info().workflow_id,
                context=context,
                request_id=request_id,
                signatures=signatures,
            )
            mock = options.mocks.get(step.id)
            entry = journal.open(
                step.id, "task", step.id, service=step.service, action=step.action, input=call.input
            )
            try:
                if first is not None:  # the entry step, its first attempt made by si:start
                    output = await self._after_first_attempt(step, call, first)
                    first = None
                elif mock is not None and workflow.patched(CHAIN_MOCKS_PATCH):
                    # A test run: the step answers its mock and calls no service.
                    answer = await run_mock(step, mock, activity_id=step.id)
                    output = answer if isinstance(answer, dict) else {}
                else:
                    output = await self._run_step(step, call)
            except ApplicationError as error:
                journal.close(entry, StepStatus.FAILED, error=journal_error(error, step.id))
                raise
            journal.close(entry, StepStatus.COMPLETED, output=output)
            data.update(output)
            step = definition.step(step.next) if step.next is not None else None
        return output

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

    async def _after_first_attempt(
        self, step: PinnedStep, call: StepCall, first: FirstAttempt
    ) -> dict[str, Any]:
        """The entry step's output: si:start's first attempt, else the step retried as
        its own activity with what the retry policy has left, after the delay it gives
        (or the service's Retry-After), as Temporal would have retried it."""
        if not first.failed:
            return first.output or {}
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
        return await run_task(step, call, activity_id=step.id, after_attempts=1)

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

    async def _run_step(self, step: PinnedStep, call: StepCall) -> dict[str, Any]:
        return await run_task(step, call, activity_id=step.id)
