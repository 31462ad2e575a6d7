"""The worker's cache of definitions loaded by name (activities/definitions.py).

A start by name must run the definition as the registry holds it at that moment: a
change of the workflow's steps, of a service's endpoint or status reaches the next
start, though the worker served the starts before it from its cache.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from temporalio.client import Client, WorkflowFailureError
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.definitions import DefinitionActivities
from core.temporal import data_converter
from definitions.models import PinnedDefinition
from registry import workflows
from registry.db import create_engine, session_factory
from tests.support.builders import action, chain, create_workflow, register, service


async def _by_name(client: Client, stack: Any, name: str, data: dict[str, Any]) -> tuple[Any, str]:
    execution_id = f"cache-{uuid.uuid4()}"
    result = await client.execute_workflow(name, data, id=execution_id, task_queue=stack.task_queue)
    return result, execution_id


def _loading(
    loader: DefinitionActivities, name: str, *version: int
) -> Callable[[], Awaitable[PinnedDefinition]]:
    """Runs the loader's activity for `name` (at `version`) as a worker would, decoding
    what it answers."""
    converter = data_converter().payload_converter
    environment = ActivityEnvironment()
    environment.payload_converter = converter

    async def load() -> PinnedDefinition:
        raw = await environment.run(loader.load_definition, name, *version)
        loaded = converter.from_payload(raw.payload, PinnedDefinition)
        assert isinstance(loaded, PinnedDefinition)
        return loaded

    return load


async def test_the_next_start_by_name_runs_the_changed_definition(api, services, stack, unique):
    first, second, third = services.token(), services.token(), services.token()
    svc = await register(
        api, service(f"echo-{unique}", services.endpoint("echo", first), [action("run")])
    )
    name = f"cached-{unique}"
    workflow = await create_workflow(api, name, chain(("only", svc["name"], "run")))
    client = await Client.connect(stack.temporal_address)
    for n in range(4):  # from the third start on, the worker answers from its cache
        result, _ = await _by_name(client, stack, name, {"n": n})
        assert result == {"echo": {"n": n}, "action": "run"}
    assert len(services.calls[first]) == 4

    # A service's endpoint changes: the next start calls the new one.
    changed = await api.patch(
        f"/services/{svc['id']}", json={"endpoint": services.endpoint("echo", second)}
    )
    assert changed.status_code == 200, changed.text
    await _by_name(client, stack, name, {"n": 4})
    assert (len(services.calls[first]), len(services.calls[second])) == (4, 1)

    # The workflow's steps change (another service and action): the next start runs them.
    other = await register(
        api, service(f"other-{unique}", services.endpoint("echo", third), [action("go")])
    )
    patched = await api.patch(
        f"/workflows/{workflow['id']}", json={"steps": chain(("step", other["name"], "go"))}
    )
    assert patched.json()["version"] == 2, patched.text
    for n in range(3):
        result, execution_id = await _by_name(client, stack, name, {"n": n})
        assert result == {"echo": {"n": n}, "action": "go"}
    assert (len(services.calls[second]), len(services.calls[third])) == (1, 3)
    record = (await api.get(f"/executions/{execution_id}")).json()
    assert (record["workflow_id"], record["workflow_version"]) == (workflow["id"], 2)

    # The service goes INACTIVE: the next start fails at once, as without a cache.
    await api.patch(f"/services/{other['id']}", json={"status": "INACTIVE"})
    with pytest.raises(WorkflowFailureError) as failed:
        await _by_name(client, stack, name, {"n": 9})
    cause = failed.value.cause
    assert isinstance(cause, ApplicationError)
    assert "INACTIVE" in str(cause)
    assert len(services.calls[third]) == 3


async def test_a_cached_load_reads_the_stamp_only_and_a_change_pins_again(
    api, services, stack, unique, monkeypatch
):
    """In the worker's activity: hits do not pin; each kind of change does, once."""
    svc = await register(
        api, service(f"echo-{unique}", services.endpoint("echo", "a"), [action("run")])
    )
    name = f"stamped-{unique}"
    workflow = await create_workflow(api, name, chain(("only", svc["name"], "run")))
    pins: list[str] = []
    pin_by_name = workflows.pin_by_name

    async def counted(session: Any, wanted: str) -> PinnedDefinition:
        pins.append(wanted)
        return await pin_by_name(session, wanted)

    monkeypatch.setattr(workflows, "pin_by_name", counted)
    engine = create_engine(stack.database_url)
    loader = DefinitionActivities(session_factory(engine))
    load = _loading(loader, name)

    try:
        for _ in range(5):
            loaded = await load()
        assert len(pins) == 2  # the first load learns the services, the second stamps them
        assert loaded.steps[0].endpoint == services.endpoint("echo", "a")

        await api.patch(f"/services/{svc['id']}", json={"endpoint": services.endpoint("echo", "b")})
        assert (await load()).steps[0].endpoint == services.endpoint("echo", "b")
        assert (await load()).steps[0].endpoint == services.endpoint("echo", "b")
        assert len(pins) == 3

        await api.patch(
            f"/workflows/{workflow['id']}",
            json={"steps": chain(("renamed", svc["name"], "run"))},
        )
        loaded = await load()
        assert (loaded.version, loaded.steps[0].id) == (2, "renamed")
        await load()
        assert len(pins) == 4

        # A `workflow` step may ask for a version: the loader takes it, cached apart.
        first = await _loading(loader, name, 1)()
        assert (first.version, first.steps[0].id) == (1, "only")
        assert first.steps[0].endpoint == services.endpoint("echo", "b")
        assert (await load()).version == 2

        # Deleted and created again under the same name: a new row, a new definition.
        await api.delete(f"/workflows/{workflow['id']}")
        again = await create_workflow(api, name, chain(("fresh", svc["name"], "run")))
        loaded = await load()
        assert (loaded.workflow_id, loaded.steps[0].id) == (again["id"], "fresh")
    finally:
        await engine.dispose()


async def test_on_sqlite_a_load_reads_nothing_while_nothing_was_committed(
    api, services, stack, unique
):
    """SQLite's data_version stands for the stamp query while no connection committed;
    any commit, related or not, makes the next load read the stamp (and only a change of
    what the definition depends on pins again). PostgreSQL reads the stamp every time."""
    svc = await register(
        api, service(f"echo-{unique}", services.endpoint("echo", "a"), [action("run")])
    )
    name = f"quiet-{unique}"
    await create_workflow(api, name, chain(("only", svc["name"], "run")))
    engine = create_engine(stack.database_url)
    loader = DefinitionActivities(session_factory(engine))
    load = _loading(loader, name)
    sqlite = stack.database_url.startswith("sqlite")

    try:
        await load()  # pins, learns the services
        await load()  # stamps them, pins again: now current
        assert loader.stamp_reads == 1
        for _ in range(3):
            await load()
        assert loader.stamp_reads == (1 if sqlite else 4)

        # An unrelated commit: the stamp is read again, and still current.
        await register(
            api, service(f"other-{unique}", services.endpoint("echo", "b"), [action("run")])
        )
        assert (await load()).steps[0].endpoint == services.endpoint("echo", "a")
        assert loader.stamp_reads == (2 if sqlite else 5)
        await load()
        assert loader.stamp_reads == (2 if sqlite else 6)

        # A change it depends on: read, and pinned anew.
        await api.patch(f"/services/{svc['id']}", json={"endpoint": services.endpoint("echo", "c")})
        assert (await load()).steps[0].endpoint == services.endpoint("echo", "c")
        assert (await load()).steps[0].endpoint == services.endpoint("echo", "c")
    finally:
        await engine.dispose()
