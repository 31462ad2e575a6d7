"""What a worker checks of the definition it is handed, in workflow code, before it runs.

Anyone who can reach the Temporal frontend can start a workflow on the task queue with
a definition of their own. With DEFINITION_SIGNING_KEY set, the gateway signs the
execution options it starts with, whole (core/signing.py), and the worker:

- refuses options without a signature (`DefinitionNotSigned`) or with one that does
  not match (`DefinitionSignatureMismatch`), both non-retryable, before any command;
- runs the save-time checks again on a flow it was given (definitions/flow_checks.py),
  once per distinct signature, so a definition stored before a check was added, or
  made by hand, cannot run what the gateway would now refuse (`InvalidDefinition`);
- signs the options of the runs it starts itself (map batches, continue-as-new).

Deterministic: an HMAC and pure checks over recorded input. The key is the worker's
(registered per task queue by worker/main.py), so a replay on a worker with the same
key decides the same; the replay gate runs without a key and checks nothing here.
Executions started by name are pinned by `si:start`, an activity of this worker, so
their definition is trusted as it comes.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

from temporalio import workflow
from temporalio.common import RawValue
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from core.signing import options_signature, options_signature_matches
    from definitions.models import ExecutionOptions

SIGNED_OPTIONS_PATCH = "signed-options"
"""Options without a whole signature are refused from here on; histories recorded before
(a step-signed flow started by an older gateway) replay as they ran."""

_signing_keys: dict[str, str] = {}
"""Task queue -> DEFINITION_SIGNING_KEY of the worker that polls it in this process."""

_checked: OrderedDict[str, str | None] = OrderedDict()
"""Signature -> the save-time checks' verdict on its flow (None: it passes)."""
_CHECKED_MAX = 512


def register_signing_key(task_queue: str, key: str) -> None:
    """Make workflows on `task_queue` in this process check signatures under `key`."""
    if key:
        _signing_keys[task_queue] = key
    else:
        _signing_keys.pop(task_queue, None)


def signing_key() -> str:
    """The key of the running workflow's task queue ('' when none is set)."""
    return _signing_keys.get(workflow.info().task_queue, "")


def _refuse(message: str, error_type: str) -> ApplicationError:
    return ApplicationError(message, type=error_type, non_retryable=True)


def verify_options(raw: RawValue, options: ExecutionOptions) -> None:
    """Refuse options handed to this workflow that the gateway did not sign, or a flow
    that fails the save-time checks; nothing to do without a key or a definition."""
    key = signing_key()
    if not key or options.definition is None:
        return
    document = workflow.payload_converter().from_payload(raw.payload)
    if not isinstance(document, dict):
        raise _refuse("the execution options are not an object", "DefinitionNotSigned")
    signature = options.definition_signature
    if signature is None:
        if options.definition.flow is None and options.signatures:
            # A chain whose every step is signed, from a gateway older than whole
            # signatures: each step's own check (activities/http_step.py) still holds.
            return
        if not workflow.patched(SIGNED_OPTIONS_PATCH):
            return
        raise _refuse(
            "this execution's definition carries no signature, and this worker runs only "
            "definitions signed by the gateway (DEFINITION_SIGNING_KEY is set): start it "
            "through the gateway, or by name with the Temporal SDK",
            "DefinitionNotSigned",
        )
    if not options_signature_matches(key, signature, document):
        raise _refuse(
            "this execution's definition does not match its signature: it was changed "
            "after the gateway signed it, or the gateway and this worker have different "
            "DEFINITION_SIGNING_KEY values (set the same key on both)",
            "DefinitionSignatureMismatch",
        )
    verdict = _flow_verdict(signature, options)
    if verdict is not None:
        raise _refuse(verdict, "InvalidDefinition")


def _flow_verdict(signature: str, options: ExecutionOptions) -> str | None:
    if signature in _checked:
        _checked.move_to_end(signature)
        return _checked[signature]
    verdict = None
    definition = options.definition
    if definition is not None and definition.flow is not None:
        from definitions.flow_checks import check_flow

        problems, _ = check_flow(definition.flow)
        if problems:
            first = problems[0]
            where = ".".join(str(part) for part in first["loc"])
            verdict = (
                f"the definition fails the save-time checks ({len(problems)} problems); "
                f"at {where}: {first['msg']}"
            )
    _checked[signature] = verdict
    while len(_checked) > _CHECKED_MAX:
        _checked.popitem(last=False)
    return verdict


def signed(options: ExecutionOptions) -> ExecutionOptions:
    """The options, signed under this worker's key when it has one (for the runs the
    workflow starts itself: map batches, continue-as-new)."""
    key = signing_key()
    if not key:
        return options
    document: dict[str, Any] = options.model_dump(mode="json")
    return options.model_copy(update={"definition_signature": options_signature(key, document)})
