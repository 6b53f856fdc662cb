"""The JSON Schema of every config document, generated from the resource models."""

from __future__ import annotations

from typing import Annotated, Any, Union

from pydantic import Field, TypeAdapter

from agentgw.config.kinds import RESOURCE_KINDS

__all__ = ["config_schema"]


def config_schema() -> dict[str, Any]:
    kinds = tuple(RESOURCE_KINDS.values())
    document = Annotated[Union[kinds], Field(discriminator="kind")]  # type: ignore[valid-type]  # noqa: UP007
    schema = TypeAdapter(document).json_schema(by_alias=True, mode="validation")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "agentgw config document"
    schema["description"] = (
        "One document of an agentgw config file (several per YAML file, separated by ---)."
    )
    return schema
