"""Connecting to Temporal the same way from the gateway, the worker, tests and benchmarks."""

from __future__ import annotations

import dataclasses
import logging

from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import (
    AddSearchAttributesRequest,
    ListSearchAttributesRequest,
)
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.converter import DataConverter, DefaultFailureConverterWithEncodedAttributes
from temporalio.service import RPCError, RPCStatusCode

from core.codec import EncryptionCodec
from definitions.contract import TEST_RUN_KEY, WORKFLOW_ID_KEY, WORKFLOW_VERSION_KEY

log = logging.getLogger(__name__)

SEARCH_ATTRIBUTES = {
    WORKFLOW_ID_KEY.name: IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD,
    WORKFLOW_VERSION_KEY.name: IndexedValueType.INDEXED_VALUE_TYPE_INT,
    TEST_RUN_KEY.name: IndexedValueType.INDEXED_VALUE_TYPE_BOOL,
}


def data_converter(encryption_keys: str = "") -> DataConverter:
    """The converter of every client: pydantic models, encrypted when keys are given.

    Args:
        encryption_keys: the ENCRYPTION_KEYS setting (core/codec.py); empty leaves
            payloads in plaintext.

    Raises:
        ValueError: `encryption_keys` is not a valid ENCRYPTION_KEYS setting.
    """
    if not encryption_keys.strip():
        return pydantic_data_converter
    return dataclasses.replace(
        pydantic_data_converter,
        payload_codec=EncryptionCodec.from_setting(encryption_keys),
        # Failure messages and stack traces go into an encoded payload too, so an error
        # that quotes an input does not leave it in plaintext in the history.
        failure_converter_class=DefaultFailureConverterWithEncodedAttributes,
    )


async def connect(
    address: str,
    namespace: str,
    *,
    lazy: bool = False,
    tls: bool = False,
    api_key: str | None = None,
    encryption_keys: str = "",
) -> Client:
    """A Temporal client that converts the project's pydantic models.

    Args:
        lazy: connect on first use, so a process can start while Temporal is down.
        tls: use TLS (implied by an API key).
        api_key: API key of Temporal Cloud or of a secured cluster.
        encryption_keys: the ENCRYPTION_KEYS setting; when set, every payload the
            client writes is encrypted, and encrypted payloads it reads are decrypted.

    Raises:
        ValueError: `encryption_keys` is not a valid ENCRYPTION_KEYS setting.
    """
    return await Client.connect(
        address,
        namespace=namespace,
        data_converter=data_converter(encryption_keys),
        lazy=lazy,
        tls=tls or bool(api_key),
        api_key=api_key or None,
    )


async def ensure_search_attributes(client: Client) -> None:
    """Register the project's search attributes in the client's namespace, once.

    Safe to call from every process at start-up: already registered attributes are
    left as they are.
    """
    existing = await client.operator_service.list_search_attributes(
        ListSearchAttributesRequest(namespace=client.namespace)
    )
    missing = {
        name: kind
        for name, kind in SEARCH_ATTRIBUTES.items()
        if name not in existing.custom_attributes
    }
    if not missing:
        return
    try:
        await client.operator_service.add_search_attributes(
            AddSearchAttributesRequest(search_attributes=missing, namespace=client.namespace)
        )
        log.info("registered search attributes %s", sorted(missing))
    except RPCError as exc:
        if exc.status != RPCStatusCode.ALREADY_EXISTS:
            raise
