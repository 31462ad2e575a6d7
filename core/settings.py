"""One settings object for every process of the stack, read from the environment.

The same variables drive the gateway, the worker and the `service-integration dev`
stack, so a deployment configures them once (see docker-compose.yml).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Settings of the gateway and the worker.

    Every field reads the environment variable of the same name, upper-cased
    (`TEMPORAL_ADDRESS`, `DATABASE_URL`, ...).
    """

    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    environment: str = Field(default="local", description="local, test or production")
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
        description="comma-separated hosts or CIDR networks the worker may call; empty allows all",
    )
    follow_redirects: bool = False

    api_keys: str = Field(default="", description="comma-separated API keys; empty disables auth")

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
