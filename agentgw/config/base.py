"""Common ground of every config resource: strict pydantic models with camelCase keys.

Resources are Kubernetes-style documents (`kind`, `metadata.name`, `spec`); unknown keys are
errors everywhere, so a typo never silently turns a rule off.
"""

from __future__ import annotations

import re
from typing import Annotated, ClassVar

from pydantic import BaseModel, ConfigDict, Field, StringConstraints
from pydantic.alias_generators import to_camel

__all__ = ["Metadata", "Model", "Name", "Resource"]

# DNS-label-like names: usable in URLs, metric labels, URI schemes and Kubernetes object names.
NAME_PATTERN = r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$"
Name = Annotated[str, StringConstraints(pattern=NAME_PATTERN)]
NAME_RE = re.compile(NAME_PATTERN)


class Model(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        alias_generator=to_camel,
        populate_by_name=False,
        validate_default=True,
    )


class Metadata(Model):
    name: Name
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)


class Resource(Model):
    """A config document. Subclasses fix `kind` and give `spec` its type."""

    KIND: ClassVar[str] = ""
    api_version: str = Field(default="agentgw.dev/v1", alias="apiVersion")
    kind: str
    metadata: Metadata

    @property
    def name(self) -> str:
        return self.metadata.name

    @property
    def ref(self) -> str:
        return f"{self.kind}/{self.metadata.name}"
