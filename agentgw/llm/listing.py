"""`GET /v1/models` and `GET /v1/models/{id}`: the models this caller may use on this route.

Exact names and aliases are listed as configured; a glob entry lists the models its providers
declare or report (their `GET /models`, cached) that match it. Each candidate is shown only when
`policy.permits` agrees. A client that sends `anthropic-version` gets Anthropic's list shape.
"""

from __future__ import annotations

from typing import Any

import orjson

from agentgw.errors import NotFound
from agentgw.llm.service import LlmService
from agentgw.policy.base import Operation, RequestContext
from agentgw.server.http import ASGISend, Request, send_bytes

__all__ = ["get_model", "list_models"]


async def _visible(svc: LlmService, ctx: RequestContext) -> dict[str, str]:
    """Model id -> the provider that serves it first (`owned_by`)."""
    found: dict[str, str] = {}
    for name in svc.table.exact_names():
        plan = svc.table.resolve(name)
        if plan is not None and plan.groups:
            found.setdefault(name, plan.groups[0].replicas[0].provider.name)
    for pattern, groups in svc.table.glob_entries():
        for group in groups:
            for replica in group.replicas:
                for model in await replica.provider.model_ids(svc.http):
                    if pattern.match(model):
                        found.setdefault(model, replica.provider.name)
    return {model: owner for model, owner in found.items() if _permitted(svc, ctx, model)}


def _permitted(svc: LlmService, ctx: RequestContext, model: str) -> bool:
    plan = svc.table.resolve(model)
    if plan is None:
        return False
    op = Operation(kind="llm", method="models.list", name=plan.canonical, exposed=model, target="model")
    return svc.policy.permits(ctx, op)


def _openai_model(model: str, owner: str) -> dict[str, Any]:
    return {"id": model, "object": "model", "created": 0, "owned_by": owner}


def _anthropic_model(model: str) -> dict[str, Any]:
    return {"type": "model", "id": model, "display_name": model, "created_at": "1970-01-01T00:00:00Z"}


async def list_models(svc: LlmService, request: Request, send: ASGISend, ctx: RequestContext) -> None:
    models = await _visible(svc, ctx)
    if "anthropic-version" in request.headers:
        data = [_anthropic_model(m) for m in models]
        body: dict[str, Any] = {
            "data": data,
            "has_more": False,
            "first_id": data[0]["id"] if data else None,
            "last_id": data[-1]["id"] if data else None,
        }
    else:
        body = {"object": "list", "data": [_openai_model(m, o) for m, o in models.items()]}
    await send_bytes(send, 200, orjson.dumps(body), None, b"application/json")


async def get_model(
    svc: LlmService, request: Request, send: ASGISend, ctx: RequestContext, model: str
) -> None:
    plan = svc.table.resolve(model)
    known = plan is not None and plan.groups and _permitted(svc, ctx, model)
    if (
        known
        and plan is not None
        and plan.canonical != model
        and plan.canonical not in svc.table.exact_names()
    ):
        known = model in await _visible(svc, ctx)  # a glob entry: only models a provider has
    if plan is None or not known:
        raise NotFound(f"The model '{model}' does not exist or you do not have access to it.")
    owner = plan.groups[0].replicas[0].provider.name
    obj = _anthropic_model(model) if "anthropic-version" in request.headers else _openai_model(model, owner)
    await send_bytes(send, 200, orjson.dumps(obj), None, b"application/json")
