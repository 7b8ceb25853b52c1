"""The Inngest event model and the naming convention."""

from __future__ import annotations

import json
import re
from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr, field_validator

MAX_NAME_LENGTH = 256
RESERVED_PREFIX = "inngest/"
# 1980-01-01 and 2100-01-01 in Unix ms: the bounds the Event API accepts for ``ts``.
MIN_TS_MS = 315_532_800_000
MAX_TS_MS = 4_102_444_800_000
# prefix/noun.verb: lower-case snake segments joined by dots after the source's prefix.
_CONVENTION = re.compile(r"^[a-z0-9][a-z0-9_-]*/[a-z0-9_]+(?:\.[a-z0-9_]+)*$")


class Event(BaseModel):
    """One Inngest event: ``{name, data, id?, ts?, v?}``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: StrictStr
    data: dict[str, Any] = Field(default_factory=dict)
    id: StrictStr | None = None
    ts: StrictInt | None = None
    v: StrictStr | None = None

    @field_validator("name")
    @classmethod
    def _check_name(cls, name: str) -> str:
        if not name.strip():
            raise ValueError("name must be a non-empty string")
        if len(name) > MAX_NAME_LENGTH:
            raise ValueError(f"name is longer than {MAX_NAME_LENGTH} characters")
        if name.lower().startswith(RESERVED_PREFIX):
            raise ValueError("names in the 'inngest/' namespace are reserved for system events")
        return name

    @field_validator("id")
    @classmethod
    def _check_id(cls, event_id: str | None) -> str | None:
        if event_id is not None and not event_id:
            raise ValueError("id must be a non-empty string when given")
        return event_id

    @field_validator("ts")
    @classmethod
    def _check_ts(cls, ts: int | None) -> int | None:
        if ts is not None and not MIN_TS_MS <= ts <= MAX_TS_MS:
            raise ValueError("ts must be Unix milliseconds between 1980 and 2100")
        return ts

    def to_payload(self) -> dict[str, Any]:
        """The event as the Event API expects it (unset optional fields left out)."""
        return self.model_dump(exclude_none=True)

    def to_json(self) -> bytes:
        """The event serialized for the outbox; raises ``TypeError`` if data is not JSON.

        The same bytes as ``orjson.dumps(self.to_payload())``. ``model_dump`` walks all of
        ``data`` (tens of microseconds for a 20 KB Stripe event) only to hand orjson the same
        plain values, so plain JSON data goes to orjson directly. Only values orjson refuses
        (a pydantic model inside ``data``, say) take the ``model_dump`` route, which converts
        them or raises the ``TypeError``.
        """
        if type(self) is not Event:
            return _dumps(self.to_payload())
        fields: dict[str, Any] = {"name": self.name, "data": self.data}
        if self.id is not None:
            fields["id"] = self.id
        if self.ts is not None:
            fields["ts"] = self.ts
        if self.v is not None:
            fields["v"] = self.v
        try:
            return orjson.dumps(fields)
        except TypeError:
            return _dumps(self.to_payload())


def _dumps(payload: dict[str, Any]) -> bytes:
    """orjson, or the standard library for integers beyond 64 bits (which orjson refuses)."""
    try:
        return orjson.dumps(payload)
    except TypeError as exc:
        if "64-bit" not in str(exc):
            raise
    try:
        return json.dumps(payload, separators=(",", ":"), allow_nan=False).encode()
    except ValueError as exc:
        raise TypeError(str(exc)) from None


def follows_convention(name: str, prefix: str) -> bool:
    """True when ``name`` is ``{prefix}/noun.verb`` in lower-case dotted segments."""
    return name.startswith(prefix + "/") and _CONVENTION.match(name) is not None
