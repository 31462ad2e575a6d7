"""A definition as nodes and edges, for drawing it (GET /api/workflows/{id}/graph).

One drawing for both languages: a seed chain is drawn as the flow of task steps it is
read as (definitions/parsing.py `chain_flow`). Each step's kind says its label and its
edges (steps/).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from definitions.language import Flow, Kind, entry_of
from steps.base import StepKind, StepsHolder


def flow_graph(flow: Flow, *, kind: Kind = "flow") -> dict[str, Any]:
    """Every step as a node (nested ones name their `parent` and `branch`), and every way
    from one step to another as an edge with its route: `next`, a choice's condition or
    `default`, a catch's errors, a parallel's branches, a map's iteration.

    Args:
        flow: the definition.
        kind: what the answer says the definition is: "chain" for a seed chain.
    """
    nodes: list[dict[str, Any]] = []
    edges: list[dict[str, Any]] = []

    def walk(
        steps: Sequence[StepKind], parent: str | None, branch: int | None, chain: StepsHolder
    ) -> None:
        entry = entry_of(chain)
        for step in steps:
            nodes.append(
                {
                    "id": step.id,
                    "type": step.type,
                    "label": step.label(),
                    "parent": parent,
                    "branch": branch,
                    "entry": step.id == entry,
                }
            )
            for transition in step.transitions():
                edges.append({"from": step.id, "to": transition.to, "route": transition.route})
            for nested in step.nested():
                edges.append({"from": step.id, "to": entry_of(nested.chain), "route": nested.route})
                walk(nested.chain.steps, step.id, nested.branch, nested.chain)

    walk(flow.steps, None, None, flow)
    return {"kind": kind, "entry": entry_of(flow), "nodes": nodes, "edges": edges}
