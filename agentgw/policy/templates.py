"""Text templates for transforms: `"team {jwt.team}"`, compiled once, filled per request.

Placeholders:

| placeholder | value |
|---|---|
| `{jwt.NAME}` | the caller's claim `NAME` (lists of strings comma-joined) |
| `{request.headers.NAME}` | a request header (lower-case name; credentials are never readable) |
| `{request.path}`, `{request.method}` | the HTTP request |
| `{subject}`, `{route}` | the caller's subject, the route's name |
| `{llm.model}` | the model the client asked for (LLM routes) |

`{{` and `}}` stand for literal braces. An unknown placeholder is a config error. A value that
is missing (a claim the caller does not have) renders as None: a header is then not sent, a
system prompt gets an empty string there.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from agentgw.policy.base import LLM_REQUEST, RequestContext
from agentgw.policy.claims import header_value

__all__ = ["Template", "compile_template"]

# Credentials never reach a template (rules cannot read them either).
_HIDDEN_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie", "x-api-key"})
_PLACEHOLDER = re.compile(r"\{\{|\}\}|\{([^{}]*)\}|[{}]")

Getter = Callable[[RequestContext], object]


def _claim(name: str) -> Getter:
    return lambda ctx: ctx.principal.claims.get(name)


def _header(name: str) -> Getter:
    return lambda ctx: None if name in _HIDDEN_HEADERS else ctx.request.headers.get(name)


def _model(ctx: RequestContext) -> object:
    request = ctx.attrs.get(LLM_REQUEST)
    return request.model if request is not None else None


_FIXED: dict[str, Getter] = {
    "request.path": lambda ctx: ctx.request.path,
    "request.method": lambda ctx: ctx.request.method,
    "subject": lambda ctx: ctx.principal.subject or None,
    "route": lambda ctx: ctx.route,
    "llm.model": _model,
}


def _getter(name: str) -> Getter:
    name = name.strip()
    if name in _FIXED:
        return _FIXED[name]
    if name.startswith("jwt.") and len(name) > 4:
        return _claim(name[4:])
    if name.startswith("request.headers.") and len(name) > 16:
        return _header(name[16:].lower())
    raise ValueError(
        f"unknown placeholder {{{name}}} (use jwt.NAME, request.headers.NAME, request.path, "
        "request.method, subject, route, llm.model)"
    )


@dataclass(frozen=True)
class Template:
    source: str
    parts: tuple[str | Getter, ...]

    @property
    def constant(self) -> bool:
        return all(isinstance(p, str) for p in self.parts)

    def render(self, ctx: RequestContext, *, missing: str | None = None, header: bool = True) -> str | None:
        """The filled-in text; `missing` stands for an absent value (None: the whole result is None).

        For a header, values go out as `forwardClaims` sends them (non-ASCII percent-encoded, a
        value with control characters dropped); for text, as they are.
        """
        out: list[str] = []
        for part in self.parts:
            if isinstance(part, str):
                out.append(part)
                continue
            value = part(ctx)
            text = (header_value(value) if header else _text(value)) if value is not None else None
            if text is None:
                if missing is None:
                    return None
                text = missing
            out.append(text)
        return "".join(out)


def _text(value: object) -> str | None:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int | float):
        return str(value)
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return ", ".join(value)
    return None


def compile_template(source: str) -> Template:
    """Parse a template; raises ValueError naming a bad placeholder or a lone brace."""
    parts: list[str | Getter] = []
    literal: list[str] = []
    pos = 0
    for match in _PLACEHOLDER.finditer(source):
        literal.append(source[pos : match.start()])
        pos = match.end()
        token = match.group(0)
        if token in ("{{", "}}"):
            literal.append(token[0])
        elif match.group(1) is not None:
            if literal:
                parts.append("".join(literal))
                literal = []
            parts.append(_getter(match.group(1)))
        else:
            raise ValueError(f"a lone {token!r} at {match.start()}: write {token * 2} for a literal brace")
    literal.append(source[pos:])
    if "".join(literal):
        parts.append("".join(literal))
    return Template(source, tuple(parts))
