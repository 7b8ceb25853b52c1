"""Periodic backfill inside ``serve``: per source with ``[sources.backfill] every``, one run per
period across all replicas sharing the outbox.

Before each run a replica takes the outbox lease ``backfill:<source>`` for ``every`` seconds
(:meth:`gateway.outbox.Outbox.take_lease`); a replica that finds it held by another skips
that period. A run renews the lease while it lasts, and the holder renews it at its next
period, so one replica keeps the job while it lives and another takes over within a period or
two after it stops. Runs happen in a worker thread (the providers' clients are synchronous);
shutdown stops a run between two requests.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from gateway.backfill.run import BackfillReport, StopToken
from gateway.backfill.runner import Backfiller, Window, build_backfiller, run_backfill
from gateway.config import ConfigError
from gateway.logs import get_logger
from gateway.metrics import Metrics
from gateway.outbox import Outbox, OutboxUnavailable
from gateway.receive import Source

LEASE_PREFIX = "backfill:"


def holder_id() -> str:
    """This process's lease holder name: host, pid and a random part (pids repeat in pods)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


@dataclass
class Plan:
    """One source's reconciliation: its backfiller and its period."""

    source: Source
    backfiller: Backfiller
    every: float
    lookback: float


@dataclass
class SourceStatus:
    """What the console shows per source: the last run here, or why there was none."""

    source: str
    every: float
    lookback: float
    last: BackfillReport | None = None
    skipped_at: float | None = None  # last period another replica held the lease
    next_at: float | None = None


def plans_for(
    sources: Mapping[str, Source], environ: Mapping[str, str], dedup_window: float
) -> list[Plan]:
    """A plan per source with ``every``; :class:`ConfigError` (at start-up) if one is unusable."""
    plans = []
    for source in sources.values():
        settings = source.config.backfill
        if settings is None or settings.every is None:
            continue
        every, lookback = settings.every_seconds or 0.0, settings.lookback_seconds
        if lookback > dedup_window:
            raise ConfigError(
                f"sources.{source.name}.backfill.lookback ({settings.lookback}) is longer than "
                f"outbox.dedup_window ({dedup_window:g}s): older events cannot be told from "
                "ones already forwarded"
            )
        plans.append(Plan(source, build_backfiller(source, environ), every, lookback))
    return plans


class Reconciler:
    """Runs every plan on its period until stopped."""

    def __init__(
        self,
        plans: list[Plan],
        outbox: Outbox,
        metrics: Metrics,
        *,
        strict_names: bool = False,
        on_store: Callable[[], None] | None = None,
        holder: str | None = None,
    ) -> None:
        self.plans = plans
        self.outbox = outbox
        self.metrics = metrics
        self.strict_names = strict_names
        self.on_store = on_store
        self.holder = holder or holder_id()
        self.token = StopToken()
        self.status = {
            p.source.name: SourceStatus(p.source.name, p.every, p.lookback) for p in plans
        }
        self.log = get_logger()

    async def run(self, stop: asyncio.Event) -> None:
        """Until ``stop`` is set; a run in progress is asked to stop at once."""
        if not self.plans:
            return
        tasks = [asyncio.create_task(self._loop(plan, stop)) for plan in self.plans]
        await stop.wait()
        self.token.set()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _loop(self, plan: Plan, stop: asyncio.Event) -> None:
        status = self.status[plan.source.name]
        while not stop.is_set():
            await self.once(plan)
            status.next_at = time.time() + plan.every
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), plan.every)

    async def once(self, plan: Plan) -> BackfillReport | None:
        """One period: take the lease, then run; None when another replica holds it."""
        name = plan.source.name
        status = self.status[name]
        try:
            held = await asyncio.to_thread(
                self.outbox.take_lease, LEASE_PREFIX + name, self.holder, plan.every
            )
        except OutboxUnavailable as exc:
            self.log.warning(
                "backfill: cannot take the lease", extra={"source": name, "error": str(exc)}
            )
            return None
        if not held:
            status.skipped_at = time.time()
            return None
        now = time.time()
        loop = asyncio.get_running_loop()
        wake = self.on_store

        def notify() -> None:  # from the run's thread: the forwarder's wake-up is the loop's
            if wake is not None:
                loop.call_soon_threadsafe(wake)

        running = asyncio.ensure_future(
            asyncio.to_thread(
                run_backfill,
                plan.source,
                plan.backfiller,
                self.outbox,
                Window(now - plan.lookback, now),
                self.token,
                strict_names=self.strict_names,
                on_store=notify if wake is not None else None,
            )
        )
        renewing = asyncio.create_task(self._renew(plan, running))
        report = await running
        renewing.cancel()
        status.last = report
        self.metrics.backfill_run(report)
        return report

    async def _renew(self, plan: Plan, running: asyncio.Future[BackfillReport]) -> None:
        """Keep the lease while a run outlasts a third of the period (no second replica starts)."""
        name = LEASE_PREFIX + plan.source.name
        while not running.done():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(running), plan.every / 3)
                return
            try:
                await asyncio.to_thread(self.outbox.take_lease, name, self.holder, plan.every)
            except OutboxUnavailable as exc:
                self.log.warning(
                    "backfill: cannot renew the lease",
                    extra={"source": plan.source.name, "error": str(exc)},
                )

    def overview(self) -> list[dict[str, object]]:
        """Per source: period, the last run here (its counts) or when another replica held it."""
        rows: list[dict[str, object]] = []
        for status in self.status.values():
            last = status.last
            rows.append(
                {
                    "source": status.source,
                    "every_seconds": status.every,
                    "lookback_seconds": status.lookback,
                    "last_run": last.as_dict() if last is not None else None,
                    "held_elsewhere_at": status.skipped_at,
                    "next_at": status.next_at,
                }
            )
        return rows
