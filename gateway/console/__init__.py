"""The inspection console: recent webhooks, why they were refused, what they became, replay.

Served by :func:`create_console_app` on the admin port only (docs/console.md).
"""

from __future__ import annotations

from gateway.console.app import create_console_app

__all__ = ["create_console_app"]
