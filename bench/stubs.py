"""Stub HTTP services on loopback: the three services every benchmarked workflow calls.

A bare asyncio HTTP/1.1 server (keep-alive, Content-Length bodies, JSON answers), so
the floor (a) measures the network path and not a web framework. Each service listens
on its own port, as separate services would:

    extract    POST /extract    {"document_url"}      -> {"text"}
    analyze    POST /analyze    {"text"}              -> {"sentiment", "score"}
    summarize  POST /summarize  {"text", "sentiment"} -> {"summary"}

Run: `python -m bench.stubs PORT_EXTRACT PORT_ANALYZE PORT_SUMMARIZE`; it prints
`ready` when all three listen.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Callable
from typing import Any

SERVICES = ("extract", "analyze", "summarize")
TEXT = "The new release is excellent. Setup was easy and the team is happy."


def _extract(body: dict[str, Any]) -> dict[str, Any]:
    return {"text": TEXT, "source": body.get("document_url", "")}


def _analyze(body: dict[str, Any]) -> dict[str, Any]:
    text = str(body.get("text", ""))
    return {"sentiment": "positive" if "excellent" in text else "neutral", "score": 0.8}


def _summarize(body: dict[str, Any]) -> dict[str, Any]:
    return {"summary": f"{body.get('sentiment', '?')}: {str(body.get('text', ''))[:24]}"}


HANDLERS: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "/extract": _extract,
    "/analyze": _analyze,
    "/summarize": _summarize,
}


def _response(status: int, payload: dict[str, Any]) -> bytes:
    body = json.dumps(payload, separators=(",", ":")).encode()
    reason = {200: "OK", 404: "Not Found", 400: "Bad Request"}.get(status, "Error")
    head = (
        f"HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


async def _serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while True:
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
                return
            lines = head.decode("latin-1").split("\r\n")
            method, target, _ = (lines[0].split(" ") + ["", ""])[:3]
            length = 0
            for line in lines[1:]:
                name, _, value = line.partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value.strip() or 0)
            raw = await reader.readexactly(length) if length else b""
            path = target.split("?", 1)[0]
            handler = HANDLERS.get(path)
            if path == "/health":
                writer.write(_response(200, {"status": "ok"}))
            elif handler is None:
                writer.write(_response(404, {"detail": f"no route {method} {path}"}))
            else:
                try:
                    body = json.loads(raw) if raw else {}
                except ValueError:
                    writer.write(_response(400, {"detail": "body is not JSON"}))
                else:
                    writer.write(_response(200, handler(body)))
            await writer.drain()
    finally:
        writer.close()


async def serve(ports: list[int], *, host: str = "127.0.0.1") -> None:
    servers = [await asyncio.start_server(_serve, host, port, backlog=1024) for port in ports]
    print("ready", flush=True)
    await asyncio.gather(*(s.serve_forever() for s in servers))


def main() -> None:
    ports = [int(p) for p in sys.argv[1:]]
    if len(ports) != len(SERVICES):
        raise SystemExit(
            f"usage: python -m bench.stubs {' '.join(p.upper() + '_PORT' for p in SERVICES)}"
        )
    try:
        asyncio.run(serve(ports))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
