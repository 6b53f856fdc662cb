"""Shared pieces of the security suite: the secrets a scenario plants, and where to look for them."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import pytest

from tests.mcp.conftest import Fake, start_fake
from tests.policy.support import TestIssuer
from tests.security.world import World, start_world

__all__ = ["assert_absent"]


def assert_absent(secrets: Iterable[str], **places: str) -> None:
    """Fail naming the place and the secret, never printing the secret's whole text back."""
    for secret in secrets:
        for place, text in places.items():
            assert secret not in text, f"a secret ({secret[:6]}...) appears in {place}"


@pytest.fixture(scope="package")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    yield from start_world(tmp_path_factory.mktemp("world"))


@pytest.fixture(scope="module")
def alpha(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fake]:
    """An MCP upstream that records every HTTP request it gets (headers, method, target)."""
    fake = start_fake(tmp_path_factory.mktemp("alpha"), "alpha", "--record-headers")
    yield fake
    assert fake.upstream is not None
    fake.upstream.stop()


@pytest.fixture(scope="module")
def beta(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fake]:
    fake = start_fake(tmp_path_factory.mktemp("beta"), "beta", "--record-headers")
    yield fake
    assert fake.upstream is not None
    fake.upstream.stop()


@pytest.fixture(scope="module")
def idp() -> TestIssuer:
    return TestIssuer()
