"""The stand-in for a mocked task in a test run (POST /api/workflows/{id}/test)."""

from __future__ import annotations

from typing import Any

from temporalio import activity
from temporalio.exceptions import ApplicationError

from definitions.contract import MOCK_STEP_ACTIVITY
from definitions.models import StepMock


@activity.defn(name=MOCK_STEP_ACTIVITY)
async def mock_step(mock: StepMock) -> Any:
    """The mock's output, or its error (non-retryable: a test run does not wait out
    retries); no service is called."""
    if mock.error is not None:
        raise ApplicationError(
            mock.error.message,
            {"attempt": 1, "status_code": mock.error.status_code},
            type=mock.error.type,
            non_retryable=True,
        )
    return mock.output
