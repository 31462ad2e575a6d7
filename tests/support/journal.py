"""The record against the journal: what the gateway answers of an execution's steps must
be what the interpreter says it did (workflows/journal.py)."""

from __future__ import annotations

from typing import Any

from temporalio.client import Client, WorkflowHandle

from definitions.contract import JOURNAL_QUERY
from executions.history import build_record

COMPARED = ("id", "type", "path", "status", "route", "count", "iteration", "branch")
"""Fields of a step both tell; values (input, output) are compared where both have one."""


async def journal_and_record(
    client: Client, handle: WorkflowHandle[Any, Any]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The closed execution's journal (by query) and its record's steps (from history)."""
    journal = await handle.query(JOURNAL_QUERY)
    history = await handle.fetch_history()
    record = await build_record(handle.id, history.events, None, converter=client.data_converter)
    return journal, [s.model_dump(mode="json", exclude_none=True) for s in record.steps]


def differences(journal: list[dict[str, Any]], record: list[dict[str, Any]]) -> list[str]:
    """Where the record's steps differ from the journal, step by step (by path)."""
    found: list[str] = []
    by_path = {(s.get("path") or s["id"]): s for s in record}

    def differ(where: str, name: str, told: Any, recorded: Any) -> None:
        if told != recorded:
            found.append(f"{where}.{name}: journal {told!r}, record {recorded!r}")

    for entry in journal:
        step = by_path.pop(entry["path"], None)
        if step is None:
            found.append(f"{entry['path']}: in the journal, not in the record")
            continue
        for name in COMPARED:
            if name in ("type", "path") and name not in step:
                continue  # a seed chain's record has neither
            differ(entry["path"], name, entry.get(name), step.get(name))
        for name in ("input", "output", "attempts", "worker"):
            # attempts and worker: what a task's result reports (StepCall.report), which
            # the record built from the journal alone answers (executions/record.py).
            if name in entry and name in step:
                differ(entry["path"], name, entry[name], step[name])
        if entry.get("error") and step.get("error"):
            differ(
                entry["path"], "error.type", entry["error"].get("type"), step["error"].get("type")
            )
    found.extend(f"{path}: in the record, not in the journal" for path in by_path)
    return found
