"""A minimal HTTP/1.1 keep-alive client, so the load generator is not what is measured.

httpx spends about 1 ms of CPU per request here, and its connection pool gets slower
as requests pile up (about 6 ms per request at 200 concurrent: encode/httpx#3215), so
with 200 executions in flight an httpx load generator would take CPU from the
gateway it measures. This client keeps one idle list of connections per origin and
does no more than write a request and read a Content-Length response.
"""

from __future__ import annotations

import asyncio
import json
from collections import defaultdict
from typing import Any
from urllib.parse import urlsplit

Connection = tuple[asyncio.StreamReader, asyncio.StreamWriter]


class HTTPError(Exception):
    def __init__(self, status: int, body: bytes) -> None:
        super().__init__(f"HTTP {status}: {body[:300]!r}")
        self.status = status
        self.body = body


class RawClient:
    def __init__(self, *, timeout: float = 120.0) -> None:
        self._idle: dict[tuple[str, int], list[Connection]] = defaultdict(list)
        self._timeout = timeout

    async def request(self, method: str, url: str, *, json_body: Any = None) -> tuple[int, bytes]:
        parts = urlsplit(url)
        origin = (parts.hostname or "127.0.0.1", parts.port or 80)
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        body = b"" if json_body is None else json.dumps(json_body).encode()
        head = (
            f"{method} {target} HTTP/1.1\r\nhost: {origin[0]}:{origin[1]}\r\n"
            f"content-type: application/json\r\ncontent-length: {len(body)}\r\n\r\n"
        ).encode()
        idle = self._idle[origin]
        reused = bool(idle)
        connection = idle.pop() if idle else await asyncio.open_connection(*origin)
        try:
            status, content, keep = await asyncio.wait_for(
                self._exchange(connection, head + body), self._timeout
            )
        except (asyncio.IncompleteReadError, ConnectionError) as exc:
            connection[1].close()
            partial = getattr(exc, "partial", b"")
            if not reused or partial:
                raise
            # The server closed this idle keep-alive connection (uvicorn does after 5 s)
            # before reading the request: send it again on a new connection.
            connection = await asyncio.open_connection(*origin)
            try:
                status, content, keep = await asyncio.wait_for(
                    self._exchange(connection, head + body), self._timeout
                )
            except BaseException:
                connection[1].close()
                raise
        except BaseException:
            connection[1].close()
            raise
        if keep:
            idle.append(connection)
        else:
            connection[1].close()
        return status, content

    async def _exchange(self, connection: Connection, data: bytes) -> tuple[int, bytes, bool]:
        reader, writer = connection
        writer.write(data)
        await writer.drain()
        head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
        status = int(head[0].split(" ", 2)[1])
        headers = {}
        for line in head[1:]:
            name, _, value = line.partition(":")
            if name:
                headers[name.strip().lower()] = value.strip()
        if headers.get("transfer-encoding", "").lower() == "chunked":
            content = bytearray()
            while True:
                size = int((await reader.readuntil(b"\r\n")).strip(), 16)
                if size == 0:
                    await reader.readuntil(b"\r\n")
                    break
                content += await reader.readexactly(size)
                await reader.readexactly(2)
            body = bytes(content)
        else:
            body = await reader.readexactly(int(headers.get("content-length", "0")))
        return status, body, headers.get("connection", "").lower() != "close"

    async def json(self, method: str, url: str, *, json_body: Any = None) -> Any:
        """The decoded JSON answer; HTTPError for a status of 400 or more."""
        status, body = await self.request(method, url, json_body=json_body)
        if status >= 400:
            raise HTTPError(status, body)
        return json.loads(body) if body else None

    def close(self) -> None:
        for connections in self._idle.values():
            for _, writer in connections:
                writer.close()
        self._idle.clear()
