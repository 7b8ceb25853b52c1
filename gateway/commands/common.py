"""Pieces every command shares: the configuration, the data directory's outbox, prompts."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from gateway.config import Config, ConfigError, config_from_env, load_config

if TYPE_CHECKING:
    from gateway.outbox.sqlite import SQLiteOutbox


def load(args: argparse.Namespace, environ: Mapping[str, str]) -> Config:
    """``--config`` (before or after the subcommand), else ``$GATEWAY_CONFIG``, else the env."""
    path = getattr(args, "config", None) or environ.get("GATEWAY_CONFIG")
    return load_config(path, environ) if path else config_from_env(environ)


def open_existing_outbox(config: Config, environ: Mapping[str, str]) -> SQLiteOutbox:
    """The outbox of ``gateway.data_dir``; :class:`ConfigError` when there is none yet.

    Only ``serve`` creates a data directory: a command run against a mistyped path (or without
    the config that names the right one) must say so, not report an empty new outbox.
    """
    from gateway.outbox.sqlite import FILE_NAME, SQLiteOutbox

    data_dir = Path(config.gateway.data_dir)
    hint = "(check --config, GATEWAY_CONFIG and GATEWAY_DATA_DIR; only 'serve' creates one)"
    if not data_dir.is_dir():
        raise ConfigError(f"data directory {data_dir} does not exist {hint}")
    if not (data_dir / FILE_NAME).is_file():
        raise ConfigError(f"data directory {data_dir} has no outbox ({FILE_NAME}) {hint}")
    return SQLiteOutbox.open(data_dir, config.outbox, environ)


def parse_headers(pairs: Sequence[str]) -> dict[str, str]:
    """``Name:value`` pairs as a dict with lower-case names."""
    headers: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition(":")
        if not sep or not key.strip():
            raise ConfigError(f"--header {pair!r} must look like Name:value")
        headers[key.strip().lower()] = value.strip()
    return headers


def confirm(prompt: str) -> str | None:
    """Ask on the terminal, or read one line from piped stdin; None when stdin has nothing."""
    try:
        if sys.stdin.isatty():
            return input(prompt)
        sys.stderr.write(prompt)
        sys.stderr.flush()
        line = sys.stdin.readline()
    except (EOFError, OSError, ValueError):
        return None
    return line or None
