"""The Inngest Event API client: where to send, how to send a batch, what came back.

Exceptions::

    EventApiError                  anything this module raises
    ├── MissingEventKey            cloud mode with no event key (raised at start-up)
    └── SendError                  a batch was not accepted
        ├── NetworkError           no HTTP answer (connect, timeout, reset): transient
        ├── ServerError            5xx: transient
        ├── RateLimited            429; ``retry_after`` seconds if the API said
        ├── TooLarge               413, or a 400 saying an event is over the max size
        ├── Unauthorized           401/403/404: the key is wrong or disabled; hold everything
        └── BadRequest             other 400: ``accepted`` events before the bad one
"""

from __future__ import annotations

import email.utils
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

import httpx
import orjson

from gateway.config import InngestConfig, resolve_secret

CLOUD_ORIGIN = "https://inn.gs"
DEV_ORIGIN = "http://127.0.0.1:8288"
DEV_KEY = "NO_EVENT_KEY_SET"


class EventApiError(Exception):
    """Base class of this module's errors."""


class MissingEventKey(EventApiError):
    """Cloud mode needs an event key."""


class SendError(EventApiError):
    """A batch was not accepted. ``status`` is the HTTP status, 0 for no answer."""

    status = 0

    @property
    def status_class(self) -> str:
        return "network" if self.status == 0 else f"{self.status // 100}xx"


class NetworkError(SendError):
    """No HTTP answer."""


class ServerError(SendError):
    """The API answered 5xx."""

    def __init__(self, status: int, error: str) -> None:
        super().__init__(f"event API answered {status}: {error}")
        self.status = status


class RateLimited(SendError):
    """The API answered 429."""

    status = 429

    def __init__(self, retry_after: float | None) -> None:
        super().__init__(f"event API rate-limited the gateway (Retry-After: {retry_after})")
        self.retry_after = retry_after


class TooLarge(SendError):
    """The request or one event is too large."""

    def __init__(self, status: int, error: str) -> None:
        super().__init__(f"event API answered {status}: {error}")
        self.status = status
        self.error = error


class Unauthorized(SendError):
    """The event key is unknown, disabled or not allowed."""

    def __init__(self, status: int, error: str) -> None:
        super().__init__(f"event API answered {status}: {error}")
        self.status = status
        self.error = error


class BadRequest(SendError):
    """The API refused an event; ``accepted`` events before it were taken."""

    status = 400

    def __init__(self, error: str, accepted: int) -> None:
        super().__init__(f"event API answered 400: {error}")
        self.error = error
        self.accepted = accepted


@dataclass(frozen=True)
class EventApiTarget:
    """Where events go."""

    origin: str
    event_key: str
    env: str | None = None
    dev: bool = False

    @property
    def url(self) -> str:
        return f"{self.origin.rstrip('/')}/e/{self.event_key}"

    @property
    def redacted_url(self) -> str:
        """The URL with the key hidden: the key is a credential."""
        return f"{self.origin.rstrip('/')}/e/***"


def _is_dev(value: str | None) -> bool:
    return value is not None and value.strip().lower() not in ("", "0", "false")


def _as_url(value: str | None) -> str | None:
    if value:
        parsed = urlparse(value.strip())
        if parsed.scheme in ("http", "https") and parsed.netloc:
            return value.strip()
    return None


def resolve_target(
    config: InngestConfig, environ: Mapping[str, str] | None = None, *, dev_flag: bool = False
) -> EventApiTarget:
    """Origin, key and branch with the official Inngest SDK's precedence (docs/forwarding.md)."""
    import os

    env = os.environ if environ is None else environ
    dev = dev_flag or bool(config.dev) or _is_dev(env.get("INNGEST_DEV"))
    origin = (
        config.base_url
        or env.get("INNGEST_EVENT_API_BASE_URL")
        or env.get("INNGEST_BASE_URL")
        or _as_url(env.get("INNGEST_DEV"))
        or (DEV_ORIGIN if dev else CLOUD_ORIGIN)
    )
    key: str | None = None
    if config.event_key:
        key = resolve_secret(config.event_key, env)[0]
    elif env.get("INNGEST_EVENT_KEY", "").strip():
        key = env["INNGEST_EVENT_KEY"].strip()
    if key is None:
        if not dev:
            raise MissingEventKey(
                "no Inngest event key: set INNGEST_EVENT_KEY (or [inngest] event_key), or run "
                "against the local dev server with --dev / INNGEST_DEV=1"
            )
        key = DEV_KEY
    return EventApiTarget(
        origin=origin, event_key=key, env=config.env or env.get("INNGEST_ENV") or None, dev=dev
    )


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds from a ``Retry-After`` header: delta-seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


@dataclass(frozen=True)
class SendResult:
    """The API's internal ids of the accepted events, in order."""

    ids: list[str]


def _body_of(response: httpx.Response) -> dict[str, Any]:
    try:
        body = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        return {"error": response.text[:500]}
    return body if isinstance(body, dict) else {"error": str(body)[:500]}


def encode_batch(payloads: Sequence[bytes]) -> bytes:
    """A JSON array from already-serialized events, without re-serializing them."""
    return b"[" + b",".join(payloads) + b"]"


class EventApiClient:
    """Sends batches to ``POST {origin}/e/{key}`` over one pooled connection set."""

    def __init__(
        self,
        target: EventApiTarget,
        *,
        timeout: float = 10.0,
        user_agent: str | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        from gateway import __version__

        self.target = target
        headers = {
            "content-type": "application/json",
            "user-agent": user_agent or f"webhook-gateway/{__version__}",
            "x-inngest-sdk": f"webhook-gateway:v{__version__}",
        }
        if target.env:
            headers["x-inngest-env"] = target.env
        self._client = httpx.AsyncClient(
            headers=headers,
            timeout=httpx.Timeout(timeout),
            transport=transport,
            limits=httpx.Limits(max_connections=8, max_keepalive_connections=4),
        )

    async def send(self, payloads: Sequence[bytes], *, seed: str) -> SendResult:
        """Post one batch; raise a :class:`SendError` subclass unless all were accepted."""
        try:
            response = await self._client.post(
                self.target.url,
                content=encode_batch(payloads),
                headers={"x-inngest-event-id-seed": seed},
            )
        except httpx.HTTPError as exc:
            raise NetworkError(f"event API unreachable: {type(exc).__name__}: {exc}") from None
        status = response.status_code
        if 200 <= status < 300:
            ids = _body_of(response).get("ids") or []
            return SendResult([str(i) for i in ids])
        body = _body_of(response)
        error = str(body.get("error") or response.reason_phrase or "")
        if status == 429:
            raise RateLimited(parse_retry_after(response.headers.get("retry-after")))
        if status == 413 or (status == 400 and "max size" in error.lower()):
            raise TooLarge(status, error)
        if status in (401, 403, 404):
            raise Unauthorized(status, error)
        if status == 400:
            ids = body.get("ids")
            raise BadRequest(error, len(ids) if isinstance(ids, list) else 0)
        if status >= 500:
            raise ServerError(status, error)
        raise ServerError(status, f"unexpected status: {error}")

    async def aclose(self) -> None:
        await self._client.aclose()
