"""A seed chain's save-time checks and drawing: parsed as a flow of task steps, checked by
the one checker (definitions/flow_checks.py) with the chain's rules, in the chain's words."""

from __future__ import annotations

from typing import Any

from definitions.flow_graph import flow_graph
from definitions.graph import step_order
from definitions.models import ActionSpec
from definitions.parsing import Parsed, chain_flow, parse_definition
from registry.validation import validate_definition

SERVICES = {"svc": [ActionSpec(name="act")]}


def steps(*pairs: tuple[str, str | None]) -> list[dict[str, Any]]:
    return [{"id": i, "service": "svc", "action": "act", "next": n} for i, n in pairs]


def parsed(raw: list[dict[str, Any]]) -> Parsed:
    found = parse_definition(raw, {})
    assert found.problems == [] and found.kind == "chain" and found.flow is None
    return found


def problems_of(raw: list[dict[str, Any]]) -> list[dict[str, Any]]:
    found, warnings = validate_definition(parsed(raw), SERVICES, workflow_name="wf")
    assert warnings == []
    return found


def messages(problems: list[dict[str, Any]]) -> str:
    return " | ".join(p["msg"] for p in problems)


def test_valid_chain_has_no_problems_and_runs_in_order() -> None:
    chain = parsed(steps(("b", "c"), ("a", "b"), ("c", None)))
    assert problems_of(steps(("b", "c"), ("a", "b"), ("c", None))) == []
    assert chain.chain is not None and step_order(chain.chain) == ["a", "b", "c"]
    assert chain.as_flow.start_at == "a"


def test_duplicate_step_ids_are_reported_with_their_positions() -> None:
    problems = problems_of(steps(("a", "b"), ("b", None), ("a", None)))
    assert problems[0]["loc"] == ["steps", 2, "id"]
    assert problems[0]["msg"] == (
        "step id 'a' is used twice (steps 0 and 2); give each step its own id"
    )


def test_next_naming_no_step_is_reported() -> None:
    problems = problems_of(steps(("a", "missing")))
    assert problems == [
        {
            "loc": ["steps", 0, "next"],
            "msg": "step 'a' has next 'missing', which is no step of this workflow; "
            "use one of ['a'] or null",
            "type": "value_error",
        }
    ]


def test_two_entry_steps_are_refused() -> None:
    problems = problems_of(steps(("a", None), ("b", None)))
    assert problems[0]["loc"] == ["steps"]
    assert "exactly one entry step" in messages(problems)


def test_a_cycle_without_entry_is_refused() -> None:
    assert "exactly one entry step" in messages(problems_of(steps(("a", "b"), ("b", "a"))))


def test_a_loop_is_refused_where_a_flow_would_only_need_max_steps() -> None:
    # A flow may loop (given max_steps); a chain never: it is one line.
    problems = problems_of(steps(("a", "b"), ("b", "c"), ("c", "b")))
    assert "next of several steps" in messages(problems)
    assert "max_steps" not in messages(problems)


def test_a_cycle_beside_the_chain_is_refused() -> None:
    problems = problems_of(steps(("a", None), ("b", "c"), ("c", "b")))
    assert "exactly one entry" in messages(problems) or "cannot be reached" in messages(problems)


def test_a_step_that_follows_two_steps_is_refused() -> None:
    assert "next of several steps" in messages(
        problems_of(steps(("a", "c"), ("b", "c"), ("c", None)))
    )


def test_empty_steps_are_refused_when_parsed() -> None:
    assert parse_definition([], {}).problems == [
        {"loc": ["steps"], "msg": "a workflow needs at least one step", "type": "value_error"}
    ]


def test_unknown_service_and_action_keep_their_locations() -> None:
    raw = steps(("a", "b"), ("b", None))
    raw[0]["service"], raw[1]["action"] = "nobody", "nothing"
    problems = problems_of(raw)
    assert [p["loc"] for p in problems] == [["steps", 0, "service"], ["steps", 1, "action"]]
    assert "register it first" in problems[0]["msg"]
    assert problems[1]["msg"].endswith("registered actions: act")


def test_a_chain_is_drawn_as_a_chain_of_task_nodes() -> None:
    chain = parsed(steps(("b", None), ("a", "b")))
    assert chain.chain is not None
    graph = flow_graph(chain_flow(chain.chain), kind="chain")
    assert (graph["kind"], graph["entry"]) == ("chain", "a")
    assert [(n["id"], n["type"], n["label"], n["parent"], n["entry"]) for n in graph["nodes"]] == [
        ("b", "task", "svc.act", None, False),
        ("a", "task", "svc.act", None, True),
    ]
    assert graph["edges"] == [{"from": "a", "to": "b", "route": "next"}]
