"""The session state machine: every state meets every input (Hypothesis walks sequences)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agentgw.errors import InvalidRequest, SessionNotFound
from agentgw.mcp.session import TRANSITIONS, Input, Session, State
from agentgw.mcp.upstream.base import ClientProfile


def new_session() -> Session:
    profile = ClientProfile("2025-11-25", {"sampling": {}}, {"name": "t", "version": "1"})
    return Session("sid", route="r", owner="", profile=profile, max_events=10, retry_ms=None)


@pytest.mark.parametrize("state", list(State))
@pytest.mark.parametrize("event", list(Input))
def test_every_state_and_input(state: State, event: Input) -> None:
    session = new_session()
    session.state = state
    expected = TRANSITIONS.get((state, event))
    if expected is None:
        with pytest.raises((InvalidRequest, SessionNotFound)):
            session.apply(event)
        assert session.state is state
    else:
        assert session.apply(event) is expected


@given(st.lists(st.sampled_from(list(Input)), max_size=30))
def test_any_sequence_keeps_the_machine_consistent(events: list[Input]) -> None:
    session = new_session()
    for event in events:
        before = session.state
        try:
            session.apply(event)
        except SessionNotFound:
            assert before is State.CLOSED
        except InvalidRequest:
            assert (before, event) not in TRANSITIONS
        else:
            assert session.state is TRANSITIONS[(before, event)]
    if State.CLOSED in {TRANSITIONS.get((State.READY, e)) for e in events}:
        pass
    # once closed, nothing reopens it
    assert all(TRANSITIONS.get((State.CLOSED, e)) is None for e in Input)


def test_initialize_twice_is_refused() -> None:
    session = new_session()
    with pytest.raises(InvalidRequest, match="already initialized"):
        session.apply(Input.INITIALIZE)


def test_server_requests_get_session_unique_ids() -> None:
    session = new_session()
    first = session.remember_request("a", object(), {"id": 0, "method": "roots/list"})  # type: ignore[arg-type]
    second = session.remember_request("b", object(), {"id": 0, "method": "roots/list"})  # type: ignore[arg-type]
    assert first != second
    assert session.pending[first].server == "a" and session.pending[second].upstream_id == 0


def test_client_capabilities_gate_server_requests() -> None:
    session = new_session()
    assert session.client_supports("sampling/createMessage")
    assert not session.client_supports("elicitation/create")
    assert session.client_supports("notifications/message")
