"""Errors of the execution store. The gateway maps each type to one status code."""

from __future__ import annotations


class TemporalUnavailableError(Exception):
    """The Temporal frontend cannot be reached (the lazy client failed to connect)."""


class InvalidPageTokenError(ValueError):
    """A page token that Temporal did not hand out (or no longer accepts)."""
