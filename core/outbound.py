"""Which registered endpoints this installation may call (the worker, and health probes)."""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit


class OutboundPolicy:
    """Which endpoints the worker may call, and how much it may send and read."""

    def __init__(
        self,
        *,
        allowed_hosts: str = "",
        payload_limit_bytes: int = 256 * 1024,
        follow_redirects: bool = False,
    ) -> None:
        self.payload_limit_bytes = payload_limit_bytes
        self.follow_redirects = follow_redirects
        self._hosts: set[str] = set()
        self._networks: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
        for entry in (e.strip() for e in allowed_hosts.split(",")):
            if not entry:
                continue
            try:
                self._networks.append(ipaddress.ip_network(entry, strict=False))
            except ValueError:
                self._hosts.add(entry.lower())

    def allows(self, url: str) -> bool:
        if not self._hosts and not self._networks:
            return True
        host = (urlsplit(url).hostname or "").lower()
        if host in self._hosts:
            return True
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return False
        return any(address in network for network in self._networks)
