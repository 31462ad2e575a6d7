"""The HTTP server's own limits: how long a client may take to send a request.

uvicorn bounds idle keep-alive connections (`timeout_keep_alive`) and requests in
flight (`limit_concurrency`), but not the time a client takes to send one request: a
client that trickles its headers or its body holds a connection (and, for a body, a
request in flight) for as long as it likes. `guarded_h11` is uvicorn's h11 protocol
with a deadline per request: from the connection (or the request's first byte) to its
last byte, GATEWAY_HEADER_TIMEOUT seconds. A request whose headers are not in by then
is answered 408 and the connection closed; one whose body is not, is cut off (the app
sees the client leave).
"""

from __future__ import annotations

import asyncio
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

_RECEIVED = (h11.DONE, h11.MUST_CLOSE, h11.CLOSED, h11.ERROR, h11.SWITCHED_PROTOCOL)
"""Client states in which nothing more of the current request is awaited."""

_TIMED_OUT = (
    b'{"detail":"the request was not received in time; send the headers and the body '
    b'without pausing (GATEWAY_HEADER_TIMEOUT)"}'
)


class GuardedH11Protocol(H11Protocol):
    """H11Protocol that closes a connection whose request is not in within `header_timeout`."""

    header_timeout: float = 10.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._request_deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._request_deadline is None and self.conn.their_state is h11.IDLE:
            self._arm()  # the first byte of the next request on a kept-alive connection
        super().data_received(data)
        if self.conn.their_state in _RECEIVED:
            self._disarm()

    def _arm(self) -> None:
        self._disarm()
        self._request_deadline = self.loop.call_later(self.header_timeout, self._expired)

    def _disarm(self) -> None:
        if self._request_deadline is not None:
            self._request_deadline.cancel()
            self._request_deadline = None

    def _expired(self) -> None:
        self._request_deadline = None
        if self.transport.is_closing() or self.conn.their_state in _RECEIVED:
            return
        if self.conn.their_state is h11.IDLE and self.conn.our_state is h11.IDLE:
            # The headers never completed: no app saw this request, so answer it here.
            try:
                for event in (
                    h11.Response(
                        status_code=408,
                        headers=[
                            (b"content-type", b"application/json"),
                            (b"connection", b"close"),
                        ],
                    ),
                    h11.Data(data=_TIMED_OUT),
                    h11.EndOfMessage(),
                ):
                    self.transport.write(self.conn.send(event) or b"")
            except h11.LocalProtocolError:
                pass
        self.transport.close()


def guarded_h11(header_timeout: float) -> type[GuardedH11Protocol]:
    """The protocol class to hand uvicorn (`http=`), with its request deadline."""
    return type("GuardedH11", (GuardedH11Protocol,), {"header_timeout": header_timeout})
