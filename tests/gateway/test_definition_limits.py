"""Definitions the gateway refuses with a 422 without ever stalling: too large, too deep,
malformed expressions, and `workflow` steps that would run each other without end.

Checks run in worker threads, so a request beside a slow or refused check is answered
at once; the timings allow for a slow two-core machine.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import pytest

from core.settings import Settings
from tests.support.builders import create_workflow

MAX_DEFINITION_BYTES = Settings.model_fields["max_definition_bytes"].default

MALFORMED = [
    "/* unterminated comment",
    "[1!2]",
    "function($x)<n<n>>{$x}",
    "function($x)<(sa<n>)>>{$x}",
]
"""Expressions that used to make the parser raise (issue 26): each answered 500."""


def _succeeding(name: str, output: Any) -> dict[str, Any]:
    return {"name": name, "steps": [{"id": "s", "type": "succeed", "output": output}]}


def _calls(step_id: str, workflow: str, **fields: Any) -> dict[str, Any]:
    return {"id": step_id, "type": "workflow", "workflow": workflow, **fields}


def _problems(answer: httpx.Response) -> dict[tuple[Any, ...], str]:
    return {tuple(p["loc"]): p["msg"] for p in answer.json()["detail"]}


async def _timed(request: Any) -> tuple[httpx.Response, float]:
    """The answer, and the moment it came (time.perf_counter)."""
    answer = await request
    return answer, time.perf_counter()


async def _beside(
    api: httpx.AsyncClient, body: dict[str, Any], *, after: float
) -> tuple[httpx.Response, float, float, float]:
    """POST /workflows/validate with `body`, and `after` seconds later GET /services:
    (the validate's answer, its seconds, the GET's seconds, how much earlier the GET's
    answer came than the validate's)."""
    started = time.perf_counter()
    validate = asyncio.create_task(_timed(api.post("/workflows/validate", json=body)))
    await asyncio.sleep(after)
    get_started = time.perf_counter()
    listed, listed_at = await _timed(api.get("/services"))
    assert listed.status_code == 200, listed.text
    checked, checked_at = await validate
    return checked, checked_at - started, listed_at - get_started, checked_at - listed_at


async def test_an_800_kb_expression_is_422_at_once_and_other_requests_are_served(
    api, unique
) -> None:
    body = _succeeding(f"huge-{unique}", "{% " + "1+" * 400_000 + "1 %}")
    answer, seconds, listed_seconds, listed_ahead = await _beside(api, body, after=0.05)
    assert answer.status_code == 422, answer.text[:500]
    assert "MAX_DEFINITION_BYTES" in answer.text
    assert seconds < 1.0
    assert listed_ahead > 0 or listed_seconds < 0.5


async def test_a_slow_check_runs_beside_other_requests(api, unique) -> None:
    # Distinct long sums, each under the limit of one expression: seconds of parsing.
    output = {f"k{i}": "{% " + "1+" * (3000 - i) + "1 %}" for i in range(3)}
    body = _succeeding(f"slow-{unique}", output)
    answer, seconds, listed_seconds, listed_ahead = await _beside(api, body, after=0.2)
    assert answer.status_code in (200, 422), answer.text[:500]
    assert listed_ahead > 0 or listed_seconds < 0.5


@pytest.mark.parametrize("depth", [4_000, 9_000])
async def test_deeply_nested_parentheses_are_422(api, unique, depth) -> None:
    expression = "{% " + "(" * depth + "1" + ")" * depth + " %}"
    answer = await api.post("/workflows", json=_succeeding(f"parens-{unique}", expression))
    assert answer.status_code == 422, answer.text[:500]
    assert ("body", "steps", 0, "output") in _problems(answer)


async def test_a_body_nested_ten_thousand_arrays_deep_is_4xx_not_500(api, unique) -> None:
    # Python's JSON decoder stops at its recursion limit, and FastAPI answers that 400
    # ("There was an error parsing the body"); shallower bodies meet the 64 levels of
    # registry/schemas.py (422).
    depth = 10_000
    content = f'{{"name": "arrays-{unique}", "steps": [{"[" * depth}{"]" * depth}]}}'
    answer = await api.post(
        "/workflows", content=content, headers={"Content-Type": "application/json"}
    )
    assert answer.status_code in (400, 422), answer.text[:500]
    assert answer.json()["detail"]


async def test_a_value_nested_under_the_body_limit_is_checked(api, unique) -> None:
    nested: Any = "{% 1 %}"
    for _ in range(60):
        nested = [nested]
    answer = await api.post("/workflows/validate", json=_succeeding(f"nested-{unique}", nested))
    assert answer.status_code == 200, answer.text[:500]


async def test_a_definition_over_max_definition_bytes_is_422(api, unique) -> None:
    big = {"pad": "x" * (MAX_DEFINITION_BYTES + 1)}
    for path in ("/workflows", "/workflows/validate"):
        answer = await api.post(path, json=_succeeding(f"big-{unique}", big))
        assert answer.status_code == 422, answer.text[:500]
        (message,) = answer.json()["detail"]
        assert message["loc"] == ["body"]
        assert f"the limit is {MAX_DEFINITION_BYTES} (MAX_DEFINITION_BYTES)" in message["msg"]
    small = await create_workflow(api, f"big-{unique}", _succeeding("", {"pad": "x"})["steps"])
    patched = await api.patch(f"/workflows/{small['id']}", json={"output": big})
    assert patched.status_code == 422, patched.text[:500]
    assert "MAX_DEFINITION_BYTES" in patched.text


@pytest.mark.parametrize("expression", MALFORMED)
async def test_a_malformed_expression_is_422_naming_it(api, unique, expression) -> None:
    answer = await api.post(
        "/workflows", json=_succeeding(f"malformed-{unique}", f"{{% {expression} %}}")
    )
    assert answer.status_code == 422, answer.text[:500]
    found = _problems(answer)
    assert expression in found[("body", "steps", 0, "output")]


async def test_a_workflow_step_running_its_own_workflow_is_422(api, unique) -> None:
    name = f"self-{unique}"
    answer = await api.post("/workflows", json={"name": name, "steps": [_calls("again", name)]})
    assert answer.status_code == 422, answer.text
    message = _problems(answer)[("body", "steps", 0, "workflow")]
    assert f"workflow steps form a cycle: {name} -> {name};" in message
    assert "cannot run itself, directly or through others" in message
    nested = {
        "name": name,
        "steps": [
            {
                "id": "both",
                "type": "parallel",
                "branches": [
                    {"steps": [{"id": "done", "type": "succeed"}]},
                    {"steps": [_calls("again", name, version=1)]},
                ],
            }
        ],
    }
    answer = await api.post("/workflows/validate", json=nested)
    assert answer.status_code == 422, answer.text
    where = ("body", "steps", 0, "branches", 1, "steps", 0, "workflow")
    assert f"cycle: {name} -> {name};" in _problems(answer)[where]


async def test_workflow_steps_that_run_each_other_are_422_with_the_path(api, unique) -> None:
    a, b, c = (f"{x}-{unique}" for x in "abc")
    unknown = await create_workflow(api, c, [_calls("later", f"not-yet-{unique}")])
    assert unknown["version"] == 1  # a name stored by nobody yet is no cycle
    second = await create_workflow(api, b, [{"id": "done", "type": "succeed"}])
    await create_workflow(api, a, [_calls("to-b", b, next="to-c"), _calls("to-c", c)])
    patched = await api.patch(f"/workflows/{second['id']}", json={"steps": [_calls("back", a)]})
    assert patched.status_code == 422, patched.text
    message = _problems(patched)[("body", "steps", 0, "workflow")]
    assert f"workflow steps form a cycle: {b} -> {a} -> {b};" in message
    # An earlier version of itself that runs no workflow is no cycle.
    earlier = await api.patch(
        f"/workflows/{second['id']}", json={"steps": [_calls("old", b, version=1)]}
    )
    assert earlier.status_code == 200, earlier.text
    joined = await api.patch(f"/workflows/{unknown['id']}", json={"steps": [_calls("to-b", b)]})
    assert joined.status_code == 200, joined.text  # c -> b -> b@1, which runs nothing
    closing = await api.patch(
        f"/workflows/{second['id']}",
        json={"steps": [_calls("old", b, version=1, next="c"), _calls("c", c)]},
    )
    assert closing.status_code == 422, closing.text
    message = _problems(closing)[("body", "steps", 1, "workflow")]
    assert f"workflow steps form a cycle: {b} -> {c} -> {b};" in message
    assert ("body", "steps", 0, "workflow") not in _problems(closing)
