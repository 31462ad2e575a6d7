"""How data flows between steps; pure functions the workflow calls."""

from __future__ import annotations

from typing import Any


def step_input(input_schema: dict[str, Any], data: dict[str, Any]) -> dict[str, Any]:
    """The input of a step: the declared properties found in the accumulated data.

    `data` is the workflow input updated with each step's output in turn, so each
    property holds the value of the most recent step output that had it, else the
    workflow input's. A schema that declares no properties gets all of `data`.
    """
    properties = input_schema.get("properties")
    if not isinstance(properties, dict) or not properties:
        return dict(data)
    return {name: data[name] for name in properties if name in data}
