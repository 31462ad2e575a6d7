"""Definition models shared by the gateway, the registry, the worker and the workflow.

This package imports nothing but pydantic and the standard library, so the workflow
sandbox can pass it through cheaply (see worker/main.py PASSTHROUGH_MODULES).
"""

from definitions.models import (
    DEFAULT_RETRY_POLICY,
    ActionSpec,
    ExecutionOptions,
    PinnedDefinition,
    PinnedStep,
    RetryPolicySpec,
    StepCall,
    StepSpec,
)

__all__ = [
    "DEFAULT_RETRY_POLICY",
    "ActionSpec",
    "ExecutionOptions",
    "PinnedDefinition",
    "PinnedStep",
    "RetryPolicySpec",
    "StepCall",
    "StepSpec",
]
