"""Registry operations on services, and the sealing of their outbound credentials.

A service's credential is stored sealed: the credential, the service's id and the
origin of its endpoint, as JSON, encrypted with AES-256-GCM under the first
ENCRYPTION_KEYS key by the payload codec (core/codec.py), with the key id beside the
ciphertext, and the non-secret fields (type, header, username, token_url, client_id,
scope, audience) in clear for the API to show. Any configured key opens it. Sealed with
the service's id and origin, a credential copied onto another service's row, or a step
sent to another origin (a forged start, a redirect), never gets it (activities/credentials.py).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import httpx
from pydantic import TypeAdapter
from pydantic import ValidationError as PydanticValidationError
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from temporalio.api.common.v1 import Payload

from core.codec import ENCODING, KEY_ID_METADATA, EncryptionCodec
from definitions.language import raw_tasks
from definitions.models import ActionSpec
from registry.errors import ConflictError, InvalidDefinitionError, NotFoundError
from registry.schemas import (
    PUBLIC_CREDENTIAL_FIELDS,
    ApiKeyCredential,
    BasicCredential,
    CredentialIn,
    CredentialPublic,
    DefinitionStatus,
    OAuth2ClientCredentials,
    ServiceCreate,
    ServicePublic,
    ServiceUpdate,
    endpoint_text,
)
from registry.tables import ServiceRow, WorkflowRow, utcnow
from registry.validation import validate_actions

RESOURCE = "service"

Credential = ApiKeyCredential | BasicCredential | OAuth2ClientCredentials
SEALED_VERSION = 1
_CREDENTIAL: TypeAdapter[Credential] = TypeAdapter(CredentialIn)
_PLAIN_JSON = b"json/plain"

NO_ENCRYPTION_KEYS = (
    "storing a credential needs ENCRYPTION_KEYS (no secret is stored in plaintext): set "
    "ENCRYPTION_KEYS on the gateway and the workers to `key_id:<base64 of 32 random bytes>` "
    "(make one with `python -m core.codec new-key`), or register the service without a "
    "credential"
)


class CredentialUnreadableError(ValueError):
    """A stored credential cannot be opened here: no ENCRYPTION_KEYS, a key id not
    configured, altered data, or sealed for another service. Never names a secret."""


@dataclass(frozen=True)
class OpenedCredential:
    """A stored credential, decrypted, with what it was sealed with."""

    service_id: str
    origin: str
    """The origin (scheme://host:port) of the endpoint the credential may be sent to."""
    credential: Credential


def origin_of(url: str | httpx.URL) -> str:
    """`scheme://host:port` of a URL (the port spelled out), lower-cased."""
    parsed = httpx.URL(str(url))
    port = parsed.port or {"http": 80, "https": 443}.get(parsed.scheme, 0)
    return f"{parsed.scheme}://{parsed.host}:{port}".lower()


def codec_of(encryption_keys: str) -> EncryptionCodec | None:
    """The codec of an ENCRYPTION_KEYS setting; None if it is empty."""
    return EncryptionCodec.from_setting(encryption_keys) if encryption_keys.strip() else None


def _canonical(credential: Credential) -> bytes:
    return json.dumps(
        credential.model_dump(mode="json"), sort_keys=True, separators=(",", ":")
    ).encode()


def seal_credential(
    codec: EncryptionCodec, *, service_id: str, endpoint: str, credential: Credential
) -> dict[str, Any]:
    """The stored form of `credential` for the service `service_id` at `endpoint`."""
    plain = json.dumps(
        {
            "service_id": service_id,
            "origin": origin_of(endpoint),
            "credential": credential.model_dump(mode="json"),
        },
        separators=(",", ":"),
    ).encode()
    sealed = codec.encrypt(Payload(metadata={"encoding": _PLAIN_JSON}, data=plain))
    public = {
        name: value
        for name, value in credential.model_dump(mode="json").items()
        if name in PUBLIC_CREDENTIAL_FIELDS and value is not None
    }
    return {
        "version": SEALED_VERSION,
        "key_id": codec.encrypting_key_id,
        "sealed": base64.b64encode(sealed.data).decode(),
        "public": {"type": credential.type, **public},
    }


def open_credential(
    codec: EncryptionCodec | None, *, service_id: str, stored: dict[str, Any]
) -> OpenedCredential:
    """The credential sealed in `stored` (a row's `credential`).

    Raises:
        CredentialUnreadableError: see the class; the message says what to configure.
    """
    if codec is None:
        raise CredentialUnreadableError(
            "the service has a stored credential, and ENCRYPTION_KEYS is not set here; set "
            "the ENCRYPTION_KEYS of the gateway that stored it"
        )
    key_id = str(stored.get("key_id", ""))
    try:
        payload = Payload(
            metadata={"encoding": ENCODING, KEY_ID_METADATA: key_id.encode()},
            data=base64.b64decode(str(stored.get("sealed", "")), validate=True),
        )
        plain = json.loads(codec.decrypt(payload).data)
        opened = OpenedCredential(
            service_id=str(plain["service_id"]),
            origin=str(plain["origin"]),
            credential=_CREDENTIAL.validate_python(plain["credential"]),
        )
    except (binascii.Error, KeyError, TypeError, PydanticValidationError):
        raise CredentialUnreadableError(
            f"the stored credential (key id {key_id!r}) is not in the sealed form this "
            "version writes; set the credential again"
        ) from None
    except ValueError as exc:  # the codec's errors name key ids, never key material
        raise CredentialUnreadableError(f"the stored credential cannot be decrypted: {exc}") from (
            None
        )
    if opened.service_id != service_id:
        raise CredentialUnreadableError(
            "the stored credential was sealed for another service; set the credential again"
        )
    return opened


def credential_digest(encryption_keys: str, credential: Credential | None) -> str | None:
    """A keyed digest of a credential, for binding an Idempotency-Key to a request
    without keeping a plain hash of its secret (which a weak password would not survive)."""
    if credential is None:
        return None
    key = hashlib.sha256(b"si-credential-digest\0" + encryption_keys.encode()).digest()
    return hmac.new(key, _canonical(credential), hashlib.sha256).hexdigest()


def _public_credential(stored: dict[str, Any] | None) -> CredentialPublic | None:
    if not stored:
        return None
    return CredentialPublic.model_validate({**stored.get("public", {}), "configured": True})


def to_public(row: ServiceRow) -> ServicePublic:
    return ServicePublic(
        id=row.id,
        name=row.name,
        description=row.description,
        endpoint=row.endpoint,
        actions=[ActionSpec.model_validate(a) for a in row.actions],
        metadata=row.metadata_,
        status=DefinitionStatus(row.status),
        health_path=row.health_path,
        created_at=row.created_at,
        updated_at=row.updated_at,
        credential=_public_credential(row.credential),
        max_concurrency=row.max_concurrency,
        rate_limit_per_second=row.rate_limit_per_second,
    )


def _needs_keys(codec: EncryptionCodec | None) -> EncryptionCodec:
    if codec is None:
        raise InvalidDefinitionError(
            [{"loc": ["credential"], "msg": NO_ENCRYPTION_KEYS, "type": "value_error"}]
        )
    return codec


def _dump_actions(actions: Sequence[ActionSpec]) -> list[dict[str, Any]]:
    return [a.model_dump(mode="json") for a in actions]


def _same_definition(row: ServiceRow, body: ServiceCreate) -> bool:
    """Whether registering `body` again is the stored service. Never when either carries a
    credential: comparing a sent secret with the stored one would tell a caller whether
    a guess is right, one request per guess."""
    return (
        body.credential is None
        and row.credential is None
        and row.description == body.description
        and row.endpoint == endpoint_text(body.endpoint)
        and row.actions == _dump_actions(body.actions)
        and row.metadata_ == body.metadata
        and row.status == body.status.value
        and row.health_path == body.health_path
        and row.max_concurrency == body.max_concurrency
        and row.rate_limit_per_second == body.rate_limit_per_second
    )


def is_id(reference: str) -> bool:
    """Whether `reference` has the shape of an id (a UUID, as the registry makes them)."""
    try:
        return str(uuid.UUID(reference)) == reference.lower()
    except ValueError:
        return False


async def get_row(session: AsyncSession, service_id: str) -> ServiceRow:
    """The service `service_id` names: its id, else its name (names are unique).

    Raises:
        NotFoundError: no service has that id or name.
    """
    # No id or name holds a NUL, and PostgreSQL would refuse the query (a 503, not a 404).
    row = None
    if "\x00" not in service_id:
        if is_id(service_id):
            row = await session.get(ServiceRow, service_id)
        if row is None:
            row = await get_by_name(session, service_id)
    if row is None:
        raise NotFoundError(
            RESOURCE,
            service_id,
            hint="no service has this id or name; list them with GET /api/services",
        )
    return row


async def get_by_name(session: AsyncSession, name: str) -> ServiceRow | None:
    return (await session.execute(select(ServiceRow).where(ServiceRow.name == name))).scalar()


async def register(
    session: AsyncSession, body: ServiceCreate, *, codec: EncryptionCodec | None = None
) -> tuple[ServiceRow, bool]:
    """Store a new service, or return the stored one if it is identical.

    Flushed, not committed: the caller commits it in one transaction with the answer it
    stores for the request's Idempotency-Key (gateway/idempotency.py `write_once`).

    A registration that carries a credential, or of a name whose stored service has one,
    is never identical: it conflicts (409, change the service with PATCH) whether the
    secret matches the stored one or not, so the answer cannot confirm a guessed secret.
    Sending the same request again with its Idempotency-Key still replays the first
    answer (gateway/idempotency.py).

    Args:
        codec: ENCRYPTION_KEYS' codec; a credential cannot be stored without it.

    Returns:
        The row, and whether it was created now.

    Raises:
        InvalidDefinitionError: an action schema is no valid JSON Schema, or a credential
            is sent and no ENCRYPTION_KEYS is set.
        ConflictError: the name belongs to a different definition, or a credential
            is involved (see above).
    """
    problems = validate_actions(body.actions)
    if problems:
        raise InvalidDefinitionError(problems)
    if body.credential is not None:
        codec = _needs_keys(codec)
    existing = await get_by_name(session, body.name)
    if existing is not None:
        if _same_definition(existing, body):
            return existing, False
        raise _name_taken(existing, body)
    now = utcnow()
    service_id = str(uuid.uuid4())
    endpoint = endpoint_text(body.endpoint)
    assert endpoint is not None
    row = ServiceRow(
        id=service_id,
        credential=None
        if body.credential is None or codec is None
        else seal_credential(
            codec, service_id=service_id, endpoint=endpoint, credential=body.credential
        ),
        name=body.name,
        description=body.description,
        endpoint=endpoint,
        actions=_dump_actions(body.actions),
        metadata_=body.metadata,
        status=body.status.value,
        health_path=body.health_path,
        max_concurrency=body.max_concurrency,
        rate_limit_per_second=body.rate_limit_per_second,
        created_at=now,
        updated_at=now,
    )
    session.add(row)
    try:
        await session.flush()
    except IntegrityError:
        # Lost a race with a concurrent registration of the same name.
        await session.rollback()
        existing = await get_by_name(session, body.name)
        if existing is not None and _same_definition(existing, body):
            return existing, False
        raise _name_taken(existing, body) from None
    return row, True


def _name_taken(existing: ServiceRow | None, body: ServiceCreate) -> ConflictError:
    where = f" with id '{existing.id}'" if existing else ""
    name = existing.name if existing else "this name"
    # With a credential the answer is the same whatever the stored service holds, its
    # secret above all: nothing in it may tell a right guess from a wrong one.
    why = (
        " (a registration with a credential never matches a stored service)"
        if body.credential is not None
        else " with a different definition"
    )
    return ConflictError(
        f"service name '{name}' is already registered{where}{why}; "
        f"to change it, send PATCH /api/services/{existing.id if existing else '{id}'}",
        resource_type=RESOURCE,
        resource_id=existing.id if existing else None,
    )


async def _workflows_using(session: AsyncSession, service_name: str) -> list[WorkflowRow]:
    rows = (
        await session.execute(select(WorkflowRow).where(WorkflowRow.status == "ACTIVE"))
    ).scalars()
    return [w for w in rows if any(s["service"] == service_name for s in raw_tasks(w.steps))]


async def update(
    session: AsyncSession,
    service_id: str,
    body: ServiceUpdate,
    *,
    commit: bool = True,
    codec: EncryptionCodec | None = None,
) -> ServicePublic:
    """Apply the fields that are set and commit; running executions keep their pinned copy.

    `credential` replaces the stored credential, and `credential: null` removes it. The
    credential is bound to the origin of the endpoint it was set with: moving the
    endpoint to another origin needs the credential sent again (or null), so that an
    update cannot send a stored secret somewhere new without knowing it.

    Args:
        commit: False leaves the commit to the caller (which adds the Idempotency-Key's
            answer to the same transaction).
        codec: ENCRYPTION_KEYS' codec; a credential cannot be stored without it.

    Returns:
        The service as stored now.

    Raises:
        NotFoundError, InvalidDefinitionError, ConflictError.
    """
    row = await get_row(session, service_id)
    changes = body.model_dump(exclude_unset=True)
    if body.actions is not None:
        problems = validate_actions(body.actions)
        if problems:
            raise InvalidDefinitionError(problems)
    credential_sent = "credential" in body.model_fields_set
    if body.credential is not None:
        codec = _needs_keys(codec)
    new_endpoint = endpoint_text(body.endpoint) if body.endpoint is not None else row.endpoint
    assert new_endpoint is not None
    if (
        row.credential is not None
        and not credential_sent
        and origin_of(new_endpoint) != origin_of(row.endpoint)
    ):
        raise InvalidDefinitionError(
            [
                {
                    "loc": ["credential"],
                    "msg": f"the service's credential may be sent only to "
                    f"{origin_of(row.endpoint)}; to move the endpoint to "
                    f"{origin_of(new_endpoint)}, send the credential again in the same "
                    "update (or credential: null to remove it)",
                    "type": "value_error",
                }
            ]
        )
    if body.name is not None and body.name != row.name:
        other = await get_by_name(session, body.name)
        if other is not None:
            raise ConflictError(
                f"service name '{body.name}' is taken by service '{other.id}'; pick another name",
                resource_type=RESOURCE,
                resource_id=other.id,
            )
        users = await _workflows_using(session, row.name)
        if users:
            raise ConflictError(
                f"service '{row.name}' is used by active workflows "
                f"{[w.name for w in users]}; renaming it would break them. Update those "
                "workflows to another service first, or set them INACTIVE",
                resource_type=RESOURCE,
                resource_id=row.id,
            )
        row.name = body.name
    if body.actions is not None:
        kept = {a.name for a in body.actions}
        for workflow in await _workflows_using(session, row.name):
            missing = sorted(
                {s["action"] for s in raw_tasks(workflow.steps) if s["service"] == row.name} - kept
            )
            if missing:
                raise ConflictError(
                    f"active workflow '{workflow.name}' uses actions {missing} of service "
                    f"'{row.name}', which this update removes; keep them, or update the "
                    "workflow first",
                    resource_type=RESOURCE,
                    resource_id=row.id,
                )
        row.actions = _dump_actions(body.actions)
    if "description" in changes and body.description is not None:
        row.description = body.description
    if body.endpoint is not None:
        row.endpoint = endpoint_text(body.endpoint)  # type: ignore[assignment]
    if body.metadata is not None:
        row.metadata_ = body.metadata
    if body.status is not None:
        row.status = body.status.value
    if body.health_path is not None:
        row.health_path = body.health_path
    if credential_sent:
        row.credential = (
            None
            if body.credential is None or codec is None
            else seal_credential(
                codec, service_id=row.id, endpoint=row.endpoint, credential=body.credential
            )
        )
    # Sent as null, a limit is removed; the workers see the change within a second.
    if "max_concurrency" in body.model_fields_set:
        row.max_concurrency = body.max_concurrency
    if "rate_limit_per_second" in body.model_fields_set:
        row.rate_limit_per_second = body.rate_limit_per_second
    row.updated_at = utcnow()
    await session.flush()
    public = to_public(row)
    if commit:
        await session.commit()
    return public


async def deregister(
    session: AsyncSession, service_id: str, *, force: bool, commit: bool = True
) -> ServicePublic:
    """Delete a service and commit. Refused while an ACTIVE workflow uses it, unless `force`.

    Args:
        commit: False leaves the commit to the caller.

    Returns:
        The service as it was stored.

    Raises:
        NotFoundError, ConflictError.
    """
    row = await get_row(session, service_id)
    if not force:
        users = await _workflows_using(session, row.name)
        if users:
            raise ConflictError(
                f"service '{row.name}' is used by active workflows {[w.name for w in users]}; "
                "set them INACTIVE or change their steps first, or deregister with ?force=true",
                resource_type=RESOURCE,
                resource_id=row.id,
            )
    public = to_public(row)
    await session.delete(row)
    if commit:
        await session.commit()
    else:
        await session.flush()
    return public


async def counts_by_status(session: AsyncSession) -> dict[str, int]:
    rows = await session.execute(
        select(ServiceRow.status, func.count()).group_by(ServiceRow.status)
    )
    return {status: count for status, count in rows.all()}


@dataclass(frozen=True)
class ServiceLimits:
    """A service's load shaping; None: no limit of that kind."""

    max_concurrency: int | None = None
    rate_limit_per_second: float | None = None

    @property
    def any(self) -> bool:
        return self.max_concurrency is not None or self.rate_limit_per_second is not None


async def limits_for_call(session: AsyncSession, service_name: str) -> ServiceLimits:
    """The limits of the service named `service_name` (none if no service has that name:
    the step's own call then says what is wrong)."""
    found = (
        await session.execute(
            select(ServiceRow.max_concurrency, ServiceRow.rate_limit_per_second).where(
                ServiceRow.name == service_name
            )
        )
    ).first()
    if found is None:
        return ServiceLimits()
    return ServiceLimits(found.max_concurrency, found.rate_limit_per_second)


async def credential_for_call(
    session: AsyncSession, service_name: str, codec: EncryptionCodec | None
) -> OpenedCredential | None:
    """The opened credential of the service named `service_name`, or None if it has none
    (or no service has that name: the step's own call then says what is wrong).

    Raises:
        CredentialUnreadableError: it has one, and it cannot be opened here.
    """
    found = (
        await session.execute(
            select(ServiceRow.id, ServiceRow.credential).where(ServiceRow.name == service_name)
        )
    ).first()
    if found is None or found.credential is None:
        return None
    return open_credential(codec, service_id=found.id, stored=found.credential)
