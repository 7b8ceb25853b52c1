"""The shared outbox on PostgreSQL: any number of replicas, one database.

Needs the ``postgres`` extra (psycopg 3 and psycopg_pool).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gateway.config import ConfigError, OutboxConfig, resolve_secret_text

APPLICATION_NAME = "webhook-gateway"


def _psycopg() -> Any:
    try:
        import psycopg
    except ImportError:
        raise ConfigError(
            "[outbox] backend = \"postgres\" needs psycopg: pip install 'webhook-gateway[postgres]'"
        ) from None
    return psycopg


def database_url(config: OutboxConfig, environ: Mapping[str, str] | None = None) -> str:
    """The libpq URL ``outbox.url`` refers to; :class:`ConfigError` naming the key if unset."""
    try:
        return resolve_secret_text(config.url, environ)
    except ConfigError as exc:
        raise ConfigError(f"outbox.url: {exc}") from None


def connection_options(config: OutboxConfig) -> dict[str, Any]:
    """Keyword arguments for every connection: time limits, keepalives, a name in pg_stat."""
    return {
        "connect_timeout": max(1, round(config.connect_timeout)),
        "application_name": APPLICATION_NAME,
        "keepalives": 1,
        "keepalives_idle": 30,
        "keepalives_interval": 10,
        "keepalives_count": 3,
        # a stuck statement or a replica that stops mid-transaction cannot hold row locks long
        "options": f"-c statement_timeout={round(config.statement_timeout * 1000)}"
        " -c idle_in_transaction_session_timeout=60000",
    }


def connect(
    config: OutboxConfig, environ: Mapping[str, str] | None = None, *, autocommit: bool = False
) -> Any:
    """One connection to the configured database."""
    psycopg = _psycopg()
    return psycopg.connect(
        database_url(config, environ), autocommit=autocommit, **connection_options(config)
    )
