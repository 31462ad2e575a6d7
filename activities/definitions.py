"""Loads the latest ACTIVE definition of a stored workflow by name (SDK-started runs)."""

from __future__ import annotations

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio import activity
from temporalio.exceptions import ApplicationError

from definitions.contract import LOAD_DEFINITION_ACTIVITY
from definitions.models import PinnedDefinition
from definitions.signing import definition_signatures
from registry import workflows
from registry.errors import NotFoundError, NotRunnableError


class DefinitionActivities:
    def __init__(
        self, sessions: async_sessionmaker[AsyncSession], *, signing_key: str = ""
    ) -> None:
        self._sessions = sessions
        self._signing_key = signing_key

    @activity.defn(name=LOAD_DEFINITION_ACTIVITY)
    async def load_definition(self, name: str) -> PinnedDefinition:
        """Pin the stored workflow `name` at its current version.

        Raises:
            ApplicationError: non-retryable when no runnable workflow has that name;
                retryable when the database cannot be reached.
        """
        try:
            async with self._sessions() as session:
                definition = await workflows.pin_by_name(session, name)
            # Loaded from the registry, so as trusted as the gateway's copy: signed here,
            # the steps pass the worker's signature check like a gateway start's.
            signatures = definition_signatures(self._signing_key, definition)
            return definition.model_copy(update={"signatures": signatures})
        except (NotFoundError, NotRunnableError) as exc:
            raise ApplicationError(str(exc), type=type(exc).__name__, non_retryable=True) from exc
        except (SQLAlchemyError, OSError) as exc:
            raise ApplicationError(
                f"registry database unavailable: {exc}", type="DatabaseUnavailable"
            ) from exc
