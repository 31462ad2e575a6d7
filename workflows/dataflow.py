"""How data flows between steps; pure functions the workflow calls (definitions/chain.py)."""

from __future__ import annotations

from definitions.chain import step_input

__all__ = ["step_input"]
