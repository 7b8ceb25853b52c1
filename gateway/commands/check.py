"""``webhook-gateway check``: what ``serve`` would refuse, found without serving."""

from __future__ import annotations

import argparse
from collections.abc import Mapping

from gateway.commands.common import load


def run(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    from gateway.app import build_sources
    from gateway.backfill.reconciler import plans_for
    from gateway.plugins import load_registry

    config = load(args, environ)
    registry = load_registry(config.gateway.transforms_dir)
    sources, _ = build_sources(config, registry, environ)
    reconciled = {p.source.name: p for p in plans_for(sources, environ, config.outbox.dedup_window)}
    for name, source in sources.items():
        line = f"source {name}: provider {source.provider.name}, transform {source.transform_name}"
        plan = reconciled.get(name)
        if plan is not None:
            line += f", backfill every {plan.every:g}s looking back {plan.lookback:g}s"
        print(line)
    print("configuration OK")
    return 0
