"""The gateway process's own limits: request deadline and the execute timeout's cap.

A client that trickles its headers or its body is cut off after GATEWAY_HEADER_TIMEOUT,
checked with a raw socket against a real gateway process (`python -m cli gateway`).
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from urllib.parse import urlsplit

import httpx
import pytest

from harness.stack import Stack

HEADER_TIMEOUT = 1.0

sqlite_only = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


@pytest.fixture(scope="module")
def hurried(stack: Stack) -> Iterator[str]:
    url = stack.start_gateway(GATEWAY_HEADER_TIMEOUT=str(HEADER_TIMEOUT), MAX_EXECUTE_TIMEOUT="30")
    gateway = stack.gateways[-1][0]
    yield url
    gateway.terminate()
    gateway.wait(30)


def _connect(url: str) -> socket.socket:
    parts = urlsplit(url)
    connection = socket.create_connection((parts.hostname, parts.port), timeout=10)
    return connection


def _read_until_closed(connection: socket.socket, *, within: float) -> tuple[bytes, float]:
    """Everything the server sends until it closes, and how long that took."""
    started = time.monotonic()
    connection.settimeout(within)
    received = b""
    while True:
        chunk = connection.recv(65536)
        if not chunk:
            return received, time.monotonic() - started
        received += chunk


def _read_response(connection: socket.socket) -> bytes:
    """One whole response with a Content-Length, headers and body."""
    received = b""
    while b"\r\n\r\n" not in received:
        received += connection.recv(65536)
    head, _, body = received.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    while len(body) < length:
        body += connection.recv(65536)
    return head + b"\r\n\r\n" + body


@sqlite_only
def test_a_client_that_trickles_its_headers_is_answered_408_and_cut_off(hurried):
    with _connect(hurried) as connection:
        connection.sendall(b"GET /api/services HTTP/1.1\r\nHost: x\r\n")
        started = time.monotonic()
        try:
            for _ in range(10):
                time.sleep(HEADER_TIMEOUT / 4)
                connection.sendall(b"X-Slow: 1\r\n")
        except OSError:
            pass  # the server already closed the connection
        received, _ = _read_until_closed(connection, within=10)
    assert time.monotonic() - started < HEADER_TIMEOUT + 2
    assert received.startswith(b"HTTP/1.1 408"), received
    assert b"GATEWAY_HEADER_TIMEOUT" in received


@sqlite_only
def test_a_client_that_sends_nothing_is_cut_off(hurried):
    with _connect(hurried) as connection:
        received, took = _read_until_closed(connection, within=10)
    assert took < HEADER_TIMEOUT + 2
    assert received.startswith(b"HTTP/1.1 408"), received


@sqlite_only
def test_a_client_that_trickles_its_body_is_cut_off(hurried):
    with _connect(hurried) as connection:
        connection.sendall(
            b"POST /api/services HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 1000\r\n\r\n{"
        )
        started = time.monotonic()
        try:
            for _ in range(10):
                time.sleep(HEADER_TIMEOUT / 4)
                connection.sendall(b" ")
        except OSError:
            pass
        received, _ = _read_until_closed(connection, within=10)
    assert time.monotonic() - started < HEADER_TIMEOUT + 2
    assert not received.startswith(b"HTTP/1.1 2"), received


@sqlite_only
def test_a_kept_alive_connection_serves_requests_sent_in_time(hurried):
    with _connect(hurried) as connection:
        for _ in range(3):
            connection.sendall(b"GET /api/services HTTP/1.1\r\nHost: x\r\n\r\n")
            answer = _read_response(connection)
            assert answer.startswith(b"HTTP/1.1 200"), answer
            time.sleep(HEADER_TIMEOUT * 1.5)  # idle between requests is no trickle


@sqlite_only
async def test_execute_timeout_over_max_execute_timeout_is_422_naming_the_maximum(hurried):
    async with httpx.AsyncClient(base_url=hurried, timeout=30) as client:
        for path in ("/workflows/some-id/execute", "/services/some-id/actions/run/execute"):
            answer = await client.post(path, params={"timeout": 31}, json={})
            assert answer.status_code == 422, answer.text
            problem = answer.json()["detail"][0]
            assert problem["loc"] == ["query", "timeout"]
            assert "at most 30 seconds" in problem["msg"]
            assert "MAX_EXECUTE_TIMEOUT" in problem["msg"]
            within = await client.post(path, params={"timeout": 30}, json={})
            assert within.status_code == 404, within.text
