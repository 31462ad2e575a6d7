"""HMAC signatures of pinned steps: the gateway signs, the worker verifies.

A step names the endpoint the worker will call and how (the action spec). Anyone who can
start workflows on the Temporal frontend could otherwise hand the workers a definition
of their own and make them call any host the outbound policy allows. With
DEFINITION_SIGNING_KEY set, the gateway (and the by-name definition loader) signs each
step, and the worker refuses a step whose signature is missing or does not match.

The signature covers the step id, service, action, endpoint and the action spec as the
models serialize them; it does not cover `next` (the chain's order), so a signed step
can only ever call what was registered for it. A step that runs more than once (a map
iteration, a loop) is checked against the id of the definition's step, not the
activity id of that run (`definition_step_id`).
"""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

SIGNATURE_PREFIX = "hmac-sha256:"


def _canonical(step_id: str, service: str, action: str, endpoint: str, spec: Any) -> bytes:
    document = {
        "id": step_id,
        "service": service,
        "action": action,
        "endpoint": endpoint,
        "spec": spec,
    }
    return json.dumps(document, sort_keys=True, separators=(",", ":")).encode()


def step_signature(
    key: str, *, step_id: str, service: str, action: str, endpoint: str, spec: dict[str, Any]
) -> str:
    """The signature of one step under `key` (spec: the action spec as a JSON object)."""
    digest = hmac.new(
        key.encode(), _canonical(step_id, service, action, endpoint, spec), hashlib.sha256
    )
    return SIGNATURE_PREFIX + digest.hexdigest()


def signature_matches(
    key: str,
    signature: str | None,
    *,
    step_id: str,
    service: str,
    action: str,
    endpoint: str,
    spec: dict[str, Any],
) -> bool:
    """True if `signature` is the signature of that step under `key` (constant time)."""
    if not signature:
        return False
    expected = step_signature(
        key, step_id=step_id, service=service, action=action, endpoint=endpoint, spec=spec
    )
    return hmac.compare_digest(expected, signature)


def definition_signatures(key: str, definition: Any) -> dict[str, str]:
    """Step id -> signature for every step of a PinnedDefinition; {} without a key."""
    if not key:
        return {}
    return {
        step.id: step_signature(
            key,
            step_id=step.id,
            service=step.service,
            action=step.spec.name,
            endpoint=step.endpoint,
            spec=step.spec.model_dump(mode="json"),
        )
        for step in definition.steps
    }


# ---------------------------------------------------------------- whole definitions
#
# A step's signature binds what it calls; it says nothing of the expressions, routes,
# waits and children around it (a flow of `succeed` steps has no step to sign at all).
# The gateway therefore also signs the execution options it starts with, whole: the
# pinned definition (flow, entry, steps, expressions, input schema, version), the
# mocks of a test run, and what a map batch or continue-as-new carries. The worker
# checks it in workflow code before it runs anything (workflows/integrity.py).

UNSIGNED_OPTION_FIELDS = frozenset({"signatures", "definition_signature"})
"""Fields of the execution options a signature does not cover: the signatures."""


def canonical_options(options: dict[str, Any]) -> bytes:
    """The bytes an options signature covers: the options as JSON (as the data converter
    sends them), without the signatures, keys sorted, no spaces."""
    document = {k: v for k, v in options.items() if k not in UNSIGNED_OPTION_FIELDS}
    return json.dumps(document, sort_keys=True, separators=(",", ":")).encode()


def options_signature(key: str, options: dict[str, Any]) -> str:
    """The signature of execution options (as JSON) under `key`."""
    digest = hmac.new(key.encode(), canonical_options(options), hashlib.sha256)
    return SIGNATURE_PREFIX + digest.hexdigest()


def options_signature_matches(key: str, signature: str | None, options: dict[str, Any]) -> bool:
    """True if `signature` signs these options (as JSON) under `key` (constant time)."""
    if not signature:
        return False
    return hmac.compare_digest(options_signature(key, options), signature)


def definition_step_id(activity_id: str) -> str:
    """The definition's step id of a task's activity id: `fan[3].fetch#2` -> `fetch`.

    A step runs under an activity id that also names its map iteration (`fan[3].`) and
    its run in a loop (`#2`); step ids hold neither `.`, `[` nor `#`
    (definitions/names.py), so the id is what is left.
    """
    return activity_id.rsplit(".", 1)[-1].split("#", 1)[0]
