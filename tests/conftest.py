"""Shared fixtures: the repo root on sys.path so ``tests.*`` helpers import; PostgreSQL's; a
test's own entries on sys.path (plugin packages)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.pg import pg_cluster, pg_url  # noqa: E402, F401  (a real PostgreSQL: tests/pg.py)


@pytest.fixture
def on_path() -> Iterator[list[str]]:
    """Directories appended here are on ``sys.path`` for the test only; the ``acme_*`` plugin
    modules imported meanwhile are forgotten, and so are the provider plugins they registered."""
    from gateway.providers._registry import reload_plugins

    added: list[str] = []
    modules = set(sys.modules)
    yield added
    for entry in added:
        sys.path.remove(entry)
    for name in set(sys.modules) - modules:
        if name.startswith("acme_"):
            del sys.modules[name]
    reload_plugins()
