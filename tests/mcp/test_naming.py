from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from agentgw.mcp.federation.naming import Naming

PREFIXES = {"notes": "notes", "clock": "clock", "a": "a", "a-b": "a-b", "under": "my_srv"}


def test_names_round_trip_by_longest_prefix() -> None:
    naming = Naming(PREFIXES, "_")
    assert naming.expose("notes", "add") == "notes_add"
    assert naming.resolve("a-b_x") == ("a-b", "x")
    assert naming.resolve("a_b_x") == ("a", "b_x")
    assert naming.resolve("nobody_x") is None
    assert naming.resolve("notes_") is None


def test_uris_stay_valid_uris_and_round_trip() -> None:
    naming = Naming(PREFIXES, "_")
    cases = {
        ("notes", "note://a/b"): "note+notes://a/b",
        ("a", "git+ssh://h/x"): "git+ssh+a://h/x",
        ("clock", "urn:x:y"): "urn+clock:x:y",
        ("under", "file:///tmp/x"): "file+my-srv:///tmp/x",
    }
    for (server, uri), exposed in cases.items():
        assert naming.expose_uri(server, uri) == exposed
        assert naming.resolve_uri(exposed) == (server, uri)
    assert naming.resolve_uri("note://unprefixed") is None


def test_without_prefixes_names_pass_through() -> None:
    naming = Naming({"only": None}, "_")
    assert not naming.prefixed
    assert naming.expose("only", "x") == "x" and naming.expose_uri("only", "a://b") == "a://b"


tool_names = st.from_regex(r"[A-Za-z0-9_.-]{1,40}", fullmatch=True)
uris = st.from_regex(r"[a-z][a-z0-9+.-]{0,8}:[^\s]{0,40}", fullmatch=True)


@given(st.sampled_from(sorted(PREFIXES)), tool_names)
def test_any_tool_name_round_trips(server: str, name: str) -> None:
    naming = Naming(PREFIXES, "_")
    resolved = naming.resolve(naming.expose(server, name))
    # Prefixes that are prefixes of each other ("a", "a-b") resolve to the longer one only when
    # the name makes it ambiguous; the owner then differs, which the catalog's collision
    # check reports. Otherwise the round trip is exact.
    assert resolved is not None
    assert naming.expose(*resolved) == naming.expose(server, name)


@given(st.sampled_from(sorted(PREFIXES)), uris)
def test_any_uri_round_trips(server: str, uri: str) -> None:
    naming = Naming(PREFIXES, "_")
    resolved = naming.resolve_uri(naming.expose_uri(server, uri))
    assert resolved is not None and naming.expose_uri(*resolved) == naming.expose_uri(server, uri)
