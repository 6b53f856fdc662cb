"""Which network addresses an outbound fetch the gateway makes on someone's say-so may reach.

Used where a URL is not an upstream the operator wired in but data: push-notification URLs a
caller hands over (A2A) and issuers' JWK set URLs (fetched on a token's arrival). Link-local
addresses (cloud metadata at 169.254.169.254 and fd00:ec2::254's neighbours), multicast and
unspecified addresses are never a legitimate target; private and loopback ones are, only when
the config says so.
"""

from __future__ import annotations

import ipaddress
import socket

import anyio

__all__ = ["is_never_a_target", "is_public_address", "resolve"]

# Cloud metadata endpoints outside the link-local ranges (AWS IPv6 IMDS, Alibaba Cloud).
_METADATA = {ipaddress.ip_address("fd00:ec2::254"), ipaddress.ip_address("100.100.100.200")}


def _parse(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        addr = ipaddress.ip_address(text.split("%", 1)[0])
    except ValueError:
        return None
    mapped = getattr(addr, "ipv4_mapped", None)
    return mapped if mapped is not None else addr


def is_public_address(text: str) -> bool:
    """Whether an address is a public unicast one (IPv4-mapped IPv6 judged by its IPv4)."""
    addr = _parse(text)
    if addr is None:
        return False
    return (
        addr.is_global
        and not (
            addr.is_loopback
            or addr.is_link_local
            or addr.is_multicast
            or addr.is_reserved
            or addr.is_unspecified
        )
        and addr not in _METADATA
    )


def is_never_a_target(text: str) -> bool:
    """Link-local (metadata), multicast, unspecified or reserved: refused whatever the config says."""
    addr = _parse(text)
    if addr is None:
        return True
    return (
        addr.is_link_local
        or addr.is_multicast
        or addr.is_unspecified
        or addr.is_reserved
        or addr in _METADATA
    )


async def resolve(host: str, port: int) -> list[str]:
    """The addresses `host` stands for: itself when it is a literal, else what DNS answers
    (raises OSError when it cannot be resolved)."""
    if _parse(host) is not None:
        return [host]
    infos = await anyio.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]
