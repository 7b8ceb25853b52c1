"""Shared set-up for the backfill tests: a configured source, a real outbox, one run."""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from gateway.app import build_sources
from gateway.backfill.run import BackfillReport, StopToken
from gateway.backfill.runner import Window, build_backfiller, run_backfill
from gateway.config import BackfillConfig, Config, GatewayConfig, OutboxConfig, SourceConfig
from gateway.outbox.sqlite import SQLiteOutbox
from gateway.plugins import load_registry
from gateway.receive import Source


def source_for(
    provider: str,
    backfill: dict[str, Any],
    *,
    name: str | None = None,
    transforms_dir: str | None = None,
    **extra: Any,
) -> Source:
    """The resolved source ``name`` (default: the provider) with a ``[sources.backfill]``."""
    config = SourceConfig(
        name=name or provider,
        provider=provider,
        secrets=[extra.pop("secret", "inline:whsec_backfill")],
        backfill=BackfillConfig(**backfill),
        **extra,
    )
    sources, _ = build_sources(
        Config(gateway=GatewayConfig(), sources=[config]), load_registry(transforms_dir), {}
    )
    return sources[config.name]


def open_outbox(data_dir: Path) -> SQLiteOutbox:
    return SQLiteOutbox.open(str(data_dir), OutboxConfig(), {})


def backfill(
    source: Source,
    outbox: SQLiteOutbox,
    *,
    since: float = 3600,
    until: float | None = None,
    dry_run: bool = False,
    environ: Mapping[str, str] | None = None,
    stop: StopToken | None = None,
) -> BackfillReport:
    """One run over the last ``since`` seconds."""
    now = time.time()
    window = Window(now - since, now if until is None else until)
    return run_backfill(
        source,
        build_backfiller(source, environ or {}),
        outbox,
        window,
        stop or StopToken(),
        dry_run=dry_run,
    )


def stored_event_ids(outbox: SQLiteOutbox) -> list[str | None]:
    return [
        e.event_id for e in outbox.entries(["pending", "leased", "delivered", "retrying"], 10_000)
    ]
