"""A definition as nodes and edges, for drawing it (GET /api/workflows/{id}/graph)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from definitions.language import (
    ChoiceStep,
    FailStep,
    Flow,
    MapStep,
    ParallelStep,
    SucceedStep,
    TaskStep,
    WaitStep,
    WorkflowStep,
    entry_of,
)
from definitions.models import StepSpec


def chain_graph(steps: Sequence[StepSpec]) -> dict[str, Any]:
    """The seed's chain: one task node per step, a `next` edge between them."""
    nodes = [
        {"id": s.id, "type": "task", "label": f"{s.service}.{s.action}", "parent": None}
        for s in steps
    ]
    edges = [{"from": s.id, "to": s.next, "route": "next"} for s in steps if s.next]
    pointed = {s.next for s in steps}
    entry = next((s.id for s in steps if s.id not in pointed), steps[0].id if steps else None)
    return {"kind": "chain", "entry": entry, "nodes": nodes, "edges": edges}


def flow_graph(flow: Flow) -> dict[str, Any]:
    """Every step as a node (nested ones name their `parent` and `branch`), and every way
    from one step to another as an edge with its route: `next`, a choice's condition or
    `default`, a catch's errors, a parallel's branches, a map's iteration."""
    nodes: list[dict[str, Any]] = []
    edges: list[dict[str, Any]] = []

    def walk(steps: Sequence[Any], parent: str | None, branch: int | None, chain: Any) -> None:
        for step in steps:
            nodes.append(
                {
                    "id": step.id,
                    "type": step.type,
                    "label": _label(step),
                    "parent": parent,
                    "branch": branch,
                    "entry": step.id == entry_of(chain),
                }
            )
            if getattr(step, "next", None):
                edges.append({"from": step.id, "to": step.next, "route": "next"})
            if isinstance(step, ChoiceStep):
                for rule in step.choices:
                    edges.append({"from": step.id, "to": rule.next, "route": rule.when})
                if step.default:
                    edges.append({"from": step.id, "to": step.default, "route": "default"})
            for catch in getattr(step, "catch", []) or []:
                edges.append(
                    {"from": step.id, "to": catch.next, "route": f"catch {', '.join(catch.errors)}"}
                )
            if isinstance(step, ParallelStep):
                for number, sub in enumerate(step.branches):
                    edges.append(
                        {"from": step.id, "to": entry_of(sub), "route": f"branch {number}"}
                    )
                    walk(sub.steps, step.id, number, sub)
            elif isinstance(step, MapStep):
                edges.append({"from": step.id, "to": entry_of(step), "route": "each item"})
                walk(step.steps, step.id, None, step)

    walk(flow.steps, None, None, flow)
    return {"kind": "flow", "entry": entry_of(flow), "nodes": nodes, "edges": edges}


def _label(step: Any) -> str:
    if isinstance(step, TaskStep):
        return f"{step.service}.{step.action}"
    if isinstance(step, WorkflowStep):
        return f"workflow {step.workflow}" + (f" v{step.version}" if step.version else "")
    if isinstance(step, WaitStep):
        return f"wait {step.seconds}s" if step.seconds is not None else f"wait until {step.until}"
    if isinstance(step, MapStep):
        return f"map over {step.items} ({step.max_concurrency} at a time)"
    if isinstance(step, ParallelStep):
        return f"parallel, {len(step.branches)} branches"
    if isinstance(step, ChoiceStep):
        return f"choice of {len(step.choices)}" + (" or default" if step.default else "")
    if isinstance(step, SucceedStep):
        return "succeed"
    if isinstance(step, FailStep):
        return f"fail {step.error}"
    return str(step.type)
