"""One settings object for every process of the stack, read from the environment.

The same variables drive the gateway, the worker and the `service-integration dev`
stack, so a deployment configures them once (see docker-compose.yml).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Settings of the gateway and the worker.

    Every field reads the environment variable of the same name, upper-cased
    (`TEMPORAL_ADDRESS`, `DATABASE_URL`, ...).
    """

    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    environment: Literal["local", "test", "production"] = Field(
        default="local",
        description="production refuses to start with unsafe settings (see _safe_in_production)",
    )
    data_dir: Path = Field(
        default=Path("data"), description="where the embedded defaults keep state"
    )

    temporal_address: str = "127.0.0.1:7233"
    temporal_namespace: str = "default"
    temporal_tls: bool = Field(default=False, description="connect to Temporal over TLS")
    temporal_api_key: str = Field(
        default="", description="API key for Temporal Cloud or a secured cluster"
    )
    task_queue: str = "service-integration"

    database_url: str = Field(
        default="",
        description="SQLAlchemy async URL; empty means a SQLite file under DATA_DIR",
    )

    gateway_host: str = "127.0.0.1"
    gateway_port: int = 8005
    max_body_bytes: int = 1_048_576
    default_execute_timeout: float = Field(default=60.0, gt=0, le=3600)
    max_execute_timeout: float = Field(
        default=300.0, gt=0, le=3600, description="the largest ?timeout= an execute may ask for"
    )
    expression_fuel: int = Field(
        default=100_000, ge=1000, description="units of work one expression evaluation may use"
    )
    expression_max_depth: int = Field(
        default=200, ge=10, le=500, description="how deeply one evaluation may nest"
    )
    expression_max_string_length: int = Field(
        default=1 << 20, ge=1024, description="characters of one string an expression makes"
    )
    expression_max_array_length: int = Field(
        default=100_000, ge=100, description="items of one array an expression makes"
    )
    expression_max_object_keys: int = Field(
        default=10_000, ge=100, description="keys of one object an expression makes"
    )
    expression_max_value_size: int = Field(
        default=4_000_000, ge=10_000, description="items plus characters of one value it makes"
    )
    max_definition_bytes: int = Field(
        default=256 * 1024,
        ge=1024,
        description="the largest workflow definition (steps and top-level fields as JSON) "
        "the registry checks and stores; a larger one is a 422",
    )
    definition_check_concurrency: int = Field(
        default=2,
        ge=1,
        description="definitions checked at once per gateway process, each in a worker "
        "thread; more wait their turn, and other requests are served meanwhile",
    )
    gateway_limit_concurrency: int = Field(
        default=1000, ge=1, description="requests in flight per gateway process; more get 503"
    )
    gateway_header_timeout: float = Field(
        default=10.0, gt=0, description="seconds a client has to send its request headers"
    )
    gateway_keep_alive_timeout: float = Field(
        default=5.0, gt=0, description="seconds an idle keep-alive connection is kept"
    )
    idempotency_ttl_seconds: int = Field(
        default=86_400,
        ge=60,
        description="how long an Idempotency-Key is remembered; keep it at or under the "
        "Temporal namespace's retention (docs/security.md)",
    )
    codec_cors_origins: str = Field(
        default="http://127.0.0.1:8233,http://localhost:8233",
        description="comma-separated origins (the Temporal web UI) allowed to call the codec "
        "endpoint",
    )
    gateway_graceful_shutdown_seconds: float = Field(default=30.0, ge=0)
    registry_cache_seconds: float = Field(
        default=1.0,
        ge=0,
        le=60,
        description="how long a gateway serves registry reads from memory; 0 turns it off",
    )
    gateway_embedded_worker: bool = Field(
        default=False,
        description="run a worker inside the gateway, so low_latency workflows start eagerly",
    )

    worker_max_concurrent_activities: int = Field(default=200, ge=1)
    worker_max_concurrent_workflow_tasks: int = Field(default=200, ge=1)
    worker_graceful_shutdown_seconds: float = Field(default=30.0, ge=0)

    # Outbound calls made by the worker to registered services.
    payload_limit_bytes: int = Field(default=256 * 1024, ge=1024)
    allowed_hosts: str = Field(
        default="",
        description="exceptions to the outbound policy: comma-separated hosts, host:port or "
        "CIDR networks the worker may call although they resolve to loopback, link-local, "
        "private or other internal addresses (refused by default); '*' turns the policy off",
    )
    follow_redirects: bool = False

    api_keys: str = Field(default="", description="comma-separated API keys; empty disables auth")
    encryption_keys: str = Field(
        default="",
        description="comma-separated `key_id:base64 32-byte key`; the first encrypts, all "
        "decrypt. Set: Temporal payloads are AES-256-GCM encrypted and so are stored "
        "credentials. Empty: payloads are plaintext and credentials cannot be stored",
    )
    definition_signing_key: str = Field(
        default="",
        description="HMAC key the gateway signs pinned definitions with; set, the worker "
        "refuses a definition that is unsigned or altered",
    )

    @model_validator(mode="after")
    def _safe_in_production(self) -> Settings:
        """ENVIRONMENT=production refuses to start open: each problem says what to set."""
        if self.environment != "production":
            return self
        problems = []
        if not self.api_key_set:
            problems.append("API_KEYS is empty: set at least one key (every endpoint needs it)")
        if self.allowed_hosts.strip() == "*":
            problems.append(
                "ALLOWED_HOSTS=* lets registered services reach internal addresses: list the "
                "internal hosts or CIDR networks the worker may call instead"
            )
        if not self.encryption_keys.strip():
            problems.append(
                "ENCRYPTION_KEYS is empty: payloads would be stored in plaintext; set "
                "`key_id:<base64 of 32 random bytes>` (python -m core.codec new-key)"
            )
        if not self.definition_signing_key.strip():
            problems.append(
                "DEFINITION_SIGNING_KEY is empty: workers would run any definition sent to "
                "Temporal; set a long random secret shared by gateways and workers"
            )
        if problems:
            raise ValueError(
                "ENVIRONMENT=production refuses unsafe settings:\n  - " + "\n  - ".join(problems)
            )
        return self

    @field_validator("database_url")
    @classmethod
    def _async_driver(cls, value: str) -> str:
        """Accept plain `postgresql://` URLs and pick the async driver for them."""
        if value.startswith("postgres://"):
            value = "postgresql://" + value.removeprefix("postgres://")
        if value.startswith("postgresql://"):
            value = "postgresql+asyncpg://" + value.removeprefix("postgresql://")
        if value.startswith("sqlite://") and not value.startswith("sqlite+aiosqlite://"):
            value = "sqlite+aiosqlite://" + value.removeprefix("sqlite://")
        return value

    @property
    def resolved_database_url(self) -> str:
        """The database URL in use: `DATABASE_URL`, or the embedded SQLite file."""
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'registry.db').resolve()}"

    @property
    def api_key_set(self) -> frozenset[str]:
        return frozenset(k.strip() for k in self.api_keys.split(",") if k.strip())


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings, read once from the environment."""
    return Settings()
