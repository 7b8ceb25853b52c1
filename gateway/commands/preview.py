"""``webhook-gateway preview``: run a source's transform on a payload file, unverified."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Mapping

from gateway.cli_output import print_json
from gateway.commands.common import load, parse_headers
from gateway.config import ConfigError


def run(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    from gateway.plugins import TransformError, load_registry
    from gateway.providers import provider_names
    from gateway.transform_runner import run_transform
    from gateway.webhook import Webhook

    config = load(args, environ)
    registry = load_registry(config.gateway.transforms_dir)
    source = config.source(args.source)
    if source is not None:
        provider, prefix = source.provider_name, source.event_prefix
        transform_name = source.transform or provider
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
        headers=parse_headers(args.header),
        received_at=time.time(),
        options=source.options if source is not None else {},
        prefix=prefix,
    )
    try:
        outcome = run_transform(registry.get(transform_name), webhook, prefix=prefix)
    except TransformError as exc:
        if args.traceback and exc.detail:
            sys.stderr.write(exc.detail if exc.detail.endswith("\n") else exc.detail + "\n")
        raise
    for warning in outcome.convention_warnings:
        print(f"warning: {warning}", file=sys.stderr)
    print_json([event.to_payload() for event in outcome.events])
    if not outcome.events:
        print(
            f"filtered: transform {transform_name!r} returned no events; the gateway would "
            "answer 200 and forward nothing",
            file=sys.stderr,
        )
    return 0
