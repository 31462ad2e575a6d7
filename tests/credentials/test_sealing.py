"""Sealing a credential, and what the worker makes of one, without processes."""

from __future__ import annotations

import httpx
import pytest

from activities.credentials import CallAuth, CredentialUnavailable, _read_token
from core.codec import EncryptionCodec, new_key_entry
from registry.credentials import CredentialUnreadableError, open_credential, seal_credential
from registry.schemas import ApiKeyCredential

OLD = new_key_entry("old")
NEW = new_key_entry("new")
SECRET = "sealed-secret-value-0123456789"
CREDENTIAL = ApiKeyCredential(type="api_key", header="X-API-Key", value=SECRET)


def _sealed() -> dict:
    return seal_credential(
        EncryptionCodec.from_setting(OLD),
        service_id="svc-1",
        endpoint="https://api.example.test:8443/v1",
        credential=CREDENTIAL,
    )


def test_sealed_credential_holds_no_secret_and_opens_after_a_key_rotation():
    sealed = _sealed()
    assert SECRET not in str(sealed)
    assert sealed["key_id"] == "old"
    assert sealed["public"] == {"type": "api_key", "header": "X-API-Key"}
    opened = open_credential(
        EncryptionCodec.from_setting(f"{NEW},{OLD}"), service_id="svc-1", stored=sealed
    )
    assert opened.credential == CREDENTIAL
    assert opened.origin == "https://api.example.test:8443"


def test_sealed_credential_does_not_open_for_another_service_or_without_its_key():
    sealed = _sealed()
    with pytest.raises(CredentialUnreadableError, match="another service"):
        open_credential(EncryptionCodec.from_setting(OLD), service_id="svc-2", stored=sealed)
    with pytest.raises(CredentialUnreadableError, match="'old'") as raised:
        open_credential(EncryptionCodec.from_setting(NEW), service_id="svc-1", stored=sealed)
    assert SECRET not in str(raised.value)
    with pytest.raises(CredentialUnreadableError, match="ENCRYPTION_KEYS"):
        open_credential(None, service_id="svc-1", stored=sealed)
    altered = {**sealed, "sealed": sealed["sealed"][:-4] + "AAAA"}
    with pytest.raises(CredentialUnreadableError, match="does not authenticate"):
        open_credential(EncryptionCodec.from_setting(OLD), service_id="svc-1", stored=altered)


def test_credential_headers_go_to_their_origin_only():
    auth = CallAuth("http://127.0.0.1:8000", {"X-API-Key": SECRET}, (SECRET,))
    assert auth.headers_for(httpx.URL("http://127.0.0.1:8000/a/b")) == {"X-API-Key": SECRET}
    for elsewhere in (
        "http://127.0.0.1:8001/a",
        "https://127.0.0.1:8000/a",
        "http://localhost:8000",
    ):
        assert auth.headers_for(httpx.URL(elsewhere)) == {}
    assert auth.scrub(f"the service said {SECRET}") == "the service said [credential]"
    assert auth.echoed_in(f'{{"seen": "{SECRET}"}}'.encode())


@pytest.mark.parametrize(
    ("status", "body", "retryable", "said"),
    [
        (400, b'{"error": "invalid_scope", "error_description": "x"}', False, "(invalid_scope)"),
        (503, b"", True, "HTTP 503"),
        (429, b"{}", True, "HTTP 429"),
        (302, b"", False, "redirect"),
        (200, b"not json", False, "access_token"),
        (200, b'{"access_token": "t", "token_type": "mac"}', False, "Bearer"),
    ],
)
def test_token_answers_that_give_no_token(status, body, retryable, said):
    with pytest.raises(CredentialUnavailable) as raised:
        _read_token("could not get an OAuth2 token", status, body)
    assert raised.value.retryable is retryable
    assert said in str(raised.value)


def test_token_answer_lifetime():
    assert _read_token("w", 200, b'{"access_token": "t", "expires_in": 60}') == ("t", 60.0)
    assert _read_token("w", 200, b'{"access_token": "t", "token_type": "bearer"}')[1] == 300.0
