"""Which addresses this installation may call (the worker's steps, the health probe).

By default only public addresses: the check refuses loopback, link-local (the cloud
metadata service at 169.254.169.254 among them), private and unique-local, unspecified,
multicast, reserved and shared ranges, and IPv6 forms that carry one of those IPv4
addresses (IPv4-mapped, IPv4-compatible, NAT64, 6to4, Teredo). `ALLOWED_HOSTS` lists the
exceptions: a host name (any port), `host:port`, an IP address or a CIDR network
(matched against the resolved addresses); `*` turns the check off.

The check runs after the name is resolved, on every address it resolves to, and the
connection then goes to the address that was checked (`resolve_checked`): a name that
answers a public address to the check and an internal one a moment later (DNS
rebinding) gets no second lookup to answer.

Errors::

    OutboundError
     ├── OutboundRefusedError   the policy refuses the target: do not retry, change it
     └── OutboundLookupError    the name did not resolve: it may later
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from dataclasses import dataclass, field
from typing import Any

import httpx

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

NAT64_WELL_KNOWN = ipaddress.IPv6Network("64:ff9b::/96")
SCHEMES = {"http": 80, "https": 443}


class OutboundError(Exception):
    """A target the worker will not (or cannot yet) connect to; nothing was sent."""


class OutboundRefusedError(OutboundError):
    """The policy refuses the target.

    Attributes:
        host: the host of the URL, as written.
        address: the resolved address that was refused ("" if none was reached).
        reason: why, e.g. "loopback address".
    """

    def __init__(self, host: str, address: str, reason: str, *, suggestion: str = "") -> None:
        self.host = host
        self.address = address
        self.reason = reason
        where = host if not address or address == host else f"{host} (resolved to {address})"
        message = f"refused to connect to {where}: {reason}"
        super().__init__(f"{message}; {suggestion}" if suggestion else message)


class OutboundLookupError(OutboundError):
    """The host name did not resolve (to anything).

    Attributes:
        host: the host name.
    """

    def __init__(self, host: str, detail: str) -> None:
        self.host = host
        super().__init__(f"could not resolve {host}: {detail}")


@dataclass(frozen=True)
class CheckedTarget:
    """Where to send a request whose target passed the policy.

    Send to `url` (the checked address in place of the name) with `headers` (the
    original Host) and `extensions` (the TLS server name, for https); e.g.
    `await http.get(t.url, headers=t.headers, extensions=t.extensions)`.
    """

    url: httpx.URL
    """The URL to connect to: the original with the checked address as its host."""
    original: httpx.URL
    host: str
    port: int
    address: str
    headers: dict[str, str] = field(default_factory=dict)
    extensions: dict[str, Any] = field(default_factory=dict)


def embedded_ipv4(address: IPAddress) -> list[ipaddress.IPv4Address]:
    """The IPv4 addresses an IPv6 address carries (mapped, compatible, NAT64, 6to4, Teredo)."""
    if not isinstance(address, ipaddress.IPv6Address):
        return []
    found: list[ipaddress.IPv4Address] = []
    if address.ipv4_mapped is not None:
        found.append(address.ipv4_mapped)
    elif int(address) >> 32 == 0 and int(address) > 1:  # ::a.b.c.d (not :: or ::1)
        found.append(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
    elif address in NAT64_WELL_KNOWN:
        found.append(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
    if address.sixtofour is not None:
        found.append(address.sixtofour)
    if address.teredo is not None:
        found.extend(address.teredo)
    return found


def _not_public(address: IPAddress) -> str | None:
    """Why `address` (taken alone) is not a public address, or None if it is."""
    checks = (
        ("loopback", address.is_loopback),
        ("link-local", address.is_link_local),
        ("unspecified", address.is_unspecified),
        ("multicast", address.is_multicast),
        ("reserved", address.is_reserved),
        ("private", address.is_private),
        ("non-global", not address.is_global),
    )
    for name, hit in checks:
        if hit:
            return f"{name} address"
    return None


def address_refusal(address: IPAddress) -> str | None:
    """Why the default policy refuses `address`, or None for a public address.

    An IPv6 address that only translates an IPv4 one (IPv4-mapped, IPv4-compatible,
    NAT64) is judged by that IPv4 address; 6to4 and Teredo addresses by both.
    """
    embedded = embedded_ipv4(address)
    translation = isinstance(address, ipaddress.IPv6Address) and (
        address.ipv4_mapped is not None
        or (int(address) >> 32 == 0 and int(address) > 1)
        or address in NAT64_WELL_KNOWN
    )
    if not translation:
        reason = _not_public(address)
        if reason:
            return reason
    for inner in embedded:
        reason = _not_public(inner)
        if reason:
            return f"{reason} {inner} inside {address}"
    return None


def _split_host_port(entry: str) -> tuple[str, int | None]:
    """`host`, `host:port`, `[v6]` or `[v6]:port` -> (host, port)."""
    if entry.startswith("["):
        host, _, rest = entry[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
        return host, int(port) if port.isdigit() else None
    host, sep, port = entry.rpartition(":")
    if sep and port.isdigit() and ":" not in host:
        return host, int(port)
    return entry, None


def _host_key(host: str) -> str:
    return host.strip().lower().rstrip(".")


def _address_text(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class OutboundPolicy:
    """Which addresses the worker may call, and how much it may send and read.

    Args:
        allowed_hosts: ALLOWED_HOSTS, comma-separated exceptions to the default policy
            (public addresses only): host names, `host:port`, IP addresses, CIDR
            networks; `*` turns the check off.
        payload_limit_bytes: the most a step may send, or read from an answer.
        follow_redirects: follow 3xx answers, each hop checked like the first target.
    """

    def __init__(
        self,
        *,
        allowed_hosts: str = "",
        payload_limit_bytes: int = 256 * 1024,
        follow_redirects: bool = False,
    ) -> None:
        self.payload_limit_bytes = payload_limit_bytes
        self.follow_redirects = follow_redirects
        self.open = False
        self._names: set[str] = set()
        self._name_ports: set[tuple[str, int]] = set()
        self._networks: list[IPNetwork] = []
        self._address_ports: set[tuple[IPAddress, int]] = set()
        for entry in (e.strip() for e in allowed_hosts.split(",")):
            if not entry:
                continue
            if entry == "*":
                self.open = True
                continue
            try:
                self._networks.append(ipaddress.ip_network(entry.strip("[]"), strict=False))
                continue
            except ValueError:
                pass
            host, port = _split_host_port(entry)
            try:
                address = ipaddress.ip_address(host)
            except ValueError:
                if port is None:
                    self._names.add(_host_key(host))
                else:
                    self._name_ports.add((_host_key(host), port))
                continue
            if port is None:
                self._networks.append(ipaddress.ip_network(address))
            else:
                self._address_ports.add((address, port))

    def name_allowed(self, host: str, port: int) -> bool:
        """True if ALLOWED_HOSTS names this host (any port, or this port)."""
        key = _host_key(host)
        return self.open or key in self._names or (key, port) in self._name_ports

    def decision(self, host: str, port: int, address: IPAddress) -> str | None:
        """Why the policy refuses to connect to `address` (resolved from `host`) on
        `port`, or None if it allows it. Makes no lookup and no connection."""
        if self.name_allowed(host, port):
            return None
        plain = ipaddress.ip_address(str(address).split("%")[0])
        if (plain, port) in self._address_ports:
            return None
        if any(plain in network for network in self._networks):
            return None
        return address_refusal(plain)

    def _refused(self, url: httpx.URL, host: str, port: int, address: str, reason: str) -> str:
        where = _address_text(host, port)
        if address == host:
            ask = f"add '{where}' (or its network) to ALLOWED_HOSTS"
        else:
            ask = f"add '{host}' (or '{where}', or the network of {address}) to ALLOWED_HOSTS"
        return f"the worker calls only public addresses by default; {ask} to allow {url}"

    def check_addresses(
        self, url: httpx.URL, addresses: list[str]
    ) -> tuple[str, OutboundRefusedError | None]:
        """The first address to connect to, or the refusal of the first refused one."""
        host, port = url.host, _port(url)
        for text in addresses:
            address = ipaddress.ip_address(text)
            reason = self.decision(host, port, address)
            if reason is not None:
                suggestion = self._refused(url, host, port, text, reason)
                return text, OutboundRefusedError(host, text, reason, suggestion=suggestion)
        return addresses[0], None

    def refusal(self, url: str) -> str | None:
        """Why a call to `url` would be refused now, or None; blocks on the lookup.

        For warnings where no connection is made (registration): a literal address is
        judged as is, a name by what it resolves to now; a name that does not resolve
        gives None (the call will be checked again when it is made).
        """
        try:
            parsed = _parse(url)
        except OutboundRefusedError as exc:
            return str(exc)
        if self.name_allowed(parsed.host, _port(parsed)):
            return None
        try:
            addresses = _literal(parsed.host) or resolve_now(_lookup_name(parsed), _port(parsed))
        except OSError:
            return None
        if not addresses:
            return None
        _, refused = self.check_addresses(parsed, addresses)
        return str(refused) if refused else None

    def allows(self, url: str) -> bool:
        """False if `url` is refused on what is known without a lookup: its scheme, or a
        literal address the policy refuses. A name passes here; it is checked when it is
        resolved, by `resolve_checked`."""
        try:
            parsed = _parse(url)
        except OutboundRefusedError:
            return False
        literal = _literal(parsed.host)
        if not literal:
            return True
        _, refused = self.check_addresses(parsed, literal)
        return refused is None


def _parse(url: str | httpx.URL) -> httpx.URL:
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError) as exc:
        raise OutboundRefusedError(str(url), "", f"not a valid URL ({exc})") from exc
    if parsed.scheme not in SCHEMES:
        raise OutboundRefusedError(
            parsed.host or str(url), "", f"scheme '{parsed.scheme}' is not http or https"
        )
    if not parsed.host:
        raise OutboundRefusedError(str(url), "", "the URL names no host")
    return parsed


def _port(url: httpx.URL) -> int:
    return url.port or SCHEMES[url.scheme]


def _literal(host: str) -> list[str]:
    """[host] if it is an IP address (no lookup needed), else []."""
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return []
    return [host]


def _lookup_name(url: httpx.URL) -> str:
    """The name as DNS knows it (IDNA)."""
    return url.raw_host.decode("ascii")


async def resolve_addresses(host: str, port: int) -> list[str]:
    """Every address `host` resolves to, in the resolver's order (the test seam).

    Raises:
        OSError: the name does not resolve.
    """
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return _unique(info[4][0] for info in infos)


def resolve_now(host: str, port: int) -> list[str]:
    """`resolve_addresses`, blocking (for checks made outside an event loop)."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return _unique(str(info[4][0]) for info in infos)


def _unique(addresses: Any) -> list[str]:
    seen: list[str] = []
    for address in addresses:
        if address not in seen:
            seen.append(address)
    return seen


async def resolve_checked(url: str | httpx.URL, policy: OutboundPolicy) -> CheckedTarget:
    """Resolve `url`'s host, check every address against `policy`, and say where to
    connect: to the checked address, never to the name again.

    Args:
        url: an http or https URL.
        policy: the outbound policy.

    Returns:
        The target; send the request to `target.url` with `target.headers` and
        `target.extensions`.

    Raises:
        OutboundRefusedError: the policy refuses the URL or one of its addresses.
        OutboundLookupError: the name does not resolve.
    """
    parsed = _parse(url)
    host, port = parsed.host, _port(parsed)
    addresses = _literal(host)
    if not addresses:
        try:
            addresses = await resolve_addresses(_lookup_name(parsed), port)
        except OSError as exc:
            raise OutboundLookupError(host, str(exc) or type(exc).__name__) from exc
        if not addresses:
            raise OutboundLookupError(host, "no address")
    address, refused = policy.check_addresses(parsed, addresses)
    if refused is not None:
        raise refused
    extensions: dict[str, Any] = {}
    if parsed.scheme == "https":
        extensions["sni_hostname"] = _lookup_name(parsed)
    return CheckedTarget(
        url=parsed.copy_with(host=address.split("%")[0]),
        original=parsed,
        host=host,
        port=port,
        address=address,
        headers={"Host": parsed.netloc.decode("ascii")},
        extensions=extensions,
    )
