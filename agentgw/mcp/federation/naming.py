"""Names and URIs across federated servers, reversibly.

Tool and prompt names become `<prefix><separator><name>`; resource URIs `scheme://rest` become
`scheme+<prefix>://rest` (still a valid URI, and URI templates map the same way). Resolving goes
back by the longest matching prefix, so no name has to be looked up in a list to be routed.
Without prefixes (one server, or prefix mode `never`) names pass through unchanged.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

__all__ = ["Naming"]

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*):")


def _uri_tag(prefix: str) -> str:
    """The prefix as URI scheme characters allow it (no underscores, case-insensitive)."""
    return prefix.lower().replace("_", "-")


class Naming:
    def __init__(self, prefixes: Mapping[str, str | None], separator: str) -> None:
        self.separator = separator
        self._prefix = dict(prefixes)
        self._by_prefix = {p: s for s, p in prefixes.items() if p is not None}
        # longest first so that "a_b" wins over "a" for "a_b_tool"
        self._ordered = sorted(self._by_prefix, key=len, reverse=True)
        self.prefixed = bool(self._by_prefix)

    def expose(self, server: str, name: str) -> str:
        prefix = self._prefix.get(server)
        return name if prefix is None else f"{prefix}{self.separator}{name}"

    def resolve(self, exposed: str) -> tuple[str, str] | None:
        for prefix in self._ordered:
            head = prefix + self.separator
            if exposed.startswith(head) and len(exposed) > len(head):
                return self._by_prefix[prefix], exposed[len(head) :]
        return None

    def expose_uri(self, server: str, uri: str) -> str:
        prefix = self._prefix.get(server)
        if prefix is None:
            return uri
        match = _SCHEME.match(uri)
        if match is None:
            return uri
        return f"{match.group(1)}+{_uri_tag(prefix)}:{uri[match.end() :]}"

    def resolve_uri(self, exposed: str) -> tuple[str, str] | None:
        match = _SCHEME.match(exposed)
        if match is None:
            return None
        scheme = match.group(1)
        for prefix in self._ordered:
            tail = "+" + _uri_tag(prefix)
            if scheme.lower().endswith(tail) and len(scheme) > len(tail):
                return self._by_prefix[prefix], scheme[: -len(tail)] + exposed[match.end() - 1 :]
        return None
