"""The base model every payload uses: unknown fields are refused, names are the wire names."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

# An address a reply can be sent to: one @, a dotted domain, no spaces or angle brackets
# (enough to refuse typos and header tricks; whether it exists only sending can tell).
Email = Annotated[
    str, Field(min_length=3, max_length=254, pattern=r"^[^@\s<>,;]+@[^@\s<>,;]+\.[^@\s<>,;.]+$")
]

# The page of the library's site a patron opened the widget on: scheme, host and path (the
# loader leaves out the query and fragment, which may hold what they searched for).
PageUrl = Annotated[str, Field(max_length=500, pattern=r"^https?://[^\s<>\"'`]+$")]


class Model(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        validate_by_name=True,
        validate_by_alias=True,
        serialize_by_alias=True,
    )

    def to_json(self) -> bytes:
        return self.model_dump_json(exclude_none=False).encode()
