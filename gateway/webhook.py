"""The verified webhook as transforms see it: read-only, parsed lazily."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from types import MappingProxyType
from typing import Any
from urllib.parse import parse_qsl

import orjson


class PayloadError(ValueError):
    """The verified body is not what its provider sends (not JSON, not a form, wrong shape)."""


def json_object(raw: bytes | str, what: str) -> dict[str, Any]:
    """Parse ``raw`` as a JSON object; :class:`PayloadError` naming ``what`` otherwise."""
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise PayloadError(f"{what} is not valid JSON") from None
    if not isinstance(value, dict):
        raise PayloadError(f"{what} must be a JSON object")
    return value


def normalize_headers(pairs: Iterable[tuple[str, str]]) -> Mapping[str, str]:
    """Lower-case header names; repeated headers are joined with ', ' as HTTP allows."""
    merged: dict[str, str] = {}
    for name, value in pairs:
        key = name.lower()
        merged[key] = f"{merged[key]}, {value}" if key in merged else value
    return MappingProxyType(merged)


@dataclass(frozen=True, eq=False)
class Webhook:
    """One verified request.

    ``headers`` has lower-cased names. ``json`` and ``form`` parse the raw ``body`` on first use
    and raise :class:`PayloadError` when it is not of that kind. ``received_at`` is Unix seconds.
    ``options`` are the source's provider options from the config file (for generic transforms).
    ``prefix`` is the source's event-name prefix (``SourceConfig.event_prefix``); empty when the
    webhook was built outside a configured source.
    """

    source: str
    provider: str
    body: bytes
    headers: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    query: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    received_at: float = 0.0
    options: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    prefix: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.headers, MappingProxyType):
            object.__setattr__(self, "headers", normalize_headers(self.headers.items()))
        if not isinstance(self.query, MappingProxyType):
            object.__setattr__(self, "query", MappingProxyType(dict(self.query)))
        if not isinstance(self.options, MappingProxyType):
            object.__setattr__(self, "options", MappingProxyType(dict(self.options)))

    @cached_property
    def json(self) -> Any:
        """The body parsed as JSON."""
        try:
            return orjson.loads(self.body)
        except orjson.JSONDecodeError as exc:
            raise PayloadError(f"body is not valid JSON: {exc}") from None

    @cached_property
    def form(self) -> Mapping[str, str]:
        """The body parsed as ``application/x-www-form-urlencoded`` (last value wins)."""
        try:
            text = self.body.decode("utf-8")
        except UnicodeDecodeError:
            raise PayloadError("form body is not UTF-8") from None
        return MappingProxyType(dict(parse_qsl(text, keep_blank_values=True)))

    @property
    def received_at_ms(self) -> int:
        """Receive time in Unix milliseconds (the Inngest ``ts`` unit)."""
        return int(self.received_at * 1000)

    def header(self, name: str, default: str | None = None) -> str | None:
        """A header by case-insensitive name."""
        return self.headers.get(name.lower(), default)
