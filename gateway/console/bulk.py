"""Bulk actions: which stored webhooks a filtered list selects for a retry or a replay.

No Starlette here; :mod:`gateway.console.app` runs the actions and answers.
"""

from __future__ import annotations

from dataclasses import dataclass

from gateway.outbox import Outbox

BULK_MAX = 500  # webhooks one bulk action touches, newest first; run it again for more
BULK_SECONDS = 20.0  # a bulk replay stops starting transforms after this; run it again for more


@dataclass(frozen=True)
class Selection:
    """The webhook list's filter (status aside: each action picks its own outcome)."""

    query: str
    source: str
    since: float | None
    until: float | None

    def webhook_ids(self, outbox: Outbox, outcome: str) -> list[int]:
        """Ids of the selected webhooks with ``outcome``, newest first, at most ``BULK_MAX``."""
        summaries = outbox.webhooks(
            source=self.source or None,
            outcome=outcome,
            query=self.query.strip() or None,
            limit=BULK_MAX,
            since=self.since,
            until=self.until,
        )
        return [w.id for w in summaries]


def dead_events(outbox: Outbox, selection: Selection) -> tuple[int, list[int]]:
    """How many selected webhooks hold dead-lettered events, and those events' seqs."""
    ids = selection.webhook_ids(outbox, "dead")
    seqs: list[int] = []
    for webhook_id in ids:
        record = outbox.webhook(webhook_id)
        if record is not None:
            seqs += [e.seq for e in record.events if e.state == "dead"]
    return len(ids), seqs
