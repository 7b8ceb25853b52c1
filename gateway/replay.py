"""Re-run a quarantined webhook through its transform: shared by the CLI and the console."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from gateway.outbox import AcceptResult, Outbox
from gateway.plugins import TransformFunc
from gateway.transform_runner import (
    TransformOutcome,
    check_sizes,
    run_transform,
    run_transform_bounded,
)
from gateway.webhook import Webhook


@dataclasses.dataclass(frozen=True)
class ReplayPlan:
    """How to re-run one webhook: its source's transform, prefix and options of today."""

    transform: TransformFunc
    prefix: str
    options: Mapping[str, Any] | None  # None: the source is no longer configured
    max_event_bytes: int | None = None  # larger events keep the webhook quarantined


def store(outbox: Outbox, webhook_id: int, outcome: TransformOutcome) -> AcceptResult:
    """Queue the events a re-run produced and take the webhook out of quarantine."""
    return outbox.resolve_quarantined(
        webhook_id,
        outcome.payloads,
        [e.id for e in outcome.events],
        [e.name for e in outcome.events],
    )


def _prepared(webhook: Webhook, plan: ReplayPlan) -> Webhook:
    if plan.options is None:
        return dataclasses.replace(webhook, prefix=plan.prefix)
    return dataclasses.replace(webhook, options=plan.options, prefix=plan.prefix)


def replay(
    outbox: Outbox, webhook_id: int, webhook: Webhook, plan: ReplayPlan, *, strict_names: bool
) -> AcceptResult:
    """Run the transform in this thread and store its events; ``TransformError`` if it fails."""
    outcome = run_transform(
        plan.transform, _prepared(webhook, plan), prefix=plan.prefix, strict_names=strict_names
    )
    check_sizes(outcome, plan.max_event_bytes)
    return store(outbox, webhook_id, outcome)


async def replay_async(
    outbox: Outbox,
    webhook_id: int,
    webhook: Webhook,
    plan: ReplayPlan,
    *,
    strict_names: bool,
    timeout: float,
) -> AcceptResult:
    """:func:`replay` for the event loop, with the receive path's transform timeout."""
    import asyncio

    outcome = await run_transform_bounded(
        plan.transform,
        _prepared(webhook, plan),
        prefix=plan.prefix,
        strict_names=strict_names,
        timeout=timeout,
    )
    check_sizes(outcome, plan.max_event_bytes)
    return await asyncio.to_thread(store, outbox, webhook_id, outcome)
