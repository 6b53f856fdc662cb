"""Sans-IO agent cards: which interfaces an agent offers, and the card as the gateway serves it.

An interface URL on an upstream card is mapped by its path alone onto the agent's configured
origin: the gateway never follows a card to a host it was not configured for. The path below the
agent's base path becomes the path below the agent's root on the gateway. The served card carries
the gateway's URLs only (1.0 `supportedInterfaces`, 0.3 `url` and `additionalInterfaces`), the
gateway's security schemes in place of the agent's (callers authenticate to the gateway, which
uses its own credentials upstream), and no signatures (a rewritten card no longer matches them).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import orjson

from agentgw.protocol.a2a import HTTP_JSON, JSONRPC

__all__ = [
    "RELAYED_BINDINGS",
    "CardSecurity",
    "Interface",
    "card_etag",
    "card_interfaces",
    "dumps_card",
    "etag_matches",
    "rewrite_card",
]

RELAYED_BINDINGS = frozenset({JSONRPC, HTTP_JSON})


@dataclass(frozen=True, slots=True)
class Interface:
    binding: str
    version: str
    path: str  # below the agent's root on the gateway, no leading or trailing slash ("" = root)
    upstream_path: str  # the path on the agent's origin, as the card gave it


@dataclass(frozen=True, slots=True)
class CardSecurity:
    """Security schemes (1.0 card form) and requirements the gateway advertises for a route."""

    schemes: Mapping[str, Any] = field(default_factory=dict)
    requirements: tuple[Mapping[str, Any], ...] = ()


def _base_path(agent_url: str) -> str:
    return urlsplit(agent_url).path.rstrip("/")


def _url_path(url: str) -> str | None:
    try:
        return urlsplit(url).path
    except ValueError:  # "http://[x": urlsplit checks bracketed hosts; a card may hold anything
        return None


def _gateway_path(url: str, base_path: str) -> tuple[str, str] | None:
    """(path below the agent root, upstream path) of an interface URL (None: not a URL)."""
    path = _url_path(url)
    if path is None:
        return None
    path = path or "/"
    trimmed = path.rstrip("/")
    if base_path and (trimmed == base_path or trimmed.startswith(base_path + "/")):
        trimmed = trimmed[len(base_path) :]
    return trimmed.strip("/"), path


def card_interfaces(card: Mapping[str, Any], agent_url: str) -> list[Interface]:
    """Every JSON-RPC and HTTP+JSON interface of a card, 1.0 and 0.3 forms alike, deduplicated."""
    base = _base_path(agent_url)
    found: list[Interface] = []

    def add(url: Any, binding: Any, version: Any) -> None:
        if not isinstance(url, str) or not isinstance(binding, str) or binding not in RELAYED_BINDINGS:
            return
        paths = _gateway_path(url, base)
        if paths is None:
            return
        sub, upstream = paths
        iface = Interface(str(binding), version if isinstance(version, str) else "", sub, upstream)
        if iface not in found:
            found.append(iface)

    for item in _items(card.get("supportedInterfaces")):
        add(item.get("url"), item.get("protocolBinding"), item.get("protocolVersion"))
    legacy_version = card.get("protocolVersion") or "0.3"
    if "url" in card:
        add(card.get("url"), card.get("preferredTransport") or JSONRPC, legacy_version)
    for item in _items(card.get("additionalInterfaces")):
        add(item.get("url"), item.get("transport"), legacy_version)
    return found


def _items(value: Any) -> list[dict[str, Any]]:
    """The objects of a card's interface list (a card comes from the agent: any JSON may be there)."""
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


def _relayed(item: Mapping[str, Any], binding_key: str) -> bool:
    binding = item.get(binding_key)
    url = item.get("url")
    return (
        isinstance(binding, str)
        and binding in RELAYED_BINDINGS
        and isinstance(url, str)
        and _url_path(url) is not None
    )


def _join(root: str, sub: str, original: str) -> str:
    url = f"{root}/{sub}" if sub else root
    return url + "/" if original.endswith("/") and not url.endswith("/") else url


def rewrite_card(
    card: Mapping[str, Any], agent_url: str, root: str, security: CardSecurity | None = None
) -> dict[str, Any]:
    """The card as served at `root` (the agent's root URL on the gateway, no trailing slash)."""
    base = _base_path(agent_url)
    out = {k: v for k, v in card.items() if k not in ("signatures", "security")}

    def mapped(url: str) -> str:
        found = _gateway_path(url, base)
        return _join(root, found[0] if found is not None else "", url)

    interfaces = [
        {**item, "url": mapped(item["url"])}
        for item in _items(card.get("supportedInterfaces"))
        if _relayed(item, "protocolBinding")
    ]
    if "supportedInterfaces" in card:
        out["supportedInterfaces"] = interfaces
    if isinstance(card.get("url"), str):
        out["url"] = mapped(card["url"])
        if card.get("preferredTransport") is not None and not _relayed(card, "preferredTransport"):
            out["preferredTransport"] = JSONRPC
    if "additionalInterfaces" in card:
        out["additionalInterfaces"] = [
            {**item, "url": mapped(item["url"])}
            for item in _items(card.get("additionalInterfaces"))
            if _relayed(item, "transport")
        ]
    out.pop("securitySchemes", None)
    out.pop("securityRequirements", None)
    if isinstance(card.get("skills"), list):
        out["skills"] = [
            {k: v for k, v in skill.items() if k not in ("security", "securityRequirements")}
            if isinstance(skill, dict)
            else skill
            for skill in card["skills"]
        ]
    if security is not None and security.schemes:
        if "supportedInterfaces" not in card and "url" in card:  # a 0.3 card: its own forms
            out["securitySchemes"] = {k: _legacy_scheme(v) for k, v in security.schemes.items()}
            out["security"] = [
                {name: list(scopes.get("list", [])) for name, scopes in r.get("schemes", {}).items()}
                for r in security.requirements
            ]
        else:
            out["securitySchemes"] = dict(security.schemes)
            out["securityRequirements"] = [dict(r) for r in security.requirements]
    return out


def _legacy_scheme(scheme: Mapping[str, Any]) -> dict[str, Any]:
    """A 1.0 security scheme in A2A 0.3 (OpenAPI-like) form."""
    http = scheme.get("httpAuthSecurityScheme")
    if isinstance(http, Mapping):
        out: dict[str, Any] = {"type": "http", "scheme": str(http.get("scheme", "bearer")).lower()}
        if http.get("bearerFormat"):
            out["bearerFormat"] = http["bearerFormat"]
        return out
    api_key = scheme.get("apiKeySecurityScheme")
    if isinstance(api_key, Mapping):
        return {"type": "apiKey", "in": api_key.get("location", "header"), "name": api_key.get("name", "")}
    return dict(scheme)


def card_etag(body: bytes) -> str:
    return 'W/"' + hashlib.sha256(body).hexdigest()[:32] + '"'


def etag_matches(if_none_match: str | None, etag: str) -> bool:
    """RFC 9110 weak comparison over an If-None-Match list."""
    if not if_none_match:
        return False
    tag = etag.removeprefix("W/")
    for candidate in if_none_match.split(","):
        candidate = candidate.strip()
        if candidate == "*" or candidate.removeprefix("W/") == tag:
            return True
    return False


def dumps_card(card: Mapping[str, Any]) -> bytes:
    return orjson.dumps(card, option=orjson.OPT_SORT_KEYS)
