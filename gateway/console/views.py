"""What each console page shows, computed from the outbox (no Starlette, no HTML here)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl

import orjson

from gateway.console.masking import mask_headers, scrub
from gateway.console.recording import UNKNOWN
from gateway.outbox import Attempt, Outbox, Rejection, SourceCounts, WebhookSummary

OUTCOMES = ("delivered", "pending", "dead", "quarantined", "filtered")
STATUSES = ("", *OUTCOMES, "rejected")
OVERVIEW_WINDOW = 86400.0  # per-source counts cover the last 24 hours
CHART_WINDOW = 3600.0
CHART_BUCKET = 60.0
MAX_LIMIT = 500
PAGE_SIZE = 50  # rows per page of the webhook list
MAX_OFFSET = (
    10_000  # deeper than this, narrow the time range instead (each page reads offset+limit)
)
RECENT_REFUSALS = 8  # the overview's "why were requests refused" list
RANGES = {"15m": 900.0, "1h": 3600.0, "24h": 86400.0, "7d": 7 * 86400.0}  # quick time ranges


@dataclass(frozen=True)
class Row:
    """One line of the webhook list: a stored webhook or a refused request."""

    kind: str  # "webhook" or "rejected"
    id: int
    href: str
    received_at: float
    source: str
    status: str
    summary: str
    events: int | None

    def as_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "id": self.id,
            "url": self.href,
            "received_at": self.received_at,
            "source": self.source,
            "status": self.status,
            "summary": self.summary,
            "events": self.events,
        }


def webhook_row(w: WebhookSummary) -> Row:
    if w.status == "quarantined":
        summary = f"transform failed: {w.error or ''}"
    elif w.event_names:
        summary = ", ".join(w.event_names[:3]) + (" …" if len(w.event_names) > 3 else "")
    else:
        summary = "no events (filtered by the transform)"
    return Row(
        "webhook",
        w.id,
        f"/console/webhooks/{w.id}",
        w.received_at,
        w.source,
        w.outcome,
        summary,
        w.events,
    )


def rejection_row(r: Rejection) -> Row:
    return Row(
        "rejected",
        r.id,
        f"/console/rejected/{r.id}",
        r.received_at,
        r.source,
        "rejected",
        f"{r.status} {r.reason}: {r.message}",
        None,
    )


def parse_time(text: str) -> float | None:
    """A time from a query string: unix seconds, or ``YYYY-MM-DDTHH:MM[:SS]`` in UTC (what a
    ``datetime-local`` input sends); ``None`` when empty. ``ValueError`` names the format."""
    text = text.strip()
    if not text:
        return None
    try:
        return float(text)
    except ValueError:
        pass
    try:
        parsed = datetime.fromisoformat(text.removesuffix("Z"))
    except ValueError:
        raise ValueError(
            f"{text!r} is not a time: use YYYY-MM-DDTHH:MM (UTC) or unix seconds"
        ) from None
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).timestamp()


def time_input(ts: float | None) -> str:
    """``ts`` as a ``datetime-local`` input's value (UTC, to the second)."""
    return "" if ts is None else datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S")


def list_rows(
    outbox: Outbox,
    *,
    query: str,
    status: str,
    source: str,
    limit: int,
    offset: int = 0,
    since: float | None = None,
    until: float | None = None,
) -> tuple[list[Row], bool]:
    """One page of the merged list, newest first: webhooks (by outcome) and/or refused
    requests received in ``[since, until)``; and whether an older page exists."""
    q = query.strip() or None
    src = source or None
    window = offset + limit + 1  # each list's first rows, enough to merge this page exactly
    rows: list[Row] = []
    if status in ("", *OUTCOMES):
        rows += [
            webhook_row(w)
            for w in outbox.webhooks(
                source=src,
                outcome=status or None,
                query=q,
                limit=window,
                since=since,
                until=until,
            )
        ]
    if status in ("", "rejected"):
        outbox.flush_rejections()
        rows += [
            rejection_row(r)
            for r in outbox.rejections(source=src, query=q, limit=window, since=since, until=until)
        ]
    rows.sort(key=lambda r: r.received_at, reverse=True)
    return rows[offset : offset + limit], len(rows) > offset + limit


@dataclass(frozen=True)
class AttemptRow:
    """One line of an event's history: ``number`` counts requests to the Event API (a
    re-queue by an operator is not one, so it has none)."""

    attempt: Attempt
    number: int | None

    @property
    def answer(self) -> str:
        """``202``, ``no answer`` (network error, timeout) or ``""`` when not kept."""
        status = self.attempt.status
        return "" if status is None else ("no answer" if status == 0 else str(status))

    @property
    def latency(self) -> str:
        ms = self.attempt.latency_ms
        if ms is None:
            return ""
        return f"{ms:.0f} ms" if ms >= 10 else f"{ms:.1f} ms"


def attempt_rows(history: Sequence[Attempt]) -> list[AttemptRow]:
    rows: list[AttemptRow] = []
    number = 0
    for attempt in history:
        if attempt.outcome == "requeued":
            rows.append(AttemptRow(attempt, None))
        else:
            number += 1
            rows.append(AttemptRow(attempt, number))
    return rows


def pretty_body(body: bytes, secrets: Iterable[str], content_type: str = "") -> tuple[str, str]:
    """``(kind, text)``: JSON indented, a form one field per line, else the text as sent."""
    known = list(secrets)
    if not body:
        return "empty", ""
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError:
        pass
    else:
        return "json", scrub(orjson.dumps(value, option=orjson.OPT_INDENT_2).decode(), known)
    text = body.decode("utf-8", "replace")
    if "form-urlencoded" in content_type:
        pairs = parse_qsl(text, keep_blank_values=True)
        if pairs:
            return "form", scrub("\n".join(f"{k} = {v}" for k, v in pairs), known)
    return "text", scrub(text, known)


def truncated_json(body: bytes, secrets: Iterable[str]) -> tuple[str, str]:
    """A truncated body shown as it arrived (truncated JSON does not parse)."""
    return (
        ("text", scrub(body.decode("utf-8", "replace"), list(secrets))) if body else ("empty", "")
    )


def masked(
    headers: Mapping[str, str], secrets: Sequence[str], extra: Sequence[str]
) -> list[tuple[str, str]]:
    """Headers sorted by name, sensitive values masked, secrets scrubbed."""
    return sorted(mask_headers(headers, secrets, extra).items())


def age_text(seconds: float) -> str:
    """``42 s``, ``3 min``, ``5 h``, ``2 d``."""
    if seconds < 60:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{seconds // 60:.0f} min"
    if seconds < 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"


def bounded_counts(
    counts: Mapping[str, SourceCounts], configured: set[str]
) -> dict[str, SourceCounts]:
    """The overview's rows: configured sources, sources with stored webhooks (which needed a
    valid signature), and one ``(unknown)`` row summing refusals for any other name a client
    made up, so the page stays small whatever paths it was sent."""
    kept: dict[str, SourceCounts] = {}
    refused = 0
    for name, c in counts.items():
        if name in configured or c.accepted or c.quarantined or c.dead:
            kept[name] = c
        else:
            refused += c.rejected
    if refused:
        kept[UNKNOWN] = SourceCounts(rejected=refused)
    return kept
