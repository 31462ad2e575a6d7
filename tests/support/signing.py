"""Signing on for in-process workers: what a gateway with DEFINITION_SIGNING_KEY sends."""

from __future__ import annotations

from core.signing import definition_signatures, options_signature
from definitions.models import ExecutionOptions
from workflows.integrity import register_signing_key

TEST_SIGNING_KEY = "tests-signing-key-shared-by-gateway-and-worker"


def signed_for(task_queue: str, options: ExecutionOptions) -> ExecutionOptions:
    """Turn signing on for workflows on `task_queue` in this process, and sign `options`
    (each step and the whole) as the gateway would."""
    register_signing_key(task_queue, TEST_SIGNING_KEY)
    assert options.definition is not None
    options = options.model_copy(
        update={"signatures": definition_signatures(TEST_SIGNING_KEY, options.definition)}
    )
    signature = options_signature(TEST_SIGNING_KEY, options.model_dump(mode="json"))
    return options.model_copy(update={"definition_signature": signature})
