"""The command line: serve, check, transforms, preview, outbox, quarantine."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import os
import socket
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import orjson

from gateway.config import Config, ConfigError, config_from_env, load_config
from gateway.outbox import ENTRY_STATES, UNDELIVERED_STATES

DEFAULT_HOST = "0.0.0.0"
DEFAULT_PORT = 8080


def _load(args: argparse.Namespace, environ: Mapping[str, str]) -> Config:
    path = getattr(args, "config", None) or environ.get("GATEWAY_CONFIG")
    return load_config(path, environ) if path else config_from_env(environ)


def _print_json(value: Any) -> None:
    sys.stdout.write(orjson.dumps(value, option=orjson.OPT_INDENT_2).decode() + "\n")


def cmd_serve(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    import uvicorn

    from gateway.app import build_gateway, create_app
    from gateway.logs import configure_logging

    config = _load(args, environ)
    gateway = build_gateway(config, environ, dev=args.dev)
    log = configure_logging(args.log_level or config.gateway.log_level, gateway.secrets)
    if not gateway.sources:
        log.warning(
            "no sources configured: set STRIPE_WEBHOOK_SECRET, SLACK_SIGNING_SECRET or "
            "INTERCOM_CLIENT_SECRET, or pass --config"
        )
    app = create_app(gateway)
    _freeze_startup_heap()
    public = uvicorn.Config(
        app,
        host=args.host,
        port=args.port,
        log_config=None,
        access_log=False,
        server_header=False,
        proxy_headers=False,
        timeout_graceful_shutdown=int(config.forwarder.shutdown_deadline) + 5,
    )
    if not config.console.enabled:
        uvicorn.Server(public).run()
        return 0
    from gateway.console import create_console_app

    console = config.console
    sock = _bind(console.host, console.port)
    admin = uvicorn.Config(
        create_console_app(gateway),
        lifespan="off",
        log_config=None,
        access_log=False,
        server_header=False,
        proxy_headers=False,
        timeout_graceful_shutdown=5,
    )
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    log.info("console listening", extra={"url": f"http://{shown}:{port}/console"})
    asyncio.run(_serve_both(uvicorn.Server(public), uvicorn.Server(admin), sock))
    return 0


def _freeze_startup_heap() -> None:
    """Keep the start-up heap out of the garbage collector's full collections.

    Modules, classes, pydantic schemas and the stripe package are some 70,000 objects that live
    as long as the process. A full (generation 2) collection walks them all: on the 2-core bench
    machine that stalled the event loop for 40-55 ms every few seconds under load. Frozen, they
    are never collected (they would not be anyway) and a full collection takes a few ms.
    """
    gc.collect()
    gc.freeze()


def _bind(host: str, port: int) -> socket.socket:
    """The admin port's socket, bound before anything starts so a clash stops ``serve``."""
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
        return socket.create_server((host, port), family=family, backlog=128)
    except OSError as exc:
        raise ConfigError(f"console.port: cannot listen on {host}:{port}: {exc.strerror}") from None


async def _serve_both(public: Any, admin: Any, sock: socket.socket) -> None:
    """The public server (which owns the lifespan and the signals) and the admin server.

    The admin server stops as soon as the public one starts to shut down.
    """

    @contextlib.contextmanager
    def no_signals() -> Iterator[None]:
        yield

    admin.capture_signals = no_signals  # the public server handles SIGTERM/SIGINT for both
    admin_task = asyncio.create_task(admin.serve(sockets=[sock]))

    async def follow() -> None:
        while not public.should_exit and not admin_task.done():
            await asyncio.sleep(0.1)
        admin.should_exit = True

    follower = asyncio.create_task(follow())
    try:
        await public.serve()
    finally:
        admin.should_exit = True
        await follower
        with contextlib.suppress(Exception):
            await admin_task


def cmd_check(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    from gateway.app import build_sources
    from gateway.plugins import load_registry

    config = _load(args, environ)
    registry = load_registry(config.gateway.transforms_dir)
    sources, _ = build_sources(config, registry, environ)
    for name, source in sources.items():
        print(f"source {name}: provider {source.provider.name}, transform {source.transform_name}")
    print("configuration OK")
    return 0


def cmd_transforms(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    from gateway.plugins import load_registry

    config = _load(args, environ)
    registry = load_registry(config.gateway.transforms_dir)
    rows = list(registry.items())
    width = max((len(name) for name, _ in rows), default=4)
    for name, origin in rows:
        print(f"{name:<{width}}  {origin}")
    return 0


def _parse_headers(pairs: Sequence[str]) -> dict[str, str]:
    headers: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition(":")
        if not sep or not key.strip():
            raise ConfigError(f"--header {pair!r} must look like Name:value")
        headers[key.strip().lower()] = value.strip()
    return headers


def cmd_preview(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    from gateway.plugins import load_registry
    from gateway.providers import provider_names
    from gateway.transform_runner import run_transform
    from gateway.webhook import Webhook

    config = _load(args, environ)
    registry = load_registry(config.gateway.transforms_dir)
    source = config.source(args.source)
    if source is not None:
        provider, prefix = source.provider, source.event_prefix
        transform_name = source.transform or source.provider
    elif args.source in provider_names():
        provider = prefix = transform_name = args.source
    else:
        raise ConfigError(f"unknown source {args.source!r}: not configured and not a provider")
    if args.transform:
        transform_name = args.transform
    try:
        with open(args.payload_file, "rb") as fh:
            body = fh.read()
    except OSError as exc:
        raise ConfigError(f"cannot read {args.payload_file}: {exc.strerror}") from None
    webhook = Webhook(
        source=args.source,
        provider=provider,
        body=body,
        headers=_parse_headers(args.header),
        received_at=time.time(),
        options=source.options if source is not None else {},
        prefix=prefix,
    )
    outcome = run_transform(registry.get(transform_name), webhook, prefix=prefix)
    for warning in outcome.convention_warnings:
        print(f"warning: {warning}", file=sys.stderr)
    _print_json([event.to_payload() for event in outcome.events])
    return 0


def _open_outbox(args: argparse.Namespace, environ: Mapping[str, str]) -> Any:
    from gateway.outbox.sqlite import SQLiteOutbox

    config = _load(args, environ)
    return config, SQLiteOutbox.open(config.gateway.data_dir, config.outbox, environ)


LIST_STATES = ENTRY_STATES
LIST_GROUPS = {"undelivered": UNDELIVERED_STATES, "all": ENTRY_STATES}


def _list_states(values: Sequence[str]) -> list[str] | None:
    """``--state`` values (repeatable, comma-separated) as outbox states; None: the default."""
    states: list[str] = []
    for value in values:
        for part in filter(None, (p.strip().lower() for p in value.split(","))):
            if part in LIST_GROUPS:
                states += LIST_GROUPS[part]
            elif part in LIST_STATES:
                states.append(part)
            else:
                choices = ", ".join((*LIST_STATES, *LIST_GROUPS))
                raise ConfigError(f"outbox list: unknown --state {part!r} (one of {choices})")
    return list(dict.fromkeys(states)) or None


def _confirm(prompt: str) -> str | None:
    """Ask on the terminal, or read one line from piped stdin; None when stdin has nothing."""
    try:
        if sys.stdin.isatty():
            return input(prompt)
        sys.stderr.write(prompt)
        sys.stderr.flush()
        line = sys.stdin.readline()
    except (EOFError, OSError, ValueError):
        return None
    return line or None


def cmd_outbox(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    config, outbox = _open_outbox(args, environ)
    try:
        if args.outbox_cmd == "status":
            stats = outbox.stats()
            _print_json(
                {
                    "data_dir": config.gateway.data_dir,
                    "pending": stats.pending,
                    "retrying": stats.retrying,
                    "undelivered": stats.pending + stats.retrying + stats.leased,
                    "leased": stats.leased,
                    "dead": stats.dead,
                    "quarantined": stats.quarantined,
                    "delivered": stats.delivered,
                    "oldest_pending_age_seconds": round(stats.oldest_pending_age, 3),
                }
            )
        elif args.outbox_cmd == "list":
            _print_json(
                [
                    {
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
                    for e in outbox.entries(_list_states(args.state), limit=args.limit)
                ]
            )
        elif args.outbox_cmd == "retry":
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
            count = outbox.retry_dead(seqs)
            print(f"{count} dead-lettered event(s) queued for delivery again")
        elif args.outbox_cmd == "purge":
            if not args.yes:
                answer = _confirm(
                    "Delete delivered events, dead letters and quarantined webhooks? Type 'yes': "
                )
                if answer is None:
                    raise ConfigError("outbox purge: confirm with --yes (nothing to ask on)")
                if answer.strip().lower() not in ("yes", "y"):
                    print("nothing purged")
                    return 1
            print(f"{outbox.purge()} row(s) purged")
    finally:
        outbox.close()
    return 0


def cmd_quarantine(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    from gateway.plugins import TransformError, load_registry
    from gateway.replay import ReplayPlan, replay

    config, outbox = _open_outbox(args, environ)
    try:
        held = outbox.quarantined(limit=args.limit)
        if args.quarantine_cmd == "list":
            rows: list[dict[str, Any]] = []
            for wid, wh, error in held:
                row = {
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
            _print_json(rows)
            return 0
        if not args.all and not args.ids:
            raise ConfigError("quarantine replay: give webhook IDs or --all")
        wanted = None if args.all else {int(i) for i in args.ids}
        registry = load_registry(config.gateway.transforms_dir)
        failed = 0
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
    finally:
        outbox.close()


def cmd_providers(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    """``webhook-gateway providers`` (gateway/providers/listing.py)."""
    from gateway.providers.listing import cmd_providers as run

    return run(args, env)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser for ``webhook-gateway``."""
    parser = argparse.ArgumentParser(prog="webhook-gateway", description=__doc__)
    parser.add_argument("--version", action="version", version=_version())
    sub = parser.add_subparsers(dest="command", required=True)

    def add(name: str, help_text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.add_argument(
            "--config", help="TOML config file (default: $GATEWAY_CONFIG, else the environment)"
        )
        return p

    serve = add("serve", "run the gateway")
    serve.add_argument("--host", default=DEFAULT_HOST)
    serve.add_argument("--port", type=int, default=DEFAULT_PORT)
    serve.add_argument(
        "--dev",
        action="store_true",
        help="send to the local Inngest dev server (same as INNGEST_DEV=1)",
    )
    serve.add_argument("--log-level", default=None)
    add("check", "validate the configuration, secrets and transforms, then exit")
    add("transforms", "list registered transforms and where each came from")
    providers = sub.add_parser("providers", help="list the providers and how each is enabled")
    providers.add_argument("-o", "--output", choices=("table", "json", "markdown"), default="table")
    preview = add("preview", "run a source's transform on a payload file, without verification")
    preview.add_argument("source")
    preview.add_argument("payload_file")
    preview.add_argument("--header", action="append", default=[], metavar="K:V")
    preview.add_argument("--transform", help="use this transform instead of the source's")

    outbox = add("outbox", "inspect and repair the outbox of a data directory")
    osub = outbox.add_subparsers(dest="outbox_cmd", required=True)
    osub.add_parser("status", help="pending, retrying, dead-lettered, oldest age")
    olist = osub.add_parser(
        "list",
        help="events waiting, in retry, in flight or dead-lettered, and quarantined webhooks",
        description="List the outbox's rows as JSON, oldest first. Without --state: everything "
        "not delivered (pending, retrying, leased, dead, quarantined).",
    )
    olist.add_argument(
        "--state",
        action="append",
        default=[],
        metavar="STATE",
        help="pending|retrying|leased|dead|quarantined|delivered, or undelivered|all "
        "(repeatable or comma-separated)",
    )
    olist.add_argument("--limit", type=int, default=100)
    oretry = osub.add_parser("retry", help="send dead-lettered events again")
    oretry.add_argument("ids", nargs="*")
    oretry.add_argument("--all", action="store_true")
    opurge = osub.add_parser("purge", help="delete delivered rows, dead letters, quarantine")
    opurge.add_argument("--yes", "-y", action="store_true", help="do not ask for confirmation")

    quarantine = add("quarantine", "webhooks whose transform failed")
    qsub = quarantine.add_subparsers(dest="quarantine_cmd", required=True)
    qlist = qsub.add_parser("list", help="list quarantined webhooks")
    qlist.add_argument("--limit", type=int, default=1000)
    qlist.add_argument(
        "--traceback", action="store_true", help="include each transform failure's traceback"
    )
    qreplay = qsub.add_parser("replay", help="re-run quarantined webhooks through the transform")
    qreplay.add_argument("ids", nargs="*")
    qreplay.add_argument("--all", action="store_true")
    qreplay.add_argument("--limit", type=int, default=100000)
    for p in (outbox, quarantine):
        p.set_defaults(limit=100)
    return parser


def _version() -> str:
    from gateway import __version__

    return f"webhook-gateway {__version__}"


COMMANDS = {
    "serve": cmd_serve,
    "check": cmd_check,
    "transforms": cmd_transforms,
    "preview": cmd_preview,
    "outbox": cmd_outbox,
    "quarantine": cmd_quarantine,
    "providers": cmd_providers,
}


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    """Entry point of the ``webhook-gateway`` command; returns the exit status."""
    from gateway.eventapi import EventApiError
    from gateway.outbox import OutboxUnavailable
    from gateway.plugins import PluginLoadError, TransformError

    env = os.environ if environ is None else environ
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args, env)
    except (ConfigError, PluginLoadError, OutboxUnavailable, EventApiError) as exc:
        print(f"webhook-gateway: error: {exc}", file=sys.stderr)
        return 2
    except TransformError as exc:
        print(f"webhook-gateway: transform error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
