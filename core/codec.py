"""Payload encryption: every payload Temporal stores is sealed with AES-256-GCM.

Temporal keeps workflow inputs, activity inputs and results, memos and signals in its
history; with ENCRYPTION_KEYS set, the gateway and the worker hand it only ciphertext,
and read it back through the same codec. The Temporal web UI and the `temporal` CLI read
it through the gateway's codec endpoint (gateway/routes/codec.py).

ENCRYPTION_KEYS is a comma-separated list of `key_id:base64(32 bytes)`. The first key
encrypts; every key decrypts. To rotate, put a new key first and keep the old ones until
no history (running executions, retained closed ones, recorded replay histories) needs
them. `python -m core.codec new-key [ID]` prints a fresh entry.

An encrypted payload has the metadata `encoding: binary/encrypted` and
`encryption-key-id: <id>`; its data is a 12-byte random nonce followed by the AES-GCM
ciphertext (with its tag) of the original payload, serialized whole (metadata and data).
A payload without that encoding decodes to itself, so histories recorded before
encryption was turned on still read and replay.
"""

from __future__ import annotations

import base64
import binascii
import os
import sys
import time
from collections.abc import Mapping, Sequence

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from google.protobuf.message import DecodeError
from temporalio.api.common.v1 import Payload
from temporalio.converter import PayloadCodec

ENCODING = b"binary/encrypted"
"""The `encoding` metadata of an encrypted payload."""
KEY_ID_METADATA = "encryption-key-id"
"""The metadata entry naming the key a payload was encrypted with."""
KEY_BYTES = 32
NONCE_BYTES = 12
TAG_BYTES = 16
"""The AES-GCM tag at the end of the ciphertext: an encrypted payload's data is at least
NONCE_BYTES + TAG_BYTES long (the encryption of an empty payload)."""


class PayloadDecryptionError(ValueError):
    """An encrypted payload could not be decrypted with the configured keys."""


class UnknownEncryptionKeyError(PayloadDecryptionError):
    """A payload names a key id that is not in ENCRYPTION_KEYS.

    Attributes:
        key_id: the id the payload names.
        known: the ids configured.
    """

    def __init__(self, key_id: str, known: Sequence[str]) -> None:
        self.key_id = key_id
        self.known = tuple(known)
        super().__init__(
            f"payload is encrypted with key id {key_id!r}, which is not in ENCRYPTION_KEYS "
            f"(configured ids: {', '.join(self.known) or 'none'}); add that key back "
            "after the current first key"
        )


def parse_keys(setting: str) -> dict[str, bytes]:
    """The keys of an ENCRYPTION_KEYS setting, in order (the first one encrypts).

    Args:
        setting: comma-separated `key_id:base64(32 bytes)` entries; blanks around
            entries are ignored.

    Returns:
        key id -> 32-byte key, in the order given; empty for an empty setting.

    Raises:
        ValueError: an entry has no id, is not valid base64, does not decode to 32
            bytes, or repeats an id. The message names the entry (by its id, never
            the key material).
    """
    keys: dict[str, bytes] = {}
    for position, raw in enumerate(setting.split(","), start=1):
        entry = raw.strip()
        if not entry:
            continue
        key_id, separator, encoded = entry.partition(":")
        key_id = key_id.strip()
        where = f"ENCRYPTION_KEYS entry {position} ({key_id!r})"
        if not separator or not key_id:
            raise ValueError(
                f"ENCRYPTION_KEYS entry {position} is not 'key_id:base64key'; "
                "make one with `python -m core.codec new-key`"
            )
        if any(c.isspace() for c in key_id):
            raise ValueError(f"{where}: the key id must not contain spaces")
        try:
            key = base64.b64decode(encoded.strip(), validate=True)
        except (binascii.Error, ValueError) as exc:
            raise ValueError(
                f"{where}: the key is not valid base64; "
                "make one with `python -m core.codec new-key`"
            ) from exc
        if len(key) != KEY_BYTES:
            raise ValueError(
                f"{where}: the key is {len(key)} bytes, AES-256 needs {KEY_BYTES}; "
                "make one with `python -m core.codec new-key`"
            )
        if key_id in keys:
            raise ValueError(f"{where}: the key id is used twice; give every key its own id")
        keys[key_id] = key
    return keys


def new_key_entry(key_id: str | None = None) -> str:
    """A fresh ENCRYPTION_KEYS entry `key_id:base64(32 random bytes)`.

    Args:
        key_id: the id; by default `k` and today's date (`k20250131`).
    """
    key = base64.b64encode(os.urandom(KEY_BYTES)).decode()
    entry = f"{key_id or time.strftime('k%Y%m%d')}:{key}"
    parse_keys(entry)  # refuses an id the setting would refuse
    return entry


class EncryptionCodec(PayloadCodec):
    """Encrypts every payload with the first key; decrypts with the key a payload names."""

    def __init__(self, keys: Mapping[str, bytes]) -> None:
        """
        Args:
            keys: key id -> 32-byte key, the encrypting key first (see `parse_keys`).

        Raises:
            ValueError: no keys, or a key that is not 32 bytes.
        """
        if not keys:
            raise ValueError("EncryptionCodec needs at least one key; set ENCRYPTION_KEYS")
        bad = [key_id for key_id, key in keys.items() if len(key) != KEY_BYTES]
        if bad:
            raise ValueError(f"keys {bad} are not {KEY_BYTES} bytes long")
        self._ciphers = {key_id: AESGCM(key) for key_id, key in keys.items()}
        self.encrypting_key_id = next(iter(keys))
        self._encrypting_key_id_bytes = self.encrypting_key_id.encode()

    @classmethod
    def from_setting(cls, setting: str) -> EncryptionCodec:
        """The codec of an ENCRYPTION_KEYS setting.

        Raises:
            ValueError: the setting is empty or invalid (see `parse_keys`).
        """
        return cls(parse_keys(setting))

    @property
    def key_ids(self) -> tuple[str, ...]:
        return tuple(self._ciphers)

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self.encrypt(payload) for payload in payloads]

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self.decrypt(payload) for payload in payloads]

    def encrypt(self, payload: Payload) -> Payload:
        """`payload`, whole, sealed under the first key with a fresh random nonce."""
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._ciphers[self.encrypting_key_id].encrypt(
            nonce, payload.SerializeToString(), None
        )
        return Payload(
            metadata={"encoding": ENCODING, KEY_ID_METADATA: self._encrypting_key_id_bytes},
            data=nonce + sealed,
        )

    def decrypt(self, payload: Payload) -> Payload:
        """The original of an encrypted payload; any other payload as it is.

        Raises:
            UnknownEncryptionKeyError: the payload names a key id not configured.
            PayloadDecryptionError: the payload names no key id, its data is too short
                to hold a nonce and a tag, it does not authenticate under the key of its
                id (another key under the same id, or altered data), or what it holds is
                no payload.
        """
        if payload.metadata.get("encoding") != ENCODING:
            return payload
        raw_id = payload.metadata.get(KEY_ID_METADATA)
        if raw_id is None:
            raise PayloadDecryptionError(
                f"encrypted payload has no {KEY_ID_METADATA!r} metadata; it was not written "
                "by this codec"
            )
        key_id = raw_id.decode(errors="replace")
        cipher = self._ciphers.get(key_id)
        if cipher is None:
            raise UnknownEncryptionKeyError(key_id, self.key_ids)
        data = payload.data
        if len(data) < NONCE_BYTES + TAG_BYTES:
            # AESGCM raises a bare ValueError on a nonce under 8 bytes: refused here first.
            raise PayloadDecryptionError(
                f"payload encrypted with key id {key_id!r} has {len(data)} bytes of data, "
                f"fewer than the {NONCE_BYTES + TAG_BYTES} every encrypted payload holds "
                f"(a {NONCE_BYTES}-byte nonce and a {TAG_BYTES}-byte tag): it was cut short "
                "or not written by this codec"
            )
        try:
            plain = cipher.decrypt(data[:NONCE_BYTES], data[NONCE_BYTES:], None)
        except InvalidTag as exc:
            raise PayloadDecryptionError(
                f"payload encrypted with key id {key_id!r} does not authenticate: the key "
                "configured under that id is not the one it was encrypted with, or the "
                "payload was altered"
            ) from exc
        original = Payload()
        try:
            original.ParseFromString(plain)
        except DecodeError as exc:
            raise PayloadDecryptionError(
                f"payload encrypted with key id {key_id!r} authenticates but holds no "
                "serialized payload: it was encrypted by something other than this codec "
                "with the same key"
            ) from exc
        return original


def main(argv: Sequence[str]) -> int:
    """`python -m core.codec new-key [ID]`: print a fresh ENCRYPTION_KEYS entry."""
    if not argv or argv[0] != "new-key" or len(argv) > 2:
        print("usage: python -m core.codec new-key [ID]", file=sys.stderr)
        return 2
    try:
        print(new_key_entry(argv[1] if len(argv) == 2 else None))
    except ValueError as exc:
        print(exc, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
