"""``webhook-gateway check``: what ``serve`` would refuse, found without serving.

Every problem is one line on stderr and the exit status is 1; a configuration that would serve
prints its sources and ``configuration OK``. A config file that does not parse stops at once
(exit 2), as it stops ``serve``.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from gateway.commands.common import load
from gateway.config import Config, ConfigError, resolve_secret


def run(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    from gateway.app import build_sources
    from gateway.backfill.reconciler import plans_for
    from gateway.plugins import load_registry

    config = load(args, environ)
    found, summary = problems(config, environ, dev=args.dev)
    if not found:
        try:
            sources, _ = build_sources(
                config, load_registry(config.gateway.transforms_dir), environ
            )
            plans = plans_for(sources, environ, config.outbox.dedup_window)
        except ConfigError as exc:
            found.append(str(exc))
        else:
            backfilled = {p.source.name: p for p in plans}
            summary = [
                line + _backfill_summary(backfilled.get(name))
                for name, line in zip(sources, summary, strict=True)
            ]
    for problem in found:
        print(f"problem: {problem}", file=sys.stderr)
    if found:
        return 1
    for line in summary:
        print(line)
    print("configuration OK")
    return 0


def _backfill_summary(plan: Any) -> str:
    if plan is None:
        return ""
    return f", backfill every {plan.every:g}s looking back {plan.lookback:g}s"


def problems(
    config: Config, environ: Mapping[str, str], *, dev: bool
) -> tuple[list[str], list[str]]:
    """Everything ``serve`` (with ``--dev`` when ``dev``) would refuse, and the sources' summary."""
    from gateway.app import build_provider
    from gateway.plugins import PluginLoadError, load_registry

    found: list[str] = []
    summary: list[str] = []
    if not config.sources:
        found.append(
            "no sources configured: declare [[sources]] in the config file, or set "
            "a provider's secret variable (STRIPE_WEBHOOK_SECRET, <NAME>_WEBHOOK_SECRET; "
            "'webhook-gateway providers' lists them)"
        )
    registry: Any = None
    try:
        registry = load_registry(config.gateway.transforms_dir)
    except PluginLoadError as exc:
        found.append(f"gateway.transforms_dir: {exc}")
    for i, sc in enumerate(config.sources):
        provider = None
        try:
            provider, _ = build_provider(i, sc, environ)
        except ConfigError as exc:
            found.append(str(exc))
        transform = sc.transform or (provider.name if provider is not None else sc.provider)
        if registry is not None:
            try:
                registry.get(transform)
            except (KeyError, PluginLoadError) as exc:
                found.append(f"sources[{i}] ({sc.name}).transform: {exc}")
                continue
        if provider is not None:
            summary.append(f"source {sc.name}: provider {provider.name}, transform {transform}")
    found += _target_problems(config, environ, dev)
    found += _secret_problems(config, environ)
    problem = data_dir_problem(config.gateway.data_dir)
    if problem is not None:
        found.append(problem)
    return found, summary


def _target_problems(config: Config, environ: Mapping[str, str], dev: bool) -> list[str]:
    from gateway.eventapi import EventApiError, resolve_target

    if not config.forwarder.enabled:
        return []
    try:
        resolve_target(config.inngest, environ, dev_flag=dev)
    except (EventApiError, ConfigError) as exc:
        return [f"inngest: {exc}"]
    return []


def _secret_problems(config: Config, environ: Mapping[str, str]) -> list[str]:
    """The outbox's encryption key and the console's tokens resolve (and the key is a key)."""
    from gateway.outbox.crypto import Cipher, CipherError

    found: list[str] = []
    if config.outbox.encryption_key:
        try:
            Cipher(resolve_secret(config.outbox.encryption_key, environ))
        except (ConfigError, CipherError) as exc:
            found.append(f"outbox.encryption_key: {exc}")
    if config.console.enabled:
        try:
            config.console.resolved_tokens(environ)
        except ConfigError as exc:
            found.append(f"console: {exc}")
    return found


def data_dir_problem(data_dir: str) -> str | None:
    """Why ``serve`` could not keep its outbox in ``data_dir``, or None.

    Tried for real (a temporary file is created and removed) rather than with ``os.access``,
    which says yes to root on a read-only mount. A directory that does not exist yet must be
    creatable: its nearest existing ancestor is tried instead, and nothing is created.
    """
    path = Path(data_dir)
    if path.exists() and not path.is_dir():
        return f"gateway.data_dir {path}: is not a directory"
    probe = path
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir():
        return f"gateway.data_dir {path}: cannot be created: {probe} is not a directory"
    try:
        with tempfile.TemporaryFile(dir=probe):
            pass
    except OSError as exc:
        what = "is not writable" if probe == path else f"cannot be created in {probe}"
        uid = f" by uid {os.getuid()}" if hasattr(os, "getuid") else ""
        return f"gateway.data_dir {path}: {what}{uid} ({exc.strerror})"
    return None
