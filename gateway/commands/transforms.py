"""``webhook-gateway transforms``: every registered transform and where it came from."""

from __future__ import annotations

import argparse
from collections.abc import Mapping

from gateway.cli_output import Column, emit
from gateway.commands.common import load

COLUMNS = (Column("NAME", "name"), Column("ORIGIN", "origin"))


def run(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    from gateway.plugins import load_registry

    config = load(args, environ)
    registry = load_registry(config.gateway.transforms_dir)
    rows = [{"name": name, "origin": origin} for name, origin in registry.items()]
    emit(args, rows, COLUMNS, empty="No transforms registered.")
    return 0
