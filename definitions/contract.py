"""The contract between the gateway, the workflow and the activities, in one place.

Everything one side writes and another reads is named here once: the Temporal names
(activity types, workflow type prefix, search attributes), the memo keys, the failure
type a failed step ends an execution with and its details, and the version of the
models that cross process boundaries. Those models accept unknown fields, so during a
rolling upgrade a newer gateway and an older worker (or the reverse) keep working; see
docs/versioning.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict
from temporalio.common import SearchAttributeKey

CONTRACT_VERSION = 3
"""Version of the models exchanged across processes. 1: the seed (no version field);
2: adds `contract` to ExecutionOptions and StepCall; 3: the `si:start` activity
(StartCall, StartOutcome). Readers treat a missing value as 1."""

ACTION_EXECUTION_PREFIX = "action:"
"""Temporal workflow type prefix of one-action executions (`action:<service>.<action>`)."""

LOAD_DEFINITION_ACTIVITY = "si:load-definition"
"""Activity that loads the latest ACTIVE definition of a workflow by name."""

CHAIN_MOCKS_PATCH = "chain-mocks"
"""A test run of a seed chain answers each step's mock (a si:mock-step local activity)
instead of calling its service; test runs recorded before called the services."""

SUCCEED_ENDS_EXECUTION_PATCH = "succeed-ends-execution"
"""A `succeed` inside a parallel branch or a map iteration ends the whole execution and
withdraws the work still running; histories recorded before ended only the branch (the
record reads the patch's marker to tell which)."""

SUCCEEDED_KEY = "si:succeeded"
"""A map batch's result when a `succeed` in it ended the execution (a batch otherwise
answers a list)."""

EXPRESSION_LIMIT = "ExpressionLimit"
"""The error type of an expression stopped by its budget (definitions/expressions.py);
a `catch` on a task routes on it when the task's `input` was stopped."""

JOURNAL_QUERY = "si:journal"
"""The query a stored workflow answers with its journal: one entry per step run, as the
interpreter ran it (workflows/journal.py)."""

OUTCOME_UPDATE = "si:outcome"
"""The update a stored workflow answers once its steps are done, before it closes: its
status, result or error, and its journal (`Outcome`). The gateway's execute-and-wait
starts an execution with it (update-with-start), so the record of an execution it waited
for needs no read of its history; its answer is also kept in history (the update's
completed event), where a later read of the record finds it."""

STEP_RESULT_KEY = "si:step"
"""A step activity asked to (StepCall.report) answers `{"si:step": {"attempt": n,
"worker": "<identity>"}, "output": {...}}`, so the journal knows each task's attempts and
worker without a read of history; results recorded before are the output alone
(workflows/tasks.py `unwrap` reads both)."""

START_ACTIVITY = "si:start"
"""Activity a start by name begins with (since the `start-activity` patch): it pins the
definition and, for a chain, makes the first attempt of its entry step; its result
(StartOutcome) records both in history. Before the patch, a start by name loaded the
definition with the LOAD_DEFINITION_ACTIVITY local activity."""

MOCK_STEP_ACTIVITY = "si:mock-step"
"""Local activity that stands in for a mocked task in a test run (POST /workflows/{id}/test):
it answers the mock's output, or fails with the mock's error, and calls no service."""

STEP_FAILED = "StepFailed"
"""ApplicationError type an execution fails with when a step fails; details: StepFailure."""

INVALID_START = "InvalidStart"
"""ApplicationError type of an execution whose input, options or definition cannot be used."""

WORKFLOW_ID_KEY = SearchAttributeKey.for_keyword("SiWorkflowId")
WORKFLOW_VERSION_KEY = SearchAttributeKey.for_int("SiWorkflowVersion")
"""Search attributes on every execution of a stored workflow: the gateway lists a
workflow's executions by them, and people filter by them in the web UI."""

TEST_RUN_KEY = SearchAttributeKey.for_bool("SiTestRun")
"""Search attribute set (true) at start on a test run (POST /workflows/{id}/test, every
task and workflow step mocked), absent on every other execution: lists leave test runs
out unless asked for them, and their records say `test_run: true`."""


class _Tolerant(BaseModel):
    model_config = ConfigDict(extra="ignore")


class ExecutionMemo(_Tolerant):
    """The memo of an execution: what it runs, readable without decoding its input."""

    kind: str = "workflow"
    workflow_id: str | None = None
    workflow_name: str | None = None
    version: int | None = None

    def to_memo(self) -> dict[str, Any]:
        return self.model_dump()


class StepFailure(_Tolerant):
    """Details of the STEP_FAILED error: which step failed, how, after how many attempts."""

    step_id: str
    service: str
    action: str
    error_type: str
    message: str
    attempts: int | None = None
    status_code: int | None = None


@dataclass(frozen=True)
class TaskResult:
    """A task's output, and (from results recorded with StepCall.report) how many attempts
    it took and the worker whose attempt answered: None where the result does not say."""

    output: Any
    attempts: int | None = None
    worker: str | None = None


def unwrap(result: Any) -> TaskResult:
    """A step activity's result, as answered with StepCall.report or (recorded before
    it, or a mock's) the output alone. Read by the workflow and by the history reader."""
    if isinstance(result, dict) and len(result) == 2 and STEP_RESULT_KEY in result:
        reported = result[STEP_RESULT_KEY]
        if isinstance(reported, dict) and "output" in result:
            attempts, worker = reported.get("attempt"), reported.get("worker")
            return TaskResult(
                result["output"],
                attempts if isinstance(attempts, int) else None,
                worker if isinstance(worker, str) else None,
            )
    return TaskResult(result)
