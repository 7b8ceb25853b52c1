"""Okta event hooks: a static authentication header and the one-time verification GET.

Okta signs nothing. An event hook's *Authentication field* (``Authorization`` unless changed:
option ``header``, ``OKTA_WEBHOOK_HEADER``) carries the *Authentication secret* verbatim in every
request, the verification GET included; it is compared in constant time with
``OKTA_WEBHOOK_SECRET`` (comma-separated while rotating). Built on the generic ``token`` mode.

Verifying a hook, Okta sends ``GET`` with ``X-Okta-Verification-Challenge: <v>``: once the
header authenticated it, the gateway answers ``{"verification": "<v>"}`` (never stored).
Deliveries are ``POST`` bodies whose ``data.events`` holds one or more System Log events; the
token does not bind the body, so replays are bounded by the body-digest dedup and each event's
``uuid``.
"""

from __future__ import annotations

from typing import Any, ClassVar

from gateway.providers import Inbound, MissingSignature, Reply, echo_value, register_provider
from gateway.providers.generic_hmac import HmacProvider
from gateway.webhook import PayloadError, Webhook

CHALLENGE_HEADER = "x-okta-verification-challenge"


@register_provider
class OktaProvider(HmacProvider):
    """Okta event hooks."""

    name = "okta"
    body_kind = "json"
    env_var = None
    verification = (
        "`Authorization` (or the configured header) equals the hook's secret (constant time)"
    )
    handshake_summary = (
        "GET `X-Okta-Verification-Challenge` answered `{verification}` once authenticated"
    )
    dedup_summary = "each event's `uuid`"
    env_options: ClassVar[dict[str, str]] = {"header": "OKTA_WEBHOOK_HEADER"}
    handshake_methods = frozenset({"GET"})
    preset: ClassVar[dict[str, Any]] = {"header": "authorization", "mode": "token"}
    user_options = ("header",)

    @classmethod
    def secret_problem(cls, secret: str) -> str | None:
        if secret != secret.strip() or not (secret.isascii() and secret.isprintable()):
            return "okta: the authentication secret must be printable ASCII without edge spaces"
        return None

    def challenge(self, request: Inbound, *, now: float | None = None) -> Reply | None:
        if request.method != "GET":
            return super().challenge(request, now=now)
        self.verify_request(request, now=now)  # Okta sends the header with the GET too
        if CHALLENGE_HEADER not in request.headers:
            raise MissingSignature(
                "a GET must be Okta's verification (X-Okta-Verification-Challenge)"
            )
        value = echo_value(request.headers.get(CHALLENGE_HEADER), "X-Okta-Verification-Challenge")
        return Reply(200, {"verification": value}, note="Okta event hook verification answered")

    def check_payload(self, webhook: Webhook) -> None:
        super().check_payload(webhook)
        data = webhook.json.get("data")
        events = data.get("events") if isinstance(data, dict) else None
        if not isinstance(events, list) or not all(isinstance(e, dict) for e in events):
            raise PayloadError("an Okta event hook body has data.events, a list of objects")

    def delivery_id(self, webhook: Webhook) -> str | None:
        event_id = webhook.json.get("eventId")
        return event_id if isinstance(event_id, str) and event_id else None
