"""Telegram Bot API: the ``X-Telegram-Bot-Api-Secret-Token`` header set with ``setWebhook``.

``setWebhook``'s ``secret_token`` (1-256 characters of ``A-Z a-z 0-9 _ -``) comes back in
``X-Telegram-Bot-Api-Secret-Token`` on every update: it is compared in constant time with
``TELEGRAM_WEBHOOK_SECRET`` (comma-separated while rotating). Nothing is signed: replays are
bounded by ``update_id`` and the body digest.
"""

from __future__ import annotations

import re
from typing import Any, ClassVar

from gateway.providers import register_provider
from gateway.providers.generic_hmac import HmacProvider
from gateway.webhook import Webhook

SECRET_TOKEN = re.compile(r"[A-Za-z0-9_-]{1,256}")
#: a bot token (``<bot id>:<secret>``), which is not the webhook's secret token
BOT_TOKEN = re.compile(r"[0-9]+:[A-Za-z0-9_-]{20,}")


@register_provider
class TelegramProvider(HmacProvider):
    """Telegram bot updates delivered by ``setWebhook``."""

    name = "telegram"
    body_kind = "json"
    env_var = None
    verification = "`X-Telegram-Bot-Api-Secret-Token` equals the `setWebhook` secret token"
    handshake_summary = "none"
    dedup_summary = "`update_id`"
    preset: ClassVar[dict[str, Any]] = {
        "mode": "token",
        "header": "X-Telegram-Bot-Api-Secret-Token",
    }
    user_options = ()

    @classmethod
    def secret_problem(cls, secret: str) -> str | None:
        if BOT_TOKEN.fullmatch(secret):
            return "is the bot token, not the secret_token given to setWebhook"
        if not SECRET_TOKEN.fullmatch(secret):
            return "is not a setWebhook secret_token (1-256 characters of A-Z, a-z, 0-9, _ and -)"
        return None

    def delivery_id(self, webhook: Webhook) -> str | None:
        ident = webhook.json.get("update_id")
        return str(ident) if isinstance(ident, int) and not isinstance(ident, bool) else None
