"""The sealing of services' outbound credentials.

A service's credential is stored sealed: the credential, the service's id and the
origin of its endpoint, as JSON, encrypted with AES-256-GCM under the first
ENCRYPTION_KEYS key by the payload codec (core/codec.py), with the key id beside the
ciphertext, and the non-secret fields (type, header, username, token_url, client_id,
scope, audience) in clear for the API to show. Any configured key opens it. Sealed with
the service's id and origin, a credential copied onto another service's row, or a step
sent to another origin (a forged start, a redirect), never gets it (activities/credentials.py).

Nothing here reads or writes the database: registry/services.py stores what
`seal_credential` makes, and registry/lookups.py opens it for the worker's calls.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from dataclasses import dataclass
from typing import Any

import httpx
from pydantic import TypeAdapter
from pydantic import ValidationError as PydanticValidationError
from temporalio.api.common.v1 import Payload

from core.codec import ENCODING, KEY_ID_METADATA, EncryptionCodec
from registry.errors import InvalidDefinitionError
from registry.schemas import (
    PUBLIC_CREDENTIAL_FIELDS,
    ApiKeyCredential,
    BasicCredential,
    CredentialIn,
    CredentialPublic,
    OAuth2ClientCredentials,
)

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


def needs_keys(codec: EncryptionCodec | None) -> EncryptionCodec:
    """`codec`, which storing a credential needs.

    Raises:
        InvalidDefinitionError: no ENCRYPTION_KEYS (the message says how to set them).
    """
    if codec is None:
        raise InvalidDefinitionError(
            [{"loc": ["credential"], "msg": NO_ENCRYPTION_KEYS, "type": "value_error"}]
        )
    return codec


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


def public_credential(stored: dict[str, Any] | None) -> CredentialPublic | None:
    """What the API shows of a stored credential: its non-secret fields."""
    if not stored:
        return None
    return CredentialPublic.model_validate({**stored.get("public", {}), "configured": True})
