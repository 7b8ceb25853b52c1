"""The command line: parsing and dispatch only; each command lives in ``gateway/commands/``.

Global options (``--config``, ``-o``) are accepted before or after the subcommand; every command's
``--help`` ends with examples.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import TypeAlias

from gateway.cli_output import COMMAND_FORMATS, add_output_option
from gateway.commands import (
    check,
    outbox,
    preview,
    providers,
    quarantine,
    send,
    serve,
    transforms,
)
from gateway.config import ConfigError

DEFAULT_HOST = serve.DEFAULT_HOST
DEFAULT_PORT = serve.DEFAULT_PORT

_Group: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"
Handler = Callable[[argparse.Namespace, Mapping[str, str]], int]


def _examples(*lines: str) -> str:
    return "examples:\n" + "\n".join(f"  {line}" for line in lines)


def _global_options(
    parser: argparse.ArgumentParser, *, output: bool, extra: Sequence[str] = ()
) -> None:
    """``--config`` (and ``-o`` where a table is printed); suppressed defaults so the value given
    before the subcommand is not overwritten by the subcommand's own default."""
    parser.add_argument(
        "--config",
        default=argparse.SUPPRESS,
        metavar="FILE",
        help="TOML config file (default: $GATEWAY_CONFIG, else configured from the environment)",
    )
    if output:
        add_output_option(parser, extra=extra)


def _subcommands(parser: argparse.ArgumentParser, dest: str) -> _Group:
    return parser.add_subparsers(dest=dest, required=True, metavar="COMMAND", title="commands")


def _add(
    group: _Group,
    name: str,
    help_text: str,
    examples: Sequence[str],
    *,
    output: bool = False,
    description: str | None = None,
) -> argparse.ArgumentParser:
    p = group.add_parser(
        name,
        help=help_text,
        description=description or help_text,
        epilog=_examples(*examples),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _global_options(p, output=output)
    return p


def build_parser() -> argparse.ArgumentParser:
    """The argument parser for ``webhook-gateway``."""
    parser = argparse.ArgumentParser(
        formatter_class=argparse.RawDescriptionHelpFormatter,
        prog="webhook-gateway",
        description="Receive provider webhooks, verify them, turn them into Inngest events and "
        "forward them durably.",
        epilog=_examples(
            "STRIPE_WEBHOOK_SECRET=whsec_... webhook-gateway serve --dev",
            "webhook-gateway check --config gateway.toml",
            "webhook-gateway send stripe --sample invoice.paid",
            "webhook-gateway outbox status -o json",
        ),
    )
    parser.add_argument("--version", action="version", version=_version(), help="print the version")
    _global_options(parser, output=True, extra=COMMAND_FORMATS)
    sub = _subcommands(parser, "command")

    p = _add(
        sub,
        "serve",
        "run the gateway",
        [
            "webhook-gateway serve --config gateway.toml",
            "STRIPE_WEBHOOK_SECRET=whsec_... webhook-gateway serve --dev --port 9000",
        ],
    )
    p.add_argument(
        "--host", default=DEFAULT_HOST, help=f"address to listen on (default {DEFAULT_HOST})"
    )
    p.add_argument(
        "--port",
        type=int,
        default=DEFAULT_PORT,
        help=f"port to listen on (default {DEFAULT_PORT}; 0 picks a free one)",
    )
    p.add_argument(
        "--dev",
        action="store_true",
        help="send to the local Inngest dev server (same as INNGEST_DEV=1)",
    )
    p.add_argument(
        "--log-level",
        default=None,
        help="debug, info, warning or error (default: gateway.log_level, info)",
    )

    p = _add(
        sub,
        "check",
        "find what 'serve' would refuse: config, secrets, transforms, data dir",
        [
            "webhook-gateway check --config gateway.toml",
            "STRIPE_WEBHOOK_SECRET=whsec_... webhook-gateway check",
        ],
        description="Validate the configuration the way 'serve' does and print one line per "
        "problem (exit 1), or the sources and 'configuration OK' (exit 0).",
    )
    p.add_argument(
        "--dev",
        action="store_true",
        help="check as 'serve --dev' would run (no event key needed)",
    )
    _add(
        sub,
        "transforms",
        "list registered transforms and where each came from",
        ["webhook-gateway transforms", "webhook-gateway transforms -o json"],
        output=True,
    )
    p = _add(
        sub,
        "providers",
        "list the providers: verification, handshake, dedup id and the variable enabling each",
        [
            "webhook-gateway providers",
            "webhook-gateway providers -o json",
            "webhook-gateway providers -o markdown",
        ],
    )
    providers.add_arguments(p)

    p = _add(
        sub,
        "preview",
        "run a source's transform on a payload file, without verification",
        [
            "webhook-gateway preview stripe tests/fixtures/stripe/invoice.paid.json",
            "webhook-gateway preview github push.json --header X-GitHub-Event:push",
        ],
    )
    p.add_argument("source", help="a configured source, or a provider name")
    p.add_argument("payload_file", help="the request body, as the provider sends it")
    p.add_argument(
        "--header",
        action="append",
        default=[],
        metavar="K:V",
        help="a request header the transform reads (repeatable)",
    )
    p.add_argument("--transform", help="use this transform instead of the source's")
    p.add_argument(
        "--traceback",
        action="store_true",
        help="when the transform fails, print its traceback (as the quarantine stores it)",
    )

    group = _add(
        sub,
        "outbox",
        "inspect and repair the outbox (a data directory or a PostgreSQL database)",
        ["webhook-gateway outbox status", "webhook-gateway outbox list --state dead"],
        output=True,
    )
    osub = _subcommands(group, "outbox_cmd")
    _add(
        osub,
        "status",
        "counts: pending, retrying, leased, dead, quarantined, oldest age",
        [
            "webhook-gateway outbox status",
            "webhook-gateway outbox status --config gateway.toml -o json",
        ],
        output=True,
    )
    p = _add(
        osub,
        "list",
        "events waiting, in retry, in flight or dead-lettered, and quarantined webhooks",
        [
            "webhook-gateway outbox list",
            "webhook-gateway outbox list --state dead -o json",
            "webhook-gateway outbox list --state pending,retrying --limit 20",
        ],
        output=True,
        description="List the outbox's rows, oldest first. Without --state: everything "
        "not delivered (pending, retrying, leased, dead, quarantined).",
    )
    p.add_argument(
        "--state",
        action="append",
        default=[],
        metavar="STATE",
        help="pending|retrying|leased|dead|quarantined|delivered, or undelivered|all "
        "(repeatable or comma-separated)",
    )
    p.add_argument("--limit", type=int, default=100, help="at most this many rows (default 100)")
    p = _add(
        osub,
        "retry",
        "send dead-lettered events again",
        ["webhook-gateway outbox retry 12 13", "webhook-gateway outbox retry --all"],
    )
    p.add_argument(
        "ids", nargs="*", metavar="ID", help="dead-lettered event IDs from 'outbox list'"
    )
    p.add_argument("--all", action="store_true", help="every dead-lettered event")
    p = _add(
        osub,
        "purge",
        "delete delivered rows, dead letters, quarantined webhooks",
        [
            "webhook-gateway outbox purge --yes",
            "webhook-gateway outbox purge --state delivered --older-than 7d --yes",
        ],
        description="Delete delivered events, dead letters and quarantined webhooks (or the "
        "states given), and webhooks left without events, after a confirmation.",
    )
    p.add_argument("--yes", "-y", action="store_true", help="do not ask for confirmation")
    p.add_argument(
        "--state",
        action="append",
        default=[],
        metavar="STATE",
        help="delivered|dead|quarantined (repeatable or comma-separated; default all)",
    )
    p.add_argument(
        "--older-than",
        metavar="DURATION",
        help="only rows created (webhooks: received) longer ago than this: 90s, 30m, 12h, 7d, 2w",
    )
    p = _add(
        osub,
        "migrate",
        "bring a PostgreSQL outbox's schema up to date (a Kubernetes Job before a rollout)",
        ["webhook-gateway outbox migrate", "webhook-gateway outbox migrate --check -o json"],
        output=True,
        description="Apply the schema migrations this gateway ships to the database named by "
        "[outbox] url / GATEWAY_DATABASE_URL, under an advisory lock (replicas starting at once "
        'wait). Needed when [outbox] migrate = "off"; --check only reports (exit 1 if behind).',
    )
    p.add_argument("--check", action="store_true", help="report the schema version; change nothing")

    group = _add(
        sub,
        "quarantine",
        "webhooks whose transform failed",
        ["webhook-gateway quarantine list", "webhook-gateway quarantine replay --all"],
        output=True,
    )
    qsub = _subcommands(group, "quarantine_cmd")
    p = _add(
        qsub,
        "list",
        "list quarantined webhooks",
        ["webhook-gateway quarantine list", "webhook-gateway quarantine list --traceback -o json"],
        output=True,
    )
    p.add_argument(
        "--limit", type=int, default=1000, help="at most this many webhooks (default 1000)"
    )
    p.add_argument(
        "--traceback", action="store_true", help="include each transform failure's traceback"
    )
    p = _add(
        qsub,
        "replay",
        "re-run quarantined webhooks through the transform",
        ["webhook-gateway quarantine replay 7 9", "webhook-gateway quarantine replay --all"],
    )
    p.add_argument("ids", nargs="*", metavar="ID", help="webhook IDs from 'quarantine list'")
    p.add_argument("--all", action="store_true", help="every quarantined webhook")
    p.add_argument(
        "--limit", type=int, default=100000, help="with --all: at most this many (default 100000)"
    )
    p = _add(
        sub,
        "send",
        "sign a test webhook with a source's secret, as its provider does, and POST it",
        [
            "webhook-gateway send stripe --sample invoice.paid",
            "webhook-gateway send github push.json --url https://hooks.example.com",
            "webhook-gateway send shopify --sample orders.create --config gateway.toml",
        ],
        description="Sign a payload with the source's first configured secret exactly as its "
        "provider does (timestamp, headers, JSON or form) and POST it to the gateway; print the "
        "status and the gateway's answer. Exit 0 when the webhook was accepted, 1 otherwise.",
    )
    p.add_argument("source", help="a configured source (its provider decides how to sign)")
    p.add_argument(
        "payload_file", nargs="?", help="the body to send, byte for byte (or use --sample)"
    )
    p.add_argument(
        "--sample",
        metavar="TYPE",
        help="a built-in sample of the source's provider, e.g. invoice.paid (a fresh event id "
        "each time); an unknown TYPE lists them",
    )
    p.add_argument(
        "--url",
        help=f"the gateway's base URL, or the full webhook URL (default {send.DEFAULT_URL}, "
        "the local 'serve' address)",
    )
    p.add_argument(
        "--event",
        help="the event the provider names in a header (GitHub X-GitHub-Event, Shopify "
        "X-Shopify-Topic); default: the sample type or the file name",
    )
    p.add_argument(
        "--header", action="append", default=[], metavar="K:V", help="add or replace a header"
    )
    p.add_argument(
        "--timeout", type=float, default=10.0, help="seconds to wait for the answer (default 10)"
    )
    p = _add(
        sub,
        "backfill",
        "recover webhooks that never arrived from the provider's API (stripe, github)",
        [
            "webhook-gateway backfill stripe --since 6h --dry-run",
            "webhook-gateway backfill github --since 2h --until 2026-01-31T12:00:00Z -o json",
        ],
        output=True,
        description="List what the provider sent in the window and recover what the outbox "
        "does not hold: Stripe events are stored through the source's transform, failed GitHub "
        "deliveries are redelivered by GitHub (docs/backfill.md). Exit 0 when nothing failed, "
        "1 when some items failed, 2 when the run could not run, 143 after SIGTERM.",
    )
    p.add_argument("source", help="a configured source of provider stripe or github")
    p.add_argument(
        "--since", required=True, metavar="DURATION", help="start: 90m, 6h, 1d ago (or a time)"
    )
    p.add_argument(
        "--until", metavar="TIME", help="end: 2026-01-31T12:00:00Z, Unix seconds or 1h ago"
    )
    p.add_argument(
        "--dry-run", action="store_true", help="report what would be recovered; change nothing"
    )
    return parser


def _backfill(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    from gateway.backfill.cli import run  # imported on use: it loads the providers' clients

    return run(args, environ)


def _version() -> str:
    from gateway import __version__

    return f"webhook-gateway {__version__}"


COMMANDS: dict[str, Handler] = {
    "serve": serve.run,
    "check": check.run,
    "transforms": transforms.run,
    "preview": preview.run,
    "outbox": outbox.run,
    "quarantine": quarantine.run,
    "send": send.run,
    "backfill": _backfill,
    "providers": providers.run,
}


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    """Entry point of the ``webhook-gateway`` command; returns the exit status."""
    from gateway.eventapi import EventApiError
    from gateway.outbox import OutboxUnavailable
    from gateway.plugins import PluginLoadError, TransformError

    env = os.environ if environ is None else environ
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "output", None) in COMMAND_FORMATS and args.command != "providers":
        parser.error(f"-o {args.output} is only an output of 'providers' (choose table or json)")
    try:
        status = COMMANDS[args.command](args, env)
        sys.stdout.flush()  # a closed pipe shows here, not at exit
        return status
    except BrokenPipeError:
        # the reader went away (``| head``): end quietly with the status a shell gives SIGPIPE
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except (ConfigError, PluginLoadError, OutboxUnavailable, EventApiError) as exc:
        print(f"webhook-gateway: error: {exc}", file=sys.stderr)
        return 2
    except TransformError as exc:
        print(f"webhook-gateway: transform error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
