"""The verified webhook as transforms see it: read-only, parsed lazily."""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from types import MappingProxyType
from typing import Any
from urllib.parse import parse_qsl

import orjson


class PayloadError(ValueError):
    """The verified body is not what its provider sends (not JSON, not a form, wrong shape)."""


# 19 digits in a row: the shortest run that may be an integer beyond 64 bits (orjson takes
# -2**63 .. 2**64-1 and turns anything longer into a float, or refuses it as infinity)
_LONG_DIGITS = re.compile(rb"[0-9]{19}")
_LONG_DIGITS_TEXT = re.compile(r"[0-9]{19}")
_MAX_DIGITS = sys.get_int_max_str_digits() or 4300


def _no_constants(name: str) -> Any:
    raise json.JSONDecodeError(f"{name} is not JSON", name, 0)


def loads_exact(raw: bytes | str) -> Any:
    """Parse JSON with orjson, keeping integers beyond 64 bits exact.

    The few documents holding a run of 19 or more digits are parsed (again) by the standard
    library, which keeps every integer an ``int``; its cost is linear, and integers longer than
    Python's conversion limit (4300 digits) raise :class:`PayloadError`. Invalid JSON raises
    ``json.JSONDecodeError`` (orjson's error is a subclass).
    """
    long_digits = (
        _LONG_DIGITS.search(raw) if isinstance(raw, bytes) else _LONG_DIGITS_TEXT.search(raw)
    )
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        if long_digits is None:
            raise
    if long_digits is None:
        return value
    try:
        return json.loads(raw, parse_constant=_no_constants)
    except json.JSONDecodeError:
        raise
    except ValueError:  # the int conversion limit
        raise PayloadError(
            f"a number in the JSON has more than {_MAX_DIGITS} digits; it cannot be kept exact"
        ) from None


def json_object(raw: bytes | str, what: str) -> dict[str, Any]:
    """Parse ``raw`` as a JSON object; :class:`PayloadError` naming ``what`` otherwise."""
    try:
        value = loads_exact(raw)
    except json.JSONDecodeError:
        raise PayloadError(f"{what} is not valid JSON") from None
    if not isinstance(value, dict):
        raise PayloadError(f"{what} must be a JSON object")
    return value


def normalize_headers(pairs: Iterable[tuple[str, str]]) -> Mapping[str, str]:
    """Lower-case header names; repeated headers are joined with ', ' as HTTP allows."""
    merged: dict[str, str] = {}
    repeated: dict[str, list[str]] = {}
    for name, value in pairs:
        key = name.lower()
        if key not in merged:
            merged[key] = value
        elif key in repeated:
            repeated[key].append(value)
        else:
            repeated[key] = [merged[key], value]
    for key, values in repeated.items():  # joined once: linear in the number of repeats
        merged[key] = ", ".join(values)
    return MappingProxyType(merged)


@dataclass(frozen=True, eq=False)
class Webhook:
    """One verified request.

    ``headers`` has lower-cased names. ``json`` and ``form`` parse the raw ``body`` on first use
    and raise :class:`PayloadError` when it is not of that kind; ``json`` keeps integers beyond
    64 bits exact (:func:`loads_exact`). ``received_at`` is Unix seconds.
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
            return loads_exact(self.body)
        except json.JSONDecodeError as exc:
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
