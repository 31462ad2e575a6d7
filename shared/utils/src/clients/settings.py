"""Settings of the Service Integration client, read from the environment.

SERVICE_INTEGRATION_URL                base URL of the gateway's API (default
                                       http://localhost:8005/api)
SERVICE_INTEGRATION_TIMEOUT            seconds for one HTTP request (default 30)
SERVICE_INTEGRATION_API_KEY            sent as `Authorization: Bearer <key>` (default none)
SERVICE_INTEGRATION_EXECUTION_TIMEOUT  seconds execute_* wait for an execution to end
                                       (default 300)
"""

from __future__ import annotations

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_URL = "http://localhost:8005/api"


class ServiceIntegrationSettings(BaseSettings):
    """Where the gateway is and how long to wait for it."""

    model_config = SettingsConfigDict(
        env_prefix="SERVICE_INTEGRATION_", env_file=".env", extra="ignore"
    )

    url: str = Field(default=DEFAULT_URL, description="base URL of the API, ending in /api")
    timeout: float = Field(default=30.0, gt=0, le=3600)
    api_key: SecretStr | None = None
    execution_timeout: float = Field(default=300.0, gt=0, le=86400)

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        value = value.strip().rstrip("/")
        if not value.startswith(("http://", "https://")):
            raise ValueError(
                f"SERVICE_INTEGRATION_URL must be an http(s) URL such as {DEFAULT_URL}, "
                f"not {value!r}"
            )
        return value

    @field_validator("api_key")
    @classmethod
    def _blank_is_none(cls, value: SecretStr | None) -> SecretStr | None:
        return value if value is not None and value.get_secret_value().strip() else None
