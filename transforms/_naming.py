"""Event-name pieces the built-in transforms share: lower snake case and dotted noun.verb."""

from __future__ import annotations

import re

_SNAKE = re.compile(r"[^a-z0-9]+")


def snake(text: str) -> str:
    """``Event Alert`` / ``event-alert`` -> ``event_alert``."""
    return _SNAKE.sub("_", text.lower()).strip("_")


def dotted(kind: object, separator: str = ".") -> str | None:
    """``incident.triggered`` (or ``repo:push`` with ``separator=":"``) as snake-case segments
    joined by dots; ``None`` unless ``kind`` is a string of at least two non-empty segments."""
    if not isinstance(kind, str):
        return None
    parts = [snake(part) for part in kind.split(separator)]
    return ".".join(parts) if len(parts) >= 2 and all(parts) else None
