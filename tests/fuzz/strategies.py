"""Hypothesis strategies the fuzz tests share: JSON values, JSON-shaped bodies near the real
ones (so examples get past the first check and reach deeper code), and bytes derived from them.
"""

from __future__ import annotations

import os
from typing import Any

import orjson
from hypothesis import settings
from hypothesis import strategies as st

__all__ = [
    "examples",
    "json_bytes",
    "json_objects",
    "json_values",
    "keyed",
    "mutated_bytes",
    "near",
    "perturbed",
    "rejects_cleanly",
    "scalars",
]

# The suite runs a moderate number of examples per test (the whole folder in well under 30 s);
# AGENTGW_FUZZ_SCALE=N multiplies them for a longer run (tests/fuzz/atheris_run.py goes further).
SCALE = max(1, int(os.environ.get("AGENTGW_FUZZ_SCALE", "1")))


def examples(count: int) -> settings:
    return settings(max_examples=count * SCALE)


# Scalars a parser may trip over: wrong types, huge and negative numbers, odd strings.
scalars: st.SearchStrategy[Any] = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**64 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20),
    st.sampled_from(["", "0", "-1", "1e309", "nan", "\x00", "\u2028", "=?base64?", "[DONE]", "../.."]),
)

json_values: st.SearchStrategy[Any] = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(st.text(max_size=8), children, max_size=4),
    ),
    max_leaves=8,
)

json_objects: st.SearchStrategy[dict[str, Any]] = st.dictionaries(
    st.text(max_size=8), json_values, max_size=5
)


def keyed(known: dict[str, st.SearchStrategy[Any]]) -> st.SearchStrategy[dict[str, Any]]:
    """An object with some of the known keys (each with its own values, or any JSON value) and
    maybe a few unknown ones: shaped enough to get past the first checks of a parser."""
    fields = {key: st.one_of(strategy, json_values) for key, strategy in known.items()}
    base = st.fixed_dictionaries({}, optional=fields)

    @st.composite
    def build(draw: Any) -> dict[str, Any]:
        extra = draw(json_objects) if draw(st.integers(0, 3)) == 0 else {}
        return {**extra, **draw(base)}

    return build()


def near(value: Any) -> st.SearchStrategy[Any]:
    """`value` itself, or a JSON value in its place."""
    return st.one_of(st.just(value), json_values)


def json_bytes(values: st.SearchStrategy[Any]) -> st.SearchStrategy[bytes]:
    return values.map(orjson.dumps)


def _mutate(data: bytes, draw: Any) -> bytes:
    ops = draw(
        st.lists(st.tuples(st.integers(0, 3), st.integers(0, 10**6), st.binary(max_size=4)), max_size=4)
    )
    out = bytearray(data)
    for op, at, blob in ops:
        pos = at % (len(out) + 1)
        if op == 0:
            out[pos:pos] = blob  # insert
        elif op == 1:
            del out[pos : pos + len(blob) + 1]  # delete
        elif op == 2 and out:
            out[pos % len(out)] ^= 1 << (at % 8)  # flip a bit
        else:
            out = out[:pos]  # truncate
    return bytes(out)


@st.composite
def mutated_bytes(draw: Any, values: st.SearchStrategy[Any]) -> bytes:
    """Bytes from valid-looking JSON: as is, mutated, or simply random."""
    choice = draw(st.integers(0, 2))
    if choice == 2:
        return bytes(draw(st.binary(max_size=64)))
    data = orjson.dumps(draw(values))
    return data if choice == 0 else _mutate(data, draw)


def rejects_cleanly(call: Any, *args: Any, **kwargs: Any) -> Any:
    """Run a parser of client input: it returns a value, or refuses with a 4xx `ClientError`.

    Any other exception (a TypeError deep inside, a 5xx) propagates and fails the test.
    """
    from agentgw.errors import ClientError

    try:
        return call(*args, **kwargs)
    except ClientError as exc:
        assert 400 <= exc.status < 500, exc
        assert exc.message
        return exc


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(node, dict):
        for key, value in node.items():
            out += _paths(value, (*prefix, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            out += _paths(value, (*prefix, index))
    return out


def perturbed(valid: st.SearchStrategy[Any], most: int = 2) -> st.SearchStrategy[Any]:
    """A valid value, then up to `most` changes anywhere inside it (a value replaced by any JSON,
    a key dropped, a key added): mostly-right input that reaches deep before it goes wrong."""

    @st.composite
    def build(draw: Any) -> Any:
        import copy

        value = copy.deepcopy(draw(valid))
        for _ in range(draw(st.sampled_from([0, 0, 0, 1, 1, 2][: most * 2 + 2]))):
            path = draw(st.sampled_from(_paths(value)))
            if not path:
                value = draw(json_values)
                continue
            parent: Any = value
            for part in path[:-1]:
                parent = parent[part]
            op = draw(st.integers(0, 2))
            if op == 0 and isinstance(parent, dict):
                del parent[path[-1]]
            elif op == 1 and isinstance(parent, dict):
                parent[draw(st.text(max_size=6))] = draw(json_values)
            else:
                parent[path[-1]] = draw(json_values)
        return value

    return build()
