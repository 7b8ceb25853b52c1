"""``webhook-gateway quarantine list|replay``: webhooks whose transform failed."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping
from typing import Any

from gateway.cli_output import Column, emit, output_format
from gateway.commands.common import load, open_existing_outbox
from gateway.config import ConfigError

LIST_COLUMNS = (
    Column("ID", "webhook_id", "number"),
    Column("SOURCE", "source"),
    Column("PROVIDER", "provider"),
    Column("RECEIVED", "received_at", "age"),
    Column("BYTES", "bytes", "number"),
    Column("ERROR", "error", width=70),
)


def run(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    config = load(args, environ)
    outbox = open_existing_outbox(config, environ)
    try:
        if args.quarantine_cmd == "list":
            return _list(args, outbox)
        return _replay(args, config, outbox)
    finally:
        outbox.close()


def _list(args: argparse.Namespace, outbox: Any) -> int:
    rows: list[dict[str, Any]] = []
    for wid, wh, error in outbox.quarantined(limit=args.limit):
        row: dict[str, Any] = {
            "webhook_id": wid,
            "source": wh.source,
            "provider": wh.provider,
            "received_at": wh.received_at,
            "error": error,
            "bytes": len(wh.body),
        }
        if args.traceback:
            record = outbox.webhook(wid)
            row["traceback"] = record.detail if record is not None else None
        rows.append(row)
    emit(args, rows, LIST_COLUMNS, empty="No quarantined webhooks found.")
    if args.traceback and output_format(args) == "table":
        for row in rows:
            print(f"\n--- webhook {row['webhook_id']} ---\n{(row['traceback'] or '').rstrip()}")
    return 0


def _replay(args: argparse.Namespace, config: Any, outbox: Any) -> int:
    from gateway.plugins import TransformError, load_registry
    from gateway.replay import ReplayPlan, replay

    if not args.all and not args.ids:
        raise ConfigError("quarantine replay: give webhook IDs or --all")
    bad = [i for i in args.ids if not i.isdigit()]
    if bad:
        raise ConfigError(f"quarantine replay: IDs are numbers from 'quarantine list', not {bad}")
    wanted = None if args.all else {int(i) for i in args.ids}
    held = outbox.quarantined(limit=args.limit)
    failed = 0
    if wanted is not None:
        for webhook_id in sorted(wanted - {wid for wid, _, _ in held}):
            failed += 1
            print(f"webhook {webhook_id}: {_not_quarantined(outbox, webhook_id)}", file=sys.stderr)
    registry = load_registry(config.gateway.transforms_dir)
    for webhook_id, webhook, _ in held:
        if wanted is not None and webhook_id not in wanted:
            continue
        source = config.source(webhook.source)
        transform_name = (source.transform if source else None) or webhook.provider
        plan = ReplayPlan(
            registry.get(transform_name),
            source.event_prefix if source else webhook.provider,
            source.options if source is not None else None,
        )
        try:
            result = replay(
                outbox, webhook_id, webhook, plan, strict_names=config.gateway.strict_names
            )
        except TransformError as exc:
            failed += 1
            print(f"webhook {webhook_id}: still failing: {exc}", file=sys.stderr)
            continue
        print(
            f"webhook {webhook_id}: {result.stored} event(s) queued, "
            f"{result.duplicates} duplicate(s) skipped"
        )
    return 1 if failed else 0


def _not_quarantined(outbox: Any, webhook_id: int) -> str:
    record = outbox.webhook(webhook_id)
    if record is None:
        return "no such webhook (IDs come from 'quarantine list'); nothing replayed"
    if record.summary.status == "resolved":
        return "not quarantined: it was already replayed; nothing replayed"
    return "not quarantined: its transform succeeded when it arrived; nothing replayed"
