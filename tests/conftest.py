"""Shared fixtures: the repo root on sys.path so ``tests.*`` helpers import; PostgreSQL's."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.pg import pg_cluster, pg_url  # noqa: E402, F401  (a real PostgreSQL: tests/pg.py)
