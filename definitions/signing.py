"""HMAC signatures of pinned steps: the gateway signs, the worker verifies.

A step names the endpoint the worker will call and how (the action spec). Anyone who can
start workflows on the Temporal frontend could otherwise hand the workers a definition
of their own and make them call any host the outbound policy allows. With
DEFINITION_SIGNING_KEY set, the gateway (and the by-name definition loader) signs each
step, and the worker refuses a step whose signature is missing or does not match.

The signature covers the step id, service, action, endpoint and the action spec as the
models serialize them; it does not cover `next` (the chain's order), so a signed step
can only ever call what was registered for it.
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
