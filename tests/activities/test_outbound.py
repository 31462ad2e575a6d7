"""The outbound policy's decisions, without sending anything.

Names resolve through a fake `core.outbound.resolve_addresses` (only `localhost` goes to
the real resolver); `resolve_checked` only resolves and decides, it never connects.
The real-connection side (nothing reaches a refused server, DNS rebinding) is in
test_http_step.py.
"""

from __future__ import annotations

import ipaddress

import pytest

from core import outbound
from core.outbound import (
    CheckedTarget,
    OutboundLookupError,
    OutboundPolicy,
    OutboundRefusedError,
    address_refusal,
    resolve_checked,
)

PUBLIC = "93.184.216.34"
"""A public address: only ever a fake resolver's answer here."""


def resolve_to(monkeypatch: pytest.MonkeyPatch, *addresses: str) -> list[str]:
    """Make every name resolve to `addresses`; returns the names looked up."""
    looked_up: list[str] = []

    async def resolve(host: str, port: int) -> list[str]:
        looked_up.append(host)
        return list(addresses)

    monkeypatch.setattr(outbound, "resolve_addresses", resolve)
    return looked_up


async def refused(url: str, policy: OutboundPolicy | None = None) -> OutboundRefusedError:
    with pytest.raises(OutboundRefusedError) as raised:
        await resolve_checked(url, policy or OutboundPolicy())
    return raised.value


# --- the default policy ----------------------------------------------------------------

INTERNAL = [
    ("http://127.0.0.1:8006/", "loopback"),
    ("http://127.1.2.3/", "loopback"),
    ("http://[::1]/", "loopback"),
    ("http://10.1.2.3/", "private"),
    ("http://172.16.0.1/", "private"),
    ("http://172.31.255.254/", "private"),
    ("http://192.168.1.1/", "private"),
    ("http://169.254.169.254/latest/meta-data/", "link-local"),
    ("http://[fe80::1]/", "link-local"),
    ("http://[fc00::1]/", "private"),
    ("http://[fd12:3456::1]/", "private"),
    ("http://0.0.0.0/", "unspecified"),
    ("http://[::]/", "unspecified"),
    ("http://224.0.0.1/", "multicast"),
    ("http://[ff02::1]/", "multicast"),
    ("http://100.64.0.1/", "non-global"),
    ("http://240.0.0.1/", "reserved"),
    ("http://192.0.2.1/", "private"),
    ("http://[::ffff:127.0.0.1]/", "loopback address 127.0.0.1"),
    ("http://[::ffff:10.0.0.1]/", "private address 10.0.0.1"),
    ("http://[::127.0.0.1]/", "loopback address 127.0.0.1"),
    ("http://[::169.254.169.254]/", "link-local address 169.254.169.254"),
    ("http://[64:ff9b::7f00:1]/", "loopback address 127.0.0.1"),
    ("http://[2002:7f00:1::1]/", "loopback address 127.0.0.1"),
    ("http://[2002:a9fe:a9fe::1]/", "link-local address 169.254.169.254"),
]


@pytest.mark.parametrize(("url", "reason"), INTERNAL)
async def test_default_policy_refuses_internal_addresses(url: str, reason: str) -> None:
    error = await refused(url)
    assert reason in error.reason
    assert "ALLOWED_HOSTS" in str(error)


@pytest.mark.parametrize(("url", "reason"), INTERNAL)
def test_refusal_names_internal_addresses_without_connecting(url: str, reason: str) -> None:
    message = OutboundPolicy().refusal(url)
    assert message is not None and reason in message


async def test_refusal_message_names_host_address_and_setting() -> None:
    error = await refused("http://127.0.0.1:8006/x")
    assert (error.host, error.address, error.reason) == (
        "127.0.0.1",
        "127.0.0.1",
        "loopback address",
    )
    assert "add '127.0.0.1:8006' (or its network) to ALLOWED_HOSTS" in str(error)


async def test_localhost_is_refused() -> None:
    error = await refused("http://localhost:8006/")
    assert error.host == "localhost"
    assert ipaddress.ip_address(error.address).is_loopback
    assert "add 'localhost'" in str(error)


async def test_a_name_resolving_to_loopback_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    looked_up = resolve_to(monkeypatch, "127.0.0.1")
    error = await refused("https://totally-public.example/api")
    assert (error.host, error.address) == ("totally-public.example", "127.0.0.1")
    assert "totally-public.example (resolved to 127.0.0.1): loopback address" in str(error)
    assert looked_up == ["totally-public.example"]


async def test_every_resolved_address_is_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    resolve_to(monkeypatch, PUBLIC, "2606:4700::1", "10.0.0.7")
    error = await refused("http://mixed.example/")
    assert error.address == "10.0.0.7"


async def test_a_name_resolving_to_an_ipv4_mapped_internal_address_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    resolve_to(monkeypatch, "::ffff:169.254.169.254")
    error = await refused("http://metadata.example/")
    assert "169.254.169.254" in error.reason


async def test_other_schemes_are_refused() -> None:
    error = await refused("file:///etc/passwd")
    assert "not http or https" in error.reason


async def test_unresolvable_name_is_a_lookup_error(monkeypatch: pytest.MonkeyPatch) -> None:
    async def fail(host: str, port: int) -> list[str]:
        raise OSError("Name or service not known")

    monkeypatch.setattr(outbound, "resolve_addresses", fail)
    with pytest.raises(OutboundLookupError, match="could not resolve nowhere.example"):
        await resolve_checked("http://nowhere.example/", OutboundPolicy())


# --- public addresses (decisions only: nothing is sent) --------------------------------


@pytest.mark.parametrize(
    "address",
    [
        PUBLIC,
        "8.8.8.8",
        "1.1.1.1",
        "2606:4700:4700::1111",
        "::ffff:8.8.8.8",
        "64:ff9b::808:808",
        "2002:808:808::1",
    ],
)
def test_public_addresses_are_allowed(address: str) -> None:
    assert address_refusal(ipaddress.ip_address(address)) is None
    assert OutboundPolicy().decision("api.example", 443, ipaddress.ip_address(address)) is None


async def test_a_public_name_resolves_to_a_checked_target(monkeypatch: pytest.MonkeyPatch) -> None:
    resolve_to(monkeypatch, PUBLIC)
    target = await resolve_checked("https://API.example:8443/v1?x=1", OutboundPolicy())
    assert isinstance(target, CheckedTarget)
    assert str(target.url) == f"https://{PUBLIC}:8443/v1?x=1"
    assert (target.host, target.port, target.address) == ("api.example", 8443, PUBLIC)
    assert target.headers == {"Host": "api.example:8443"}
    assert target.extensions == {"sni_hostname": "api.example"}


async def test_plain_http_target_has_no_tls_server_name(monkeypatch: pytest.MonkeyPatch) -> None:
    resolve_to(monkeypatch, "2606:4700::1")
    target = await resolve_checked("http://api.example/", OutboundPolicy())
    assert str(target.url) == "http://[2606:4700::1]/"
    assert target.headers == {"Host": "api.example"}
    assert target.extensions == {}


# --- ALLOWED_HOSTS ---------------------------------------------------------------------


async def test_allowed_host_name_matches_any_port(monkeypatch: pytest.MonkeyPatch) -> None:
    resolve_to(monkeypatch, "10.0.0.5")
    policy = OutboundPolicy(allowed_hosts="billing.internal, other.internal")
    for url in ("http://billing.internal/", "http://BILLING.internal:9000/x"):
        target = await resolve_checked(url, policy)
        assert target.address == "10.0.0.5"
    await refused("http://unlisted.internal/", policy)


async def test_allowed_host_and_port_matches_that_port_only(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    resolve_to(monkeypatch, "10.0.0.5")
    policy = OutboundPolicy(allowed_hosts="billing.internal:8080")
    assert (await resolve_checked("http://billing.internal:8080/", policy)).port == 8080
    await refused("http://billing.internal:8081/", policy)
    await refused("http://billing.internal/", policy)


async def test_allowed_address_and_port() -> None:
    policy = OutboundPolicy(allowed_hosts="127.0.0.1:8006,[::1]:8007")
    assert (await resolve_checked("http://127.0.0.1:8006/", policy)).address == "127.0.0.1"
    assert (await resolve_checked("http://[::1]:8007/", policy)).address == "::1"
    await refused("http://127.0.0.1:8007/", policy)
    await refused("http://[::1]:8006/", policy)


async def test_allowed_cidr_matches_resolved_addresses_inside_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    resolve_to(monkeypatch, "10.20.30.40")
    policy = OutboundPolicy(allowed_hosts="10.20.0.0/16,fd00::/8")
    assert (await resolve_checked("http://any-name.internal/", policy)).address == "10.20.30.40"
    assert (await resolve_checked("http://10.20.1.1:81/", policy)).port == 81
    assert (await resolve_checked("http://[fd00::9]/", policy)).address == "fd00::9"
    error = await refused("http://10.21.0.1/", policy)
    assert error.reason == "private address"


async def test_allowed_ip_matches_that_address_on_any_port() -> None:
    policy = OutboundPolicy(allowed_hosts="127.0.0.1")
    assert (await resolve_checked("http://127.0.0.1:1234/", policy)).port == 1234
    await refused("http://127.0.0.2/", policy)


async def test_star_turns_the_policy_off(monkeypatch: pytest.MonkeyPatch) -> None:
    resolve_to(monkeypatch, "169.254.169.254")
    policy = OutboundPolicy(allowed_hosts="*")
    assert (await resolve_checked("http://127.0.0.1/", policy)).address == "127.0.0.1"
    assert (await resolve_checked("http://meta.internal/", policy)).address == "169.254.169.254"
    assert policy.refusal("http://10.0.0.1/") is None


async def test_an_allowed_name_does_not_open_other_names_on_its_address(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    resolve_to(monkeypatch, "10.0.0.5")
    policy = OutboundPolicy(allowed_hosts="billing.internal")
    await refused("http://evil.example/", policy)


def test_empty_allowed_hosts_is_the_default_policy() -> None:
    for setting in ("", " , ", ","):
        assert OutboundPolicy(allowed_hosts=setting).refusal("http://127.0.0.1/") is not None


# --- sync helpers ----------------------------------------------------------------------


def test_refusal_is_none_for_a_public_literal_address() -> None:
    assert OutboundPolicy().refusal(f"http://{PUBLIC}/") is None


def test_refusal_resolves_names_now() -> None:
    message = OutboundPolicy().refusal("http://localhost:9/")
    assert message is not None and "localhost (resolved to" in message


def test_allows_refuses_literal_internal_addresses_without_a_lookup() -> None:
    policy = OutboundPolicy()
    assert not policy.allows("http://169.254.169.254/")
    assert not policy.allows("gopher://example.com/")
    assert policy.allows(f"http://{PUBLIC}/")
    assert policy.allows("http://a-name.example/")  # checked when resolved
    assert OutboundPolicy(allowed_hosts="127.0.0.0/8").allows("http://127.0.0.1:8006/")
