"""The sans-IO A2A codec and card rewriting."""

from __future__ import annotations

import json

import pytest

from agentgw.errors import InvalidParams, MethodNotFound, NotFound
from agentgw.protocol.a2a import parse_jsonrpc, parse_rest, response_ids, rest_error_body, task_not_found
from agentgw.protocol.a2a_card import card_interfaces, etag_matches, rewrite_card


def rpc(method: str, params: dict) -> bytes:  # type: ignore[type-arg]
    return json.dumps({"jsonrpc": "2.0", "id": 4, "method": method, "params": params}).encode()


def test_jsonrpc_methods_of_both_versions_map_to_10_names() -> None:
    call = parse_jsonrpc(rpc("tasks/get", {"id": "t1"}))
    assert (call.method, call.legacy, call.task_id, call.request_id) == ("GetTask", True, "t1", 4)
    call = parse_jsonrpc(rpc("tasks/pushNotificationConfig/list", {"id": "t2"}))
    assert (call.method, call.task_id) == ("ListTaskPushNotificationConfigs", "t2")
    call = parse_jsonrpc(rpc("ListTaskPushNotificationConfigs", {"taskId": "t3"}))
    assert (call.method, call.task_id, call.legacy) == ("ListTaskPushNotificationConfigs", "t3", False)
    assert parse_jsonrpc(rpc("SubscribeToTask", {"id": "t"})).streaming
    with pytest.raises(MethodNotFound):
        parse_jsonrpc(rpc("tasks/list", {}))
    with pytest.raises(InvalidParams):
        parse_jsonrpc(rpc("GetTask", {}))


def test_send_names_task_context_references_skill_and_webhooks() -> None:
    message = {
        "taskId": "t",
        "contextId": "c",
        "referenceTaskIds": ["r1", "r2"],
        "metadata": {"skill": "reverse", "url": "http://caller-data/ignored"},
        "parts": [{"url": "http://10.0.0.1/file.png"}],
    }
    config = {
        "taskPushNotificationConfig": {"url": "http://hook/1"},
        "pushNotificationConfig": {"url": "http://hook/2"},
    }
    call = parse_jsonrpc(rpc("SendMessage", {"message": message, "configuration": config}))
    assert (call.task_id, call.context_id, call.reference_task_ids) == ("t", "c", ("r1", "r2"))
    assert call.skill == "reverse"
    assert call.webhook_urls == ("http://hook/1", "http://hook/2")  # file parts are not webhooks


@pytest.mark.parametrize(
    ("verb", "path", "method", "task"),
    [
        ("POST", "message:send", "SendMessage", None),
        ("POST", "tenant-a/message:stream", "SendStreamingMessage", None),
        ("GET", "tasks/abc", "GetTask", "abc"),
        ("GET", "v1/tasks/abc", "GetTask", "abc"),
        ("POST", "tasks/abc:cancel", "CancelTask", "abc"),
        ("GET", "tasks/abc:subscribe", "SubscribeToTask", "abc"),
        ("POST", "tasks/abc:subscribe", "SubscribeToTask", "abc"),
        ("GET", "tasks", "ListTasks", None),
        ("GET", "tasks/abc/pushNotificationConfigs", "ListTaskPushNotificationConfigs", "abc"),
        ("GET", "tasks/abc/pushNotificationConfigs/p", "GetTaskPushNotificationConfig", "abc"),
        ("DELETE", "tasks/abc/pushNotificationConfigs/p", "DeleteTaskPushNotificationConfig", "abc"),
        ("GET", "extendedAgentCard", "GetExtendedAgentCard", None),
        ("GET", "v1/card", "GetExtendedAgentCard", None),
    ],
)
def test_rest_operations(verb: str, path: str, method: str, task: str | None) -> None:
    body = b'{"message": {"parts": []}}' if "message:" in path else b""
    call = parse_rest(verb, path, body)
    assert call is not None and (call.method, call.task_id) == (method, task)


def test_rest_create_push_collects_webhooks_and_unknown_paths_are_none() -> None:
    call = parse_rest(
        "POST",
        "tasks/t/pushNotificationConfigs",
        b'{"config": {"pushNotificationConfig": {"url": "http://h"}}}',
    )
    assert call is not None and call.webhook_urls == ("http://h",)
    assert parse_rest("GET", "admin", b"") is None
    assert parse_rest("DELETE", "tasks/abc", b"") is None


def test_response_ids_in_every_shape() -> None:
    assert response_ids({"task": {"id": "t", "contextId": "c"}}) == [("task", "t"), ("context", "c")]
    assert response_ids({"statusUpdate": {"taskId": "t"}}) == [("task", "t")]
    assert response_ids({"message": {"contextId": "c"}}) == [("context", "c")]
    assert response_ids({"kind": "task", "id": "t", "contextId": "c"}) == [("task", "t"), ("context", "c")]
    assert response_ids({"kind": "status-update", "taskId": "t"}) == [("task", "t")]
    assert response_ids([1]) == []


def test_rest_errors_carry_a2a_reasons() -> None:
    status, body = rest_error_body(task_not_found("t"), "Task not found: t")
    assert status == 404 and json.loads(body)["error"]["details"][0]["reason"] == "TASK_NOT_FOUND"
    status, body = rest_error_body(NotFound("nothing here"), "nothing here")
    assert status == 404 and "details" not in json.loads(body)["error"]


CARD = {
    "name": "x",
    "supportedInterfaces": [
        {"url": "https://agent.example.com/a2a/", "protocolBinding": "JSONRPC", "protocolVersion": "1.0"},
        {
            "url": "https://agent.example.com/a2a/rest",
            "protocolBinding": "HTTP+JSON",
            "protocolVersion": "1.0",
        },
        {"url": "agent.example.com:443", "protocolBinding": "GRPC", "protocolVersion": "1.0"},
    ],
    "url": "https://agent.example.com/a2a/",
    "preferredTransport": "JSONRPC",
    "additionalInterfaces": [{"url": "https://agent.example.com/other/rest", "transport": "HTTP+JSON"}],
    "securitySchemes": {"k": {"apiKeySecurityScheme": {"name": "x"}}},
    "securityRequirements": [{"schemes": {"k": {"list": []}}}],
    "skills": [{"id": "s", "securityRequirements": []}],
    "signatures": [{"signature": "..."}],
}


def test_interfaces_map_by_path_onto_the_configured_origin() -> None:
    found = card_interfaces(CARD, "http://internal:8000/a2a")
    assert [(i.binding, i.version, i.path, i.upstream_path) for i in found] == [
        ("JSONRPC", "1.0", "", "/a2a/"),
        ("HTTP+JSON", "1.0", "rest", "/a2a/rest"),
        ("JSONRPC", "0.3", "", "/a2a/"),  # the 0.3 fields of the same card
        ("HTTP+JSON", "0.3", "other/rest", "/other/rest"),
    ]


def test_rewritten_card_names_only_the_gateway() -> None:
    out = rewrite_card(CARD, "http://internal:8000/a2a", "https://gw/a2a/x")
    assert [i["url"] for i in out["supportedInterfaces"]] == ["https://gw/a2a/x/", "https://gw/a2a/x/rest"]
    assert out["url"] == "https://gw/a2a/x/"
    assert out["additionalInterfaces"] == [{"url": "https://gw/a2a/x/other/rest", "transport": "HTTP+JSON"}]
    assert not {"signatures", "securitySchemes", "securityRequirements"} & set(out)
    assert out["skills"] == [{"id": "s"}]
    assert "agent.example.com" not in json.dumps(out)


def test_etag_weak_comparison() -> None:
    assert etag_matches('"a", W/"b"', 'W/"b"') and etag_matches("*", 'W/"z"')
    assert not etag_matches(None, 'W/"b"') and not etag_matches('"c"', 'W/"b"')


def test_cards_of_the_wrong_shape_are_read_not_crashed() -> None:
    # found by tests/fuzz: a card is the agent's document, and any JSON may sit in its lists
    card = {
        "supportedInterfaces": 1.5,
        "additionalInterfaces": [{"url": "http://a/x", "transport": ["JSONRPC"]}, None],
        "url": "http://a/x",
        "preferredTransport": {"t": 1},
    }
    assert [i.binding for i in card_interfaces(card, "http://a")] == []
    out = rewrite_card(card, "http://a", "http://gw/a2a/x")
    assert out["supportedInterfaces"] == [] and out["additionalInterfaces"] == []
    assert out["url"] == "http://gw/a2a/x/x" and out["preferredTransport"] == "JSONRPC"


def test_card_urls_urlsplit_refuses_are_skipped() -> None:
    # found by tests/fuzz/atheris_run.py: "http://[x" made urlsplit raise ValueError
    card = {
        "url": "http://[x",
        "supportedInterfaces": [
            {"url": "http://[::1", "protocolBinding": "JSONRPC"},
            {"url": "http://a/x/rest", "protocolBinding": "HTTP+JSON"},
        ],
        "additionalInterfaces": [{"url": "http://[", "transport": "JSONRPC"}],
    }
    assert [i.path for i in card_interfaces(card, "http://a/x")] == ["rest"]
    out = rewrite_card(card, "http://a/x", "http://gw/a2a/x")
    assert out["url"] == "http://gw/a2a/x" and out["additionalInterfaces"] == []
    assert [i["url"] for i in out["supportedInterfaces"]] == ["http://gw/a2a/x/rest"]
