"""Linear: ``Linear-Signature``, hex HMAC-SHA256 of the body; ``webhookTimestamp`` in the body.

As ``LinearWebhookClient.verify`` in ``@linear/sdk`` (the tests cross-check with it): the key is
the webhook's **signing secret** (``LINEAR_WEBHOOK_SECRET``); the signature is checked first, then
the body's ``webhookTimestamp`` (Unix **milliseconds**) must be within 60 seconds of now. The
timestamp is signed because the whole body is: a replay outside the window is refused, so no
body-digest dedup is needed. The window is the source's ``tolerance`` in both directions, 60 s
(``default_tolerance``) when the source sets none, as for every provider (``tolerance = 0``
turns it off). ``Linear-Delivery`` (one UUID per delivery) is the dedup id.
The signature check is the generic HMAC preset; only the in-body timestamp is Linear's own.
"""

from __future__ import annotations

import contextlib
import json
import math
import uuid
from typing import Any, ClassVar

from gateway.providers import (
    Inbound,
    MalformedSignature,
    MissingSignature,
    check_timestamp,
    register_provider,
)
from gateway.providers.generic_hmac import HmacProvider

WINDOW = 60  # seconds: Linear's docs and SDK refuse a webhookTimestamp further from now
TIMESTAMP_FIELD = "webhookTimestamp"


@register_provider
class LinearProvider(HmacProvider):
    """Linear workspace and OAuth app webhooks."""

    name = "linear"
    default_tolerance = WINDOW
    body_kind = "json"
    env_var = None
    signs_timestamp = True
    verification = (
        "`Linear-Signature`: hex HMAC-SHA256 of the body; its `webhookTimestamp` (ms) within 60 s"
    )
    dedup_summary = "`Linear-Delivery`"
    preset: ClassVar[dict[str, Any]] = {
        "header": "Linear-Signature",
        "id_header": "Linear-Delivery",
    }
    user_options = ()

    @classmethod
    def secret_problem(cls, secret: str) -> str | None:
        """A personal API key (``lin_api_``) or an OAuth token (``lin_oauth_``) is not it."""
        if secret.startswith(("lin_api_", "lin_oauth_")):
            return (
                "is a Linear API key or OAuth token, not the webhook's signing secret "
                "(Settings > API > Webhooks > the webhook)"
            )
        return super().secret_problem(secret)

    def body_dedup(self) -> bool:
        return False  # the signed webhookTimestamp bounds replays

    def verify_request(self, request: Inbound, *, now: float | None = None) -> None:
        super().verify_request(request, now=now)
        try:
            payload = json.loads(request.body)
        except ValueError:
            raise MalformedSignature(
                f"the body is not JSON, so its {TIMESTAMP_FIELD} cannot be checked"
            ) from None
        stamp = payload.get(TIMESTAMP_FIELD) if isinstance(payload, dict) else None
        if stamp is None:
            raise MissingSignature(f"the body has no {TIMESTAMP_FIELD} (Unix ms)")
        ms: float | None = None
        if isinstance(stamp, int | float) and not isinstance(stamp, bool):
            with contextlib.suppress(OverflowError):  # an integer beyond any float
                ms = float(stamp)
        if ms is None or not math.isfinite(ms):
            raise MalformedSignature(f"{TIMESTAMP_FIELD} is not a number of milliseconds")
        check_timestamp(ms / 1000, self.tolerance, now)

    def event_headers(self, event: str) -> dict[str, str]:
        """``issue_label.create`` is sent with ``Linear-Event: IssueLabel``."""
        noun = event.split(".")[0]
        kind = "".join(part[:1].upper() + part[1:] for part in noun.split("_"))
        return {"linear-event": kind, "linear-delivery": str(uuid.uuid4())}
