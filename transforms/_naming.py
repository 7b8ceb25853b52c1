"""Event-name pieces the built-in transforms share: snake case (from words or camelCase) and
dotted noun.verb."""

from __future__ import annotations

import re

_SNAKE = re.compile(r"[^a-z0-9]+")
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")


def snake(text: str) -> str:
    """``Event Alert`` / ``event-alert`` -> ``event_alert``."""
    return _SNAKE.sub("_", text.lower()).strip("_")


def camel_snake(text: str) -> str:
    """``propertyChange`` -> ``property_change``; dots kept (HubSpot, Linear, Graph, Trello)."""
    return _CAMEL.sub("_", text).lower().replace("-", "_")


def dotted(kind: object, separator: str = ".") -> str | None:
    """``incident.triggered`` (or ``repo:push`` with ``separator=":"``) as snake-case segments
    joined by dots; ``None`` unless ``kind`` is a string of at least two non-empty segments."""
    if not isinstance(kind, str):
        return None
    parts = [snake(part) for part in kind.split(separator)]
    return ".".join(parts) if len(parts) >= 2 and all(parts) else None
