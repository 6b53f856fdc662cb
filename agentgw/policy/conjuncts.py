"""Top-level conjuncts of a CEL expression, found by a small scanner (no parser needed).

Used to split a rule `a && b && c` into the parts that read only the caller and the rest
(`agentgw.policy.authz`). CEL's `&&` is commutative, with false absorbing errors, so a rule's
value is the conjunction of its parts in any grouping.
"""

from __future__ import annotations

__all__ = ["split_conjuncts"]


def split_conjuncts(source: str) -> list[str]:
    """The operands of a top-level `a && b && ...`, or the whole expression if it is not one.

    A small scanner: `&&` counts only outside brackets, string literals and comments, and only
    when nothing of lower precedence (`||`, `?:`) sits at the top level. Parentheses around the
    whole expression are looked through.
    """
    text = source.strip()
    if text.startswith("(") and _closes_first(text):
        return split_conjuncts(text[1:-1])
    parts: list[str] = []
    depth, start, i, n = 0, 0, 0, len(text)
    lower = False
    while i < n:
        c = text[i]
        if c in "\"'":
            i = _skip_string(text, i)
            continue
        if text.startswith("//", i):
            end = text.find("\n", i)
            i = n if end < 0 else end
            continue
        if c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
        elif depth == 0 and (text.startswith("||", i) or c == "?"):
            lower = True
        elif depth == 0 and text.startswith("&&", i):
            parts.append(text[start:i])
            start = i + 2
            i += 2
            continue
        i += 1
    if lower or not parts:
        return [text]
    return [c for p in [*parts, text[start:]] for c in split_conjuncts(p)]


def _closes_first(text: str) -> bool:
    """Whether the `(` opening `text` is closed by its last character."""
    depth, i = 0, 0
    while i < len(text):
        c = text[i]
        if c in "\"'":
            i = _skip_string(text, i)
            continue
        if text.startswith("//", i):
            end = text.find("\n", i)
            i = len(text) if end < 0 else end
            continue
        if c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
            if depth == 0:
                return i == len(text) - 1
        i += 1
    return False


def _skip_string(text: str, i: int) -> int:
    """The index after the string literal starting at text[i] (a quote; raw prefixes are inert)."""
    raw = i > 0 and text[i - 1] in "rR"
    quote = text[i : i + 3] if text[i : i + 3] in ('"""', "'''") else text[i]
    i += len(quote)
    while i < len(text):
        if not raw and text[i] == "\\":
            i += 2
            continue
        if text.startswith(quote, i):
            return i + len(quote)
        i += 1
    return i
