"""``webhook-gateway check``: what ``serve`` would refuse, found without serving."""

from __future__ import annotations

import argparse
from collections.abc import Mapping

from gateway.commands.common import load


def run(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    from gateway.app import build_sources
    from gateway.plugins import load_registry

    config = load(args, environ)
    registry = load_registry(config.gateway.transforms_dir)
    sources, _ = build_sources(config, registry, environ)
    for name, source in sources.items():
        print(f"source {name}: provider {source.provider.name}, transform {source.transform_name}")
    print("configuration OK")
    return 0
