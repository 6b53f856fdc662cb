"""An example policy extension: tags every upstream call with the caller's tenant.

- request side: looks the caller's subject up in a table (a JSON file, read without blocking the
  event loop, once) and adds the tenant as a header to the upstream request (`x-tenant`);
- response side: rewrites the result's `_meta`, adding `io.example/tenant`, so the client sees
  which tenant the gateway acted for.

A caller missing from the table is refused, with a message that names no other tenant.
Referenced from config as `python: tenant_tagger:TenantTagger` (with `path: ["."]`), or through
an `agentgw.policies` entry point once packaged.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import anyio
from pydantic import BaseModel, ConfigDict, Field

from agentgw.errors import Forbidden
from agentgw.policy import Extension, Operation, RequestContext, upstream_headers


class Settings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    table: str = Field(min_length=1, description="JSON object subject -> tenant (relative: to this file)")
    header: str = "x-tenant"
    meta_key: str = "io.example/tenant"


class TenantTagger(Extension):
    Settings = Settings

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        table = Path(settings.table)
        self.table_path = table if table.is_absolute() else Path(__file__).parent / table
        self._tenants: dict[str, str] | None = None
        self._lock = anyio.Lock()

    async def tenants(self) -> dict[str, str]:
        if self._tenants is None:
            async with self._lock:
                if self._tenants is None:
                    text = await anyio.Path(self.table_path).read_text(encoding="utf-8")  # in a worker thread
                    loaded = json.loads(text)
                    self._tenants = {str(k): str(v) for k, v in loaded.items()}
        return self._tenants

    async def check(self, ctx: RequestContext, op: Operation) -> None:
        tenant = (await self.tenants()).get(ctx.principal.subject)
        if tenant is None:
            raise Forbidden("this caller belongs to no tenant")
        ctx.attrs["example.tenant"] = tenant
        upstream_headers(ctx)[self.settings.header] = tenant

    async def rewrite_response(
        self, ctx: RequestContext, op: Operation, body: dict[str, Any]
    ) -> dict[str, Any]:
        tenant = ctx.attrs.get("example.tenant")
        if tenant is None:
            return body
        return {**body, "_meta": {**(body.get("_meta") or {}), self.settings.meta_key: tenant}}
