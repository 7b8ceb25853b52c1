"""Open the outbox the configuration names: the SQLite file or the PostgreSQL database.

``serve``, the console and the ``outbox``/``quarantine`` commands all open it here.
"""

from __future__ import annotations

from collections.abc import Mapping

from gateway.config import Config, ConfigError
from gateway.outbox import Outbox


def open_outbox(config: Config, environ: Mapping[str, str] | None = None) -> Outbox:
    """The configured backend, opened (PostgreSQL: migrated under ``migrate = "auto"``).

    Raises :class:`gateway.outbox.OutboxUnavailable` when it cannot be opened and
    :class:`ConfigError` when a secret reference does not resolve or the postgres extra is
    missing.
    """
    if config.outbox.backend == "postgres":
        try:
            from gateway.outbox.postgres import PostgresOutbox
        except ImportError:
            raise ConfigError(
                'outbox.backend = "postgres" needs psycopg:'
                " pip install 'webhook-gateway[postgres]'"
            ) from None
        return PostgresOutbox.open(config.outbox, environ)
    from gateway.outbox.sqlite import SQLiteOutbox

    return SQLiteOutbox.open(config.gateway.data_dir, config.outbox, environ)


def outbox_location(config: Config, environ: Mapping[str, str] | None = None) -> str:
    """Where the outbox lives, for messages and ``outbox status``: never a password."""
    if config.outbox.backend != "postgres":
        return config.gateway.data_dir
    try:
        from psycopg.conninfo import conninfo_to_dict

        from gateway.outbox.postgres_conn import database_url

        params = conninfo_to_dict(database_url(config.outbox, environ))
    except Exception:  # an unresolved or malformed URL: the error itself says what is wrong
        return "postgres (outbox.url)"
    host = params.get("host") or "localhost"
    port = f":{params['port']}" if params.get("port") else ""
    return f"postgres {host}{port}/{params.get('dbname') or ''}"


def outbox_key(config: Config) -> str:
    """The configuration key an outbox that cannot be opened is reported under."""
    if config.outbox.backend == "postgres":
        return "outbox.url"
    return f"gateway.data_dir {config.gateway.data_dir!r}"
