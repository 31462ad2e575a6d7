"""Logging of the worker processes: an expected step failure is one line.

The Temporal SDK logs every failed activity attempt as "Completing activity as failed"
at WARNING with the exception's traceback (logger `temporalio.activity`). A step that
fails because the service answered 4xx, a body broke its schema or the outbound policy
refused the host raises a non-retryable `ApplicationError` on purpose (ServiceRejected,
InputSchemaViolation, OutboundRefused, ...): its type and message say what happened, and
a 20-line traceback for each one buries the rest of the log. `configure_logging()` logs
those as one line naming the step; every other failure (a bug, an error Temporal
retries) keeps its traceback.
"""

from __future__ import annotations

import logging
from typing import Any

from temporalio.exceptions import ApplicationError

LOG_FORMAT = "%(asctime)s %(name)s %(levelname)s %(message)s"
ACTIVITY_LOGGER = "temporalio.activity"
"""The logger of `temporalio.activity.logger`, the adapter the SDK's activity worker logs
failed attempts with."""


class ExpectedStepFailures(logging.Filter):
    """Turns a record carrying a non-retryable `ApplicationError` into one line.

    The record keeps its level; its message becomes the error's type and message, the
    activity type, the step (activity id), the attempt and the execution (workflow id),
    and its traceback is dropped. Records without such an error pass unchanged.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if not isinstance(error, ApplicationError) or not error.non_retryable:
            return True
        # The SDK's adapter puts the activity's details on the record as `temporal_activity`.
        details: dict[str, Any] = getattr(record, "temporal_activity", None) or {}
        record.msg = "step failed, not retried: %s: %s (activity %s, step %r, attempt %s, %s)"
        record.args = (
            error.type or type(error).__name__,
            " ".join(error.message.split()),
            details.get("activity_type"),
            details.get("activity_id"),
            details.get("attempt"),
            details.get("workflow_id"),
        )
        record.exc_info = None
        record.exc_text = None
        return True


def configure_logging(level: int = logging.INFO) -> None:
    """Log to stderr in the processes' one format, expected step failures as one line.

    Call it once at the start of a process that runs a worker, instead of
    `logging.basicConfig`; calling it again adds nothing.

    Args:
        level: The root logger's level.
    """
    logging.basicConfig(level=level, format=LOG_FORMAT)
    activity_logger = logging.getLogger(ACTIVITY_LOGGER)
    if not any(isinstance(f, ExpectedStepFailures) for f in activity_logger.filters):
        activity_logger.addFilter(ExpectedStepFailures())
