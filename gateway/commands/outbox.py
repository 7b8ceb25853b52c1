"""``webhook-gateway outbox status|list|retry|purge|migrate``: inspect and repair the outbox."""

from __future__ import annotations

import argparse
import time
from collections.abc import Mapping, Sequence
from typing import Any

from gateway.cli_output import Column, emit, emit_one, output_format
from gateway.commands.common import confirm, load, open_existing_outbox
from gateway.config import ConfigError
from gateway.config import parse_duration as duration_seconds
from gateway.outbox import ENTRY_STATES, PURGE_STATES, UNDELIVERED_STATES
from gateway.outbox.open import outbox_location

LIST_GROUPS = {"undelivered": UNDELIVERED_STATES, "all": ENTRY_STATES}

STATUS_COLUMNS = (
    Column("PENDING", "pending", "number"),
    Column("RETRYING", "retrying", "number"),
    Column("LEASED", "leased", "number"),
    Column("DEAD", "dead", "number"),
    Column("QUARANTINED", "quarantined", "number"),
    Column("DELIVERED", "delivered", "number"),
    Column("OLDEST PENDING", "oldest_pending_age_seconds", "duration"),
    Column("OUTBOX", "location"),
)
LIST_COLUMNS = (
    Column("ID", "id", "number"),
    Column("KIND", "kind"),
    Column("STATE", "state"),
    Column("SOURCE", "source"),
    Column("NAME", "name", width=40),
    Column("ATTEMPTS", "attempts", "number"),
    Column("NEXT", "next_attempt_at", "due"),
    Column("AGE", "created_at", "age"),
    Column("ERROR", "error", width=60),
)


def _states(
    values: Sequence[str], allowed: Sequence[str], groups: Mapping[str, Sequence[str]], where: str
) -> list[str] | None:
    """``--state`` values (repeatable, comma-separated) as states; None when none was given."""
    states: list[str] = []
    for value in values:
        for part in filter(None, (p.strip().lower() for p in value.split(","))):
            if part in groups:
                states += groups[part]
            elif part in allowed:
                states.append(part)
            else:
                choices = ", ".join((*allowed, *groups))
                raise ConfigError(f"{where}: unknown --state {part!r} (one of {choices})")
    return list(dict.fromkeys(states)) or None


def parse_duration(text: str) -> float:
    """``90``, ``90s``, ``30m``, ``12h``, ``7d``, ``2w`` as seconds; ConfigError otherwise."""
    try:
        return duration_seconds(text)
    except ValueError:
        raise ConfigError(
            f"--older-than {text!r}: write a duration such as 90s, 30m, 12h or 7d"
        ) from None


def run(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    config = load(args, environ)
    if args.outbox_cmd == "migrate":  # before opening: opening an outdated schema is refused
        from gateway.outbox.migrate import run_migrate

        return run_migrate(args, environ, config)
    outbox = open_existing_outbox(config, environ)
    try:
        if args.outbox_cmd == "status":
            stats = outbox.stats()
            record: dict[str, Any] = {
                "data_dir": config.gateway.data_dir,
                "backend": config.outbox.backend,
                "location": outbox_location(config, environ),
                "pending": stats.pending,
                "retrying": stats.retrying,
                "undelivered": stats.pending + stats.retrying + stats.leased,
                "leased": stats.leased,
                "dead": stats.dead,
                "quarantined": stats.quarantined,
                "delivered": stats.delivered,
                "oldest_pending_age_seconds": round(stats.oldest_pending_age, 3),
            }
            if output_format(args) == "table" and not record["undelivered"]:
                record["oldest_pending_age_seconds"] = None  # shown as "-", not "0s"
            emit_one(args, record, STATUS_COLUMNS)
        elif args.outbox_cmd == "list":
            states = _states(args.state, ENTRY_STATES, LIST_GROUPS, "outbox list")
            rows = [_entry(e) for e in outbox.entries(states, limit=args.limit)]
            emit(args, rows, LIST_COLUMNS, empty="No outbox rows found in those states.")
        elif args.outbox_cmd == "retry":
            return _retry(args, outbox)
        elif args.outbox_cmd == "purge":
            return _purge(args, outbox)
    finally:
        outbox.close()
    return 0


def _entry(e: Any) -> dict[str, Any]:
    return {
        "id": e.id,
        "kind": e.kind,
        "state": e.state,
        "source": e.source,
        "name": e.name,
        "event_id": e.event_id,
        "webhook_id": e.webhook_id,
        "attempts": e.attempts,
        "next_attempt_at": e.next_attempt_at,
        "error": e.error,
        "created_at": e.created_at,
    }


def _retry(args: argparse.Namespace, outbox: Any) -> int:
    if not args.all and not args.ids:
        raise ConfigError("outbox retry: give dead-letter IDs or --all")
    bad = [i for i in args.ids if not i.isdigit()]
    if bad:
        raise ConfigError(f"outbox retry: IDs are numbers from 'outbox list', not {bad}")
    seqs = None if args.all else [int(i) for i in args.ids]
    if seqs is not None:
        dead = {d.id for d in outbox.dead_letters(limit=1_000_000) if d.kind == "event"}
        unknown = [seq for seq in seqs if seq not in dead]
        if unknown:
            raise ConfigError(
                f"outbox retry: {', '.join(map(str, unknown))} not dead-lettered events "
                "(for quarantined webhooks use 'quarantine replay')"
            )
    asked = outbox.stats(delivered=False).dead if seqs is None else len(set(seqs))
    count = outbox.retry_dead(seqs)
    print(f"{count} dead-lettered event(s) queued for delivery again")
    if asked > count:
        print(
            f"{asked - count} left dead: their event id was accepted again since (a live copy"
            " holds it), so sending them would deliver it twice; 'outbox purge --state dead'"
            " removes them"
        )
    return 0


def _purge(args: argparse.Namespace, outbox: Any) -> int:
    states = _states(args.state, PURGE_STATES, {"all": PURGE_STATES}, "outbox purge")
    older = parse_duration(args.older_than) if args.older_than else None
    chosen = states or list(PURGE_STATES)
    what = {
        "delivered": "delivered events",
        "dead": "dead letters",
        "quarantined": "quarantined webhooks",
    }
    scope = ", ".join(what[s] for s in chosen)
    if older is not None:
        scope += f" older than {args.older_than}"
    if not args.yes:
        answer = confirm(f"Delete {scope}? Type 'yes': ")
        if answer is None:
            raise ConfigError("outbox purge: confirm with --yes (nothing to ask on)")
        if answer.strip().lower() not in ("yes", "y"):
            print("nothing purged")
            return 1
    before = None if older is None else time.time() - older
    print(f"{outbox.purge(states=chosen, before=before)} row(s) purged ({scope})")
    return 0
