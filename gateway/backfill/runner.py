"""One run for one source: build the provider's backfiller, feed what it finds through the
source's transform and the outbox like the receive path does, report, log and count.

Dedup is the outbox's, by the transform's event ids (``stripe-evt_...``, ``github-<GUID>``):
an item is new only when some of its events' ids are not held within the dedup window. That
is why a run may not look back further than ``outbox.dedup_window``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

from gateway.backfill.run import BackfillError, BackfillReport, StopToken
from gateway.config import BackfillConfig, ConfigError, resolve_secret
from gateway.logs import get_logger
from gateway.outbox import Outbox, OutboxUnavailable
from gateway.plugins import TransformError
from gateway.receive import Source
from gateway.transform_runner import TransformOutcome, run_transform
from gateway.webhook import Webhook

PROVIDERS = ("stripe", "github")
#: marks a webhook the gateway built from a provider's API rather than received
BACKFILL_HEADER = "x-gateway-backfill"


@dataclass(frozen=True)
class Window:
    """Items created (Stripe) or delivered (GitHub) from ``since`` to ``until``, Unix seconds."""

    since: float
    until: float


class Intake:
    """Where a backfiller hands each item: the source's transform, then the outbox."""

    def __init__(
        self,
        source: Source,
        outbox: Outbox,
        report: BackfillReport,
        *,
        dry_run: bool,
        strict_names: bool,
        on_store: Callable[[], None] | None = None,
    ) -> None:
        self.source = source
        self.outbox = outbox
        self.report = report
        self.dry_run = dry_run
        self.strict_names = strict_names
        self.on_store = on_store
        self.log = get_logger()

    def webhook(self, body: bytes, headers: Mapping[str, str], origin: str) -> Webhook:
        """The webhook the provider would have sent, as the receive path would build it."""
        config = self.source.config
        return Webhook(
            source=config.name,
            provider=self.source.provider.name,
            body=body,
            headers={**headers, BACKFILL_HEADER: origin},
            received_at=time.time(),
            options=self.source.options,
            prefix=config.event_prefix,
        )

    def transform(self, webhook: Webhook, item: str) -> TransformOutcome | None:
        """The transform's events, or None when it fails (logged)."""
        try:
            return run_transform(
                self.source.transform,
                webhook,
                prefix=self.source.config.event_prefix,
                strict_names=self.strict_names,
                trusted=self.source.inline,
            )
        except TransformError as exc:
            self.log.warning(
                "backfill: transform failed",
                extra={"source": self.source.name, "item": item, "error": str(exc)},
            )
            return None

    def classify(self, outcome: TransformOutcome, item: str) -> str:
        """``filtered``, ``duplicate``, ``new``, or ``failed`` (an event without an id)."""
        if not outcome.events:
            return "filtered"
        ids = [e.id for e in outcome.events]
        if any(i is None for i in ids):
            self.log.warning(
                "backfill: an event has no id, so a copy cannot be told from the original",
                extra={"source": self.source.name, "item": item},
            )
            return "failed"
        wanted = [i for i in ids if i is not None]
        held = self.outbox.held_event_ids(wanted)
        return "duplicate" if set(wanted) <= held else "new"

    def offer(self, webhook: Webhook, item: str) -> None:
        """Store ``webhook``'s events unless the outbox holds them all; counts the outcome."""
        report = self.report
        report.found += 1
        outcome = self.transform(webhook, item)
        verdict = "failed" if outcome is None else self.classify(outcome, item)
        if verdict == "new" and outcome is not None and not self.dry_run:
            result = self.outbox.accept(
                webhook,
                outcome.payloads,
                [e.id for e in outcome.events],
                [e.name for e in outcome.events],
            )
            verdict = "new" if result.stored else "duplicate"  # a webhook won the race
            if result.stored and self.on_store is not None:
                self.on_store()
        self.count(verdict)

    def count(self, verdict: str) -> None:
        report = self.report
        if verdict == "new":
            report.recovered += 1
        elif verdict == "duplicate":
            report.duplicates += 1
        elif verdict == "filtered":
            report.filtered += 1
        else:
            report.failed += 1


class Backfiller(Protocol):
    """A provider's way of finding what was missed; raises :class:`BackfillError` to stop."""

    def run(self, window: Window, intake: Intake, stop: StopToken) -> None: ...


def backfill_config(source: Source) -> BackfillConfig:
    """The source's ``[sources.backfill]`` table; :class:`ConfigError` when it cannot have one."""
    config = source.config
    if config.provider not in PROVIDERS:
        raise ConfigError(
            f"source {config.name!r}: backfill supports providers {', '.join(PROVIDERS)}, "
            f"not {config.provider!r}"
        )
    if config.backfill is None:
        raise ConfigError(
            f"source {config.name!r} has no [sources.backfill] table (credentials, hook)"
        )
    return config.backfill


def build_backfiller(source: Source, environ: Mapping[str, str]) -> Backfiller:
    """The provider's backfiller with its credentials resolved; :class:`ConfigError` if not."""
    settings = backfill_config(source)
    where = f"sources.{source.name}.backfill"
    if source.config.provider == "stripe":
        from gateway.backfill.stripe import StripeBackfill

        stripe_backfill: Backfiller = StripeBackfill.from_config(settings, environ, where)
        return stripe_backfill
    from gateway.backfill.github import GitHubBackfill

    github_backfill: Backfiller = GitHubBackfill.from_config(settings, environ, where)
    return github_backfill


def credentials(source: Source, environ: Mapping[str, str]) -> list[str]:
    """The source's resolved backfill credentials, for the log scrubber."""
    settings = source.config.backfill
    if settings is None:
        return []
    refs = (settings.api_key, settings.token, settings.private_key)
    found: list[str] = []
    for ref in filter(None, refs):
        try:
            found.extend(resolve_secret(ref, environ))
        except ConfigError:
            continue  # reported where the backfiller is built
    return found


def check_window(window: Window, dedup_window: float) -> None:
    """A run may not reach further back than the outbox remembers event ids."""
    if window.until <= window.since:
        raise ConfigError("backfill: --until must be later than the start of the window")
    if dedup_window <= 0:
        raise ConfigError(
            "backfill needs outbox.dedup_window > 0: without it a recovered event cannot be "
            "told from one already received"
        )
    reach = time.time() - window.since
    if reach > dedup_window + 60:
        raise ConfigError(
            f"backfill: the window starts {reach / 3600:.1f}h ago, beyond outbox.dedup_window "
            f"({dedup_window / 3600:.1f}h): older events cannot be told from ones already "
            "forwarded; raise outbox.dedup_window to look further back"
        )


def run_backfill(
    source: Source,
    backfiller: Backfiller,
    outbox: Outbox,
    window: Window,
    stop: StopToken,
    *,
    dry_run: bool = False,
    strict_names: bool = False,
    on_store: Callable[[], None] | None = None,
) -> BackfillReport:
    """One run, start to end: never raises for the provider's or the outbox's failures."""
    report = BackfillReport(
        source=source.name,
        provider=source.provider.name,
        since=window.since,
        until=window.until,
        dry_run=dry_run,
    )
    intake = Intake(
        source, outbox, report, dry_run=dry_run, strict_names=strict_names, on_store=on_store
    )
    log = get_logger()
    try:
        backfiller.run(window, intake, stop)
        report.finish()
    except BackfillError as exc:
        report.finish(exc)
    except OutboxUnavailable as exc:
        report.finish(BackfillError(f"outbox unavailable: {exc}"))
    except Exception as exc:  # a bug: reported, never raised into serve's loop
        log.exception("backfill run failed", extra={"source": source.name})
        report.finish(BackfillError(f"unexpected error: {exc!r}"))
    level = logging.INFO if report.status == "ok" and not report.failed else logging.WARNING
    log.log(level, "backfill run", extra={"backfill": report.as_dict(), "source": source.name})
    return report
