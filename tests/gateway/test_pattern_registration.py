"""A schema pattern the linear-time engine cannot run is refused at registration."""

from __future__ import annotations

from tests.support.builders import action, service


async def test_a_lookahead_pattern_is_422_at_registration(api, services, unique) -> None:
    schema = {"type": "object", "properties": {"code": {"type": "string", "pattern": "(?=a)b"}}}
    answer = await api.post(
        "/services",
        json=service(
            f"look-{unique}",
            services.endpoint("echo", services.token()),
            [action("run", input_schema=schema)],
        ),
    )
    assert answer.status_code == 422, answer.text
    [problem] = answer.json()["detail"]
    assert problem["loc"] == ["body", "actions", 0, "input_schema", "properties", "code", "pattern"]
    assert "lookahead" in problem["msg"] and "RE2" in problem["msg"]


async def test_the_catastrophic_pattern_is_accepted_and_runs_in_linear_time(
    api, services, unique
) -> None:
    schema = {"type": "object", "properties": {"s": {"type": "string", "pattern": "^(a|a)*$"}}}
    answer = await api.post(
        "/services",
        json=service(
            f"evil-{unique}",
            services.endpoint("echo", services.token()),
            [action("run", input_schema=schema)],
        ),
    )
    assert answer.status_code == 201, answer.text
    # A later step, checked by the worker (the gateway checks the first step's input and
    # answers 422: tests/gateway/test_first_hour.py).
    await api.post(
        "/services",
        json=service(
            f"first-{unique}", services.endpoint("echo", services.token()), [action("run")]
        ),
    )
    workflow = await api.post(
        "/workflows",
        json={
            "name": f"evil-{unique}",
            "steps": [
                {"id": "first", "service": f"first-{unique}", "action": "run", "next": "only"},
                {"id": "only", "service": f"evil-{unique}", "action": "run", "next": None},
            ],
        },
    )
    record = (
        await api.post(
            f"/workflows/{workflow.json()['id']}/execute",
            json={"input_data": {"s": "a" * 40 + "!"}},
            params={"timeout": 30},
        )
    ).json()
    assert record["status"] == "FAILED"
    assert record["error"]["error_type"] == "InputSchemaViolation"
    assert record["error"]["step_id"] == "only"
