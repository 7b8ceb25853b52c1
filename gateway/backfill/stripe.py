"""Stripe: ``GET /v1/events`` through the ``stripe`` package's own client.

Events are listed newest first, ``limit=100`` per page, ``starting_after`` the last id of the
previous page, ``created[gte]``/``created[lte]`` the window, and ``types[]`` the event types
the source's transform keeps (``[sources.backfill] types``; at most 20 per request, so more
types take several passes). A Connect endpoint's events come from its connected accounts:
each account is listed with ``Stripe-Account`` (the ``accounts`` list, or every connected
account when ``connect = true``). Each event becomes the webhook Stripe would have sent
(the same JSON object) and goes through the source's transform and the outbox.

The package's own retries are off (``max_network_retries=0``): a rate-limited request (429)
is sent again only after waiting (``Retry-After`` when Stripe gives one, else 1, 2, 4 ... s),
never before, and an answered request is never repeated.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import orjson
import stripe

from gateway.backfill.run import AuthFailed, BackfillError, RateLimited, StopToken
from gateway.backfill.runner import Intake, Window
from gateway.config import BackfillConfig, ConfigError, resolve_secret

PAGE_SIZE = 100
MAX_TYPES = 20  # Stripe's limit on types[] per request
_ORIGIN = "stripe-events-api"


def retry_after(headers: Mapping[str, str] | None, attempt: int) -> float:
    """Seconds to wait before sending a rate-limited request again."""
    for key, value in (headers or {}).items():
        if key.lower() == "retry-after":
            try:
                return max(0.0, float(value))
            except ValueError:
                break
    return float(min(2**attempt, 30))


class StripeBackfill:
    """Lists a Stripe account's (or its connected accounts') events in a window."""

    def __init__(
        self,
        api_key: str,
        *,
        types: list[str] | None = None,
        accounts: list[str] | None = None,
        connect: bool = False,
        api_base: str | None = None,
        max_wait: float = 300.0,
    ) -> None:
        base: Any = {"api": api_base.rstrip("/")} if api_base else None
        self.client = stripe.StripeClient(api_key, base_addresses=base, max_network_retries=0)
        self.types = list(types or [])
        self.accounts = list(accounts or [])
        self.connect = connect
        self.max_wait = max_wait
        self.requests = 0

    @classmethod
    def from_config(
        cls, config: BackfillConfig, environ: Mapping[str, str], where: str
    ) -> StripeBackfill:
        if not config.api_key:
            raise ConfigError(
                f'{where}.api_key: a secret reference to a restricted key ("Events: read") is '
                "required"
            )
        try:
            key = resolve_secret(config.api_key, environ)[0]
        except ConfigError as exc:
            raise ConfigError(f"{where}.api_key: {exc}") from None
        return cls(
            key,
            types=config.types,
            accounts=config.accounts,
            connect=config.connect,
            api_base=config.api_base,
            max_wait=config.max_wait_seconds,
        )

    def run(self, window: Window, intake: Intake, stop: StopToken) -> None:
        """One run; the reconciler calls it again each period."""
        self.requests = 0
        try:
            self._run(window, intake, stop)
        finally:
            intake.report.requests = self.requests

    def _run(self, window: Window, intake: Intake, stop: StopToken) -> None:
        accounts: list[str | None] = list(self.accounts) or [None]
        if self.connect and not self.accounts:
            accounts = list(self._connected_accounts(stop))
        chunks = [self.types[i : i + MAX_TYPES] for i in range(0, len(self.types), MAX_TYPES)]
        for account in accounts:
            for types in chunks or [[]]:
                for event in self._events(window, types, account, stop):
                    if account and not event.get("account"):
                        event["account"] = account  # as the Connect webhook carries it
                    body = orjson.dumps(event)
                    webhook = intake.webhook(body, {"content-type": "application/json"}, _ORIGIN)
                    intake.offer(webhook, str(event.get("id")))

    def _events(
        self, window: Window, types: list[str], account: str | None, stop: StopToken
    ) -> Iterator[dict[str, Any]]:
        params: dict[str, Any] = {
            "limit": PAGE_SIZE,
            "created": {"gte": int(window.since), "lte": int(window.until)},
        }
        if types:
            params["types"] = types
        options: dict[str, Any] = {"stripe_account": account} if account else {}
        yield from self._pages(self.client.v1.events.list, params, options, stop)

    def _connected_accounts(self, stop: StopToken) -> Iterator[str]:
        for account in self._pages(self.client.v1.accounts.list, {"limit": PAGE_SIZE}, {}, stop):
            if isinstance(account.get("id"), str):
                yield account["id"]

    def _pages(
        self, list_page: Any, params: dict[str, Any], options: dict[str, Any], stop: StopToken
    ) -> Iterator[dict[str, Any]]:
        """Every object of a list endpoint, page after page (``starting_after``)."""
        while True:
            stop.check()
            page = self._call(list_page, params, options, stop)
            items = page.get("data") or []
            yield from items
            if not page.get("has_more") or not items:
                return
            params = {**params, "starting_after": items[-1]["id"]}

    def _call(
        self, list_page: Any, params: dict[str, Any], options: dict[str, Any], stop: StopToken
    ) -> dict[str, Any]:
        waited = 0.0
        attempt = 0
        while True:
            self.requests += 1
            try:
                page = list_page(params=params, options=options)
            except stripe.AuthenticationError as exc:
                raise AuthFailed(f"Stripe refused the API key (401): {exc.user_message}") from None
            except stripe.PermissionError as exc:
                raise AuthFailed(
                    "Stripe refused the request (403): the restricted key needs the "
                    f'"Events: read" permission ({exc.user_message})'
                ) from None
            except stripe.RateLimitError as exc:
                wait = retry_after(exc.headers, attempt)
                attempt += 1
                if waited + wait > self.max_wait:
                    raise RateLimited(
                        f"Stripe kept rate-limiting (429) for {waited:.0f}s; giving up"
                    ) from None
                waited += wait
                stop.wait(wait)
                continue
            except stripe.StripeError as exc:
                status = exc.http_status or "no answer"
                raise BackfillError(f"Stripe API error ({status}): {exc.user_message}") from None
            response = page.last_response
            data = response.data if response is not None else page.to_dict()
            if not isinstance(data, dict):
                raise BackfillError("Stripe answered a list request with something else")
            return data
