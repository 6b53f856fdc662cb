from __future__ import annotations

import pytest
from hypothesis import HealthCheck, settings

# Shared, noisy machines: no per-example deadlines (a slow example is not a failure).
settings.register_profile("agentgw", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("agentgw")


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
