"""Request bodies the tests register, shaped like the guide's examples."""

from __future__ import annotations

from typing import Any

import httpx

FAST_RETRY = {
    "initial_interval": 0.1,
    "backoff_coefficient": 2.0,
    "maximum_interval": 1.0,
    "maximum_attempts": 5,
}

EXTRACT_INPUT = {
    "type": "object",
    "properties": {
        "document_url": {"type": "string", "format": "uri", "description": "URL of the document"},
        "language": {"type": "string"},
    },
    "required": ["document_url"],
}
EXTRACT_OUTPUT = {
    "type": "object",
    "properties": {"text": {"type": "string"}, "metadata": {"type": "object"}},
    "required": ["text"],
}
ANALYZE_INPUT = {
    "type": "object",
    "properties": {"text": {"type": "string"}},
    "required": ["text"],
}
ANALYZE_OUTPUT = {
    "type": "object",
    "properties": {"sentiment": {"type": "string"}, "score": {"type": "number"}},
    "required": ["sentiment", "score"],
}


def action(name: str, **overrides: Any) -> dict[str, Any]:
    return {
        "name": name,
        "description": f"{name} action",
        "input_schema": {"type": "object"},
        "output_schema": {"type": "object"},
        "retry_policy": FAST_RETRY,
        **overrides,
    }


def service(
    name: str, endpoint: str, actions: list[dict[str, Any]], **extra: Any
) -> dict[str, Any]:
    return {
        "name": name,
        "description": f"{name} service",
        "endpoint": endpoint,
        "actions": actions,
        **extra,
    }


async def register(api: httpx.AsyncClient, body: dict[str, Any]) -> dict[str, Any]:
    answer = await api.post("/services", json=body)
    assert answer.status_code in (200, 201), answer.text
    return answer.json()


async def create_workflow(
    api: httpx.AsyncClient, name: str, steps: list[dict[str, Any]], **extra: Any
) -> dict[str, Any]:
    answer = await api.post("/workflows", json={"name": name, "steps": steps, **extra})
    assert answer.status_code in (200, 201), answer.text
    return answer.json()


def chain(*steps: tuple[str, str, str]) -> list[dict[str, Any]]:
    """Steps (id, service, action) linked in order."""
    out = []
    for index, (step_id, service_name, action_name) in enumerate(steps):
        following = steps[index + 1][0] if index + 1 < len(steps) else None
        out.append(
            {"id": step_id, "service": service_name, "action": action_name, "next": following}
        )
    return out


async def document_sentiment(
    api: httpx.AsyncClient, examples_url: str, suffix: str
) -> dict[str, Any]:
    """The guide's two services and its document-sentiment workflow, named apart by suffix."""
    extraction = f"text-extraction-{suffix}"
    sentiment = f"sentiment-analysis-{suffix}"
    await register(
        api,
        service(
            extraction,
            f"{examples_url}/text-extraction",
            [action("extract", input_schema=EXTRACT_INPUT, output_schema=EXTRACT_OUTPUT)],
        ),
    )
    await register(
        api,
        service(
            sentiment,
            f"{examples_url}/sentiment-analysis",
            [action("analyze", input_schema=ANALYZE_INPUT, output_schema=ANALYZE_OUTPUT)],
        ),
    )
    return await create_workflow(
        api,
        f"document-sentiment-{suffix}",
        chain(("extract-text", extraction, "extract"), ("analyze-sentiment", sentiment, "analyze")),
        description="Extract text from a document and analyze sentiment",
    )
