"""Request and response schemas of the registry's resources (one family per resource)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Generic, Literal, Self, TypeVar

from pydantic import (
    AnyHttpUrl,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidatorFunctionWrapHandler,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from definitions.json_values import unstorable
from definitions.models import (
    MAX_ACTIONS,
    MAX_STEPS,
    SERVICE_NAME_PATTERN,
    WORKFLOW_NAME_PATTERN,
    ActionSpec,
    RetryPolicySpec,
    StepMock,
    StepSpec,
)
from executions.models import ExecuteRequest

T = TypeVar("T")

MAX_METADATA_KEYS = 100


class WorkflowMode(StrEnum):
    """How a workflow's steps run.

    `standard`: each step is a Temporal activity (full visibility in the UI, heartbeats).
    `low_latency`: every step runs as a local activity, and a gateway with an embedded
    worker starts the execution eagerly; see docs/benchmarks.md for the trade-offs.
    """

    STANDARD = "standard"
    LOW_LATENCY = "low_latency"


class DefinitionStatus(StrEnum):
    ACTIVE = "ACTIVE"
    INACTIVE = "INACTIVE"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _storable(cls, data: Any) -> Any:
        """422 for text or numbers the registry database cannot hold (definitions/json_values)."""
        problem = unstorable(data)
        if problem:
            raise PydanticCustomError("unstorable_value", problem)
        return data


class RetryPolicyIn(RetryPolicySpec):
    """A retry policy as the API takes it: unknown fields are refused (a typo is a 422)."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class ActionIn(ActionSpec):
    """An action as the API takes it: unknown fields are refused (a typo is a 422)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    retry_policy: RetryPolicyIn = Field(default_factory=RetryPolicyIn)


class StepIn(StepSpec):
    """A step as the API takes it: unknown fields are refused (a typo is a 422)."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def _endpoint(value: AnyHttpUrl | str | None) -> str | None:
    return None if value is None else str(value).rstrip("/")


def _health_path(value: str | None) -> str | None:
    if value is not None and not value.startswith("/"):
        raise ValueError("health_path must start with '/', e.g. '/health'")
    return value


HEADER_NAME_PATTERN = r"^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,128}$"
RESERVED_HEADERS = frozenset(
    {
        "host",
        "content-length",
        "content-type",
        "transfer-encoding",
        "connection",
        "idempotency-key",
        "x-request-id",
        "x-execution-id",
        "x-step-id",
    }
)
"""Headers the worker sets itself; a credential may not replace them (nor X-Context-*)."""
MAX_SECRET_CHARS = 8192


def _header_text(value: str) -> str:
    """A header can carry it as is: printable ASCII (no CR/LF: no header injection)."""
    if not (value.isascii() and value.isprintable()):
        raise ValueError("must be printable ASCII (a header carries it as is)")
    return value


class ApiKeyCredential(_Strict):
    """A header the worker adds to every call of the service, e.g. X-API-Key."""

    type: Literal["api_key"]
    header: str = Field(default="X-API-Key", pattern=HEADER_NAME_PATTERN)
    value: str = Field(min_length=1, max_length=MAX_SECRET_CHARS, description="write-only")

    @field_validator("header")
    @classmethod
    def _not_reserved(cls, value: str) -> str:
        lowered = value.lower()
        if lowered in RESERVED_HEADERS or lowered.startswith("x-context-"):
            raise ValueError(
                f"the worker sets {value} itself; name another header (e.g. X-API-Key, "
                "or Authorization)"
            )
        return value

    _check_value = field_validator("value")(_header_text)


class BasicCredential(_Strict):
    """HTTP basic authentication (RFC 7617, UTF-8)."""

    type: Literal["basic"]
    username: str = Field(min_length=1, max_length=1024)
    password: str = Field(max_length=MAX_SECRET_CHARS, description="write-only")

    @field_validator("username")
    @classmethod
    def _no_colon(cls, value: str) -> str:
        if ":" in value:
            raise ValueError("a basic-auth username cannot contain ':'")
        return value


class OAuth2ClientCredentials(_Strict):
    """OAuth2 client credentials grant: the worker asks `token_url` for a token (form
    POST with client_id and client_secret), caches it until shortly before it expires,
    and sends it as `Authorization: Bearer <token>`."""

    type: Literal["oauth2_client_credentials"]
    token_url: AnyHttpUrl = Field(examples=["https://auth.example.com/oauth/token"])
    client_id: str = Field(min_length=1, max_length=1024)
    client_secret: str = Field(min_length=1, max_length=MAX_SECRET_CHARS, description="write-only")
    scope: str | None = Field(default=None, max_length=2000)
    audience: str | None = Field(default=None, max_length=2000)


CredentialIn = Annotated[
    ApiKeyCredential | BasicCredential | OAuth2ClientCredentials, Field(discriminator="type")
]

_CREDENTIAL_DESCRIPTION = (
    "write-only: a credential the worker adds to every call of the service, by `type`: "
    "api_key {header, value}, basic {username, password}, or oauth2_client_credentials "
    "{token_url, client_id, client_secret, scope, audience}. Stored encrypted (needs "
    "ENCRYPTION_KEYS); answers show only its type and non-secret fields"
)


def _quiet_credential(value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
    """Validate a credential without echoing what was sent: a 422 quotes each problem's
    input, and here that input may be the secret."""
    try:
        return handler(value)
    except ValidationError as exc:
        raise ValidationError.from_exception_data(
            "credential",
            [
                InitErrorDetails(
                    type=PydanticCustomError(
                        "invalid_credential", "{problem}", {"problem": e["msg"]}
                    ),
                    loc=tuple(e["loc"]),
                    input="(not echoed)",
                )
                for e in exc.errors(include_url=False, include_input=False)
            ],
        ) from None


MAX_CONCURRENCY_LIMIT = 100_000
MAX_RATE_LIMIT = 1_000_000.0
_MAX_CONCURRENCY_DESCRIPTION = (
    "calls of this service in flight at once, across all workers; a step waits (and "
    "heartbeats) for a free slot. Absent: no limit"
)
_RATE_LIMIT_DESCRIPTION = (
    "calls of this service started per second, across all workers (a token bucket of "
    "capacity max(1, rate)); a step waits (and heartbeats) for a token. Absent: no limit"
)


class ServiceCreate(_Strict):
    name: str = Field(pattern=SERVICE_NAME_PATTERN, examples=["text-extraction"])
    description: str = Field(default="", max_length=2000)
    endpoint: AnyHttpUrl = Field(examples=["http://text-extraction-service:8000/api"])
    actions: list[ActionIn] = Field(min_length=1, max_length=MAX_ACTIONS)
    metadata: dict[str, Any] = Field(default_factory=dict, max_length=MAX_METADATA_KEYS)
    status: DefinitionStatus = DefinitionStatus.ACTIVE
    health_path: str = Field(default="/health", max_length=500, json_schema_extra={"pattern": "^/"})
    credential: CredentialIn | None = Field(default=None, description=_CREDENTIAL_DESCRIPTION)
    max_concurrency: int | None = Field(
        default=None, ge=1, le=MAX_CONCURRENCY_LIMIT, description=_MAX_CONCURRENCY_DESCRIPTION
    )
    rate_limit_per_second: float | None = Field(
        default=None, gt=0, le=MAX_RATE_LIMIT, description=_RATE_LIMIT_DESCRIPTION
    )

    _check_health_path = field_validator("health_path")(_health_path)
    _check_credential = field_validator("credential", mode="wrap")(_quiet_credential)


class ServiceUpdate(_Strict):
    name: str | None = Field(default=None, pattern=SERVICE_NAME_PATTERN)
    description: str | None = Field(default=None, max_length=2000)
    endpoint: AnyHttpUrl | None = None
    actions: list[ActionIn] | None = Field(default=None, min_length=1, max_length=MAX_ACTIONS)
    metadata: dict[str, Any] | None = Field(default=None, max_length=MAX_METADATA_KEYS)
    status: DefinitionStatus | None = None
    health_path: str | None = Field(
        default=None, max_length=500, json_schema_extra={"pattern": "^/"}
    )
    credential: CredentialIn | None = Field(
        default=None, description=_CREDENTIAL_DESCRIPTION + "; null removes it"
    )
    max_concurrency: int | None = Field(
        default=None,
        ge=1,
        le=MAX_CONCURRENCY_LIMIT,
        description=_MAX_CONCURRENCY_DESCRIPTION + "; null removes it (applies within a second)",
    )
    rate_limit_per_second: float | None = Field(
        default=None,
        gt=0,
        le=MAX_RATE_LIMIT,
        description=_RATE_LIMIT_DESCRIPTION + "; null removes it (applies within a second)",
    )

    _check_health_path = field_validator("health_path")(_health_path)
    _check_credential = field_validator("credential", mode="wrap")(_quiet_credential)


class CredentialPublic(BaseModel):
    """What the API shows of a stored credential: its type and non-secret fields."""

    type: Literal["api_key", "basic", "oauth2_client_credentials"]
    configured: bool = True
    header: str | None = Field(default=None, exclude_if=lambda v: v is None)
    username: str | None = Field(default=None, exclude_if=lambda v: v is None)
    token_url: str | None = Field(default=None, exclude_if=lambda v: v is None)
    client_id: str | None = Field(default=None, exclude_if=lambda v: v is None)
    scope: str | None = Field(default=None, exclude_if=lambda v: v is None)
    audience: str | None = Field(default=None, exclude_if=lambda v: v is None)


PUBLIC_CREDENTIAL_FIELDS = ("header", "username", "token_url", "client_id", "scope", "audience")
"""The fields of a credential the API may show; every other field is a secret."""


class ServicePublic(BaseModel):
    id: str
    name: str
    description: str
    endpoint: str
    actions: list[ActionSpec]
    metadata: dict[str, Any]
    status: DefinitionStatus
    health_path: str
    created_at: datetime
    updated_at: datetime
    credential: CredentialPublic | None = Field(
        default=None,
        exclude_if=lambda value: value is None,
        description="the service's credential without its secrets; absent if it has none",
    )
    max_concurrency: int | None = Field(
        default=None, exclude_if=lambda value: value is None, description="absent: no limit"
    )
    rate_limit_per_second: float | None = Field(
        default=None, exclude_if=lambda value: value is None, description="absent: no limit"
    )
    warnings: list[str] | None = Field(
        default=None,
        exclude_if=lambda value: not value,
        description="set on a registration or update whose endpoint (or credential "
        "token_url) the outbound policy refuses now: its steps would fail until "
        "ALLOWED_HOSTS allows it",
    )


_STEPS_DESCRIPTION = (
    "the seed's chain, [{id, service, action, next}], or steps of the workflow language "
    "(types task, choice, parallel, map, wait, workflow, succeed, fail; docs/workflow-language.md)"
)


class _FlowFields(_Strict):
    """The workflow language's top-level fields; a definition that sets one is a flow."""

    start_at: str | None = Field(default=None, description="the entry step of a flow")
    output: Any = Field(default=None, description="a flow's result (expressions allowed)")
    input_schema: dict[str, Any] | None = Field(
        default=None, description="JSON Schema of the input, checked at start (422)"
    )
    max_steps: int | None = Field(
        default=None, ge=1, le=1_000_000, description="a flow's step budget; loops need it"
    )

    def top_level(self) -> dict[str, Any]:
        return {
            "start_at": self.start_at,
            "output": self.output,
            "input_schema": self.input_schema,
            "max_steps": self.max_steps,
        }


class WorkflowCreate(_FlowFields):
    name: str = Field(pattern=WORKFLOW_NAME_PATTERN, examples=["document-sentiment"])
    description: str = Field(default="", max_length=2000)
    steps: list[dict[str, Any]] = Field(
        min_length=1, max_length=MAX_STEPS, description=_STEPS_DESCRIPTION
    )
    metadata: dict[str, Any] = Field(default_factory=dict, max_length=MAX_METADATA_KEYS)
    status: DefinitionStatus = DefinitionStatus.ACTIVE
    mode: WorkflowMode = WorkflowMode.STANDARD


class WorkflowUpdate(_FlowFields):
    """Fields sent replace the stored ones; steps and the flow fields go together (sending
    steps without them makes a flow's top-level fields empty)."""

    name: str | None = Field(default=None, pattern=WORKFLOW_NAME_PATTERN)
    description: str | None = Field(default=None, max_length=2000)
    steps: list[dict[str, Any]] | None = Field(
        default=None, min_length=1, max_length=MAX_STEPS, description=_STEPS_DESCRIPTION
    )
    metadata: dict[str, Any] | None = Field(default=None, max_length=MAX_METADATA_KEYS)
    status: DefinitionStatus | None = None
    mode: WorkflowMode | None = None


def _unset(value: Any) -> bool:
    return value is None or value == []


class WorkflowPublic(BaseModel):
    id: str
    name: str
    description: str
    steps: list[dict[str, Any]]
    metadata: dict[str, Any]
    status: DefinitionStatus
    mode: WorkflowMode = WorkflowMode.STANDARD
    version: int
    created_at: datetime
    updated_at: datetime
    kind: str = Field(default="chain", description="'chain' (the seed's format) or 'flow'")
    start_at: str | None = Field(default=None, exclude_if=_unset)
    output: Any = Field(default=None, exclude_if=_unset)
    input_schema: dict[str, Any] | None = Field(default=None, exclude_if=_unset)
    max_steps: int | None = Field(default=None, exclude_if=_unset)
    warnings: list[dict[str, Any]] | None = Field(
        default=None,
        exclude_if=_unset,
        description="what the save-time checks found without refusing the definition",
    )


class WorkflowTest(ExecuteRequest):
    """POST /api/workflows/{id}/test: the body of an execute (input_data, or its alias
    input, and context), and what mocked steps answer."""

    mocks: dict[str, StepMock] = Field(
        default_factory=dict,
        description="task or workflow step id -> {output} or {error: {type, status_code, "
        "message}}; every task and workflow step must have one",
    )


class WorkflowValidation(BaseModel):
    """The answer of POST /api/workflows/validate for a definition that could be stored."""

    valid: bool = True
    kind: str
    warnings: list[dict[str, Any]] = Field(default_factory=list)


class Page(BaseModel, Generic[T]):
    items: list[T]
    total: int
    page: int
    per_page: int
    pages: int

    @classmethod
    def of(cls, items: list[T], *, total: int, page: int, per_page: int) -> Self:
        return cls(
            items=items,
            total=total,
            page=page,
            per_page=per_page,
            pages=(total + per_page - 1) // per_page,
        )


class ServicesPage(Page[ServicePublic]):
    pass


class WorkflowsPage(Page[WorkflowPublic]):
    pass


def endpoint_text(value: AnyHttpUrl | str | None) -> str | None:
    """The endpoint as stored: the URL without a trailing slash."""
    return _endpoint(value)
