"""Build the Starlette app from a Config: routes, lifespan (forwarder up and down)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from gateway.backfill.reconciler import Reconciler, plans_for
from gateway.backfill.runner import credentials
from gateway.config import Config, ConfigError, SourceConfig, resolve_secret
from gateway.console.masking import signature_headers
from gateway.console.recording import RejectionRecorder, housekeep
from gateway.eventapi import EventApiClient, EventApiTarget, resolve_target
from gateway.forwarder import Forwarder
from gateway.logs import get_logger
from gateway.metrics import Metrics
from gateway.outbox import Outbox, OutboxStats, OutboxUnavailable
from gateway.outbox.open import open_outbox, outbox_key
from gateway.plugins import PluginLoadError, TransformRegistry, load_registry
from gateway.providers import Provider, get_provider, load_providers
from gateway.receive import Receiver, Source, error_response, json_response

HEALTH_PATH = "/healthz"
READY_PATH = "/readyz"
METRICS_PATH = "/metrics"
WEBHOOK_PATH = "/webhooks/{source}"
_WEBHOOK_PREFIX = "/webhooks/"
#: GET reaches the receiver, which refuses it (405) unless the source's provider declares GET
#: handshakes (Meta's hub.challenge, Dropbox, Okta, X's CRC)
_WEBHOOK_METHODS = ("POST", "HEAD", "GET")


@dataclass
class Gateway:
    """Everything one running gateway owns, resolved and validated before it serves."""

    config: Config
    sources: dict[str, Source]
    registry: TransformRegistry
    outbox: Outbox
    metrics: Metrics
    target: EventApiTarget | None
    secrets: list[str] = field(default_factory=list)
    forwarder: Forwarder | None = None
    client: EventApiClient | None = None
    console_tokens: list[tuple[str, str]] = field(default_factory=list)  # (token, scope)
    reconciler: Reconciler | None = None  # periodic backfill (docs/backfill.md)


def build_sources(
    config: Config, registry: TransformRegistry, environ: Mapping[str, str]
) -> tuple[dict[str, Source], list[str]]:
    """Instantiate each source's provider and transform; raise ConfigError naming the source."""
    sources: dict[str, Source] = {}
    secrets: list[str] = []
    for i, sc in enumerate(config.sources):
        sources[sc.name], resolved = build_source(i, sc, registry, environ)
        secrets.extend(resolved)
    return sources, secrets


def build_source(
    index: int, sc: SourceConfig, registry: TransformRegistry, environ: Mapping[str, str]
) -> tuple[Source, list[str]]:
    """One source and its resolved secrets; ConfigError names ``sources[index]`` and the key."""
    provider, resolved = build_provider(index, sc, environ)
    transform_name = sc.transform or provider.name
    try:
        func = registry.get(transform_name)
    except (KeyError, PluginLoadError) as exc:
        raise ConfigError(f"sources[{index}] ({sc.name}).transform: {exc}") from None
    inline = registry.is_builtin(transform_name)
    return Source(sc, provider, func, transform_name, inline=inline), resolved


def build_provider(
    index: int, sc: SourceConfig, environ: Mapping[str, str]
) -> tuple[Provider, list[str]]:
    """A source's provider with its resolved secrets (those of its secret options too, for
    redaction); ConfigError names the source and key.

    A secret the provider says is of the wrong kind (an API key where a signing secret belongs)
    is refused here, before it could only ever answer 401.
    """
    where = f"sources[{index}] ({sc.name})"
    try:
        provider_cls = get_provider(sc.provider)
    except KeyError as exc:
        raise ConfigError(f"{where}.provider: {exc.args[0]}") from None
    try:
        resolved = sc.resolved_secrets(environ) if sc.secrets else []
    except ConfigError as exc:
        raise ConfigError(f"{where}.secrets: {exc}") from None
    for n, secret in enumerate(resolved, start=1):
        problem = provider_cls.secret_problem(secret)
        if problem is not None:
            raise ConfigError(f"{where}.secrets: secret #{n} {problem}")
    options = dict(sc.options)
    option_secrets: list[str] = []
    for key in provider_cls.secret_options:
        value = options.get(key)
        if isinstance(value, str) and value.partition(":")[0] in ("env", "file", "inline"):
            try:
                options[key] = resolve_secret(value, environ)[0]
            except ConfigError as exc:
                raise ConfigError(f"{where}.options.{key}: {exc}") from None
        if isinstance(options.get(key), str):
            option_secrets.append(options[key])
    try:
        tolerance = (
            sc.tolerance if "tolerance" in sc.model_fields_set else provider_cls.default_tolerance
        )
        provider = provider_cls(resolved, tolerance, options)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"{where}: {exc}") from None
    return provider, [*resolved, *option_secrets]


def build_gateway(
    config: Config,
    environ: Mapping[str, str] | None = None,
    *,
    dev: bool = False,
    outbox: Outbox | None = None,
) -> Gateway:
    """Resolve and validate everything the gateway needs; errors are raised here, at start-up."""
    env = os.environ if environ is None else environ
    load_providers()  # every provider plugin, used or not: a broken one stops the start
    registry = load_registry(config.gateway.transforms_dir)
    sources, secrets = build_sources(config, registry, env)
    target = resolve_target(config.inngest, env, dev_flag=dev) if config.forwarder.enabled else None
    if target is not None and target.event_key not in ("NO_EVENT_KEY_SET", ""):
        secrets.append(target.event_key)
    if outbox is None:
        try:
            outbox = open_outbox(config, env)
        except OutboxUnavailable as exc:
            raise ConfigError(f"{outbox_key(config)}: {exc}") from None
    console_tokens = config.console.resolved_tokens(env) if config.console.enabled else []
    secrets.extend(token for token, _ in console_tokens)
    plans = plans_for(sources, env, config.outbox.dedup_window)
    for source in sources.values():
        secrets.extend(credentials(source, env))
    metrics = Metrics()
    gateway = Gateway(
        config, sources, registry, outbox, metrics, target, secrets, console_tokens=console_tokens
    )
    if plans:
        gateway.reconciler = Reconciler(
            plans, outbox, metrics, strict_names=config.gateway.strict_names
        )
    return gateway


class _Health:
    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway

    async def healthz(self, request: Request) -> Response:
        return json_response(200, {"status": "ok"})

    async def readyz(self, request: Request) -> Response:
        checks: dict[str, Any] = {"config": "ok"}
        status = 200
        try:
            await asyncio.to_thread(self.gateway.outbox.check_writable)
            checks["outbox"] = "ok"
        except OutboxUnavailable as exc:
            checks["outbox"] = f"unavailable: {exc}"
            status = 503
        receiver: Receiver = request.app.state.receiver
        if not receiver.accepting:
            checks["accepting"] = "shutting down"
            status = 503
        forwarder = self.gateway.forwarder
        degraded = forwarder.degraded if forwarder is not None else None
        if degraded:
            checks["event_api"] = degraded
        else:
            checks["event_api"] = "ok" if forwarder is not None else "disabled"
        state = "ready" if status == 200 else "unavailable"
        if status == 200 and degraded:
            state = "degraded"  # webhooks are still accepted and held durably
        return json_response(status, {"status": state, "checks": checks})

    def outbox_stats(self) -> OutboxStats | None:
        try:
            # a scrape never counts delivered rows: /metrics does not export them
            return self.gateway.outbox.stats(delivered=False)
        except OutboxUnavailable:
            return None

    async def metrics(self, request: Request) -> Response:
        body = await asyncio.to_thread(self.gateway.metrics.render)
        return Response(body, 200, media_type="text/plain; version=0.0.4; charset=utf-8")


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    source = request.path_params.get("source") if request.path_params else None
    message = {404: "not found", 405: f"method {request.method} not allowed"}.get(
        exc.status_code, str(exc.detail)
    )
    response = error_response(exc.status_code, message, source)
    for key, value in (exc.headers or {}).items():
        response.headers[key] = value
    return response


async def _unexpected(request: Request, exc: Exception) -> Response:
    get_logger().exception("unexpected error", exc_info=exc)
    source = request.path_params.get("source") if request.path_params else None
    return error_response(500, "internal error", source, reason="internal_error")


class GatewayApp(Starlette):
    """The gateway's Starlette app, with a direct path for ``/webhooks/{source}``.

    Webhook requests (``POST``, ``HEAD`` and handshake ``GET``, with or without one trailing
    slash), nearly all of the traffic, go straight to the :class:`Receiver` instead of through
    Starlette's middleware and router; everything else (probes, metrics, other methods,
    malformed paths) takes the normal route, with the same answers as before (never a redirect:
    it would be built from ``Host``). An unexpected exception while handling a webhook is logged
    and answered with the gateway's JSON 500 (``reason: internal_error``) and counted; the
    worker goes on.
    """

    receiver: Receiver | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        receiver = self.receiver
        if receiver is not None and scope["type"] == "http":
            path: str = scope["path"]
            if path.startswith(_WEBHOOK_PREFIX) and scope["method"] in _WEBHOOK_METHODS:
                # one trailing slash is the same endpoint: served here, never redirected
                name = path[len(_WEBHOOK_PREFIX) :].removesuffix("/")
                if name and "/" not in name:
                    scope["app"] = self
                    scope["path_params"] = {"source": name}
                    request = Request(scope, receive)
                    try:
                        response = await receiver.receive(request)
                    except Exception as exc:
                        receiver.count_internal_error(name)
                        response = await _unexpected(request, exc)
                    await response(scope, receive, send)
                    return
        await super().__call__(scope, receive, send)


def _threadsafe(
    loop: asyncio.AbstractEventLoop, callback: Callable[[], None]
) -> Callable[[], None]:
    """``callback`` run on ``loop``, callable from any thread."""

    def call() -> None:
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
            loop.call_soon_threadsafe(callback)

    return call


def create_app(gateway: Gateway) -> Starlette:
    """The ASGI app: webhook routes, probes, metrics, and the forwarder's lifespan."""
    config = gateway.config
    health = _Health(gateway)
    gateway.metrics.watch_outbox(health.outbox_stats)
    observe_commits = getattr(gateway.outbox, "observe_commits", None)
    if observe_commits is not None:
        observe_commits(gateway.metrics.commit_seconds.observe)
    log = get_logger()

    if gateway.target is not None:
        gateway.client = EventApiClient(gateway.target, timeout=config.forwarder.request_timeout)
        gateway.forwarder = Forwarder(
            gateway.outbox,
            gateway.client,
            config.forwarder,
            metrics=gateway.metrics,
            retention=config.outbox.retention,
        )
    forwarder = gateway.forwarder
    recorder = None
    if config.console.enabled and config.console.record_rejected:
        recorder = RejectionRecorder(
            gateway.outbox,
            config.console,
            gateway.secrets,
            {name: signature_headers(s.config.options) for name, s in gateway.sources.items()},
        )
    receiver = Receiver(
        gateway.sources,
        gateway.outbox,
        gateway.metrics,
        strict_names=config.gateway.strict_names,
        transform_timeout=config.gateway.transform_timeout,
        max_event_bytes=config.forwarder.max_event_bytes,
        on_accept=forwarder.notify if forwarder is not None else None,
        log_bodies=config.gateway.log_bodies,
        on_reject=recorder,
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        stop = asyncio.Event()
        task = asyncio.create_task(forwarder.run(stop)) if forwarder is not None else None
        on_remote_events = getattr(gateway.outbox, "on_remote_events", None)
        if forwarder is not None and on_remote_events is not None:
            # another replica stored events (PostgreSQL NOTIFY): wake this forwarder too
            on_remote_events(_threadsafe(asyncio.get_running_loop(), forwarder.notify))
        keeper = (
            asyncio.create_task(housekeep(gateway.outbox, config.console, stop, recorder=recorder))
            if recorder is not None
            else None
        )
        reconciler = gateway.reconciler
        if reconciler is not None and forwarder is not None:
            reconciler.on_store = forwarder.notify
        reconciling = asyncio.create_task(reconciler.run(stop)) if reconciler else None
        log.info(
            "gateway started",
            extra={
                "sources": sorted(gateway.sources),
                "data_dir": config.gateway.data_dir,
                "outbox": config.outbox.backend,
                "event_api": gateway.target.redacted_url if gateway.target else None,
            },
        )
        try:
            yield
        finally:
            receiver.accepting = False
            stop.set()
            if keeper is not None:
                await keeper
            if reconciling is not None:
                # a run stops between two requests; one in flight may take its timeout
                await asyncio.wait({reconciling}, timeout=config.forwarder.shutdown_deadline)
            if task is not None and forwarder is not None:
                await task
                deadline = time.time() + config.forwarder.shutdown_deadline
                await forwarder.drain(deadline)
            if gateway.client is not None:
                await gateway.client.aclose()
            stats = await asyncio.to_thread(gateway.outbox.stats, delivered=False)
            await asyncio.to_thread(gateway.outbox.close)
            log.info(
                "gateway stopped",
                extra={"left_pending": stats.pending + stats.retrying + stats.leased},
            )
            # Lines logged on the loop wait for its next iteration; uvicorn may end the process
            # (re-raising SIGTERM) before that, and before logging's exit hook runs.
            for handler in log.handlers:
                handler.flush()

    routes = [
        Route(WEBHOOK_PATH, receiver.receive, methods=list(_WEBHOOK_METHODS)),
        Route(HEALTH_PATH, health.healthz, methods=["GET"]),
        Route(READY_PATH, health.readyz, methods=["GET"]),
        Route(METRICS_PATH, health.metrics, methods=["GET"]),
    ]
    app = GatewayApp(
        routes=routes,
        lifespan=lifespan,
        exception_handlers={HTTPException: _http_error, Exception: _unexpected},
    )
    # A redirect would be built from the request's Host header: answer 404/405 instead.
    app.router.redirect_slashes = False
    app.receiver = receiver
    app.state.receiver = receiver
    app.state.gateway = gateway
    return app
