"""/api/codec: a Temporal codec server, so the web UI and the CLI can show payloads.

With ENCRYPTION_KEYS set, Temporal holds only ciphertext (core/codec.py). Point the
Temporal web UI's "Codec Server" setting (or `temporal ... --codec-endpoint`) at
`http://<gateway>/api/codec`: they POST `{"payloads": [...]}` (Payloads in protobuf JSON)
to `/decode` and `/encode`, with the namespace in `X-Namespace`, and show what comes back.

Who may call it:
    - with API_KEYS set, only a caller with `Authorization: Bearer <key>` (in the UI,
      "Pass the user access token", or a proxy that adds the header);
    - from a browser, only pages of CODEC_CORS_ORIGINS (comma-separated origins, by
      default the local Temporal UI on port 8233): the answers and the OPTIONS preflight
      carry the CORS headers for those origins only;
    - only for the gateway's own TEMPORAL_NAMESPACE.

Without ENCRYPTION_KEYS every call answers 404: there is nothing to decode.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Coroutine
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Header, HTTPException, Request, Response
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from google.protobuf import json_format
from pydantic import BaseModel, ConfigDict, Field
from temporalio.api.common.v1 import Payloads

from core.codec import EncryptionCodec, PayloadDecryptionError
from gateway.deps import require_api_key
from gateway.errors import ErrorBody, error_responses

DEFAULT_CORS_ORIGINS = "http://127.0.0.1:8233,http://localhost:8233"
ALLOWED_HEADERS = "authorization, content-type, x-namespace"
ALLOWED_METHODS = "POST, OPTIONS"
PREFLIGHT_MAX_AGE_SECONDS = "600"


class PayloadJson(BaseModel):
    """One Payload in protobuf JSON: metadata values and data are base64."""

    model_config = ConfigDict(extra="allow")

    metadata: dict[str, str] = Field(default_factory=dict)
    data: str = ""


class CodecPayloads(BaseModel):
    """A Payloads message in protobuf JSON, as the Temporal UI and CLI send it."""

    model_config = ConfigDict(extra="allow")

    payloads: list[PayloadJson] = Field(default_factory=list)


def _allowed_origins(request: Request) -> frozenset[str]:
    setting = getattr(request.app.state.settings, "codec_cors_origins", DEFAULT_CORS_ORIGINS)
    return frozenset(origin.strip().rstrip("/") for origin in setting.split(",") if origin.strip())


def _cors_headers(request: Request) -> dict[str, str]:
    """The CORS headers for the request's Origin: none for an origin not allowed."""
    origin = request.headers.get("origin")
    if origin is None:
        return {}
    allowed = _allowed_origins(request)
    if "*" in allowed:
        return {"Access-Control-Allow-Origin": "*"}
    if origin not in allowed:
        return {"Vary": "Origin"}
    # The UI may send cookies or the user's token ("include credentials"), which a
    # browser only allows with an explicit origin and Allow-Credentials.
    return {
        "Access-Control-Allow-Origin": origin,
        "Access-Control-Allow-Credentials": "true",
        "Vary": "Origin",
    }


class _CorsRoute(APIRoute):
    """Adds the CORS headers to every answer of the route, errors (401, 404, 400) too,
    so the browser lets the UI read why a call was refused."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def with_cors(request: Request) -> Response:
            headers = _cors_headers(request)
            try:
                response = await handler(request)
            except HTTPException as exc:
                raise HTTPException(
                    exc.status_code, exc.detail, headers={**(exc.headers or {}), **headers}
                ) from exc
            response.headers.update(headers)
            return response

        return with_cors


router = APIRouter(prefix="/codec", tags=["codec"], route_class=_CorsRoute)


@functools.lru_cache(maxsize=4)
def _codec_of(setting: str) -> EncryptionCodec:
    return EncryptionCodec.from_setting(setting)


def get_codec(request: Request) -> EncryptionCodec:
    """The gateway's codec.

    Raises:
        HTTPException: 404, payload encryption is off (ENCRYPTION_KEYS is empty).
    """
    setting: str = getattr(request.app.state.settings, "encryption_keys", "")
    if not setting.strip():
        raise HTTPException(
            status_code=404,
            detail="payload encryption is off on this gateway (ENCRYPTION_KEYS is empty): "
            "payloads are stored in plaintext and need no codec server",
        )
    return _codec_of(setting)


def check_namespace(
    request: Request,
    namespace: Annotated[
        str | None,
        Header(
            alias="X-Namespace",
            description="the namespace of the payloads; only the gateway's own is served",
        ),
    ] = None,
) -> None:
    """Raises a 400 for a namespace other than the gateway's TEMPORAL_NAMESPACE."""
    served = request.app.state.settings.temporal_namespace
    if namespace is not None and namespace != served:
        raise HTTPException(
            status_code=400,
            detail=f"this codec server serves namespace {served!r} only, not {namespace!r}; "
            "use the gateway of that namespace",
        )


CodecDep = Annotated[EncryptionCodec, Depends(get_codec)]
_CODEC_OPERATION: dict[str, Any] = {
    "response_model": CodecPayloads,
    "dependencies": [Depends(require_api_key), Depends(check_namespace)],
    "openapi_extra": {
        "requestBody": {
            "required": True,
            # CodecPayloads is in the components through response_model.
            "content": {
                "application/json": {"schema": {"$ref": "#/components/schemas/CodecPayloads"}}
            },
        }
    },
    "responses": {
        **error_responses(401, 413),
        400: {
            "model": ErrorBody,
            "description": "not Payloads in protobuf JSON, a payload that cannot be "
            "decrypted (unknown key id, altered or truncated data), or another namespace",
        },
        404: {"model": ErrorBody, "description": "payload encryption is off (no ENCRYPTION_KEYS)"},
    },
}


async def _payloads(request: Request) -> Payloads:
    """The request body as Payloads; a 400 for anything else."""
    body = await request.body()
    try:
        return json_format.Parse(body, Payloads())
    except (json_format.ParseError, RecursionError, UnicodeDecodeError) as exc:
        raise HTTPException(
            status_code=400,
            detail=f'the body is not {{"payloads": [...]}} in protobuf JSON: {exc}'[:500],
        ) from exc


def _answer(payloads: Payloads) -> JSONResponse:
    body = json_format.MessageToDict(payloads)
    body.setdefault("payloads", [])
    return JSONResponse(body)


async def _convert(
    request: Request, codec: EncryptionCodec, operation: Literal["encode", "decode"]
) -> JSONResponse:
    payloads = await _payloads(request)
    if operation == "encode":
        return _answer(Payloads(payloads=await codec.encode(payloads.payloads)))
    converted = []
    for index, payload in enumerate(payloads.payloads):
        # Every malformed encrypted payload (too short, altered, another key, no payload
        # inside) is a PayloadDecryptionError: the caller's mistake, answered 400.
        try:
            converted.append(codec.decrypt(payload))
        except PayloadDecryptionError as exc:
            raise HTTPException(status_code=400, detail=f"payloads[{index}]: {exc}") from exc
    return _answer(Payloads(payloads=converted))


@router.post("/decode", **_CODEC_OPERATION)
async def decode(request: Request, codec: CodecDep) -> JSONResponse:
    """Decrypt payloads; payloads that are not encrypted come back as they are."""
    return await _convert(request, codec, "decode")


@router.post("/encode", **_CODEC_OPERATION)
async def encode(request: Request, codec: CodecDep) -> JSONResponse:
    """Encrypt payloads with the gateway's current (first) key."""
    return await _convert(request, codec, "encode")


@router.options("/decode", include_in_schema=False)
@router.options("/encode", include_in_schema=False)
async def preflight(request: Request) -> Response:
    """The CORS preflight of a browser: allowed for the CODEC_CORS_ORIGINS only."""
    origin = request.headers.get("origin")
    if origin is not None and "Access-Control-Allow-Origin" not in _cors_headers(request):
        raise HTTPException(
            status_code=403,
            detail=f"origin {origin!r} may not call the codec endpoint; "
            "add it to CODEC_CORS_ORIGINS",
        )
    return Response(
        status_code=204,
        headers={
            "Access-Control-Allow-Methods": ALLOWED_METHODS,
            "Access-Control-Allow-Headers": ALLOWED_HEADERS,
            "Access-Control-Max-Age": PREFLIGHT_MAX_AGE_SECONDS,
        },
    )
