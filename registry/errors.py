"""Errors of the registry. The gateway maps each type to one status code (gateway/errors.py)."""

from __future__ import annotations

from typing import Any


class RegistryError(Exception):
    """Base of the errors the registry raises for a request it cannot carry out."""


class NotFoundError(RegistryError):
    """No resource of that type has that id."""

    def __init__(self, resource_type: str, resource_id: str, *, hint: str = "") -> None:
        self.resource_type = resource_type
        self.resource_id = resource_id
        message = f"{resource_type} '{resource_id}' not found"
        super().__init__(f"{message}; {hint}" if hint else message)


class ConflictError(RegistryError):
    """The request clashes with the stored state (a taken name, a service in use, ...)."""

    def __init__(self, message: str, *, resource_type: str, resource_id: str | None = None):
        self.resource_type = resource_type
        self.resource_id = resource_id
        super().__init__(message)


class InvalidDefinitionError(RegistryError):
    """The definition has problems, each as `{loc, msg, type}`; `loc` is a place in the
    definition (["steps", 2, "next"]), and the gateway adds where the request had it."""

    def __init__(self, problems: list[dict[str, Any]]) -> None:
        self.problems = problems
        super().__init__("; ".join(p["msg"] for p in problems))


class NotRunnableError(RegistryError):
    """An INACTIVE workflow, or a step whose service is INACTIVE or gone: nothing started."""

    def __init__(self, message: str, *, resource_type: str, resource_id: str) -> None:
        self.resource_type = resource_type
        self.resource_id = resource_id
        super().__init__(message)


class DatabaseUnavailableError(RegistryError):
    """The registry database cannot be reached."""


class IdempotencyKeyReusedError(RegistryError):
    """An Idempotency-Key came back with a different request."""
