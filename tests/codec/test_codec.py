"""The AES-256-GCM payload codec (core/codec.py) and its ENCRYPTION_KEYS setting."""

from __future__ import annotations

import base64
import os

import pytest
from temporalio.api.common.v1 import Payload

from core.codec import (
    ENCODING,
    KEY_ID_METADATA,
    NONCE_BYTES,
    EncryptionCodec,
    PayloadDecryptionError,
    UnknownEncryptionKeyError,
    main,
    new_key_entry,
    parse_keys,
)
from core.temporal import data_converter

MARKER = b"very-secret-marker"


def entry(key_id: str, key: bytes | None = None) -> str:
    return f"{key_id}:{base64.b64encode(key if key is not None else os.urandom(32)).decode()}"


def plain(data: bytes = b'{"text": "' + MARKER + b'"}') -> Payload:
    return Payload(metadata={"encoding": b"json/plain", "extra": b"kept"}, data=data)


async def test_round_trip_restores_metadata_and_data() -> None:
    codec = EncryptionCodec.from_setting(entry("k1"))
    original = [plain(), plain(b"2"), Payload()]
    encoded = await codec.encode(original)
    assert await codec.decode(encoded) == original


async def test_encrypted_payload_names_its_key_and_hides_the_data() -> None:
    codec = EncryptionCodec.from_setting(f"{entry('new')},{entry('old')}")
    (encoded,) = await codec.encode([plain()])
    assert dict(encoded.metadata) == {"encoding": ENCODING, KEY_ID_METADATA: b"new"}
    assert MARKER not in encoded.SerializeToString()
    assert b"json/plain" not in encoded.data  # the original metadata is sealed too


async def test_nonce_differs_per_payload() -> None:
    codec = EncryptionCodec.from_setting(entry("k1"))
    first, second = await codec.encode([plain(), plain()])
    assert first.data[:NONCE_BYTES] != second.data[:NONCE_BYTES]
    assert first.data != second.data


async def test_rotation_decrypts_payloads_of_the_old_key() -> None:
    old = entry("old")
    (under_old,) = await EncryptionCodec.from_setting(old).encode([plain()])
    rotated = EncryptionCodec.from_setting(f"{entry('new')},{old}")
    assert await rotated.decode([under_old]) == [plain()]
    (under_new,) = await rotated.encode([plain()])
    assert under_new.metadata[KEY_ID_METADATA] == b"new"


async def test_unknown_key_id_is_named_in_the_error() -> None:
    (encoded,) = await EncryptionCodec.from_setting(entry("retired-2024")).encode([plain()])
    codec = EncryptionCodec.from_setting(entry("current"))
    with pytest.raises(UnknownEncryptionKeyError, match="'retired-2024'") as caught:
        await codec.decode([encoded])
    assert caught.value.key_id == "retired-2024"
    assert "current" in str(caught.value)


async def test_another_key_under_the_same_id_does_not_authenticate() -> None:
    (encoded,) = await EncryptionCodec.from_setting(entry("k1")).encode([plain()])
    with pytest.raises(PayloadDecryptionError, match="does not authenticate"):
        await EncryptionCodec.from_setting(entry("k1")).decode([encoded])


async def test_altered_ciphertext_does_not_authenticate() -> None:
    codec = EncryptionCodec.from_setting(entry("k1"))
    (encoded,) = await codec.encode([plain()])
    altered = Payload(metadata=encoded.metadata, data=encoded.data[:-1] + b"\x00")
    with pytest.raises(PayloadDecryptionError, match="altered"):
        await codec.decode([altered])


async def test_encrypted_payload_without_key_id_is_refused() -> None:
    codec = EncryptionCodec.from_setting(entry("k1"))
    with pytest.raises(PayloadDecryptionError, match=KEY_ID_METADATA):
        await codec.decode([Payload(metadata={"encoding": ENCODING}, data=b"x" * 40)])


async def test_plaintext_payloads_pass_through_unchanged() -> None:
    codec = EncryptionCodec.from_setting(entry("k1"))
    payloads = [plain(), Payload(metadata={"encoding": b"binary/null"}), Payload()]
    assert await codec.decode(payloads) == payloads


async def test_data_converter_encrypts_only_with_keys() -> None:
    assert data_converter("").payload_codec is None
    converter = data_converter(entry("k1"))
    assert isinstance(converter.payload_codec, EncryptionCodec)
    (encoded,) = await converter.encode([{"text": MARKER.decode()}])
    assert encoded.metadata["encoding"] == ENCODING
    assert await converter.decode([encoded], [dict]) == [{"text": MARKER.decode()}]


def test_parse_keys_keeps_order_and_ignores_blanks() -> None:
    first, second = os.urandom(32), os.urandom(32)
    keys = parse_keys(f" {entry('b', first)} , ,{entry('a', second)},")
    assert list(keys.items()) == [("b", first), ("a", second)]
    assert parse_keys("") == {}


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ("k1:not*base64", r"entry 1 \('k1'\): the key is not valid base64"),
        (entry("short", os.urandom(16)), r"entry 1 \('short'\): the key is 16 bytes"),
        (f"{entry('k1')},{entry('k1')}", r"entry 2 \('k1'\): the key id is used twice"),
        ("nocolon", "entry 1 is not 'key_id:base64key'"),
        (f"{entry('k1')},:{base64.b64encode(os.urandom(32)).decode()}", "entry 2 is not"),
        (entry("a b"), r"entry 1 \('a b'\): the key id must not contain spaces"),
    ],
    ids=["bad-base64", "wrong-length", "duplicate-id", "no-id", "empty-id", "space-in-id"],
)
def test_invalid_settings_name_the_entry(setting: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_keys(setting)


def test_invalid_setting_never_echoes_key_material() -> None:
    key = base64.b64encode(os.urandom(16)).decode()
    with pytest.raises(ValueError) as caught:
        parse_keys(f"k1:{key}")
    assert key not in str(caught.value)


def test_codec_needs_a_key() -> None:
    with pytest.raises(ValueError, match="ENCRYPTION_KEYS"):
        EncryptionCodec.from_setting(" , ")


def test_new_key_entry_is_a_valid_setting() -> None:
    key_id, _, key = new_key_entry("k2").partition(":")
    assert key_id == "k2"
    assert len(base64.b64decode(key)) == 32
    assert len(parse_keys(new_key_entry())) == 1
    assert new_key_entry("k2") != new_key_entry("k2")


def test_new_key_command_prints_an_entry(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["new-key", "prod-1"]) == 0
    printed = capsys.readouterr().out.strip()
    assert list(parse_keys(printed)) == ["prod-1"]
    assert main(["rotate"]) == 2
    assert "usage" in capsys.readouterr().err
