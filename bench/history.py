"""Where an execution's time goes, read from the server's own event times.

Each workflow task is split into dispatch (WORKFLOW_TASK_SCHEDULED -> STARTED: the
server hands it to a polling worker) and run (STARTED -> COMPLETED: the worker
processes it and the server records the answer); each activity into dispatch
(SCHEDULED -> STARTED) and run (STARTED -> COMPLETED).
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowHandle

from bench.stats import percentile

_E = EventType


def _ms(event: Any) -> float:
    return event.event_time.ToMicroseconds() / 1000


def hops(events: list[Any]) -> dict[str, list[float]]:
    """Milliseconds of each hop in one history."""
    found: dict[str, list[float]] = defaultdict(list)
    scheduled_wft: float | None = None
    started_wft: float | None = None
    activities: dict[int, float] = {}
    activity_started: dict[int, float] = {}
    for event in events:
        kind, at = event.event_type, _ms(event)
        if kind == _E.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED:
            scheduled_wft = at
        elif kind == _E.EVENT_TYPE_WORKFLOW_TASK_STARTED and scheduled_wft is not None:
            found["wft_dispatch"].append(at - scheduled_wft)
            started_wft = at
        elif kind == _E.EVENT_TYPE_WORKFLOW_TASK_COMPLETED and started_wft is not None:
            found["wft_run"].append(at - started_wft)
        elif kind == _E.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            activities[event.event_id] = at
        elif kind == _E.EVENT_TYPE_ACTIVITY_TASK_STARTED:
            scheduled_id = event.activity_task_started_event_attributes.scheduled_event_id
            if scheduled_id in activities:
                found["activity_dispatch"].append(at - activities[scheduled_id])
                activity_started[scheduled_id] = at
        elif kind == _E.EVENT_TYPE_ACTIVITY_TASK_COMPLETED:
            scheduled_id = event.activity_task_completed_event_attributes.scheduled_event_id
            if scheduled_id in activity_started:
                found["activity_run"].append(at - activity_started[scheduled_id])
    if events:
        found["server_total"].append(_ms(events[-1]) - _ms(events[0]))
    return found


async def breakdown(handles: list[WorkflowHandle[Any, Any]]) -> dict[str, dict[str, float]]:
    """Per hop: median and p90 milliseconds, and how many per execution."""
    merged: dict[str, list[float]] = defaultdict(list)
    for handle in handles:
        history = await handle.fetch_history()
        for name, values in hops(list(history.events)).items():
            merged[name].extend(values)
    runs = max(1, len(handles))
    return {
        name: {
            "p50": percentile(values, 50),
            "p90": percentile(values, 90),
            "per_execution": len(values) / runs,
        }
        for name, values in merged.items()
    }
