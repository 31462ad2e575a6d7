"""Runs a flow: a stored workflow written in the workflow language.

Workflow code: deterministic, no I/O. Every decision comes from the pinned definition,
the recorded step results and the workflow's own clock and random; expressions are
evaluated here (definitions/expressions.py binds `$now()`, `$millis()` and `$random()`
to the workflow's).

Activity ids name where a task ran: `fetch` at the top level, `fan[3].fetch` in the
fourth iteration of map `fan`, `check#2` for a step's second run in a loop. The record
(executions/history.py) reads them back.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from temporalio import workflow
from temporalio.exceptions import ApplicationError, ChildWorkflowError

with workflow.unsafe.imports_passed_through():
    from definitions.chain import chain_flow, step_input
    from definitions.contract import (
        CHAIN_MOCKS_PATCH,
        CONTRACT_VERSION,
        EXPRESSION_LIMIT,
        INVALID_START,
        STEP_FAILED,
        SUCCEED_ENDS_EXECUTION_PATCH,
        SUCCEEDED_KEY,
        StepFailure,
        TaskResult,
    )
    from definitions.expressions import Evaluator, ExpressionError, ExpressionLimitError
    from definitions.language import (
        Catch,
        ChoiceStep,
        FailStep,
        Flow,
        MapStep,
        ParallelStep,
        SucceedStep,
        TaskStep,
        WaitStep,
        WorkflowStep,
        catch_names,
        entry_of,
        tolerated_failures,
    )
    from definitions.models import (
        ExecutionOptions,
        FirstAttempt,
        PinnedDefinition,
        PinnedStep,
        StepCall,
    )
    from schemas.validation import violations
    from workflows.integrity import signed
    from workflows.journal import Entry, Journal, StepStatus
    from workflows.tasks import after_first_attempt, run_mock, run_task, run_workflow_mock

CONTINUE_AS_NEW_AFTER = 500
"""Top-level steps one run executes before it continues as new, so a long loop keeps its
history bounded (Temporal also suggests it when the history grows large)."""

MAP_CHILD_THRESHOLD = 500
"""A map over more items runs them as child workflows, MAP_BATCH items each: one
execution holds at most 2,000 pending activities and about 50k history events."""
MAP_BATCH = 500

DEFAULT_STEP_BUDGET = 10_000
"""Steps an execution may run when its definition sets no max_steps (it has no loop)."""

MAX_MAP_ITEMS = 10_000
"""The most items one map runs; more fail the step with `MapTooLarge` (20 batches)."""

MAX_PENDING = 1_000
"""Activities and children one execution has in flight at once, across every parallel,
map and nesting: held below Temporal's 2,000 pending activities (and children), so deep
fan-out queues its work instead of failing every workflow task."""

MAX_WAIT_SECONDS = 366 * 24 * 3600
"""The longest a `wait` step waits (a year and a day); longer fails with `InvalidWait`."""

MAX_WORKFLOW_DEPTH = 8
"""How deep `workflow` steps nest (a workflow that runs a workflow ...); deeper fails
the step with `WorkflowDepthExceeded`. Cycles are refused when a definition is saved."""


class _Succeeded(Exception):
    """A `succeed` step ended its chain; carries the output."""

    def __init__(self, output: Any) -> None:
        super().__init__("succeeded")
        self.output = output


def _failure(message: str, error_type: str, **details: Any) -> ApplicationError:
    return ApplicationError(message, details or None, type=error_type, non_retryable=True)


def error_names(failure: StepFailure) -> set[str]:
    """The catch names a failed task matches (docs/workflow-language.md, "catch")."""
    return catch_names(failure.error_type, failure.status_code)


def error_binding(failure: StepFailure) -> dict[str, Any]:
    """`$error` in a catch: what failed, as the definition sees it."""
    return {
        "type": failure.error_type,
        "message": failure.message,
        "status_code": failure.status_code,
        "step_id": failure.step_id,
        "attempts": failure.attempts,
    }


def _step_failure(error: ApplicationError, step_id: str) -> StepFailure:
    if error.type == STEP_FAILED and error.details and isinstance(error.details[0], dict):
        return StepFailure.model_validate(error.details[0])
    return StepFailure(
        step_id=step_id,
        service="",
        action="",
        error_type=error.type or "ApplicationError",
        message=error.message,
    )


@dataclass
class Scope:
    """What expressions see in one chain: step outputs, variables, and in a map
    iteration `$item`/`$index` (its outputs are its own, over the enclosing scope's)."""

    outputs: dict[str, Any] = field(default_factory=dict)
    variables: dict[str, Any] = field(default_factory=dict)
    parent: Scope | None = None
    item: Any = None
    index: int | None = None
    prefix: str = ""
    branch_number: int | None = None

    def steps(self) -> dict[str, Any]:
        merged = self.parent.steps() if self.parent else {}
        merged.update(self.outputs)
        return merged

    def branch(self, number: int) -> Scope:
        """A parallel branch: it writes step outputs where its parent does (step ids are
        unique), and assigns variables of its own."""
        return Scope(
            outputs=self.outputs,
            variables=dict(self.variables),
            parent=self.parent,
            item=self.item,
            index=self.index,
            prefix=self.prefix,
            branch_number=number,
        )

    def iteration(self, map_id: str, index: int, item: Any) -> Scope:
        return Scope(
            variables=dict(self.variables),
            parent=self,
            item=item,
            index=index,
            prefix=f"{self.prefix}{map_id}[{index}].",
            branch_number=self.branch_number,
        )


@dataclass
class Resume:
    """What a run hands to the next when it continues as new."""

    next_step: str
    outputs: dict[str, Any]
    variables: dict[str, Any]
    data: dict[str, Any]
    executed: int
    last: Any


class FlowRun:
    """One execution of a flow (or of a map batch, in a child workflow)."""

    def __init__(
        self,
        definition: PinnedDefinition,
        options: ExecutionOptions,
        *,
        data: dict[str, Any],
        request_id: str,
        signatures: dict[str, str],
        first: FirstAttempt | None = None,
    ) -> None:
        self.definition = definition
        # A seed chain runs as the flow of task steps it is (definitions/chain.py); its
        # commands are the ones the chain's own loop issued (tests/replay).
        self.chain = definition.flow is None
        self.flow: Flow = chain_flow(definition) if definition.flow is None else definition.flow
        self.first = first
        """How si:start's first attempt of the entry step ended (a by-name start)."""
        self.options = options
        self.context = dict(options.context)
        self.request_id = request_id
        self.signatures = signatures
        self.tasks = {step.id: step for step in definition.steps}
        resume = Resume(**options.resume) if options.resume else None
        bindings = options.bindings or {}
        # original_input is left out of the options when empty: the input was {}.
        self.input = bindings.get(
            "input", data if resume is None else (options.original_input or {})
        )
        self.data = dict(resume.data) if resume else dict(data)
        self.executed = resume.executed if resume else 0
        self.executed_this_run = 0
        self.resume = resume
        self.runs: dict[str, int] = {}
        self.budget = self.flow.max_steps or DEFAULT_STEP_BUDGET
        if options.step_budget is not None:
            # A map batch or a child workflow: at most what its parent had left.
            self.budget = min(self.budget, options.step_budget)
        self.depth = options.depth
        self.pending = asyncio.Semaphore(MAX_PENDING)
        self.journal = Journal()
        self._succeed_ends: bool | None = None
        self.outer_steps: dict[str, Any] = bindings.get("steps") or {}
        self.outer_vars: dict[str, Any] = bindings.get("vars") or {}
        self.index_offset = int(bindings.get("index_offset") or 0)
        self.batch = bindings.get("batch")

    # ------------------------------------------------------------------ entry

    async def run(self) -> Any:
        schema = self.flow.input_schema
        if schema is not None and self.resume is None and workflow.patched("flow-input-schema"):
            # Formats are the gateway's to check: a change to a format checker must not
            # change what a recorded history replays.
            problems = violations(schema, self.input, limit=10, formats=False)
            if problems:
                # The gateway refuses such an input with a 422; a start by name with the
                # SDK fails here, at once, saying what is wrong.
                raise ApplicationError(
                    f"the input does not match the workflow's input_schema: {'; '.join(problems)}",
                    type=INVALID_START,
                    non_retryable=True,
                )
        top = Scope(
            outputs=dict(self.resume.outputs) if self.resume else {},
            variables=dict(self.resume.variables) if self.resume else dict(self.outer_vars),
        )
        start = self.resume.next_step if self.resume else entry_of(self.flow)
        try:
            last = await self.run_chain(
                self.flow.steps,
                start,
                top,
                top_level=True,
                last=self.resume.last if self.resume else None,
            )
        except _Succeeded as succeeded:
            if self.batch is not None and self._succeed_ends_execution():
                # A map batch: the parent ends the execution with it (see _map_in_children).
                return {SUCCEEDED_KEY: succeeded.output}
            return succeeded.output
        if self.flow.output is not None:
            return self.evaluator(top).value(self.flow.output)
        return last

    def _succeed_ends_execution(self) -> bool:
        """`succeed` in a branch or an iteration ends the execution (not in histories
        recorded before SUCCEED_ENDS_EXECUTION_PATCH); asked once, when it first matters."""
        if self._succeed_ends is None:
            self._succeed_ends = workflow.patched(SUCCEED_ENDS_EXECUTION_PATCH)
        return self._succeed_ends

    async def _first_to_end(self, tasks: list[asyncio.Task[Any]], *, fail_fast: bool) -> None:
        """Wait until every task is done; a `succeed` in one (and, with `fail_fast`, the
        first failure) cancels the others and is raised once they are withdrawn."""
        pending: set[asyncio.Task[Any]] = set(tasks)
        while pending:
            _, pending = await workflow.wait(pending, return_when=asyncio.FIRST_EXCEPTION)
            errors = [t.exception() for t in tasks if _raised(t)]
            ending: BaseException | None = next(
                (e for e in errors if isinstance(e, _Succeeded)), None
            )
            if ending is None and fail_fast and errors:
                ending = errors[0]
            if ending is not None:
                for task in pending:
                    task.cancel()
                if pending:
                    await workflow.wait(pending)
                raise ending

    def evaluator(self, scope: Scope, **extra: Any) -> Evaluator:
        info = workflow.info()
        bindings: dict[str, Any] = {
            "input": self.input,
            "context": self.context,
            "steps": {**self.outer_steps, **scope.steps()},
            "vars": scope.variables,
            "execution": {
                "id": info.workflow_id,
                "workflow_name": self.definition.name,
                "version": self.definition.version,
                "start_time": info.start_time.isoformat(),
            },
        }
        if self.batch is not None:
            bindings["batch"] = self.batch
        if scope.index is not None:
            bindings["item"] = scope.item
            bindings["index"] = scope.index
        bindings.update(extra)
        return Evaluator(
            bindings,
            now_millis=lambda: int(workflow.now().timestamp() * 1000),
            random=lambda: workflow.random().random(),
        )

    def value(self, scope: Scope, value: Any, step_id: str, what: str, **extra: Any) -> Any:
        try:
            return self.evaluator(scope, **extra).value(value)
        except ExpressionLimitError as exc:
            # Not retried: the same expression on the same data exhausts the same budget.
            raise _failure(
                f"step '{step_id}': the {what} expression was stopped by a limit: {exc.reason}",
                EXPRESSION_LIMIT,
                step_id=step_id,
                field=what,
                limit=exc.limit,
            ) from None
        except ExpressionError as exc:
            raise _failure(
                f"step '{step_id}': the {what} expression failed: {exc}",
                "ExpressionFailed",
                step_id=step_id,
            ) from None

    # ------------------------------------------------------------------ chains

    async def run_chain(
        self,
        steps: list[Any],
        start: str,
        scope: Scope,
        *,
        top_level: bool = False,
        last: Any = None,
    ) -> Any:
        by_id = {step.id: step for step in steps}
        current: str | None = start
        while current is not None:
            if top_level and self._should_continue_as_new():
                self._continue_as_new(current, scope, last)
            step = by_id[current]
            self.executed += 1
            self.executed_this_run += 1
            entry = self.journal.open(
                step.id,
                step.type,
                self._activity_id(scope, step.id),
                iteration=scope.index,
                branch=scope.branch_number,
            )
            try:
                if self.executed > self.budget:
                    raise _failure(
                        f"the execution ran {self.budget} steps, its max_steps; raise "
                        "max_steps or check the loop's exit condition",
                        "StepBudgetExceeded",
                        step_id=step.id,
                    )
                last, current = await self.run_step(step, scope, last, entry)
            except _Succeeded as succeeded:
                if entry.status is StepStatus.RUNNING:
                    self.journal.close(entry, StepStatus.COMPLETED, output=succeeded.output)
                raise
            except asyncio.CancelledError:
                self.journal.close(entry, StepStatus.CANCELED)
                raise
            except Exception as error:
                if entry.status is StepStatus.RUNNING:
                    self.journal.close(
                        entry, StepStatus.FAILED, error=journal_error(error, step.id)
                    )
                raise
            if entry.status is StepStatus.RUNNING:
                self.journal.close(entry, StepStatus.COMPLETED)
        return last

    def _should_continue_as_new(self) -> bool:
        return self.executed_this_run >= CONTINUE_AS_NEW_AFTER or (
            self.executed_this_run > 0 and workflow.info().is_continue_as_new_suggested()
        )

    def _continue_as_new(self, next_step: str, scope: Scope, last: Any) -> None:
        resume = Resume(
            next_step=next_step,
            outputs=scope.outputs,
            variables=scope.variables,
            data=self.data,
            executed=self.executed,
            last=last,
        )
        options = self.options.model_copy(
            update={
                "definition": self.definition,
                "resume": resume.__dict__,
                "original_input": self.input,
            }
        )
        workflow.continue_as_new(args=[self.data, signed(options)])

    async def run_step(
        self, step: Any, scope: Scope, last: Any, entry: Entry
    ) -> tuple[Any, str | None]:
        if isinstance(step, TaskStep):
            return await self.task(step, scope, entry)
        if isinstance(step, ChoiceStep):
            route = self.choice(step, scope)
            entry.route = route
            return last, route
        if isinstance(step, ParallelStep):
            entry.count = len(step.branches)
            return await self.parallel(step, scope)
        if isinstance(step, MapStep):
            return await self.map(step, scope, entry)
        if isinstance(step, WaitStep):
            await self.wait(step, scope)
            return last, step.next
        if isinstance(step, WorkflowStep):
            return await self.child(step, scope, entry)
        if isinstance(step, SucceedStep):
            output = (
                last if step.output is None else self.value(scope, step.output, step.id, "output")
            )
            scope.outputs[step.id] = {"output": output}
            raise _Succeeded(output)
        if isinstance(step, FailStep):
            cause = self.value(scope, step.cause, step.id, "cause") if step.cause else None
            raise ApplicationError(
                str(cause) if cause is not None else f"failed at step '{step.id}'",
                {"step_id": step.id},
                type=step.error,
                non_retryable=True,
            )
        raise _failure(f"step '{step.id}' has an unknown type", "InvalidDefinition")

    def _activity_id(self, scope: Scope, step_id: str) -> str:
        key = f"{scope.prefix}{step_id}"
        count = self.runs.get(key, 0) + 1
        self.runs[key] = count
        return key if count == 1 else f"{key}#{count}"

    def _finish(self, step: Any, scope: Scope, result: Any, **extra: Any) -> Any:
        """Apply a step's `output` projection and `assign`, and record its output."""
        output = (
            result
            if step.output is None
            else self.value(scope, step.output, step.id, "output", result=result, **extra)
        )
        if step.assign:
            assigned = {
                name: self.value(scope, expr, step.id, f"assign.{name}", result=result, **extra)
                for name, expr in step.assign.items()
            }
            scope.variables.update(assigned)
        scope.outputs[step.id] = {"output": output}
        return output

    # ------------------------------------------------------------------ step types

    async def task(self, step: TaskStep, scope: Scope, entry: Entry) -> tuple[Any, str | None]:
        pinned: PinnedStep = self.tasks[step.id]
        entry.service, entry.action = pinned.service, pinned.action
        if step.input is not None:
            try:
                body = self.value(scope, step.input, step.id, "input")
            except ApplicationError as error:
                if error.type != EXPRESSION_LIMIT:
                    raise
                failure = StepFailure(
                    step_id=step.id,
                    service=pinned.service,
                    action=pinned.action,
                    error_type=EXPRESSION_LIMIT,
                    message=error.message,
                )
                return self._caught(step, scope, failure, error, entry)
            if not isinstance(body, dict):
                raise _failure(
                    f"step '{step.id}': its input must evaluate to a JSON object, got "
                    f"{type(body).__name__}",
                    "InvalidStepInput",
                    step_id=step.id,
                )
        else:
            body = step_input(pinned.spec.input_schema, self.data)
        activity_id = entry.path
        entry.input = body
        call = StepCall(
            contract=CONTRACT_VERSION,
            execution_id=workflow.info().workflow_id,
            step_id=activity_id,
            service=pinned.service,
            endpoint=pinned.endpoint,
            spec=pinned.spec,
            input=body,
            context=self.context,
            request_id=self.request_id,
            signature=self.signatures.get(step.id),
            credential=pinned.credential,
            report=True,
        )
        mock = self.options.mocks.get(step.id)
        first, self.first = self.first, None  # only ever the entry step's, at the top
        try:
            async with self.pending:
                if first is not None:
                    answered = await after_first_attempt(pinned, call, first)
                elif mock is not None and self._mocks_answer():
                    answered = TaskResult(await run_mock(pinned, mock, activity_id=activity_id), 1)
                    if self.chain and not isinstance(answered.output, dict):
                        answered = TaskResult({}, 1)  # a chain step's output is an object
                else:
                    answered = await run_task(pinned, call, activity_id=activity_id)
        except ApplicationError as error:
            failure = _step_failure(error, step.id)
            entry.attempts = failure.attempts
            return self._caught(step, scope, failure, error, entry)
        result = answered.output
        entry.output, entry.attempts, entry.worker = result, answered.attempts, answered.worker
        if isinstance(result, dict):
            self.data.update(result)
        return self._finish(step, scope, result), step.next

    def _mocks_answer(self) -> bool:
        """Mocked steps answer their mock (a test run); a chain's test runs recorded before
        CHAIN_MOCKS_PATCH called the services."""
        return not self.chain or workflow.patched(CHAIN_MOCKS_PATCH)

    def _caught(
        self,
        step: TaskStep | WorkflowStep,
        scope: Scope,
        failure: StepFailure,
        error: Exception,
        entry: Entry,
    ) -> tuple[Any, str | None]:
        names = error_names(failure)
        bound = error_binding(failure)
        cancelled = failure.error_type == "CancelledError"
        self.journal.close(
            entry, StepStatus.CANCELED if cancelled else StepStatus.FAILED, error=bound
        )
        for catch in step.catch:
            if _matches(catch, names):
                if catch.assign:
                    scope.variables.update(
                        {
                            name: self.value(
                                scope, expr, step.id, f"catch.assign.{name}", error=bound
                            )
                            for name, expr in catch.assign.items()
                        }
                    )
                scope.outputs[step.id] = {"output": None, "error": bound}
                entry.route = catch.next
                return {"error": bound}, catch.next
        if isinstance(step, TaskStep) and step.optional:
            output = {"error": bound}
            scope.outputs[step.id] = {"output": output, "error": bound}
            entry.output = output
            return output, step.next
        raise error

    def choice(self, step: ChoiceStep, scope: Scope) -> str:
        for index, rule in enumerate(step.choices):
            if _truthy(self.value(scope, rule.when, step.id, f"choices[{index}].when")):
                scope.outputs[step.id] = {"output": {"route": rule.next}}
                return rule.next
        if step.default is not None:
            scope.outputs[step.id] = {"output": {"route": step.default}}
            return step.default
        raise _failure(
            f"choice '{step.id}': no rule matched and it has no default",
            "NoChoiceMatched",
            step_id=step.id,
        )

    async def parallel(self, step: ParallelStep, scope: Scope) -> tuple[Any, str | None]:
        async def branch(number: int, chain: Any) -> Any:
            try:
                return await self.run_chain(chain.steps, entry_of(chain), scope.branch(number))
            except _Succeeded as succeeded:
                if self._succeed_ends_execution():
                    raise  # ends the execution: _first_to_end withdraws the other branches
                return succeeded.output

        tasks = [asyncio.ensure_future(branch(n, chain)) for n, chain in enumerate(step.branches)]
        await self._first_to_end(tasks, fail_fast=step.fail_fast)
        results = await asyncio.gather(*tasks, return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                raise result
        return self._finish(step, scope, list(results)), step.next

    async def map(self, step: MapStep, scope: Scope, entry: Entry) -> tuple[Any, str | None]:
        entry.count = 0  # the iterations that ran
        items = self.value(scope, step.items, step.id, "items")
        if not isinstance(items, list):
            raise _failure(
                f"map '{step.id}': items must evaluate to an array, got {type(items).__name__}",
                "MapItemsNotArray",
                step_id=step.id,
            )
        if len(items) > MAX_MAP_ITEMS:
            raise _failure(
                f"map '{step.id}': items evaluated to {len(items)} items; a map runs at most "
                f"{MAX_MAP_ITEMS}: split the list, or map over batches of it",
                "MapTooLarge",
                step_id=step.id,
            )
        if len(items) > MAP_CHILD_THRESHOLD:
            outcomes = await self._map_in_children(step, items, scope, entry)
        else:
            outcomes = await self._map_here(step, items, scope, entry)
        tolerated = tolerated_failures(step, len(items))
        failures = [o for o in outcomes if isinstance(o, _IterationFailed)]
        if len(failures) > tolerated:
            first = failures[0]
            raise _failure(
                f"map '{step.id}': {len(failures)} of {len(items)} iterations failed "
                f"(tolerated: {tolerated}); iteration {first.index}: {first.error['message']}",
                "MapFailed",
                step_id=step.id,
                iteration=first.index,
                error=first.error,
            )
        results = [{"error": o.error} if isinstance(o, _IterationFailed) else o for o in outcomes]
        return self._finish(step, scope, results), step.next

    async def _map_here(
        self, step: MapStep, items: list[Any], scope: Scope, entry: Entry
    ) -> list[Any]:
        gate = asyncio.Semaphore(step.max_concurrency)
        give_up = asyncio.Event()
        tolerated = tolerated_failures(step, len(items))
        failed = 0

        async def iteration(index: int, item: Any) -> Any:
            nonlocal failed
            async with gate:
                global_index = index + self.index_offset
                if give_up.is_set():
                    return _IterationFailed(global_index, {"type": "Skipped", "message": "not run"})
                entry.count = (entry.count or 0) + 1
                child = scope.iteration(step.id, global_index, item)
                try:
                    return await self.run_chain(step.steps, entry_of(step), child)
                except _Succeeded as succeeded:
                    if self._succeed_ends_execution():
                        give_up.set()  # no iteration waiting for its turn starts
                        raise  # ends the execution: _first_to_end withdraws the others
                    return succeeded.output
                except ApplicationError as error:
                    failed += 1
                    if failed > tolerated:
                        give_up.set()
                    return _IterationFailed(global_index, _error_of(error, step.id))

        tasks = [asyncio.ensure_future(iteration(i, item)) for i, item in enumerate(items)]
        await self._first_to_end(tasks, fail_fast=False)
        return list(await asyncio.gather(*tasks))

    async def _map_in_children(
        self, step: MapStep, items: list[Any], scope: Scope, entry: Entry
    ) -> list[Any]:
        """Iterations in child workflows of MAP_BATCH items each, one batch at a time, so
        no history grows past Temporal's limits."""
        inner = Flow(
            steps=[
                step.model_copy(
                    update={
                        "items": "{% $batch %}",
                        "tolerated_failure_percentage": 100,
                        "tolerated_failure_count": None,
                        "output": None,
                        "assign": {},
                        "next": None,
                    }
                )
            ]
        )
        pinned = [self.tasks[s.id] for s in _task_ids(step) if s.id in self.tasks]
        definition = PinnedDefinition(
            kind=self.definition.kind,
            workflow_id=self.definition.workflow_id,
            name=self.definition.name,
            version=self.definition.version,
            entry=step.id,
            steps=pinned,
            flow=inner,
        )
        outcomes: list[Any] = []
        info = workflow.info()
        for number, start in enumerate(range(0, len(items), MAP_BATCH)):
            batch = items[start : start + MAP_BATCH]
            options = ExecutionOptions(
                contract=self.options.contract,
                definition=definition,
                mocks=self.options.mocks,
                context=self.context,
                signatures=self.signatures,
                depth=self.depth,
                step_budget=max(self.budget - self.executed, 1),
                bindings={
                    "input": self.input,
                    "steps": {**self.outer_steps, **scope.steps()},
                    "vars": scope.variables,
                    "index_offset": start,
                    "batch": batch,
                },
            )
            child_id = f"{info.workflow_id}/{step.id}/batch-{number}" + (
                f"-r{self.executed}" if self.executed > 1 else ""
            )
            batch_entry = self.journal.open(
                step.id,
                "workflow",
                child_id.removeprefix(f"{info.workflow_id}/"),
                child_execution_id=child_id,
                iteration=scope.index,
                branch=scope.branch_number,
            )
            entry.count = (entry.count or 0) + len(batch)
            try:
                async with self.pending:
                    results = await workflow.execute_child_workflow(
                        f"{self.definition.name}/{step.id}",
                        args=[{}, signed(options)],
                        id=child_id,
                        task_queue=info.task_queue,
                        static_summary=f"map '{step.id}' items {start}-{start + len(batch) - 1}",
                    )
            except BaseException as error:
                self.journal.close(
                    batch_entry, StepStatus.FAILED, error=journal_error(error, step.id)
                )
                raise
            self.journal.close(batch_entry, StepStatus.COMPLETED, output=results)
            if isinstance(results, dict) and SUCCEEDED_KEY in results:
                raise _Succeeded(results[SUCCEEDED_KEY])  # a `succeed` in that batch
            for offset, result in enumerate(results or []):
                if isinstance(result, dict) and set(result) == {"error"}:
                    outcomes.append(_IterationFailed(start + offset, result["error"]))
                else:
                    outcomes.append(result)
        return outcomes

    async def wait(self, step: WaitStep, scope: Scope) -> None:
        if step.seconds is not None:
            seconds = self.value(scope, step.seconds, step.id, "seconds")
            if not isinstance(seconds, int | float) or isinstance(seconds, bool) or seconds < 0:
                raise _failure(
                    f"wait '{step.id}': seconds must be a number >= 0, got {seconds!r}",
                    "InvalidWait",
                    step_id=step.id,
                )
            if not seconds <= MAX_WAIT_SECONDS:  # also NaN and infinity
                raise _failure(
                    f"wait '{step.id}': {seconds!r} seconds is longer than the longest wait, "
                    f"{MAX_WAIT_SECONDS} seconds (a year and a day)",
                    "InvalidWait",
                    step_id=step.id,
                )
            delay = timedelta(seconds=seconds)
        else:
            until = self.value(scope, step.until, step.id, "until")
            try:
                moment = datetime.fromisoformat(str(until).replace("Z", "+00:00"))
            except ValueError:
                raise _failure(
                    f"wait '{step.id}': until must be an RFC 3339 time, got {until!r}",
                    "InvalidWait",
                    step_id=step.id,
                ) from None
            if moment.tzinfo is None:
                raise _failure(
                    f"wait '{step.id}': until {until!r} has no time zone offset",
                    "InvalidWait",
                    step_id=step.id,
                )
            delay = moment - workflow.now()
            if delay > timedelta(seconds=MAX_WAIT_SECONDS):
                raise _failure(
                    f"wait '{step.id}': {until!r} is further away than the longest wait, "
                    f"{MAX_WAIT_SECONDS} seconds (a year and a day)",
                    "InvalidWait",
                    step_id=step.id,
                )
        scope.outputs[step.id] = {"output": None}
        if delay > timedelta(0):
            await workflow.sleep(delay, summary=f"wait '{step.id}'")

    async def child(self, step: WorkflowStep, scope: Scope, entry: Entry) -> tuple[Any, str | None]:
        body = (
            self.value(scope, step.input, step.id, "input") if step.input is not None else self.data
        )
        info = workflow.info()
        activity_id = entry.path
        entry.input = body
        if self.depth + 1 > MAX_WORKFLOW_DEPTH:
            raise _failure(
                f"step '{step.id}': workflow '{step.workflow}' would run {self.depth + 1} "
                f"workflow steps deep; the limit is {MAX_WORKFLOW_DEPTH}",
                "WorkflowDepthExceeded",
                step_id=step.id,
            )
        mock = self.options.mocks.get(step.id)
        if mock is not None:  # a test run: the child is not started
            try:
                result = await run_workflow_mock(step.id, step.workflow, mock, activity_id)
            except ApplicationError as error:
                return self._caught(step, scope, _step_failure(error, step.id), error, entry)
            entry.output, entry.attempts = result, 1
            return self._finish(step, scope, result), step.next
        entry.child_execution_id = f"{info.workflow_id}/{activity_id}"
        options = ExecutionOptions(
            context=self.context,
            version=step.version,
            depth=self.depth + 1,
            step_budget=max(self.budget - self.executed, 1),
        )
        try:
            async with self.pending:
                result = await workflow.execute_child_workflow(
                    step.workflow,
                    args=[body, options],
                    id=f"{info.workflow_id}/{activity_id}",
                    task_queue=info.task_queue,
                    static_summary=f"step '{step.id}': workflow {step.workflow}",
                )
        except ChildWorkflowError as error:
            cause = error.cause
            failure = StepFailure(
                step_id=step.id,
                service="",
                action="",
                error_type=(cause.type if isinstance(cause, ApplicationError) else None)
                or type(cause).__name__,
                message=str(cause) if cause else str(error),
            )
            wrapped = _failure(
                f"step '{step.id}': workflow '{step.workflow}' failed: {failure.message}",
                "ChildWorkflowFailed",
                step_id=step.id,
            )
            return self._caught(step, scope, failure, wrapped, entry)
        entry.output, entry.attempts = result, 1  # a child workflow is started once
        if isinstance(result, dict):
            self.data.update(result)
        return self._finish(step, scope, result), step.next


def journal_error(error: BaseException, step_id: str) -> dict[str, Any]:
    """A failed step's error in the journal, as `$error` binds it (a chain's too)."""
    if isinstance(error, ApplicationError):
        return _error_of(error, step_id)
    return {"type": type(error).__name__, "message": str(error), "step_id": step_id}


def _raised(task: asyncio.Task[Any]) -> bool:
    return task.done() and not task.cancelled() and task.exception() is not None


@dataclass
class _IterationFailed:
    index: int
    error: dict[str, Any]


def _error_of(error: ApplicationError, step_id: str) -> dict[str, Any]:
    return error_binding(_step_failure(error, step_id))


def _task_ids(step: MapStep) -> list[Any]:
    from definitions.language import iter_steps

    return [s for s in iter_steps(step.steps) if isinstance(s, TaskStep)]


def _matches(catch: Catch, names: set[str]) -> bool:
    return any(name in names for name in catch.errors)


def _truthy(value: Any) -> bool:
    """JSONata's boolean of a value: empty and zero things are false."""
    if value is None or value is False:
        return False
    if isinstance(value, int | float) and not isinstance(value, bool):
        return value != 0
    if isinstance(value, str | list | dict):
        return len(value) > 0
    return bool(value)
