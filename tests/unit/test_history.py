"""The execution record, built from histories recorded from the real engine
(tests/replay/histories/0.1.0), so a change of the SDK's history layout shows here."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter

from definitions.contract import INVALID_START, LOAD_DEFINITION_ACTIVITY
from executions.history import build_record, local_activity_marker
from executions.models import ExecutionPublic, ExecutionStatus

HISTORIES = Path(__file__).resolve().parents[1] / "replay" / "histories" / "0.1.0"


def recorded(name: str) -> dict[str, Any]:
    return json.loads((HISTORIES / f"{name}.json").read_text())


async def record_of(name: str, history: dict[str, Any] | None = None) -> ExecutionPublic:
    text = json.dumps(history if history is not None else recorded(name))
    events = WorkflowHistory.from_json(f"exec-{name}", text).events
    return await build_record(f"exec-{name}", events, None, converter=pydantic_data_converter)


def steps(record: ExecutionPublic) -> list[tuple[str, str, int]]:
    return [(s.id, s.status, s.attempts) for s in record.steps]


def json_payload(value: Any) -> dict[str, Any]:
    return {
        "metadata": {"encoding": base64.b64encode(b"json/plain").decode()},
        "data": base64.b64encode(json.dumps(value).encode()).decode(),
    }


async def test_local_activity_markers_give_each_step_its_attempts():
    record = await record_of("low-latency")
    assert record.status == ExecutionStatus.COMPLETED
    assert steps(record) == [("first", "COMPLETED", 1), ("second", "COMPLETED", 2)]
    assert record.result == {"text": "ok after 2 calls"}
    assert record.input == {"x": 1}
    assert record.error is None
    assert record.closed_at is not None and record.closed_at >= record.started_at


async def test_the_marker_parser_reads_the_recorded_marker_layout():
    events = WorkflowHistory.from_json("x", json.dumps(recorded("low-latency"))).events
    markers = [await local_activity_marker(e, pydantic_data_converter) for e in events]
    found = [m for m in markers if m is not None]
    assert [(m.activity_id, m.attempt, m.failure is None) for m in found] == [
        ("first", 1, True),
        ("second", 2, True),
    ]
    assert all(m.activity_type.endswith(".run") and m.result for m in found)


async def test_an_sdk_started_execution_reads_its_definition_from_the_load_marker():
    record = await record_of("sdk-by-name")
    assert record.status == ExecutionStatus.COMPLETED
    assert record.workflow_name.startswith("document-sentiment")
    assert record.workflow_id is not None and record.workflow_version == 1
    assert steps(record) == [
        ("extract-text", "COMPLETED", 1),
        ("analyze-sentiment", "COMPLETED", 1),
    ]
    assert record.input == {"document_url": "https://example.com/document.pdf"}
    assert record.context == {}
    assert record.result == {"sentiment": "positive", "score": 1.0}


async def test_an_sdk_started_execution_keeps_its_context():
    record = await record_of("sdk-by-name-context")
    assert record.context == {"project_id": "456", "request_id": "req-sdk"}
    assert [s.status for s in record.steps] == ["COMPLETED", "COMPLETED"]


async def test_a_failed_load_marker_fails_the_execution_without_steps():
    record = await record_of("sdk-by-name-unknown")
    assert record.status == ExecutionStatus.FAILED
    assert record.steps == []
    assert record.error is not None
    assert record.error.error_type == "NotFoundError"
    assert "not found" in record.error.message


async def test_activity_events_give_a_retried_step_its_attempts():
    record = await record_of("retried-step")
    assert record.status == ExecutionStatus.COMPLETED
    assert steps(record) == [("only", "COMPLETED", 3)]
    assert record.steps[0].worker and record.steps[0].started_at is not None
    assert record.result == {"text": "ok after 3 calls"}


async def test_a_refused_step_fails_the_execution_with_the_step_error():
    record = await record_of("failed-4xx")
    assert record.status == ExecutionStatus.FAILED
    assert steps(record) == [("only", "FAILED", 1)]
    assert record.steps[0].last_error and "HTTP 404" in record.steps[0].last_error
    error = record.error
    assert error is not None
    assert (error.step_id, error.action, error.attempts) == ("only", "404", 1)
    assert error.error_type == "ServiceRejected"
    assert "HTTP 404" in error.message
    assert record.result is None


async def test_a_one_action_execution_has_one_step():
    record = await record_of("one-action")
    assert (record.kind, record.workflow_id, record.workflow_version) == ("action", None, None)
    assert steps(record) == [("run", "COMPLETED", 1)]
    assert record.input == {"text": "hello"}


async def test_an_execution_still_running_is_running_with_its_step_scheduled():
    record = await record_of("running-mid-step")
    assert record.status == ExecutionStatus.RUNNING
    assert record.closed_at is None
    assert steps(record) == [("first", "COMPLETED", 1), ("second", "SCHEDULED", 0)]


def _failed_at_start(input_value: Any, failure_type: str, message: str) -> dict[str, Any]:
    """sdk-by-name-unknown with its input and closing failure replaced: how an execution
    the workflow fails at once (InvalidStart, NondeterminismError) is recorded."""
    history = recorded("sdk-by-name-unknown")
    events = [e for e in history["events"] if e["eventType"] != "EVENT_TYPE_MARKER_RECORDED"]
    started = events[0]["workflowExecutionStartedEventAttributes"]
    started["input"]["payloads"] = [json_payload(input_value)]
    failure = events[-1]["workflowExecutionFailedEventAttributes"]["failure"]
    failure["message"] = message
    failure["applicationFailureInfo"] = {"type": failure_type, "nonRetryable": True}
    return {"events": events}


@pytest.mark.parametrize("value", ["not-a-dict", [1, 2], 42, None])
async def test_an_input_that_is_no_object_is_answered_with_the_invalid_start_error(value):
    message = "the input must be a JSON object"
    record = await record_of("invalid", _failed_at_start(value, INVALID_START, message))
    assert record.status == ExecutionStatus.FAILED
    assert record.input == value
    assert record.error is not None
    assert record.error.error_type == INVALID_START
    assert message in record.error.message
    assert record.model_dump(mode="json")["input"] == value


async def test_unreadable_options_are_answered_with_default_context():
    history = _failed_at_start({"x": 1}, INVALID_START, "options are no object")
    started = history["events"][0]["workflowExecutionStartedEventAttributes"]
    started["input"]["payloads"].append(json_payload("not-options"))
    record = await record_of("bad-options", history)
    assert (record.status, record.context) == (ExecutionStatus.FAILED, {})
    assert record.error is not None and record.error.error_type == INVALID_START


async def test_a_nondeterminism_failure_reads_back_as_failed_with_that_error():
    message = "[TMPRL1100] Nondeterminism error: activity type of scheduled event mismatch"
    record = await record_of(
        "nondeterminism", _failed_at_start({"x": 1}, "NondeterminismError", message)
    )
    assert record.status == ExecutionStatus.FAILED
    assert record.error is not None
    assert record.error.error_type == "NondeterminismError"
    assert "Nondeterminism" in record.error.message


def test_the_load_definition_activity_is_named_by_the_contract():
    text = (HISTORIES / "sdk-by-name.json").read_text()
    assert (
        LOAD_DEFINITION_ACTIVITY
        in base64.b64decode(
            json.loads(text)["events"][4]["markerRecordedEventAttributes"]["details"]["data"][
                "payloads"
            ][0]["data"]
        ).decode()
    )
