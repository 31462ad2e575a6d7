"""Save-time checks of flows: each rule refuses with a location and a message."""

from __future__ import annotations

from typing import Any

import pytest

from definitions.flow_checks import check_flow
from definitions.language import Flow


def t(step_id: str, **fields: Any) -> dict[str, Any]:
    return {"id": step_id, "service": "svc", "action": "run", **fields}


def problems_of(flow: dict[str, Any], **kwargs: Any) -> list[tuple[list[Any], str]]:
    found, _ = check_flow(Flow.model_validate(flow), **kwargs)
    return [(p["loc"], p["msg"]) for p in found]


def test_a_flow_using_every_step_type_is_accepted() -> None:
    flow = {
        "max_steps": 50,
        "steps": [
            t("get", input={"u": "{% $input.url %}"}, next="route"),
            {
                "id": "route",
                "type": "choice",
                "choices": [{"when": "{% $steps.get.output.ok %}", "next": "both"}],
                "default": "stop",
            },
            {
                "id": "both",
                "type": "parallel",
                "branches": [{"steps": [t("left")]}, {"steps": [t("right")]}],
                "next": "each",
            },
            {
                "id": "each",
                "type": "map",
                "items": "{% $steps.left.output.items %}",
                "steps": [t("item", input={"i": "{% $item %}", "r": "{% $steps.right.output %}"})],
                "next": "pause",
            },
            {"id": "pause", "type": "wait", "seconds": 1, "next": "sub"},
            {"id": "sub", "type": "workflow", "workflow": "other", "next": "done"},
            {"id": "done", "type": "succeed", "output": "{% $steps.each.output %}"},
            {"id": "stop", "type": "fail", "error": "NotOk", "cause": "{% 'no' %}"},
        ],
    }
    assert problems_of(flow) == []


def test_expression_that_does_not_parse() -> None:
    [(loc, msg)] = problems_of({"steps": [t("a", input={"x": "{% 1 + %}"})]})
    assert loc == ["steps", 0, "input"] and "does not parse" in msg


def test_nondeterministic_function_is_refused() -> None:
    [(loc, msg)] = problems_of({"steps": [t("a", input={"x": "{% $shuffle([1, 2]) %}"})]})
    assert "not deterministic" in msg


def test_step_reference_that_is_not_upstream() -> None:
    found = problems_of({"steps": [t("a", input={"x": "{% $steps.b.output %}"}, next="b"), t("b")]})
    assert (
        ["steps", 0, "input"],
        "$steps.b is not upstream of step 'a': it has not run when this step runs",
    ) in found


def test_step_reference_to_no_step() -> None:
    [(loc, msg)] = problems_of({"steps": [t("a", input={"x": "{% $steps.ghost.output %}"})]})
    assert "names no step" in msg


def test_map_iteration_steps_are_not_upstream_after_the_map() -> None:
    found = problems_of(
        {
            "steps": [
                {"id": "m", "type": "map", "items": [1], "steps": [t("inner")], "next": "after"},
                t("after", input={"x": "{% $steps.inner.output %}"}),
            ]
        }
    )
    assert any("not upstream" in msg for _, msg in found)


@pytest.mark.parametrize(
    ("step", "loc"),
    [
        (t("a", next="nowhere"), ["steps", 0, "next"]),
        (
            {"id": "a", "type": "choice", "choices": [{"when": "{% true %}", "next": "x"}]},
            ["steps", 0, "choices", 0, "next"],
        ),
        (
            {
                "id": "a",
                "type": "choice",
                "choices": [{"when": "{% true %}", "next": "a"}],
                "default": "x",
            },
            ["steps", 0, "default"],
        ),
        (t("a", catch=[{"errors": ["ALL"], "next": "x"}]), ["steps", 0, "catch", 0, "next"]),
    ],
)
def test_unknown_target(step: dict[str, Any], loc: list[Any]) -> None:
    found = problems_of({"steps": [step], "max_steps": 10})
    assert any(
        found_loc == loc and "not a step of this chain" in msg for found_loc, msg in found
    ), found


def test_unreachable_step() -> None:
    found = problems_of({"start_at": "a", "steps": [t("a"), t("b")]})
    assert (
        ["steps", 1],
        "step 'b' can never run: no step of its chain leads to it from the entry 'a'",
    ) in found


def test_loop_without_max_steps() -> None:
    flow = {
        "steps": [
            t("a", next="again"),
            {
                "id": "again",
                "type": "choice",
                "choices": [{"when": "{% true %}", "next": "a"}],
                "default": "end",
            },
            {"id": "end", "type": "succeed"},
        ],
        "start_at": "a",
    }
    assert any(loc == ["max_steps"] for loc, _ in problems_of(flow))
    assert problems_of({**flow, "max_steps": 100}) == []


def test_map_items_literal_that_is_not_an_array() -> None:
    [(loc, msg)] = problems_of(
        {"steps": [{"id": "m", "type": "map", "items": 5, "steps": [t("i")]}]}
    )
    assert loc == ["steps", 0, "items"]


def test_duplicate_ids_across_branches() -> None:
    found = problems_of(
        {
            "steps": [
                {
                    "id": "p",
                    "type": "parallel",
                    "branches": [{"steps": [t("x")]}, {"steps": [t("x")]}],
                }
            ]
        }
    )
    assert (
        ["steps", 0, "branches", 1, "steps", 0, "id"],
        "step id 'x' is used twice (steps.0.branches.0.steps.0 and steps.0.branches.1.steps.0); "
        "give each step its own id; step ids are unique across the whole definition, branches "
        "and map steps included",
    ) in found


def test_duplicate_ids_at_the_top_level_are_said_as_a_chain_says_them() -> None:
    found = problems_of({"steps": [t("a", next="b"), t("b"), t("a")], "start_at": "a"})
    assert (
        ["steps", 2, "id"],
        "step id 'a' is used twice (steps 0 and 2); give each step its own id",
    ) in found


def test_kind_checks_run_inside_branches_and_maps() -> None:
    wait = {"id": "w", "type": "wait"}
    found = problems_of(
        {
            "steps": [
                {"id": "p", "type": "parallel", "branches": [{"steps": [wait]}], "next": "m"},
                {"id": "m", "type": "map", "items": [], "steps": [wait | {"id": "w2"}]},
            ]
        }
    )
    assert [loc for loc, _ in found] == [
        ["steps", 0, "branches", 0, "steps", 0],
        ["steps", 1, "steps", 0],
    ]


def test_unknown_catch_error_name() -> None:
    [(loc, msg)] = problems_of(
        {"steps": [t("a", catch=[{"errors": ["HTTP.999x"], "next": "a"}])], "max_steps": 5}
    )
    assert loc == ["steps", 0, "catch", 0, "errors", 0]


def test_wait_needs_one_of_seconds_and_until() -> None:
    assert problems_of({"steps": [{"id": "w", "type": "wait"}]})
    assert problems_of({"steps": [{"id": "w", "type": "wait", "until": "tomorrow"}]})
    assert (
        problems_of({"steps": [{"id": "w", "type": "wait", "until": "2026-12-01T09:00:00Z"}]}) == []
    )


def test_property_ruled_out_by_output_schema_is_refused_else_warned() -> None:
    flow = Flow.model_validate(
        {"steps": [t("a", next="b"), t("b", input={"x": "{% $steps.a.output.nope %}"})]}
    )
    closed = {"type": "object", "properties": {"ok": {}}, "additionalProperties": False}
    problems, warnings = check_flow(flow, output_schema=lambda step: closed)
    assert problems and "allows no property 'nope'" in problems[0]["msg"]
    problems, warnings = check_flow(flow, output_schema=lambda step: {"type": "object"})
    assert problems == [] and "does not declare 'nope'" in warnings[0]["msg"]


def test_unquoted_hyphenated_step_id_suggests_backticks() -> None:
    flow = {
        "steps": [
            t("extract-text", next="analyze"),
            t("analyze", input={"text": "{% $steps.extract-text.output.text %}"}),
        ]
    }
    assert problems_of(flow) == [
        (
            ["steps", 1, "input"],
            "$steps.extract names no step of this definition; did you mean "
            "$steps.`extract-text`? Step ids with '-' are quoted with backticks in expressions",
        )
    ]


def test_unquoted_hyphenated_step_id_suggests_the_longest_known_id() -> None:
    flow = {
        "steps": [
            t("get-page", next="get-page-text"),
            t("get-page-text", next="use"),
            t("use", input={"x": "{% $steps.get-page-text.output %}"}),
        ]
    }
    [(_, msg)] = problems_of(flow)
    assert "did you mean $steps.`get-page-text`?" in msg


def test_unquoted_hyphenated_step_id_that_does_not_parse_suggests_backticks() -> None:
    # `$steps.step - 1.output` does not parse: the hint goes with the parse error.
    flow = {"steps": [t("step-1", next="b"), t("b", input={"x": "{% $steps.step-1.output %}"})]}
    [(loc, msg)] = problems_of(flow)
    assert loc == ["steps", 1, "input"] and "does not parse" in msg
    assert msg.endswith(
        "did you mean $steps.`step-1`? Step ids with '-' are quoted with backticks in expressions"
    )


def test_quoted_hyphenated_step_id_is_accepted() -> None:
    flow = {
        "steps": [
            t("extract-text", next="analyze"),
            t("analyze", input={"text": "{% $steps.`extract-text`.output.text %}"}),
        ]
    }
    assert problems_of(flow) == []


def test_hyphenated_reference_naming_no_step_suggests_nothing() -> None:
    flow = {"steps": [t("a", input={"x": "{% $steps.ghost-town.output %}"})]}
    assert problems_of(flow) == [
        (["steps", 0, "input"], "$steps.ghost names no step of this definition")
    ]
