"""`si:start`: how a stored workflow started by name begins (since the `start-activity` patch).

A program that starts a stored workflow with the Temporal SDK gives only its name and
input, so the workflow's first command has to record the definition it runs. Before the
patch that was a local activity (`si:load-definition`), then the entry step's activity:
one more activity task and workflow activation than a hand-written workflow pays
(docs/profiling.md). `si:start` is one activity doing both: it pins the definition
(activities/definitions.py, with its cache) and, for a chain, makes the *first attempt*
of the entry step with exactly the call the workflow would have scheduled
(definitions/chain.py), through the same code as `<service>.<action>`
(activities/http_step.py: signature check, credentials, load shaping, heartbeats). Its
result, a StartOutcome, records both in history.

A failed first attempt is part of the result, not the activity's failure: the workflow
then retries the step as its own `<service>.<action>` activity, after the delay and with
the attempts the action's retry policy has left (workflows/stored.py), so the service
sees no more calls than the policy allows. A failure to pin (no runnable workflow of
that name: non-retryable; database down: retried) fails the activity, as the local
activity did.
"""

from __future__ import annotations

import asyncio
from typing import Any

from temporalio import activity
from temporalio.api.common.v1 import Payload
from temporalio.common import RawValue
from temporalio.exceptions import ApplicationError

from activities.definitions import DefinitionActivities
from activities.http_step import StepActivities
from definitions.chain import chain_step_call
from definitions.contract import CONTRACT_VERSION, START_ACTIVITY
from definitions.models import FirstAttempt, PinnedStep, StartCall, StepCall


class StartActivities:
    """`si:start`, made of the by-name loader and the step activity of the same worker."""

    def __init__(self, definitions: DefinitionActivities, steps: StepActivities) -> None:
        self._definitions = definitions
        self._steps = steps

    @activity.defn(name=START_ACTIVITY)
    async def start(self, call: StartCall) -> RawValue:
        """The StartOutcome: the pinned definition, and the first attempt of a chain's
        entry step (None for a flow, or when `run_first` is off)."""
        definition, pinned = await self._definitions.pinned(call.name, call.version)
        first: FirstAttempt | None = None
        if call.run_first and definition.flow is None:
            step = definition.step(definition.entry)
            step_call = chain_step_call(
                step,
                call.input,
                contract=CONTRACT_VERSION,
                execution_id=call.execution_id,
                context=call.context,
                request_id=call.request_id,
                signatures={**definition.signatures, **call.signatures},
            )
            first = await self._first_attempt(step, step_call)
        # The definition's payload is cached as the converter made it: the outcome is
        # spliced around it instead of serializing the whole definition again.
        converter = activity.payload_converter()
        tail = b"null" if first is None else converter.to_payload(first).data
        return RawValue(
            Payload(
                metadata=dict(pinned.payload.metadata),
                data=b'{"definition":' + pinned.payload.data + b',"first":' + tail + b"}",
            )
        )

    async def _first_attempt(self, step: PinnedStep, call: StepCall) -> FirstAttempt:
        """One attempt under the action's timeout; its failure as the workflow needs it
        to retry the step or fail the execution as a `<service>.<action>` activity would."""
        attempt = activity.info().attempt
        try:
            async with asyncio.timeout(step.spec.timeout):
                return FirstAttempt(output=await self._steps.run(call), worker=_worker())
        except ApplicationError as exc:
            details: dict[str, Any] = (
                dict(exc.details[0]) if exc.details and isinstance(exc.details[0], dict) else {}
            )
            delay = exc.next_retry_delay
            return FirstAttempt(
                error_type=exc.type or "ApplicationError",
                message=exc.message,
                details=details,
                non_retryable=exc.non_retryable,
                retry_after=delay.total_seconds() if delay is not None else None,
            )
        except TimeoutError:
            # As a `<service>.<action>` activity's start-to-close timeout reads.
            return FirstAttempt(
                error_type="Timeout",
                message="START_TO_CLOSE: activity StartToClose timeout",
                details={"attempt": attempt},
            )
        except Exception as exc:  # noqa: BLE001 - any other error is a retryable attempt
            return FirstAttempt(
                error_type=type(exc).__name__, message=str(exc), details={"attempt": attempt}
            )


def _worker() -> str | None:
    """The identity of the worker making the attempt, as its history events name it."""
    try:
        return activity.client().identity
    except RuntimeError:  # called outside a worker
        return None
