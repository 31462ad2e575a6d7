"""The dev stack's console and the first run: what a new user sees (`./run stack`)."""

from __future__ import annotations

import io
import logging
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from temporalio.exceptions import ApplicationError

from cli.main import EXAMPLES_ADDRESS, _copy_lines, main, with_examples_allowed
from core.logs import ExpectedStepFailures

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("allowed", "expected"),
    [
        ("", EXAMPLES_ADDRESS),
        ("10.0.0.0/8", f"10.0.0.0/8,{EXAMPLES_ADDRESS}"),
        (f"api.internal, {EXAMPLES_ADDRESS}", f"api.internal,{EXAMPLES_ADDRESS}"),
    ],
)
def test_allowed_hosts_adds_to_the_example_services(allowed: str, expected: str) -> None:
    assert with_examples_allowed(allowed) == expected


def _record(error: BaseException) -> logging.LogRecord:
    try:
        raise error
    except BaseException:  # noqa: BLE001 - the record carries it as the SDK's does
        exc_info = sys.exc_info()
    record = logging.LogRecord(
        "temporalio.activity",
        logging.WARNING,
        __file__,
        1,
        "Completing activity as failed",
        (),
        exc_info,
    )
    record.temporal_activity = {  # type: ignore[attr-defined]
        "activity_type": "svc.run",
        "activity_id": "extract-text",
        "attempt": 1,
        "workflow_id": "exec-1",
    }
    return record


def test_an_expected_step_failure_is_one_line_without_a_traceback() -> None:
    record = _record(ApplicationError("HTTP 404", type="ServiceRejected", non_retryable=True))
    assert ExpectedStepFailures().filter(record)
    assert record.exc_info is None
    line = record.getMessage()
    assert "\n" not in line
    assert "ServiceRejected: HTTP 404" in line and "'extract-text'" in line and "svc.run" in line


@pytest.mark.parametrize(
    "error", [ApplicationError("HTTP 503", type="ServiceUnavailable"), RuntimeError("a bug")]
)
def test_other_failures_keep_their_traceback(error: BaseException) -> None:
    record = _record(error)
    assert ExpectedStepFailures().filter(record)
    assert record.exc_info is not None


def test_each_process_line_is_prefixed_with_its_name(capsys: pytest.CaptureFixture[str]) -> None:
    _copy_lines(io.BytesIO(b"started\nlistening on 8005\n"), "gateway | ", threading.Lock())
    assert capsys.readouterr().out == "gateway | started\ngateway | listening on 8005\n"


def test_gateway_port_has_help_text(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["gateway", "--help"])
    help_text = capsys.readouterr().out
    port_line = next(line for line in help_text.splitlines() if "--port" in line)
    assert len(port_line.split("--port", 1)[1].strip()) > len("PORT"), help_text


def test_the_first_run_says_it_is_installing(tmp_path: Path) -> None:
    """`./run` with no .venv says what it does before the minute of pip install (here
    stopped at once: python3 is a stand-in that fails)."""
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "python3").write_text("#!/bin/sh\nexit 3\n")
    (fake / "python3").chmod(0o755)
    copy = tmp_path / "project"
    copy.mkdir()
    (copy / "run").write_text((ROOT / "run").read_text())
    (copy / "pyproject.toml").write_text("")
    done = subprocess.run(
        ["bash", str(copy / "run"), "tests"],
        capture_output=True,
        text=True,
        env={**os.environ, "PATH": f"{fake}:{os.environ['PATH']}"},
        timeout=30,
    )
    assert done.returncode != 0
    assert "installing" in done.stderr, done.stderr
