"""/api/workflows: stored workflows, their versions, and their executions."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Path, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.ext.asyncio import AsyncSession

from definitions.models import PinnedDefinition
from executions.models import (
    ExecuteRequest,
    ExecutionPublic,
    ExecutionsPage,
    ExecutionStarted,
    ExecutionStatus,
    new_execution_id,
)
from executions.service import MAX_LIST_OFFSET
from gateway.deps import (
    ExecutionsDep,
    IdempotencyKey,
    NameQuery,
    PageDep,
    PageQuery,
    PerPageQuery,
    ReadCacheDep,
    RequestIdHeader,
    SessionDep,
    SettingsDep,
    get_caller,
)
from gateway.errors import error_responses
from gateway.idempotency import IdempotencyDep, execution_id_for, get_idempotency
from gateway.read_cache import cached_model, cached_read, list_page
from gateway.routes.executing import (
    execute_timeout,
    run_and_answer,
    start_and_point,
    with_request_id,
)
from registry import workflows
from registry.schemas import (
    DefinitionStatus,
    WorkflowCreate,
    WorkflowPublic,
    WorkflowsPage,
    WorkflowTest,
    WorkflowUpdate,
    WorkflowValidation,
)
from registry.tables import WorkflowRow

WorkflowRef = Annotated[str, Path(description="the workflow's id, or its name")]

router = APIRouter(prefix="/workflows", tags=["workflows"], responses=error_responses(503))


async def get_definition_checks(request: Request) -> workflows.DefinitionChecks:
    """The process's one DefinitionChecks (its thread limit holds across requests), made
    from the settings on first use."""
    state = request.app.state
    checks: workflows.DefinitionChecks | None = getattr(state, "definition_checks", None)
    if checks is None:
        settings = state.settings
        checks = state.definition_checks = workflows.DefinitionChecks(
            max_bytes=settings.max_definition_bytes,
            concurrency=settings.definition_check_concurrency,
        )
    return checks


ChecksDep = Annotated[workflows.DefinitionChecks, Depends(get_definition_checks)]


@router.post(
    "",
    response_model=WorkflowPublic,
    status_code=201,
    responses={
        200: {"description": "an identical workflow was already stored"},
        **error_responses(400, 409, 413, 415),
    },
)
async def create_workflow(
    body: WorkflowCreate,
    session: SessionDep,
    idempotency: IdempotencyDep,
    checks: ChecksDep,
    reads: ReadCacheDep,
) -> JSONResponse:
    """Store a workflow at version 1 after checking its steps against the registry."""
    status_code, content = await workflows.create(
        session, body, checks=checks, keyed=idempotency.bound("POST /api/workflows", body)
    )
    reads.invalidate()  # committed: a write refused or failed has raised, clearing nothing
    return JSONResponse(content, status_code=status_code)


@router.post(
    "/validate",
    response_model=WorkflowValidation,
    responses=error_responses(400, 413, 415),
)
async def validate_workflow(
    body: WorkflowCreate, session: SessionDep, checks: ChecksDep
) -> WorkflowValidation:
    """Check a definition as POST /api/workflows would, without storing it: 422 with every
    problem, or 200 with the warnings."""
    existing = await workflows.get_by_name(session, body.name)
    parsed, warnings = await workflows.check_definition(
        session,
        body.steps,
        body.top_level(),
        body.name,
        checks=checks,
        workflow_id=existing.id if existing is not None else None,
    )
    return WorkflowValidation(
        kind=parsed.kind, warnings=[workflows.public_problem(w) for w in warnings]
    )


@router.get("", response_model=WorkflowsPage)
async def list_workflows(
    request: Request,
    page: PageQuery = 1,
    per_page: PerPageQuery = 20,
    status: DefinitionStatus | None = None,
    name: NameQuery = None,
) -> Response:
    """Oldest first; `?name=` lists only the one of that name (names are unique)."""
    return await list_page(
        request,
        WorkflowRow,
        WorkflowsPage,
        workflows.to_public,
        status=status,
        page=page,
        per_page=per_page,
        name=name,
        named=workflows.get_by_name,
    )


@router.get("/{workflow_id}", response_model=WorkflowPublic, responses=error_responses(404))
async def get_workflow(
    workflow_id: WorkflowRef,
    request: Request,
    session: SessionDep,
    version: Annotated[int | None, Query(ge=1, description="an earlier version")] = None,
) -> Response:
    async def read() -> WorkflowPublic:
        if version is not None:
            return await workflows.get_version(session, workflow_id, version)
        return workflows.to_public(await workflows.get_row(session, workflow_id))

    return await cached_read(request, ("workflow", workflow_id, version), read)


@router.patch(
    "/{workflow_id}",
    response_model=WorkflowPublic,
    responses=error_responses(400, 404, 409, 413, 415),
)
async def update_workflow(
    workflow_id: WorkflowRef,
    body: WorkflowUpdate,
    session: SessionDep,
    idempotency: IdempotencyDep,
    checks: ChecksDep,
    reads: ReadCacheDep,
) -> JSONResponse:
    """Update the fields sent; new steps make a new version. Running executions keep theirs."""
    status_code, content = await workflows.update(
        session,
        workflow_id,
        body,
        checks=checks,
        keyed=idempotency.bound(f"PATCH /api/workflows/{workflow_id}", body),
    )
    reads.invalidate()
    return JSONResponse(content, status_code=status_code)


@router.delete("/{workflow_id}", response_model=WorkflowPublic, responses=error_responses(404))
async def delete_workflow(
    workflow_id: WorkflowRef, session: SessionDep, idempotency: IdempotencyDep, reads: ReadCacheDep
) -> JSONResponse:
    """Delete a workflow and its versions. Running executions finish on their pinned copy.

    With an Idempotency-Key, a retry after a lost answer gets the first answer, not a 404.
    """
    status_code, content = await workflows.delete(
        session, workflow_id, keyed=idempotency.bound(f"DELETE /api/workflows/{workflow_id}", {})
    )
    reads.invalidate()
    return JSONResponse(content, status_code=status_code)


def _execute_scope(definition: PinnedDefinition) -> str:
    """What an Idempotency-Key of an execute is bound to: the workflow's id, whether the
    path named it by id or by name."""
    return f"execute workflow:{definition.workflow_id}"


async def pinned(request: Request, session: AsyncSession, workflow_id: str) -> PinnedDefinition:
    """The workflow pinned for an execution, from the read cache when a fresh copy is
    there (REGISTRY_CACHE_SECONDS; every registry write through this gateway clears it)."""

    async def read() -> PinnedDefinition:
        return await workflows.pin(session, await workflows.get_row(session, workflow_id))

    return await cached_model(request, ("pin", workflow_id), read)


@router.post(
    "/{workflow_id}/execute",
    response_model=ExecutionPublic,
    responses={
        202: {"description": "still running when the timeout ran out"},
        **error_responses(400, 404, 409, 413, 415),
    },
)
async def execute_workflow(
    workflow_id: WorkflowRef,
    body: ExecuteRequest,
    request: Request,
    response: Response,
    timeout: Annotated[
        float | None, Query(gt=0, le=3600, description="seconds to wait for the end")
    ] = None,
    request_id: RequestIdHeader = None,
    idempotency_key: IdempotencyKey = None,
    authorization: Annotated[str | None, Header(include_in_schema=False)] = None,
) -> ExecutionPublic:
    """Start an execution and wait for its end: 200 with the record, or 202 if still running."""
    # The app's objects are read here, not through dependencies: FastAPI calls every
    # plain-function dependency in a worker thread, a thread hop per request for each.
    state = request.app.state
    wait = execute_timeout(timeout, state.settings)
    idempotency = get_idempotency(request, get_caller(request, authorization), idempotency_key)
    async with state.sessions() as session:
        definition = await pinned(request, session, workflow_id)
        execution_id = await execution_id_for(
            session, idempotency, scope=_execute_scope(definition), request=body
        )
    return await run_and_answer(
        state.executions,
        definition,
        with_request_id(body, request_id),
        execution_id=execution_id,
        timeout=wait,
        response=response,
    )


@router.get(
    "/{workflow_id}/graph",
    responses=error_responses(404),
)
async def get_workflow_graph(
    workflow_id: WorkflowRef,
    session: SessionDep,
    version: Annotated[int | None, Query(ge=1, description="an earlier version")] = None,
) -> dict[str, Any]:
    """The definition as nodes (id, type, label, parent, branch) and edges (from, to, route):
    `next`, a choice's condition or `default`, a catch, a parallel's branches, a map's items."""
    return await workflows.graph(session, workflow_id, version)


@router.post(
    "/{workflow_id}/test",
    response_model=ExecutionPublic,
    responses={
        202: {"description": "still running when the timeout ran out"},
        **error_responses(400, 404, 409, 413, 415),
    },
)
async def test_workflow(
    workflow_id: WorkflowRef,
    body: WorkflowTest,
    session: SessionDep,
    executions: ExecutionsDep,
    settings: SettingsDep,
    response: Response,
    timeout: Annotated[
        float | None, Query(gt=0, le=3600, description="seconds to wait for the end")
    ] = None,
) -> ExecutionPublic:
    """Run the definition on the real engine with per-step mocks: every task and `workflow`
    step needs one (422 names those without), and answers its `output` or fails with its
    `error`, so a test run calls no service and starts no other workflow. Answers the
    execution's record, marked `test_run: true`; lists of executions leave test runs out
    unless asked with `?include_tests=true`."""
    wait = execute_timeout(timeout, settings)
    definition = await workflows.pin(session, await workflows.get_row(session, workflow_id))
    workflows.check_mocks(definition, body.mocks)
    await session.close()
    return await run_and_answer(
        executions,
        definition,
        ExecuteRequest(input_data=body.input_data, context=body.context),
        execution_id=new_execution_id(),
        timeout=wait,
        response=response,
        mocks=body.mocks,
    )


@router.post(
    "/{workflow_id}/executions",
    response_model=ExecutionStarted,
    status_code=202,
    responses=error_responses(400, 404, 409, 413, 415),
)
async def start_workflow_execution(
    workflow_id: WorkflowRef,
    body: ExecuteRequest,
    request: Request,
    session: SessionDep,
    executions: ExecutionsDep,
    response: Response,
    idempotency: IdempotencyDep,
    request_id: RequestIdHeader = None,
) -> ExecutionStarted:
    """Start an execution without waiting; follow it at status_url."""
    definition = await pinned(request, session, workflow_id)
    execution_id = await execution_id_for(
        session, idempotency, scope=_execute_scope(definition), request=body
    )
    await session.close()
    return await start_and_point(
        executions, definition, with_request_id(body, request_id), execution_id, response
    )


@router.get(
    "/{workflow_id}/executions", response_model=ExecutionsPage, responses=error_responses(404)
)
async def list_workflow_executions(
    workflow_id: WorkflowRef,
    session: SessionDep,
    executions: ExecutionsDep,
    paging: PageDep,
    status: ExecutionStatus | None = None,
    page_token: Annotated[
        str | None,
        Query(
            max_length=4096,
            description="the next_page_token of the previous page (page is then ignored)",
        ),
    ] = None,
    include_tests: Annotated[
        bool, Query(description="list test runs (POST .../test) too; left out by default")
    ] = False,
) -> ExecutionsPage:
    """A workflow's executions, newest first, read from Temporal visibility; test runs
    only with `?include_tests=true` (marked `test_run: true`).

    Follow `next_page_token` from page to page (with the same status and include_tests);
    `page=` reaches at most MAX_LIST_OFFSET executions deep (page * per_page).
    """
    page_token = page_token or None
    if page_token is None and paging.page * paging.per_page > MAX_LIST_OFFSET:
        raise RequestValidationError(
            [
                {
                    "loc": ("query", "page"),
                    "msg": f"page * per_page may reach at most {MAX_LIST_OFFSET} executions "
                    "deep; to go further, follow next_page_token from page to page with "
                    "?page_token=",
                    "type": "less_than_equal",
                    "input": paging.page,
                }
            ]
        )
    row = await workflows.get_row(session, workflow_id)
    await session.close()
    return await executions.list(
        workflow_id=row.id,
        name=row.name,
        status=status,
        page=paging.page,
        per_page=paging.per_page,
        page_token=page_token,
        include_tests=include_tests,
    )
