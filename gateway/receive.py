"""One request's path: bounded body -> verify -> handshake -> transform -> outbox -> response."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import random
import re
import time
import traceback
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import cached_property
from types import MappingProxyType
from typing import Any

import orjson
from prometheus_client import Counter, Histogram
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from gateway.config import SourceConfig
from gateway.http_server import REFUSED_STATE, Refusal
from gateway.logs import get_logger, log_fields
from gateway.metrics import UNKNOWN_SOURCE, Metrics
from gateway.outbox import Outbox, OutboxUnavailable, Rejection
from gateway.outbox.common import REPLAY_KEY_PREFIX
from gateway.plugins import TransformError, TransformFunc
from gateway.providers import Inbound, Provider, Reply, VerificationError
from gateway.transform_runner import check_sizes, run_transform, run_transform_bounded
from gateway.webhook import PayloadError, Webhook, normalize_headers

_NO_QUERY: Mapping[str, str] = MappingProxyType({})
#: bodies this large are verified on a worker thread: hashing them (once per signature entry
#: and secret) must not hold the event loop; smaller ones are cheaper verified inline
VERIFY_INLINE_BYTES = 64 * 1024
_verifier = ThreadPoolExecutor(max_workers=2, thread_name_prefix="gateway-verify")
# Request ids must be unique, not unguessable: a seeded PRNG costs a sixth of uuid4().
_ids = random.Random(os.urandom(32))


#: an ``X-Request-Id`` the gateway echoes and logs: a short token (UUIDs, ALB trace ids, ...)
_REQUEST_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:;=+/-]{0,127}")


def _new_request_id() -> str:
    """32 hex digits, like ``uuid4().hex``."""
    return f"{_ids.getrandbits(128):032x}"


def request_id_of(headers: Mapping[str, str]) -> str:
    """The caller's ``X-Request-Id`` when it is a short well-formed token, else a new one."""
    sent = headers.get("x-request-id")
    if sent and len(sent) <= 128 and _REQUEST_ID.fullmatch(sent):
        return sent
    return _new_request_id()


#: the status logged for a client that hung up before its body arrived (nginx's choice); the
#: client never sees it
CLIENT_CLOSED_REQUEST = 499


def body_key(webhook: Webhook) -> str:
    """The dedup key of a verified body: its source and SHA-256 (see docs/providers-more.md).

    For providers that sign no timestamp, a captured signed body could otherwise be replayed
    as new events under fresh, unsigned delivery ids and names.
    """
    return f"body:{webhook.source}:{hashlib.sha256(webhook.body).hexdigest()}"


_BODY_HEADERS = frozenset({"content-type", "content-length"})


def dedup_key(webhook: Webhook, provider: Provider) -> str | None:
    """The key that makes a whole request a duplicate: its body digest when no signed timestamp
    bounds replays, else the provider's single-use replay key (per source), if it has one."""
    if provider.body_dedup():
        return body_key(webhook)
    replay = provider.replay_key(webhook)
    return f"{REPLAY_KEY_PREFIX}{webhook.source}:{replay}" if replay else None


class BodyTooLarge(Exception):
    """The body is larger than the source's limit."""


@dataclass(frozen=True)
class Source:
    """A configured endpoint, resolved: its provider instance and its transform."""

    config: SourceConfig
    provider: Provider
    transform: TransformFunc
    transform_name: str
    #: run the transform on the event loop, unbounded: only for the built-ins, which are pure
    #: functions of the payload; plugins run in the bounded transform pool
    inline: bool = False

    @property
    def name(self) -> str:
        return self.config.name

    @cached_property
    def options(self) -> Mapping[str, Any]:
        """The provider options, read-only, made once (every webhook carries them)."""
        return MappingProxyType(dict(self.config.options))


def json_response(
    status: int, body: Mapping[str, Any], headers: Mapping[str, str] | None = None
) -> Response:
    """A JSON response serialized with orjson."""
    return Response(orjson.dumps(body), status, headers, media_type="application/json")


def error_response(status: int, error: str, source: str | None, **extra: Any) -> Response:
    """The gateway's error shape: ``{"error": ..., "source": ...}`` plus details."""
    return json_response(status, {"error": error, "source": source, **extra})


def reply_response(reply: Reply) -> Response:
    """Turn a provider's :class:`Reply` into a response."""
    if reply.body is None:
        return Response(b"", reply.status, dict(reply.headers))
    if isinstance(reply.body, bytes):
        return Response(reply.body, reply.status, dict(reply.headers))
    return json_response(reply.status, reply.body, reply.headers)


async def read_body(request: Request, limit: int, headers: Mapping[str, str]) -> bytes:
    """Read the body, refusing it as soon as it is known to exceed ``limit`` bytes."""
    declared = headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise PayloadError("Content-Length is not a number")
        if int(declared) > limit:
            raise BodyTooLarge
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge
        chunks.append(chunk)
    return b"".join(chunks)


class _SourceMetrics:
    """One source's labelled metrics, each looked up on first use (as before) and then kept."""

    def __init__(self, metrics: Metrics, source: Source) -> None:
        self._metrics = metrics
        self._name = source.name
        self._provider = source.provider.name

    @cached_property
    def received(self) -> Counter:
        return self._metrics.received.labels(self._name, self._provider)

    @cached_property
    def verification(self) -> Histogram:
        return self._metrics.verification_seconds.labels(self._provider)

    @cached_property
    def accepted(self) -> Counter:
        return self._metrics.accepted.labels(self._name, self._provider)

    @cached_property
    def events(self) -> Counter:
        return self._metrics.events_accepted.labels(self._name)

    @cached_property
    def duplicates(self) -> Counter:
        return self._metrics.duplicates.labels(self._name)

    @cached_property
    def ack(self) -> Histogram:
        return self._metrics.ack_seconds.labels(self._name)


class Receiver:
    """The ``/webhooks/{source}`` endpoint."""

    def __init__(
        self,
        sources: Mapping[str, Source],
        outbox: Outbox,
        metrics: Metrics,
        *,
        strict_names: bool = False,
        transform_timeout: float = 5.0,
        max_event_bytes: int | None = None,
        on_accept: Callable[[], None] | None = None,
        log_bodies: bool = False,
        on_reject: Callable[[Rejection], None] | None = None,
    ) -> None:
        self.sources = dict(sources)
        self.on_reject = on_reject  # the console's recorder: never blocks, never raises
        self.outbox = outbox
        self.metrics = metrics
        self.strict_names = strict_names
        self.transform_timeout = transform_timeout
        self.max_event_bytes = max_event_bytes  # larger events quarantine their webhook
        self.on_accept = on_accept
        self.log_bodies = log_bodies
        self.accepting = True
        self.log = get_logger()
        self._source_metrics: dict[str, _SourceMetrics] = {}

    def _counters(self, source: Source) -> _SourceMetrics:
        counters = self._source_metrics.get(source.name)
        if counters is None:
            counters = self._source_metrics[source.name] = _SourceMetrics(self.metrics, source)
        return counters

    def count_internal_error(self, name: str) -> None:
        """Count a request to ``name`` that failed with an unexpected exception (a bug)."""
        source = self.sources.get(name)
        self.metrics.rejected.labels(
            source.name if source else UNKNOWN_SOURCE,
            source.provider.name if source else "",
            "internal_error",
        ).inc()

    async def head(self, request: Request) -> Response:
        """Intercom (and others) check a URL with ``HEAD`` before using it."""
        name = request.path_params["source"]
        return Response(b"", 200 if name in self.sources else 404)

    async def receive(self, request: Request) -> Response:
        """Handle ``POST``/``HEAD`` (and a provider's handshake ``GET``) ``/webhooks/{source}``."""
        if request.method == "HEAD":
            return await self.head(request)
        started = time.perf_counter()
        received_at = time.time()
        # names are lower-cased by the ASGI server already; normalize_headers makes sure
        headers = normalize_headers(
            (k.decode("latin-1"), v.decode("latin-1")) for k, v in request.scope["headers"]
        )
        request_id = request_id_of(headers)
        name: str = request.path_params["source"]
        source = self.sources.get(name)
        if source is None:
            self.metrics.rejected.labels(UNKNOWN_SOURCE, "", "unknown_source").inc()
            self._record(
                headers, request_id, name, "", 404, "unknown_source", f"unknown source {name!r}"
            )
            return self._done(
                error_response(404, f"unknown source {name!r}", name),
                request_id,
                None,
                "unknown_source",
                started,
                provider="",
            )
        provider = source.provider
        method = request.method
        if method != "POST" and method not in provider.handshake_methods:
            self.metrics.rejected.labels(name, provider.name, "method_not_allowed").inc()
            response = error_response(405, f"method {method} not allowed", name)
            response.headers["allow"] = ", ".join(["POST", "HEAD", *provider.handshake_methods])
            return self._done(response, request_id, source, "method_not_allowed", started)
        counters = self._counters(source)
        counters.received.inc()
        if not self.accepting:
            return self._reject(
                503,
                "shutting_down",
                "gateway is shutting down; retry later",
                source,
                request_id,
                started,
            )
        try:
            body = await read_body(request, source.config.body_limit, headers)
        except BodyTooLarge:
            return self._reject(
                413,
                "body_too_large",
                f"body exceeds the limit of {source.config.body_limit} bytes",
                source,
                request_id,
                started,
                headers=headers,
            )
        except PayloadError as exc:
            return self._reject(
                400, "bad_request", str(exc), source, request_id, started, headers=headers
            )
        except ClientDisconnect:
            refusal: Refusal | None = request.scope.get("state", {}).get(REFUSED_STATE)
            if refusal is not None:  # cut off by the HTTP layer (a timeout, the connection cap)
                return self._reject(
                    refusal.status, refusal.reason, refusal.message, source, request_id, started
                )
            # the client's doing, not a fault: counted and logged at info, nothing recorded
            return self._reject(
                CLIENT_CLOSED_REQUEST,
                "client_disconnected",
                "the client closed the connection before its body arrived",
                source,
                request_id,
                started,
            )
        inbound = Inbound(
            method,
            body,
            headers,
            request.scope["path"],
            request.scope["query_string"].decode("latin-1"),
            MappingProxyType(dict(request.query_params))
            if request.scope["query_string"]
            else _NO_QUERY,
        )
        t0 = time.perf_counter()
        try:
            early = provider.challenge(inbound)
            if early is None and method != "POST":
                raise PayloadError(f"a {method} request to this source must be a handshake")
            if early is None and len(body) >= VERIFY_INLINE_BYTES:
                loop = asyncio.get_running_loop()
                await loop.run_in_executor(_verifier, provider.verify_request, inbound)
            elif early is None:
                provider.verify_request(inbound)
        except VerificationError as exc:
            counters.verification.observe(time.perf_counter() - t0)
            return self._reject(
                exc.status_code,
                exc.code,
                exc.reason,
                source,
                request_id,
                started,
                headers=headers,
                body=body,
            )
        except PayloadError as exc:
            return self._reject(
                400, "bad_request", str(exc), source, request_id, started, headers=headers
            )
        if early is not None:
            return self._handshake(early, headers, body, source, request_id, started, None)
        counters.verification.observe(time.perf_counter() - t0)

        webhook = Webhook(
            source=name,
            provider=provider.name,
            body=body,
            headers=headers,
            query=inbound.query,
            received_at=received_at,
            options=source.options,
            prefix=source.config.event_prefix,
        )
        try:
            provider.check_payload(webhook)
        except PayloadError as exc:
            return self._reject(
                400,
                "invalid_payload",
                str(exc),
                source,
                request_id,
                started,
                headers=headers,
                body=body,
            )
        delivery_id = provider.delivery_id(webhook)
        try:
            reply = provider.handshake(webhook)
        except (VerificationError, PayloadError) as exc:
            status, reason, message = (
                (exc.status_code, exc.code, exc.reason)
                if isinstance(exc, VerificationError)
                else (400, "invalid_payload", str(exc))
            )
            return self._reject(
                status, reason, message, source, request_id, started, headers=headers, body=body
            )
        if reply is not None:
            return self._handshake(reply, headers, body, source, request_id, started, delivery_id)
        if self.log_bodies and self.log.isEnabledFor(logging.DEBUG):
            self.log.debug(
                "webhook body",
                extra={
                    "request_id": request_id,
                    "source": name,
                    "body": body.decode("utf-8", "replace"),
                },
            )
        return await self._store(webhook, source, request_id, started, delivery_id)

    def _handshake(
        self,
        reply: Reply,
        headers: Mapping[str, str],
        body: bytes,
        source: Source,
        request_id: str,
        started: float,
        delivery_id: str | None,
    ) -> Response:
        """Answer a handshake: counted, shown in the console, never stored as an event."""
        self.metrics.handshakes.labels(source.name, source.provider.name).inc()
        self._record(
            headers,
            request_id,
            source.name,
            source.provider.name,
            reply.status,
            "handshake",
            reply.note,
            body,
        )
        return self._done(
            reply_response(reply),
            request_id,
            source,
            "handshake",
            started,
            provider_event_id=delivery_id,
        )

    async def _store(
        self,
        webhook: Webhook,
        source: Source,
        request_id: str,
        started: float,
        delivery_id: str | None,
    ) -> Response:
        name = source.name
        try:
            if source.inline:
                outcome = run_transform(
                    source.transform,
                    webhook,
                    prefix=source.config.event_prefix,
                    strict_names=self.strict_names,
                    trusted=True,
                )
            else:
                outcome = await run_transform_bounded(
                    source.transform,
                    webhook,
                    prefix=source.config.event_prefix,
                    strict_names=self.strict_names,
                    timeout=self.transform_timeout,
                )
            check_sizes(outcome, self.max_event_bytes)
        except TransformError as exc:
            self.metrics.transform_errors.labels(name).inc()
            detail = getattr(exc, "detail", None) or "".join(traceback.format_exception(exc))
            try:
                webhook_id = await self.outbox.quarantine_async(webhook, str(exc), detail)
            except OutboxUnavailable as unavailable:
                return self._reject(
                    503, "outbox_unavailable", str(unavailable), source, request_id, started
                )
            self.log.error(
                "transform failed; webhook quarantined",
                extra={
                    "request_id": request_id,
                    "source": name,
                    "provider_event_id": delivery_id,
                    "transform": source.transform_name,
                    "error": str(exc),
                    "webhook_id": webhook_id,
                },
            )
            return self._done(
                json_response(
                    200,
                    {"status": "quarantined", "webhook_id": webhook_id, "request_id": request_id},
                ),
                request_id,
                source,
                "quarantined",
                started,
                provider_event_id=delivery_id,
            )
        for warning in outcome.convention_warnings:
            self.metrics.name_warnings.labels(name).inc()
            self.log.warning(warning, extra={"request_id": request_id, "source": name})
        try:
            result = await self.outbox.accept_async(
                webhook,
                outcome.payloads,
                [e.id for e in outcome.events],
                [e.name for e in outcome.events],
                body_key=dedup_key(webhook, source.provider),
            )
        except OutboxUnavailable as exc:
            return self._reject(
                503,
                "outbox_unavailable",
                f"cannot store the webhook: {exc}",
                source,
                request_id,
                started,
            )
        counters = self._counters(source)
        counters.accepted.inc()
        counters.events.inc(result.stored)
        if result.duplicates:
            counters.duplicates.inc(result.duplicates)
        if result.stored and self.on_accept is not None:
            self.on_accept()
        body = {
            "status": "accepted",
            "events": result.stored,
            "duplicates": result.duplicates,
            "request_id": request_id,
        }
        reply = source.provider.accepted_reply(webhook)
        return self._done(
            json_response(200, body) if reply is None else reply_response(reply),
            request_id,
            source,
            "accepted",
            started,
            provider_event_id=delivery_id,
            events=result.stored,
            duplicates=result.duplicates,
            retry_num=webhook.header("x-slack-retry-num"),
        )

    def _reject(
        self,
        status: int,
        reason: str,
        message: str,
        source: Source,
        request_id: str,
        started: float,
        *,
        headers: Mapping[str, str] | None = None,
        body: bytes | None = None,
    ) -> Response:
        """Count and answer a refusal; with the request's ``headers``, also record it."""
        self.metrics.rejected.labels(source.name, source.provider.name, reason).inc()
        if headers is not None:
            self._record(
                headers,
                request_id,
                source.name,
                source.provider.name,
                status,
                reason,
                message,
                body,
            )
        return self._done(
            error_response(status, message, source.name, reason=reason),
            request_id,
            source,
            reason,
            started,
        )

    def _record(
        self,
        headers: Mapping[str, str],
        request_id: str,
        source: str,
        provider: str,
        status: int,
        reason: str,
        message: str,
        body: bytes | None = None,
    ) -> None:
        """Hand a refused request to the console's recorder, if there is one."""
        if self.on_reject is None:
            return
        try:
            self.on_reject(
                Rejection(
                    source=source,
                    provider=provider,
                    received_at=time.time(),
                    status=status,
                    reason=reason,
                    message=message,
                    headers=headers,
                    body=body or b"",
                    body_size=-1 if body is None else len(body),
                    request_id=request_id,
                )
            )
        except Exception:  # recording is best-effort: never fail the answer to the provider
            self.log.exception("could not record a refused request")

    def _done(
        self,
        response: Response,
        request_id: str,
        source: Source | None,
        outcome: str,
        started: float,
        provider: str | None = None,
        **fields: Any,
    ) -> Response:
        elapsed = time.perf_counter() - started
        if source is not None and source.provider.empty_replies and response.body:
            kept = {k: v for k, v in response.headers.items() if k not in _BODY_HEADERS}
            response = Response(b"", response.status_code, kept)
        response.headers["x-request-id"] = request_id
        source_name = source.name if source else UNKNOWN_SOURCE
        if source is not None:
            self._counters(source).ack.observe(elapsed)
        log_fields(
            self.log,
            logging.INFO,
            "webhook",
            {
                "request_id": request_id,
                "source": source_name,
                "provider": provider
                if provider is not None
                else source.provider.name
                if source
                else "",
                "outcome": outcome,
                "status": response.status_code,
                "latency_ms": round(elapsed * 1000, 3),
                **{k: v for k, v in fields.items() if v is not None},
            },
        )
        return response
