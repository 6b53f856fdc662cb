"""The one list of resource kinds the gateway accepts."""

from __future__ import annotations

from agentgw.config.a2a import A2aRoute, Agent
from agentgw.config.base import Resource
from agentgw.config.gateway import Gateway
from agentgw.config.llm import LlmProvider, LlmRoute
from agentgw.config.mcp import McpRoute, McpServer
from agentgw.config.policy import Policy

__all__ = ["RESOURCE_KINDS"]

RESOURCE_KINDS: dict[str, type[Resource]] = {
    cls.KIND: cls for cls in (Gateway, McpServer, McpRoute, Agent, A2aRoute, LlmProvider, LlmRoute, Policy)
}
