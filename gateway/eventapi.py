"""The Inngest Event API client: where to send, how to send a batch, what came back.

Exceptions::

    EventApiError                  anything this module raises
    ├── MissingEventKey            cloud mode with no event key (raised at start-up)
    ├── InvalidTarget              the configured origin is not an http(s) URL
    └── SendError                  a batch was not (wholly) accepted
        ├── NetworkError           no HTTP answer (connect, timeout, reset): transient
        ├── ServerError            5xx, or a status the contract does not name: transient
        │   └── UnexpectedAnswer   an answer that is not the Event API's JSON (a 2xx without
        │                          one id per event, a 400 that is not JSON): a proxy or a
        │                          wrong base URL; nothing was accepted
        ├── RateLimited            429; ``retry_after`` seconds when the API said
        ├── TooLarge               413, or a 400 saying an event is over the max size
        ├── Unauthorized           401/403/404: the key is wrong or disabled; hold everything
        └── BadRequest             any other 400; ``accepted_ids`` were taken before the bad one

The key travels in the URL path, so nothing here puts the URL in a message:
:attr:`EventApiTarget.redacted_url` is the form for logs.
"""

from __future__ import annotations

import base64
import email.utils
import hashlib
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlparse

import httpx
import orjson

from gateway.config import InngestConfig, resolve_secret

CLOUD_ORIGIN = "https://inn.gs"
DEV_ORIGIN = "http://127.0.0.1:8288"
DEV_KEY = "NO_EVENT_KEY_SET"
_FALSY = ("", "0", "false")


class EventApiError(Exception):
    """Base class of this module's errors."""


class MissingEventKey(EventApiError):
    """Cloud mode needs an event key."""


class InvalidTarget(EventApiError):
    """The Event API origin is not usable."""


class SendError(EventApiError):
    """A batch was not (wholly) accepted. ``status`` is the HTTP status, 0 for no answer."""

    status: int = 0

    @property
    def status_class(self) -> str:
        """``network``, ``4xx`` or ``5xx``: a low-cardinality label for metrics."""
        return "network" if self.status == 0 else f"{self.status // 100}xx"


class NetworkError(SendError):
    """No HTTP answer: connection refused or reset, timeout, protocol error."""


class ServerError(SendError):
    """The API answered 5xx (or a status the contract does not name)."""

    def __init__(self, status: int, error: str) -> None:
        super().__init__(f"event API answered {status}: {error}")
        self.status = status
        self.error = error


class UnexpectedAnswer(ServerError):
    """An answer that is not the Event API's JSON: treated as a server error, never accepted."""


class RateLimited(SendError):
    """The API answered 429."""

    status = 429

    def __init__(self, retry_after: float | None) -> None:
        hint = "no Retry-After" if retry_after is None else f"Retry-After {retry_after:g}s"
        super().__init__(f"event API answered 429 ({hint})")
        self.retry_after = retry_after


class TooLarge(SendError):
    """The request (413) or one event (400 "over the max size") is too large."""

    def __init__(self, status: int, error: str, accepted_ids: Sequence[str] = ()) -> None:
        super().__init__(f"event API answered {status}: {error}")
        self.status = status
        self.error = error
        self.accepted_ids = list(accepted_ids)

    @property
    def accepted(self) -> int:
        """How many events, from the start of the batch, the API took before refusing."""
        return len(self.accepted_ids)


class Unauthorized(SendError):
    """The event key is unknown, disabled or not allowed (401/403/404)."""

    def __init__(self, status: int, error: str) -> None:
        super().__init__(f"event API answered {status}: {error}")
        self.status = status
        self.error = error


class BadRequest(SendError):
    """The API refused an event; the ``accepted_ids`` events before it were taken."""

    status = 400

    def __init__(self, error: str, accepted_ids: Sequence[str] = ()) -> None:
        super().__init__(f"event API answered 400: {error}")
        self.error = error
        self.accepted_ids = list(accepted_ids)

    @property
    def accepted(self) -> int:
        """How many events, from the start of the batch, the API took before the bad one."""
        return len(self.accepted_ids)


@dataclass(frozen=True)
class EventApiTarget:
    """Where events go. ``repr`` and :attr:`redacted_url` never show the key."""

    origin: str
    event_key: str = field(repr=False)
    env: str | None = None
    dev: bool = False

    @property
    def url(self) -> str:
        """The full ``/e/{key}`` URL: a credential, never log it."""
        return f"{self.origin.rstrip('/')}/e/{self.event_key}"

    @property
    def redacted_url(self) -> str:
        """The URL with the key hidden, for logs."""
        return f"{self.origin.rstrip('/')}/e/***"


def _dev_from_env(value: str | None) -> bool:
    return value is not None and value.strip().lower() not in _FALSY


def _as_url(value: str | None) -> str | None:
    if value and value.strip():
        parsed = urlparse(value.strip())
        if parsed.scheme in ("http", "https") and parsed.netloc:
            return value.strip()
    return None


def resolve_target(
    config: InngestConfig, environ: Mapping[str, str] | None = None, *, dev_flag: bool = False
) -> EventApiTarget:
    """Origin, key and branch, with the official Inngest SDK's precedence.

    Dev mode: ``dev_flag`` (``--dev``), else ``config.dev`` when set, else ``INNGEST_DEV`` set to
    anything but ``0``/``false``/empty. Origin: ``config.base_url`` >
    ``INNGEST_EVENT_API_BASE_URL`` > ``INNGEST_BASE_URL`` > ``INNGEST_DEV`` when it is a URL (dev
    mode only) > ``https://inn.gs`` (cloud) or ``http://127.0.0.1:8288`` (dev). Key:
    ``config.event_key`` (a secret reference) > ``INNGEST_EVENT_KEY`` > ``NO_EVENT_KEY_SET`` in dev
    mode; cloud mode without a key raises :class:`MissingEventKey`. Branch: ``config.env`` >
    ``INNGEST_ENV``.
    """
    env = os.environ if environ is None else environ
    inngest_dev = env.get("INNGEST_DEV")
    if dev_flag:
        dev = True
    elif config.dev is not None:
        dev = config.dev
    else:
        dev = _dev_from_env(inngest_dev)
    candidates = (
        ("[inngest] base_url", config.base_url),
        ("INNGEST_EVENT_API_BASE_URL", env.get("INNGEST_EVENT_API_BASE_URL")),
        ("INNGEST_BASE_URL", env.get("INNGEST_BASE_URL")),
    )
    origin: str | None = None
    for name, value in candidates:
        if value and value.strip():
            origin = _as_url(value)
            if origin is None:
                raise InvalidTarget(f"{name} must be an http:// or https:// URL, got {value!r}")
            break
    if origin is None:
        dev_url = _as_url(inngest_dev) if dev else None
        origin = dev_url or (DEV_ORIGIN if dev else CLOUD_ORIGIN)

    key: str | None = None
    if config.event_key:
        key = resolve_secret(config.event_key, env)[0]
    elif env.get("INNGEST_EVENT_KEY", "").strip():
        key = env["INNGEST_EVENT_KEY"].strip()
    if key is None:
        if not dev:
            raise MissingEventKey(
                "no Inngest event key: set INNGEST_EVENT_KEY (or [inngest] event_key), or use "
                "--dev / INNGEST_DEV=1 to send to a local Inngest dev server"
            )
        key = DEV_KEY
    branch = config.env or env.get("INNGEST_ENV", "").strip() or None
    return EventApiTarget(origin=origin, event_key=key, env=branch, dev=dev)


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: delta-seconds or an HTTP date."""
    if not value or not value.strip():
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        return max(0.0, seconds) if seconds == seconds else None  # NaN is not a delay
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def event_id_seed(first_seq: int, created_at: float, salt: bytes = b"") -> str:
    """An ``x-inngest-event-id-seed`` fixed by a stored batch's first event.

    The server derives event ``i``'s internal ULID from the seed plus ``i``, so a batch re-sent
    from the same first event (a retry, or the first half of a split) gets the same ids.
    ``salt`` (the first event's payload) keeps two installations with equal seqs apart.
    """
    millis = max(1, int(created_at * 1000))
    digest = hashlib.sha256(b"%d:" % first_seq + salt).digest()
    return f"{millis},{base64.b64encode(digest[:10]).decode()}"


@dataclass(frozen=True)
class SendResult:
    """The API's internal ids of the accepted events, in order, and the 2xx it answered."""

    ids: list[str]
    status: int = 200


def encode_batch(payloads: Sequence[bytes]) -> bytes:
    """A JSON array from already-serialized events, without re-serializing them."""
    return b"[" + b",".join(payloads) + b"]"


def batch_size(payloads: Sequence[bytes]) -> int:
    """``len(encode_batch(payloads))`` without building it."""
    return sum(len(p) for p in payloads) + max(len(payloads) - 1, 0) + 2


def _json_object(response: httpx.Response) -> dict[str, Any] | None:
    try:
        body = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        return None
    return body if isinstance(body, dict) else None


def _body_of(response: httpx.Response) -> dict[str, Any]:
    body = _json_object(response)
    return {"error": response.text[:500].strip()} if body is None else body


def _not_the_api(response: httpx.Response, why: str) -> UnexpectedAnswer:
    kind = response.headers.get("content-type", "no content-type").split(";")[0].strip()
    return UnexpectedAnswer(
        response.status_code,
        f"not the Event API's answer ({why}; {kind}, {len(response.content)} bytes): "
        "check the Event API base URL and any proxy in between",
    )


def _accepted_result(response: httpx.Response, sent: int) -> SendResult:
    """The API's 2xx: a JSON object with exactly one non-empty id per event sent."""
    body = _json_object(response)
    if body is None:
        raise _not_the_api(response, "not a JSON object")
    ids = body.get("ids")
    if not isinstance(ids, list) or not all(isinstance(i, str) and i for i in ids):
        raise _not_the_api(response, "no ids")
    if len(ids) != sent:
        raise _not_the_api(response, f"{len(ids)} ids for {sent} events")
    return SendResult(ids, response.status_code)


def _accepted_ids(body: Mapping[str, Any]) -> list[str]:
    # The open-source server answers a 400 on the first event with ``"ids": [""]``: the ids
    # accepted are the leading non-empty ones.
    ids = body.get("ids")
    accepted: list[str] = []
    if isinstance(ids, list):
        for value in ids:
            if not isinstance(value, str) or not value:
                break
            accepted.append(value)
    return accepted


class EventApiClient:
    """Sends batches to ``POST {origin}/e/{key}`` over one pooled ``httpx.AsyncClient``."""

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
            follow_redirects=False,
        )

    def _scrub(self, text: str) -> str:
        key = self.target.event_key
        return text.replace(key, "***") if len(key) >= 4 else text

    async def send(self, payloads: Sequence[bytes], *, seed: str) -> SendResult:
        """Post one batch; raise a :class:`SendError` subclass unless all were accepted.

        Only the Event API's own answer counts as accepted: a 2xx JSON object whose ``ids``
        holds one id per event sent. Any other 2xx (an HTML page from a proxy or a wrong base
        URL) raises :class:`UnexpectedAnswer`, so the events are held, not dropped.
        """
        try:
            response = await self._client.post(
                self.target.url,
                content=encode_batch(payloads),
                headers={"x-inngest-event-id-seed": seed},
            )
        except httpx.HTTPError as exc:
            detail = self._scrub(str(exc)) or "no detail"
            raise NetworkError(f"event API unreachable: {type(exc).__name__}: {detail}") from None
        status = response.status_code
        if 200 <= status < 300:
            return _accepted_result(response, len(payloads))
        if status == 400 and _json_object(response) is None:
            raise _not_the_api(response, "not a JSON object")
        body = _body_of(response)
        error = self._scrub(str(body.get("error") or response.reason_phrase or "no detail"))
        if status == 429:
            raise RateLimited(parse_retry_after(response.headers.get("retry-after")))
        if status == 413 or (status == 400 and "max size" in error.lower()):
            raise TooLarge(status, error, _accepted_ids(body))
        if status in (401, 403, 404):
            raise Unauthorized(status, error)
        if status == 400:
            raise BadRequest(error, _accepted_ids(body))
        if status >= 500:
            raise ServerError(status, error)
        raise ServerError(status, f"unexpected status: {error}")

    async def aclose(self) -> None:
        """Close the pooled connections."""
        await self._client.aclose()
