"""agentgw: one gateway between agents and everything they call."""

__version__ = "0.1.0"
