"""Both clients against the real stack: gateway, worker and Temporal dev server.

Uses the session fixtures of tests/conftest.py: `stack` (its `.url` is the
gateway's API, once per registry backend), `services` (real HTTP services on
loopback; the guide's example services are under `{services.url}/examples`) and
`unique` (a suffix that keeps names apart).
"""

from __future__ import annotations

import inspect
from typing import Any

import httpx
import pytest

from shared.utils.src.clients import AsyncServiceIntegrationClient, ServiceIntegrationClient
from shared.utils.src.exceptions import (
    ConflictError,
    ExecutionFailedError,
    ExecutionStillRunningError,
    MaxRetriesExceededError,
    ResourceNotFoundError,
    ServiceUnavailableError,
    UnauthorizedError,
    ValidationError,
)
from shared.utils.src.request_id import get_request_id

FAST_RETRY = {
    "initial_interval": 0.1,
    "backoff_coefficient": 2.0,
    "maximum_interval": 1.0,
    "maximum_attempts": 3,
}


async def invoke(client: Any, method: str, *args: Any, **kwargs: Any) -> Any:
    result = getattr(client, method)(*args, **kwargs)
    return await result if inspect.isawaitable(result) else result


@pytest.fixture(scope="module")
def fresh_gateway(stack, tmp_path_factory) -> str:
    """A gateway of the same stack with an empty registry, for the guide's fixed names."""
    folder = tmp_path_factory.mktemp("fresh-registry")
    return stack.start_gateway(DATABASE_URL=f"sqlite+aiosqlite:///{folder / 'registry.db'}")


@pytest.fixture(scope="module")
def keyed_gateway(stack) -> str:
    """A gateway of the same stack that needs an API key."""
    return stack.start_gateway(API_KEYS="client-key")


@pytest.fixture(params=["sync", "async"])
async def connect(request, stack):
    """Makes clients of the parametrized kind; closes them after the test."""
    made: list[Any] = []

    def factory(url: str | None = None, **options: Any) -> Any:
        cls = ServiceIntegrationClient if request.param == "sync" else AsyncServiceIntegrationClient
        if request.param == "sync" and isinstance(options.get("transport"), DropFirstAnswer):
            options["async_transport"] = options.pop("transport")
            options["transport"] = httpx.HTTPTransport()
        client = cls(url or stack.url, 30, **options)
        made.append(client)
        return client

    yield factory
    for client in made:
        await client.aclose()


class DropFirstAnswer(httpx.AsyncBaseTransport):
    """Sends to the real gateway, then loses the first answer to `method path...`.

    It stands for a client that timed out after the gateway had committed the write.
    """

    def __init__(self, method: str, path_end: str) -> None:
        self._inner = httpx.AsyncHTTPTransport()
        self._method = method
        self._path_end = path_end
        self.lost: list[int] = []
        self.answered: list[int] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self._inner.handle_async_request(request)
        matches = request.method == self._method and request.url.path.endswith(self._path_end)
        if matches and not self.lost:
            await response.aread()
            await response.aclose()
            self.lost.append(response.status_code)
            raise httpx.ReadTimeout(
                "the answer was lost after the gateway committed", request=request
            )
        if matches:
            self.answered.append(response.status_code)
        return response

    async def aclose(self) -> None:
        await self._inner.aclose()


def sentiment_services(services, suffix: str) -> tuple[dict[str, Any], dict[str, Any]]:
    examples = f"{services.url}/examples"
    extraction = {
        "name": f"text-extraction-{suffix}",
        "description": "Extract text from documents",
        "endpoint": f"{examples}/text-extraction",
        "actions": [
            {
                "name": "extract",
                "description": "Extract text from a document",
                "input_schema": {
                    "type": "object",
                    "properties": {"document_url": {"type": "string"}},
                    "required": ["document_url"],
                },
                "output_schema": {
                    "type": "object",
                    "properties": {"text": {"type": "string"}},
                    "required": ["text"],
                },
                "retry_policy": FAST_RETRY,
            }
        ],
        "metadata": {"version": "1.0.0"},
    }
    sentiment = {
        "name": f"sentiment-analysis-{suffix}",
        "description": "Analyze sentiment of text",
        "endpoint": f"{examples}/sentiment-analysis",
        "actions": [
            {
                "name": "analyze",
                "description": "Analyze sentiment of text",
                "input_schema": {
                    "type": "object",
                    "properties": {"text": {"type": "string"}},
                    "required": ["text"],
                },
                "output_schema": {
                    "type": "object",
                    "properties": {"sentiment": {"type": "string"}, "score": {"type": "number"}},
                    "required": ["sentiment", "score"],
                },
                "retry_policy": FAST_RETRY,
            }
        ],
    }
    return extraction, sentiment


def chain(*steps: tuple[str, str, str]) -> list[dict[str, Any]]:
    return [
        {
            "id": step_id,
            "service": service,
            "action": action,
            "next": steps[i + 1][0] if i + 1 < len(steps) else None,
        }
        for i, (step_id, service, action) in enumerate(steps)
    ]


# The guide's examples, as written but for the URLs


async def test_guide_complete_example_runs_as_written(fresh_gateway, services, capsys):
    gateway_url = fresh_gateway
    text_extraction_url = f"{services.url}/examples/text-extraction"
    sentiment_analysis_url = f"{services.url}/examples/sentiment-analysis"

    # --- from the guide: "Example: Complete Workflow Creation and Execution" ---
    from shared.utils.src.clients import ServiceIntegrationClient
    from shared.utils.src.exceptions import (
        MaxRetriesExceededError,
        ResourceNotFoundError,
        ServiceUnavailableError,
        ValidationError,
    )
    from shared.utils.src.request_id import get_request_id

    async def create_and_execute_document_workflow():
        client = ServiceIntegrationClient(base_url=gateway_url)

        try:
            # Register text extraction service
            text_extraction = await client.register_service(
                name="text-extraction",
                description="Extract text from documents",
                endpoint=text_extraction_url,
                actions=[
                    {
                        "name": "extract",
                        "description": "Extract text from a document",
                        "input_schema": {
                            "type": "object",
                            "properties": {
                                "document_url": {
                                    "type": "string",
                                    "format": "uri",
                                    "description": "URL of the document to extract text from",
                                }
                            },
                            "required": ["document_url"],
                        },
                        "output_schema": {
                            "type": "object",
                            "properties": {
                                "text": {"type": "string", "description": "Extracted text"}
                            },
                            "required": ["text"],
                        },
                    }
                ],
            )

            print(f"Registered text extraction service with ID: {text_extraction['id']}")

            # Register sentiment analysis service
            sentiment_analysis = await client.register_service(
                name="sentiment-analysis",
                description="Analyze sentiment of text",
                endpoint=sentiment_analysis_url,
                actions=[
                    {
                        "name": "analyze",
                        "description": "Analyze sentiment of text",
                        "input_schema": {
                            "type": "object",
                            "properties": {
                                "text": {"type": "string", "description": "Text to analyze"}
                            },
                            "required": ["text"],
                        },
                        "output_schema": {
                            "type": "object",
                            "properties": {
                                "sentiment": {
                                    "type": "string",
                                    "description": "Sentiment (positive, negative, neutral)",
                                },
                                "score": {
                                    "type": "number",
                                    "description": "Sentiment score (-1.0 to 1.0)",
                                },
                            },
                            "required": ["sentiment", "score"],
                        },
                    }
                ],
            )

            print(f"Registered sentiment analysis service with ID: {sentiment_analysis['id']}")

            # Create workflow
            workflow = await client.create_workflow(
                name="document-sentiment",
                description="Extract text from a document and analyze sentiment",
                steps=[
                    {
                        "id": "extract-text",
                        "service": "text-extraction",
                        "action": "extract",
                        "next": "analyze-sentiment",
                    },
                    {
                        "id": "analyze-sentiment",
                        "service": "sentiment-analysis",
                        "action": "analyze",
                        "next": None,
                    },
                ],
            )

            print(f"Created workflow with ID: {workflow['id']}")

            # Execute workflow
            result = await client.execute_workflow(
                workflow_id=workflow["id"],
                input_data={"document_url": "https://example.com/document.pdf"},
                context={"request_id": get_request_id()},
            )

            print("Workflow execution result:")
            print(f"Sentiment: {result['sentiment']}")
            print(f"Score: {result['score']}")

            return result

        except ValidationError as e:
            print(f"Validation error: {e.validation_errors}")
        except ResourceNotFoundError as e:
            print(f"Resource not found: {e.resource_type} with ID {e.resource_id}")
        except ServiceUnavailableError as e:
            print(f"Service unavailable: {e.service_name}")
        except MaxRetriesExceededError as e:
            print(f"Failed after {e.attempts} attempts: {e.last_error}")
        except Exception as e:
            print(f"Unexpected error: {str(e)}")

    # --- end of the guide's code ---

    result = await create_and_execute_document_workflow()

    out = capsys.readouterr().out
    assert result is not None, out
    assert result["sentiment"] == "positive" and result["score"] > 0
    assert "Sentiment: positive" in out
    assert "Registered text extraction service with ID: " in out
    record = ServiceIntegrationClient(base_url=gateway_url).get_workflow_execution_status(
        execution_id=result.execution_id
    )
    assert record["status"] == "COMPLETED"
    assert record["context"] == {"request_id": get_request_id()}


async def test_guide_validate_workflow_steps_snippet(fresh_gateway, services, unique):
    client = ServiceIntegrationClient(base_url=fresh_gateway)
    extraction, sentiment = sentiment_services(services, unique)
    await client.register_service(**extraction)
    await client.register_service(**sentiment)
    workflow_steps = chain(
        ("extract-text", extraction["name"], "extract"),
        ("analyze-sentiment", sentiment["name"], "analyze"),
    )

    # --- from the guide: "Validate Workflow Steps" ---
    services = client.get_services()
    service_map = {service["name"]: service for service in services["items"]}

    for step in workflow_steps:
        service_name = step["service"]
        action_name = step["action"]

        if service_name not in service_map:
            raise ValueError(f"Service '{service_name}' not found")

        service = service_map[service_name]
        action_exists = any(action["name"] == action_name for action in service["actions"])

        if not action_exists:
            raise ValueError(f"Action '{action_name}' not found in service '{service_name}'")

    workflow = await client.create_workflow(
        name="document-processing",
        description="Process documents through multiple services",
        steps=workflow_steps,
    )
    # --- end of the guide's code ---

    assert workflow["name"] == "document-processing"
    assert [s["id"] for s in workflow["steps"]] == ["extract-text", "analyze-sentiment"]
    client.close()


# Every method, success


async def test_every_method_against_the_gateway(connect, services, unique):
    client = connect()
    extraction, sentiment = sentiment_services(services, f"{unique}-{id(client)}")

    registered = await client.register_service(**extraction)
    assert registered["id"] and registered["status"] == "ACTIVE"
    assert (await client.register_service(**extraction))["id"] == registered["id"]
    analysis = await client.register_service(**sentiment)

    assert (await invoke(client, "get_service", registered["id"]))["name"] == extraction["name"]
    listed = await invoke(client, "get_services", status="ACTIVE", per_page=100)
    assert listed["total"] >= 2 and {"items", "page", "per_page", "pages"} <= listed.keys()
    updated = await client.update_service(service_id=registered["id"], description="v2")
    assert updated["description"] == "v2"
    health = await invoke(client, "get_service_health", registered["id"])
    assert health["status"] == "healthy" and health["service_id"] == registered["id"]

    steps = chain(
        ("extract-text", extraction["name"], "extract"),
        ("analyze-sentiment", sentiment["name"], "analyze"),
    )
    workflow = await client.create_workflow(
        name=f"document-sentiment-{unique}-{id(client)}",
        description="Extract text and analyze sentiment",
        steps=steps,
        metadata={"version": "1.0.0", "author": "Berry's Agents Team"},
    )
    assert workflow["version"] == 1
    assert (await invoke(client, "get_workflow", workflow["id"]))["id"] == workflow["id"]
    page = await invoke(client, "get_workflows", status="ACTIVE", page=1, per_page=100)
    assert page["page"] == 1
    renamed = await client.update_workflow(
        workflow_id=workflow["id"], description="v2", steps=steps[1:], status="ACTIVE"
    )
    assert renamed["version"] == 2
    assert (await invoke(client, "get_workflow", workflow["id"], version=1))["version"] == 1
    await client.update_workflow(workflow_id=workflow["id"], steps=steps)

    result = await client.execute_workflow(
        workflow_id=workflow["id"],
        input_data={"document_url": "https://example.com/document.pdf", "language": "en"},
        context={"project_id": "456", "request_id": get_request_id()},
    )
    assert result["sentiment"] == "positive"
    status = await invoke(client, "get_workflow_execution_status", result.execution_id)
    assert status["status"] == "COMPLETED" and status["result"] == dict(result)
    assert [s["status"] for s in status["steps"]] == ["COMPLETED", "COMPLETED"]

    started = await client.start_workflow_execution(
        workflow["id"], {"document_url": "https://example.com/complaint.pdf"}
    )
    assert started["status"] == "RUNNING"
    followed = await client.wait_for_execution(started["execution_id"], wait_timeout=60)
    assert followed["sentiment"] == "negative"

    executions = await invoke(client, "get_workflow_executions", workflow["id"], status="COMPLETED")
    ids = {e["execution_id"] for e in executions["items"]}
    assert {result.execution_id, started["execution_id"]} <= ids

    output = await client.execute_service_action(
        service_id=analysis["id"], action="analyze", input_data={"text": "a great, easy setup"}
    )
    assert output["sentiment"] == "positive" and output.execution_id
    begun = await client.start_service_action(analysis["id"], "analyze", {"text": "bad"})
    assert (await client.wait_for_execution(begun["execution_id"]))["sentiment"] == "negative"

    overall = await invoke(client, "get_integration_health")
    assert overall["status"] == "healthy"

    deleted = await client.delete_workflow(workflow_id=workflow["id"])
    assert deleted["id"] == workflow["id"]
    gone = await client.deregister_service(service_id=registered["id"])
    assert gone["id"] == registered["id"]


# Every method, errors


async def test_not_found_errors_name_the_resource(connect):
    client = connect()
    cases = [
        ("get_service", ("svc-missing",), "service", "svc-missing"),
        ("get_workflow", ("wf-missing",), "workflow", "wf-missing"),
        ("get_workflow_execution_status", ("exec-missing",), "execution", "exec-missing"),
        ("get_service_health", ("svc-missing",), "service", "svc-missing"),
        ("get_workflow_executions", ("wf-missing",), "workflow", "wf-missing"),
        ("update_workflow", ("wf-missing",), "workflow", "wf-missing"),
        ("delete_workflow", ("wf-missing",), "workflow", "wf-missing"),
        ("update_service", ("svc-missing",), "service", "svc-missing"),
        ("deregister_service", ("svc-missing",), "service", "svc-missing"),
        ("execute_workflow", ("wf-missing",), "workflow", "wf-missing"),
        ("start_workflow_execution", ("wf-missing",), "workflow", "wf-missing"),
    ]
    for method, args, resource_type, resource_id in cases:
        kwargs = {"description": "x"} if method.startswith("update") else {}
        with pytest.raises(ResourceNotFoundError) as caught:
            await invoke(client, method, *args, **kwargs)
        assert (caught.value.resource_type, caught.value.resource_id) == (
            resource_type,
            resource_id,
        ), method
        assert caught.value.response is not None and caught.value.response.status_code == 404


async def test_invalid_definitions_raise_validation_errors_with_the_list(connect, unique):
    client = connect()
    with pytest.raises(ValidationError) as caught:
        await client.create_workflow(
            name=f"broken-{unique}",
            steps=[{"id": "a", "service": f"nothing-{unique}", "action": "x", "next": None}],
        )
    assert caught.value.validation_errors and "msg" in caught.value.validation_errors[0]
    assert f"nothing-{unique}" in str(caught.value)

    with pytest.raises(ValidationError) as caught:
        await client.register_service(name=f"no-actions-{unique}", endpoint="http://x")
    assert any("actions" in e["loc"] for e in caught.value.validation_errors)


async def test_conflicts(connect, services, unique):
    client = connect()
    extraction, sentiment = sentiment_services(services, f"{unique}-{id(client)}")
    service = await client.register_service(**extraction)
    with pytest.raises(ConflictError) as caught:
        await client.register_service(**{**extraction, "endpoint": "http://elsewhere:9/api"})
    assert caught.value.status_code == 409

    workflow = await client.create_workflow(
        name=f"uses-{unique}-{id(client)}", steps=chain(("e", extraction["name"], "extract"))
    )
    with pytest.raises(ConflictError) as caught:
        await client.deregister_service(service_id=service["id"])
    assert caught.value.resource_type is not None

    await client.update_workflow(workflow_id=workflow["id"], status="INACTIVE")
    with pytest.raises(ConflictError):
        await client.execute_workflow(workflow_id=workflow["id"], input_data={"document_url": "u"})

    assert (await client.deregister_service(service_id=service["id"], force=True))["id"]


async def test_failed_execution_raises_with_execution_step_and_cause(connect, services, unique):
    client = connect()
    token = services.token()
    name = f"refusing-{unique}-{id(client)}"
    await client.register_service(
        name=name,
        endpoint=services.endpoint("status", token),
        actions=[{"name": "400", "retry_policy": FAST_RETRY}],
    )
    workflow = await client.create_workflow(
        name=f"fails-{unique}-{id(client)}", steps=chain(("refuse", name, "400"))
    )

    with pytest.raises(ExecutionFailedError) as caught:
        await client.execute_workflow(workflow_id=workflow["id"], input_data={})

    error = caught.value
    assert error.status == "FAILED" and error.step_id == "refuse"
    assert error.cause is not None and error.cause["service"] == name
    record = await invoke(client, "get_workflow_execution_status", error.execution_id)
    assert record["status"] == "FAILED" and record["error"]["step_id"] == "refuse"


async def test_still_running_then_waited_for(connect, services, unique):
    client = connect()
    token = services.token()
    name = f"slow-{unique}-{id(client)}"
    service = await client.register_service(
        name=name, endpoint=services.endpoint("hang", token), actions=[{"name": "run"}]
    )

    with pytest.raises(ExecutionStillRunningError) as caught:
        await client.execute_service_action(service["id"], "run", {"n": 1}, wait_timeout=1.5)
    execution_id = caught.value.execution_id
    assert (await invoke(client, "get_workflow_execution_status", execution_id))[
        "status"
    ] == "RUNNING"

    services.release(token)
    result = await client.wait_for_execution(execution_id, wait_timeout=60)
    assert result["text"] == "released" and result.execution_id == execution_id


async def test_api_key(connect, keyed_gateway):
    with pytest.raises(UnauthorizedError) as caught:
        await invoke(connect(keyed_gateway), "get_services")
    assert caught.value.status_code == 401
    with pytest.raises(UnauthorizedError):
        await invoke(connect(keyed_gateway, api_key="wrong"), "get_services")
    assert "items" in await invoke(connect(keyed_gateway, api_key="client-key"), "get_services")


async def test_gateway_that_is_down_gives_max_retries(connect):
    delays: list[float] = []
    client = connect("http://127.0.0.1:9/api", sleep=delays.append)
    with pytest.raises(MaxRetriesExceededError) as caught:
        await invoke(client, "get_workflows")
    assert caught.value.attempts == 3
    assert isinstance(caught.value.last_error, ServiceUnavailableError)
    assert len(delays) == 2


# Idempotent writes


async def test_create_whose_answer_was_lost_is_replayed_not_duplicated(connect, services, unique):
    transport = DropFirstAnswer("POST", "/api/workflows")
    client = connect(transport=transport, sleep=lambda _: None)
    extraction, _ = sentiment_services(services, f"{unique}-{id(client)}")
    await client.register_service(**extraction)
    name = f"once-{unique}-{id(client)}"

    workflow = await client.create_workflow(
        name=name, steps=chain(("e", extraction["name"], "extract"))
    )

    assert transport.lost == [201]
    assert transport.answered == [201], "the retry got the first answer replayed"
    assert workflow["name"] == name
    listed = await invoke(client, "get_workflows", per_page=100)
    pages = listed["pages"]
    names = [w["name"] for w in listed["items"]]
    for page in range(2, pages + 1):
        more = await invoke(client, "get_workflows", page=page, per_page=100)
        names += [w["name"] for w in more["items"]]
    assert names.count(name) == 1


async def test_execute_whose_answer_was_lost_starts_one_execution(connect, services, unique):
    transport = DropFirstAnswer("POST", "/execute")
    client = connect(transport=transport, sleep=lambda _: None)
    extraction, sentiment = sentiment_services(services, f"{unique}-{id(client)}")
    await client.register_service(**extraction)
    await client.register_service(**sentiment)
    workflow = await client.create_workflow(
        name=f"exec-once-{unique}-{id(client)}",
        steps=chain(
            ("extract-text", extraction["name"], "extract"),
            ("analyze-sentiment", sentiment["name"], "analyze"),
        ),
    )

    result = await client.execute_workflow(
        workflow["id"], {"document_url": "https://example.com/document.pdf"}
    )

    assert transport.lost and transport.answered
    assert result["sentiment"] == "positive"
    executions = await invoke(client, "get_workflow_executions", workflow["id"])
    assert [e["execution_id"] for e in executions["items"]] == [result.execution_id]
