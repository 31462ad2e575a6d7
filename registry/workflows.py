"""Registry operations on stored workflows, and pinning a definition for an execution.

Every write commits itself, in one transaction with the answer its Idempotency-Key
gets (registry/transactions.py).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from functools import partial
from typing import Any, TypeVar

import anyio
import anyio.to_thread
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from definitions.flow_graph import flow_graph
from definitions.graph import Problem, problem, step_order
from definitions.language import Flow, TaskStep, WorkflowStep, entry_of, iter_steps, raw_tasks
from definitions.models import ActionSpec, PinnedDefinition, PinnedStep, StepSpec
from definitions.parsing import Parsed, chain_flow, parse_definition, stored_steps
from registry import services
from registry.errors import ConflictError, InvalidDefinitionError, NotFoundError, NotRunnableError
from registry.schemas import (
    DefinitionStatus,
    WorkflowCreate,
    WorkflowMode,
    WorkflowPublic,
    WorkflowUpdate,
)
from registry.tables import ServiceRow, WorkflowRow, WorkflowVersionRow, utcnow
from registry.transactions import Answer, KeyedRequest, commit_write
from registry.validation import step_locations, validate_definition

RESOURCE = "workflow"

T = TypeVar("T")


def to_public(
    row: WorkflowRow | WorkflowVersionRow,
    *,
    of: WorkflowRow | None = None,
    warnings: list[Problem] | None = None,
) -> WorkflowPublic:
    """The public form of a workflow, or of one of its versions (`of` is its workflow)."""
    flow = row.flow or {}
    if isinstance(row, WorkflowVersionRow):
        assert of is not None
        owner, status, updated_at = of, of.status, row.created_at
    else:
        owner, status, updated_at = row, row.status, row.updated_at
    return WorkflowPublic(
        id=owner.id,
        name=row.name,
        description=row.description,
        steps=list(row.steps),
        metadata=row.metadata_,
        status=DefinitionStatus(status),
        mode=WorkflowMode(row.mode),
        version=row.version,
        created_at=owner.created_at,
        updated_at=updated_at,
        kind="flow" if row.flow is not None else "chain",
        start_at=flow.get("start_at"),
        output=flow.get("output"),
        input_schema=flow.get("input_schema"),
        max_steps=flow.get("max_steps"),
        warnings=[public_problem(w) for w in warnings or []] or None,
    )


def public_problem(found: Problem) -> Problem:
    """A problem or warning located in the request body, as the API answers it."""
    return {**found, "loc": ["body", *found["loc"]]}


def _flow_column(parsed: Parsed) -> dict[str, Any] | None:
    """A flow's top-level fields as stored (None for the seed's chain)."""
    if parsed.flow is None:
        return None
    return parsed.flow.model_dump(
        mode="json", include={"start_at", "output", "input_schema", "max_steps"}
    )


async def _services_named(session: AsyncSession, names: set[str]) -> dict[str, ServiceRow]:
    rows = (await session.execute(select(ServiceRow).where(ServiceRow.name.in_(names)))).scalars()
    return {row.name: row for row in rows}


def definition_size(steps: Sequence[Any], top_level: dict[str, Any]) -> int:
    """A definition's size: its steps and top-level fields as compact UTF-8 JSON."""
    document = {"steps": list(steps), **{k: v for k, v in top_level.items() if v is not None}}
    return len(json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode())


class DefinitionChecks:
    """Runs the pure part of a definition's checks (its size, parsing, the language's
    checks, every expression) in worker threads, so a slow check never holds the event
    loop; at most `concurrency` run at once, the others wait their turn without blocking.

    Args:
        max_bytes: the largest definition checked (MAX_DEFINITION_BYTES); a larger one is
            refused before anything else is done with it.
        concurrency: checks running at once (DEFINITION_CHECK_CONCURRENCY).
    """

    def __init__(self, *, max_bytes: int, concurrency: int) -> None:
        self.max_bytes = max_bytes
        self._limiter = anyio.CapacityLimiter(concurrency)

    async def parse(self, steps: Sequence[Any], top_level: dict[str, Any]) -> Parsed:
        """The definition parsed, or the problems that prevent it (its size included)."""
        return await self._in_thread(partial(self._parse, steps, top_level))

    async def check(
        self,
        steps: Sequence[Any],
        top_level: dict[str, Any],
        services: dict[str, list[ActionSpec]],
        *,
        workflow_name: str,
    ) -> tuple[Parsed, list[Problem], list[Problem]]:
        """The definition parsed and checked against `services`: (parsed, problems,
        warnings); a definition that does not parse has its problems in `parsed.problems`."""
        return await self._in_thread(
            partial(self._check, steps, top_level, services, workflow_name=workflow_name)
        )

    async def _in_thread(self, work: Callable[[], T]) -> T:
        try:
            return await anyio.to_thread.run_sync(work, limiter=self._limiter)
        except RecursionError:
            # Whatever nests past Python's recursion limit (an expression, a value) cannot
            # be checked, so it cannot be stored either.
            raise InvalidDefinitionError(
                [
                    problem(
                        [],
                        "the definition nests too deeply to be checked; flatten its "
                        "expressions and values",
                    )
                ]
            ) from None

    def _parse(self, steps: Sequence[Any], top_level: dict[str, Any]) -> Parsed:
        size = definition_size(steps, top_level)
        if size > self.max_bytes:
            return Parsed(
                problems=[
                    problem(
                        [],
                        f"the definition (steps and top-level fields as JSON) is {size} bytes; "
                        f"the limit is {self.max_bytes} (MAX_DEFINITION_BYTES): move parts of "
                        "it into workflows of their own and run them with `workflow` steps",
                    )
                ]
            )
        return parse_definition(steps, top_level)

    def _check(
        self,
        steps: Sequence[Any],
        top_level: dict[str, Any],
        services: dict[str, list[ActionSpec]],
        *,
        workflow_name: str,
    ) -> tuple[Parsed, list[Problem], list[Problem]]:
        parsed = self._parse(steps, top_level)
        if parsed.problems:
            return parsed, [], []
        problems, warnings = validate_definition(parsed, services, workflow_name=workflow_name)
        return parsed, problems, warnings


async def check_definition(
    session: AsyncSession,
    steps: Sequence[Any],
    top_level: dict[str, Any],
    name: str,
    *,
    checks: DefinitionChecks,
    workflow_id: str | None = None,
) -> tuple[Parsed, list[Problem]]:
    """Parse and check a definition against the registry; its warnings.

    The database is read on the event loop; the rest runs in `checks`' threads.

    Args:
        name: the name the definition is saved under.
        checks: where the parsing and the pure checks run, and the size limit.
        workflow_id: the workflow being updated (None for a new one): its stored
            definition is the one being replaced.

    Raises:
        InvalidDefinitionError: with every problem found.
    """
    named = {t["service"] for t in raw_tasks(list(steps)) if isinstance(t["service"], str)}
    rows = await _services_named(session, named) if named else {}
    parsed, problems, warnings = await checks.check(
        steps, top_level, _actions(rows), workflow_name=name
    )
    if parsed.problems:
        raise InvalidDefinitionError(parsed.problems)
    if parsed.flow is not None:
        problems = problems + await _cycle_problems(
            session, parsed.flow, name=name, workflow_id=workflow_id
        )
    if problems:
        raise InvalidDefinitionError(problems)
    return parsed, warnings


Node = tuple[str, int | None]
"""A definition a `workflow` step runs: a workflow name, and its version (None: the
current one)."""


def _raw_calls(steps: Any) -> Iterator[Node]:
    """The `workflow` steps of stored steps (plain JSON), nested ones included."""
    for step in steps if isinstance(steps, list) else []:
        if not isinstance(step, dict):
            continue
        name, version = step.get("workflow"), step.get("version")
        if step.get("type") == "workflow" and isinstance(name, str):
            yield name, version if isinstance(version, int) else None
        for branch in step.get("branches") or []:
            if isinstance(branch, dict):
                yield from _raw_calls(branch.get("steps"))
        if step.get("type") == "map":
            yield from _raw_calls(step.get("steps"))


async def _call_graph(
    session: AsyncSession, start: Node, calls: list[Node], *, workflow_id: str | None
) -> dict[Node, list[Node]]:
    """Every definition reachable from `start` (the one being saved, which makes `calls`)
    through `workflow` steps -> the definitions its steps run.

    Each definition is read once, so the walk ends after at most as many reads as there
    are stored versions. A name no workflow has (yet) runs nothing: it fails when run.
    """
    name = start[0]
    graph: dict[Node, list[Node]] = {start: calls}
    same: dict[Node, Node] = {}
    frontier = {c for c in calls if c not in graph}
    while frontier:
        rows = await _workflows_named(session, {n for n, _ in frontier if n != name})
        for node in frontier:
            graph[node], same[node] = await _calls_of(
                session, node, rows, start=start, workflow_id=workflow_id
            )
        frontier = {c for node in frontier for c in graph[node] if c not in graph}
    # `b@3` where 3 is b's current version is `b`; the saved workflow's own new version
    # is the definition being saved.
    merged: dict[Node, list[Node]] = {}
    for node, called in graph.items():
        key = same.get(node, node)
        if key == node or key not in graph:
            merged[key] = [same.get(c, c) for c in called]
    return merged


async def _calls_of(
    session: AsyncSession,
    node: Node,
    rows: dict[str, WorkflowRow],
    *,
    start: Node,
    workflow_id: str | None,
) -> tuple[list[Node], Node]:
    """What the definition `node` runs, and the node it is the same definition as."""
    name, version = node
    if name == start[0]:
        if version is None or workflow_id is None:
            return [], start
        stored = await session.get(WorkflowVersionRow, (workflow_id, version))
        # A version not stored yet is the one being saved (or none: it fails when run).
        return ([], start) if stored is None else (list(_raw_calls(stored.steps)), node)
    row = rows.get(name)
    if row is None or row.id == workflow_id:  # unknown, or the old name of a renamed one
        return [], node
    if version is None or version == row.version:
        return list(_raw_calls(row.steps)), (name, None)
    stored = await session.get(WorkflowVersionRow, (row.id, version))
    return ([] if stored is None else list(_raw_calls(stored.steps))), node


async def _workflows_named(session: AsyncSession, names: set[str]) -> dict[str, WorkflowRow]:
    if not names:
        return {}
    rows = await session.execute(select(WorkflowRow).where(WorkflowRow.name.in_(names)))
    return {row.name: row for row in rows.scalars()}


def _cycle(
    graph: Mapping[Node, list[Node]], start: Node, first: Node, cleared: set[Node]
) -> list[Node] | None:
    """A path start -> first -> ... that reaches a node already on it, or None.

    Args:
        cleared: nodes already known to reach no cycle; grown by this walk.
    """
    path = [start]
    pending = [iter([first])]
    while pending:
        node = next(pending[-1], None)
        if node is None:
            pending.pop()
            done = path.pop()
            if path:
                cleared.add(done)
            continue
        if node in path:
            return [*path, node]
        if node in cleared:
            continue
        path.append(node)
        pending.append(iter(graph.get(node, [])))
    return None


def _label(node: Node) -> str:
    name, version = node
    return name if version is None else f"{name}@{version}"


async def _cycle_problems(
    session: AsyncSession, flow: Flow, *, name: str, workflow_id: str | None
) -> list[Problem]:
    """One problem per `workflow` step of `flow` that leads, through the stored workflows,
    to a definition already on its way: running it would start children without end."""
    steps = [s for s in iter_steps(flow.steps) if isinstance(s, WorkflowStep)]
    if not steps:
        return []
    start: Node = (name, None)
    graph = await _call_graph(
        session, start, [(s.workflow, s.version) for s in steps], workflow_id=workflow_id
    )
    locations = step_locations(flow)
    cleared: set[Node] = set()
    problems = []
    for step, first in zip(steps, graph[start], strict=True):
        path = _cycle(graph, start, first, cleared)
        if path is not None:
            problems.append(
                problem(
                    [*locations[step.id], "workflow"],
                    f"workflow steps form a cycle: {' -> '.join(map(_label, path))}; a "
                    "workflow cannot run itself, directly or through others",
                )
            )
    return problems


def _actions(rows: dict[str, ServiceRow]) -> dict[str, list[ActionSpec]]:
    return {n: [ActionSpec.model_validate(a) for a in r.actions] for n, r in rows.items()}


async def get_row(session: AsyncSession, workflow_id: str) -> WorkflowRow:
    """The workflow `workflow_id` names: its id, else its name (names are unique).

    Raises:
        NotFoundError: no workflow has that id or name.
    """
    # No id or name holds a NUL, and PostgreSQL would refuse the query (a 503, not a 404).
    row = None
    if "\x00" not in workflow_id:
        if services.is_id(workflow_id):
            row = await session.get(WorkflowRow, workflow_id)
        if row is None:
            row = await get_by_name(session, workflow_id)
    if row is None:
        raise NotFoundError(
            RESOURCE,
            workflow_id,
            hint="no workflow has this id or name; list them with GET /api/workflows",
        )
    return row


async def _at_version(
    session: AsyncSession, workflow_id: str, version: int | None
) -> tuple[WorkflowRow, WorkflowVersionRow | None]:
    """The workflow, and its stored `version` unless that is the current one (or None)."""
    row = await get_row(session, workflow_id)
    return row, await _stored_version(session, row, version, label=workflow_id)


async def _stored_version(
    session: AsyncSession, row: WorkflowRow, version: int | None, *, label: str
) -> WorkflowVersionRow | None:
    """The stored `version` of `row`; None when it is the current one (or None).

    Raises:
        NotFoundError: the workflow has no such version (named `label@version`).
    """
    if version is None or version == row.version:
        return None
    stored = await session.get(WorkflowVersionRow, (row.id, version))
    if stored is None:
        raise NotFoundError(
            "workflow version", f"{label}@{version}", hint=f"versions 1 to {row.version} exist"
        )
    return stored


async def get_version(session: AsyncSession, workflow_id: str, version: int) -> WorkflowPublic:
    row, stored = await _at_version(session, workflow_id, version)
    return to_public(row) if stored is None else to_public(stored, of=row)


async def get_by_name(session: AsyncSession, name: str) -> WorkflowRow | None:
    return (await session.execute(select(WorkflowRow).where(WorkflowRow.name == name))).scalar()


def _same_definition(row: WorkflowRow, body: WorkflowCreate, parsed: Parsed) -> bool:
    return (
        row.description == body.description
        and row.steps == stored_steps(parsed)
        and row.flow == _flow_column(parsed)
        and row.metadata_ == body.metadata
        and row.status == body.status.value
        and row.mode == body.mode.value
    )


def _name_taken(existing: WorkflowRow) -> ConflictError:
    return ConflictError(
        f"workflow name '{existing.name}' is already used by workflow '{existing.id}' with a "
        f"different definition; to change it, send PATCH /api/workflows/{existing.id}",
        resource_type=RESOURCE,
        resource_id=existing.id,
    )


def _version_row(row: WorkflowRow) -> WorkflowVersionRow:
    return WorkflowVersionRow(
        workflow_id=row.id,
        version=row.version,
        name=row.name,
        description=row.description,
        steps=row.steps,
        metadata_=row.metadata_,
        mode=row.mode,
        flow=row.flow,
        created_at=row.updated_at,
    )


async def create(
    session: AsyncSession,
    body: WorkflowCreate,
    *,
    checks: DefinitionChecks,
    keyed: KeyedRequest | None = None,
) -> Answer:
    """Store a new workflow at version 1, or answer the stored one if it is identical;
    commits.

    Args:
        checks: where the definition is parsed and checked (check_definition).
        keyed: the request's Idempotency-Key: the answer is committed with the workflow,
            and a repeat of the request gets it again.

    Returns:
        201 and the workflow (with its warnings) if it was created now, 200 and the
        stored one if identical.

    Raises:
        InvalidDefinitionError, ConflictError, IdempotencyKeyReusedError.
    """

    async def write() -> tuple[int, Any]:
        row, created, warnings = await _create(session, body, checks=checks)
        public = to_public(row, warnings=warnings)
        return (201 if created else 200), public.model_dump(mode="json")

    return await commit_write(session, keyed, write)


async def _create(
    session: AsyncSession, body: WorkflowCreate, *, checks: DefinitionChecks
) -> tuple[WorkflowRow, bool, list[Problem]]:
    """`create`, flushed: the row, whether it was created now, and its warnings."""
    existing = await get_by_name(session, body.name)
    if existing is not None:
        parsed = await checks.parse(body.steps, body.top_level())
        if not parsed.problems and _same_definition(existing, body, parsed):
            return existing, False, []
        raise _name_taken(existing)
    parsed, warnings = await check_definition(
        session, body.steps, body.top_level(), body.name, checks=checks
    )
    now = utcnow()
    row = WorkflowRow(
        id=str(uuid.uuid4()),
        name=body.name,
        description=body.description,
        steps=stored_steps(parsed),
        flow=_flow_column(parsed),
        metadata_=body.metadata,
        status=body.status.value,
        mode=body.mode.value,
        version=1,
        created_at=now,
        updated_at=now,
    )
    session.add(row)
    try:
        await session.flush()
    except IntegrityError:
        await session.rollback()
        existing = await get_by_name(session, body.name)
        if existing is not None and _same_definition(existing, body, parsed):
            return existing, False, []
        if existing is not None:
            raise _name_taken(existing) from None
        raise
    session.add(_version_row(row))
    await session.flush()
    return row, True, warnings


async def update(
    session: AsyncSession,
    workflow_id: str,
    body: WorkflowUpdate,
    *,
    checks: DefinitionChecks,
    keyed: KeyedRequest | None = None,
) -> Answer:
    """Apply the fields that are set and commit; a change of steps makes a new version.

    Args:
        checks: where a new definition is parsed and checked (check_definition).
        keyed: the request's Idempotency-Key: the answer is committed with the change,
            and a repeat of the request gets it again.

    Returns:
        200 and the workflow as stored now.

    Raises:
        NotFoundError, InvalidDefinitionError, ConflictError, IdempotencyKeyReusedError.
    """

    async def write() -> tuple[int, Any]:
        updated = await _update(session, workflow_id, body, checks=checks)
        return 200, updated.model_dump(mode="json")

    return await commit_write(session, keyed, write)


async def _update(
    session: AsyncSession, workflow_id: str, body: WorkflowUpdate, *, checks: DefinitionChecks
) -> WorkflowPublic:
    """`update`, flushed."""
    row = await get_row(session, workflow_id)
    if body.name is not None and body.name != row.name:
        other = await get_by_name(session, body.name)
        if other is not None:
            raise ConflictError(
                f"workflow name '{body.name}' is taken by workflow '{other.id}'; pick another",
                resource_type=RESOURCE,
                resource_id=other.id,
            )
    name = body.name or row.name
    new_version = False
    warnings: list[Problem] = []
    flow_fields = {"start_at", "output", "input_schema", "max_steps"} & body.model_fields_set
    if body.steps is not None or flow_fields:
        # Steps and the flow's top-level fields are checked together: a PATCH of one
        # keeps the stored other.
        stored_top = dict(row.flow or {})
        top_level = (
            body.top_level()
            if body.steps is not None
            else {**stored_top, **{f: getattr(body, f) for f in flow_fields}}
        )
        steps_in = body.steps if body.steps is not None else row.steps
        parsed, warnings = await check_definition(
            session, steps_in, top_level, name, checks=checks, workflow_id=row.id
        )
        steps, flow = stored_steps(parsed), _flow_column(parsed)
        new_version = steps != row.steps or flow != row.flow
        row.steps, row.flow = steps, flow
    row.name = name
    if body.description is not None:
        row.description = body.description
    if body.metadata is not None:
        row.metadata_ = body.metadata
    if body.status is not None:
        row.status = body.status.value
    if body.mode is not None:
        row.mode = body.mode.value
    row.updated_at = utcnow()
    if new_version:
        row.version += 1
        session.add(_version_row(row))
    else:
        # The current version's copy follows renames and descriptions.
        stored = await session.get(WorkflowVersionRow, (row.id, row.version))
        if stored is not None:
            stored.name, stored.description, stored.metadata_, stored.mode = (
                row.name,
                row.description,
                row.metadata_,
                row.mode,
            )
    await session.flush()
    return to_public(row, warnings=warnings)


async def delete(
    session: AsyncSession, workflow_id: str, *, keyed: KeyedRequest | None = None
) -> Answer:
    """Delete a workflow and its versions, and commit.

    Args:
        keyed: the request's Idempotency-Key: a repeat of the request gets the first
            answer (not a 404).

    Returns:
        200 and the workflow as it was stored.

    Raises:
        NotFoundError, IdempotencyKeyReusedError.
    """

    async def write() -> tuple[int, Any]:
        return 200, (await _delete(session, workflow_id)).model_dump(mode="json")

    return await commit_write(session, keyed, write)


async def _delete(session: AsyncSession, workflow_id: str) -> WorkflowPublic:
    row = await get_row(session, workflow_id)
    public = to_public(row)
    for version in (
        await session.execute(
            select(WorkflowVersionRow).where(WorkflowVersionRow.workflow_id == row.id)
        )
    ).scalars():
        await session.delete(version)
    await session.delete(row)
    await session.flush()
    return public


def _runnable_service(row: ServiceRow | None, name: str, where: str) -> ServiceRow:
    if row is None:
        raise NotRunnableError(
            f"{where} uses service '{name}', which is not registered (deregistered?); "
            "register it again or change the workflow's steps",
            resource_type="service",
            resource_id=name,
        )
    if row.status != DefinitionStatus.ACTIVE.value:
        raise NotRunnableError(
            f"{where} uses service '{name}', which is INACTIVE; set it ACTIVE "
            f"(PATCH /api/services/{row.id}) to run it",
            resource_type="service",
            resource_id=row.id,
        )
    return row


def _pinned_step(step: StepSpec, service: ServiceRow, where: str) -> PinnedStep:
    for action in service.actions:
        if action["name"] == step.action:
            return PinnedStep(
                id=step.id,
                service=step.service,
                action=step.action,
                next=step.next,
                endpoint=service.endpoint,
                spec=ActionSpec.model_validate(action),
                credential=service.credential is not None,
            )
    raise NotRunnableError(
        f"{where} uses action '{step.action}', which service '{service.name}' no longer has",
        resource_type="service",
        resource_id=service.id,
    )


async def pin(session: AsyncSession, row: WorkflowRow) -> PinnedDefinition:
    """Copy everything an execution of `row` needs, at its current version.

    Raises:
        NotRunnableError: the workflow is INACTIVE, or a step's service is INACTIVE or gone.
    """
    if row.status != DefinitionStatus.ACTIVE.value:
        raise NotRunnableError(
            f"workflow '{row.name}' is INACTIVE; set it ACTIVE (PATCH /api/workflows/{row.id}) "
            "to run it",
            resource_type=RESOURCE,
            resource_id=row.id,
        )
    where = f"workflow '{row.name}'"
    flow = Flow.model_validate({"steps": row.steps, **row.flow}) if row.flow is not None else None
    steps = (
        [
            StepSpec(id=t.id, service=t.service, action=t.action, next=None)
            for t in iter_steps(flow.steps)
            if isinstance(t, TaskStep)
        ]
        if flow is not None
        else [StepSpec.model_validate(s) for s in row.steps]
    )
    rows = await _services_named(session, {s.service for s in steps})
    low_latency = row.mode == WorkflowMode.LOW_LATENCY.value
    pinned = [
        _pinned_step(s, _runnable_service(rows.get(s.service), s.service, where), where)
        for s in steps
    ]
    if low_latency:
        pinned = [
            p.model_copy(update={"spec": p.spec.model_copy(update={"mode": "local"})})
            for p in pinned
        ]
    return PinnedDefinition(
        kind="workflow",
        workflow_id=row.id,
        name=row.name,
        version=row.version,
        low_latency=low_latency,
        entry=entry_of(flow) if flow is not None else step_order(steps)[0],
        steps=pinned,
        flow=flow,
    )


async def pin_by_name(session: AsyncSession, name: str) -> PinnedDefinition:
    row = await get_by_name(session, name)
    if row is None:
        raise NotFoundError(RESOURCE, name, hint="no stored workflow has this name")
    return await pin(session, row)


async def pin_version(session: AsyncSession, name: str, version: int) -> PinnedDefinition:
    """`name` pinned at an earlier (or the current) `version`, with today's services.

    Raises:
        NotFoundError: no workflow has that name, or it has no such version.
        NotRunnableError: as `pin`.
    """
    row = await get_by_name(session, name)
    if row is None:
        raise NotFoundError(RESOURCE, name, hint="no stored workflow has this name")
    stored = await _stored_version(session, row, version, label=name)
    if stored is None:
        return await pin(session, row)
    # The version's definition under the workflow's identity and status; not added to
    # the session, so nothing is written.
    at_version = WorkflowRow(
        id=row.id,
        name=row.name,
        steps=stored.steps,
        flow=stored.flow,
        mode=stored.mode,
        status=row.status,
        version=stored.version,
    )
    return await pin(session, at_version)


async def pin_action(session: AsyncSession, service_id: str, action: str) -> PinnedDefinition:
    """A one-step definition that runs `action` of a service."""
    service = await services.get_row(session, service_id)
    where = f"action '{action}' of service '{service.name}'"
    _runnable_service(service, service.name, where)
    if action not in [a["name"] for a in service.actions]:
        raise NotFoundError(
            "action",
            action,
            hint=f"service '{service.name}' has actions "
            f"{', '.join(a['name'] for a in service.actions)}",
        )
    step = StepSpec(id=action, service=service.name, action=action, next=None)
    return PinnedDefinition(
        kind="action",
        workflow_id=None,
        name=f"{service.name}.{action}",
        version=None,
        entry=step.id,
        steps=[_pinned_step(step, service, where)],
    )


async def graph(session: AsyncSession, workflow_id: str, version: int | None) -> dict[str, Any]:
    """The nodes and edges of a workflow's definition (of `version`, default the current)."""
    row, stored = await _at_version(session, workflow_id, version)
    steps, flow = (row.steps, row.flow) if stored is None else (stored.steps, stored.flow)
    if flow is not None:
        return flow_graph(Flow.model_validate({"steps": steps, **flow}))
    return flow_graph(chain_flow([StepSpec.model_validate(s) for s in steps]), kind="chain")


MOCK_SHAPES = '{"output": {...}} or {"error": {...}}'


def _mockable_steps(definition: PinnedDefinition) -> dict[str, str]:
    """The steps a test run must mock, in definition order -> what each would run."""
    if definition.flow is None:
        return {step.id: f"{step.service}.{step.action}" for step in definition.steps}
    out = {}
    for step in iter_steps(definition.flow.steps):
        if isinstance(step, TaskStep):
            out[step.id] = f"{step.service}.{step.action}"
        elif isinstance(step, WorkflowStep):
            out[step.id] = f"workflow {step.workflow}"
    return out


def check_mocks(definition: PinnedDefinition, mocks: Mapping[str, Any]) -> None:
    """Every task and `workflow` step of the definition has a mock, and every mock names
    one: a test run calls no service and starts no other workflow.

    Raises:
        InvalidDefinitionError: one problem per mock that names no such step, and one per
            such step without a mock.
    """
    mockable = _mockable_steps(definition)
    problems = [
        problem(
            ["mocks", step_id],
            f"'{step_id}' is not a task or workflow step of workflow '{definition.name}'; "
            f"its task and workflow steps: {', '.join(mockable)}",
        )
        for step_id in mocks
        if step_id not in mockable
    ]
    problems.extend(
        problem(
            ["mocks", step_id],
            f"step '{step_id}' ({runs}) has no mock; a test run calls no service: give every "
            f"task and workflow step a mock ({MOCK_SHAPES})",
        )
        for step_id, runs in mockable.items()
        if step_id not in mocks
    )
    if problems:
        raise InvalidDefinitionError(problems)
