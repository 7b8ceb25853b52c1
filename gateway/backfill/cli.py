"""``webhook-gateway backfill SOURCE --since DURATION [--until TIME] [--dry-run] [-o json]``.

Exit status: 0 when the run finished and nothing failed, 1 when some items could not be
recovered, 2 when the run could not run (configuration, credentials, rate limit, outbox), 143
when SIGTERM (130: Ctrl-C) stopped it; what was done until then is reported.
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime
from types import FrameType

from gateway.backfill.run import StopToken
from gateway.backfill.runner import Window, build_backfiller, check_window, run_backfill
from gateway.cli_output import Column, emit_one
from gateway.commands.common import load, open_existing_outbox
from gateway.config import ConfigError, parse_duration

_COLUMNS = ("found", "duplicates", "recovered", "filtered", "failed")


def parse_time(text: str, now: float) -> float:
    """Unix seconds from an ISO-8601 time, Unix seconds, or a duration ago (``2h``)."""
    value = text.strip()
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        pass
    else:
        if when.tzinfo is None:
            raise ConfigError(f"time {text!r} needs a UTC offset (Z or +00:00)")
        return when.timestamp()
    if value.isdigit() and len(value) >= 9:
        return float(value)
    try:
        return now - parse_duration(value)
    except ValueError:
        raise ConfigError(
            f"{text!r} is neither a duration ago (90m, 6h, 2d) nor a time "
            "(2026-01-31T12:00:00Z or Unix seconds)"
        ) from None


def window_from_args(args: argparse.Namespace, now: float) -> Window:
    since = parse_time(args.since, now)
    until = parse_time(args.until, now) if args.until else now
    return Window(since, min(until, now))


COLUMNS = (
    Column("SOURCE", "source"),
    Column("PROVIDER", "provider"),
    Column("SINCE", "since", "age"),
    *(Column(name.upper(), name, "number") for name in _COLUMNS),
    Column("STATUS", lambda r: str(r["status"]) + (" (dry run)" if r["dry_run"] else "")),
)


@contextmanager
def stop_on_signals(stop: StopToken) -> Iterator[dict[str, int]]:
    """SIGTERM and SIGINT set ``stop``; yields which one arrived (for the exit status)."""
    got: dict[str, int] = {}

    def handler(signum: int, frame: FrameType | None) -> None:
        got["signal"] = signum
        stop.set()

    previous = {s: signal.signal(s, handler) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield got
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


def run(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    from gateway.app import build_sources
    from gateway.plugins import load_registry

    config = load(args, environ)
    registry = load_registry(config.gateway.transforms_dir)
    sources, _ = build_sources(config, registry, environ)
    source = sources.get(args.source)
    if source is None:
        raise ConfigError(f"backfill: no source named {args.source!r} in the configuration")
    window = window_from_args(args, time.time())
    check_window(window, config.outbox.dedup_window)
    backfiller = build_backfiller(source, environ)
    stop = StopToken()
    outbox = open_existing_outbox(config, environ)
    try:
        with stop_on_signals(stop) as got:
            report = run_backfill(
                source,
                backfiller,
                outbox,
                window,
                stop,
                dry_run=args.dry_run,
                strict_names=config.gateway.strict_names,
            )
    finally:
        outbox.close()
    emit_one(args, report.as_dict(), COLUMNS)
    if report.error:
        print(f"webhook-gateway: backfill {report.status}: {report.error}", file=sys.stderr)
    if report.status == "interrupted":
        return 128 + got.get("signal", signal.SIGTERM)
    if report.status != "ok":
        return 2
    return 1 if report.failed else 0
