"""What the interpreter did, step by step, as it did it: the execution's journal.

Workflow code (deterministic, no I/O): each step the interpreter runs opens one entry
when it starts and closes it when it ends, with what only the interpreter knows for
sure (the route a choice took, the catch that took a failure, the branch and the
iteration it ran in, the value a `succeed` ended with). The workflow answers it to the
`si:journal` query (definitions/contract.py), for a running execution and, replayed by
a worker, for a closed one. Entries have the shape of the record's steps
(executions/models.py `StepState`); what history alone knows (attempts, the worker)
is added by the reader.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from definitions.json_values import bounded


class StepStatus(StrEnum):
    """Where a journalled step stands."""

    RUNNING = "RUNNING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CANCELED = "CANCELED"


@dataclass
class Entry:
    """One run of one step."""

    id: str
    type: str
    path: str
    status: StepStatus = StepStatus.RUNNING
    started_at: str | None = None
    completed_at: str | None = None
    service: str | None = None
    action: str | None = None
    iteration: int | None = None
    branch: int | None = None
    count: int | None = None
    input: Any = None
    output: Any = None
    attempts: int | None = None
    worker: str | None = None
    route: str | None = None
    error: dict[str, Any] | None = None
    child_execution_id: str | None = None

    def public(self) -> dict[str, Any]:
        """The entry as the record answers a step: fields that do not apply left out."""
        document: dict[str, Any] = {}
        for name, value in self.__dict__.items():
            if value is None:
                continue
            if name in ("input", "output"):
                value = bounded(value)
            document[name] = str(value) if isinstance(value, StepStatus) else value
        return document


@dataclass
class Journal:
    """The entries of one run of the workflow, in the order the steps started."""

    entries: list[Entry] = field(default_factory=list)

    def open(self, step_id: str, step_type: str, path: str, **fields: Any) -> Entry:
        entry = Entry(id=step_id, type=step_type, path=path, started_at=_now(), **fields)
        self.entries.append(entry)
        return entry

    @staticmethod
    def close(entry: Entry, status: StepStatus, **fields: Any) -> None:
        entry.status = status
        entry.completed_at = _now()
        for name, value in fields.items():
            setattr(entry, name, value)

    def public(self) -> list[dict[str, Any]]:
        return [entry.public() for entry in self.entries]


def _now() -> str:
    return workflow.now().isoformat()
