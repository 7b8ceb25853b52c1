"""The console's ASGI app: pages under ``/console`` on the admin port, behind :class:`ConsoleAuth`.

It shares the one :class:`gateway.app.Gateway` (outbox, sources, forwarder) with the public
app but has no lifespan of its own: the public app starts and stops everything.
"""

from __future__ import annotations

import asyncio
import math
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import jinja2
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from gateway.console import views
from gateway.console.auth import WRITE, ConsoleAuth, TokenSet
from gateway.console.bulk import BULK_SECONDS, Selection, dead_events
from gateway.console.chart import activity_svg
from gateway.console.masking import scrub, signature_headers
from gateway.console.responses import SECURITY_HEADERS, problem, wants_json
from gateway.outbox import WebhookRecord
from gateway.outbox.crypto import CipherError
from gateway.plugins import TransformError
from gateway.receive import json_response
from gateway.replay import ReplayPlan, replay_async

if TYPE_CHECKING:
    from gateway.app import Gateway

HERE = Path(__file__).parent
PREFIX = "/console"
_NOTICES = {
    "replayed": "Replayed through the transform: {n} event(s) queued for delivery.",
    "retried": "{n} dead-lettered event(s) queued for delivery again.",
    "bulk_retried": "{n} dead-lettered event(s) of {w} webhook(s) queued for delivery again.",
    "bulk_replayed": (
        "Replayed {w} quarantined webhook(s) through the transform: {n} event(s) queued for"
        " delivery; {failed} still fail."
    ),
    "bulk_replayed_partly": (
        "Replayed {w} quarantined webhook(s) through the transform: {n} event(s) queued for"
        " delivery; {failed} still fail. {left} more were not tried within the time limit:"
        " replay again."
    ),
}
_FLASH_KEEP = 100  # failure messages waiting for the GET a redirect leads to
_FORM_MAX = 16 * 1024  # bytes of a bulk action's form (a filter: a few short fields)
#: the list's filter, carried by its pagination links and its bulk forms
_FILTER_KEYS = ("q", "status", "source", "from", "to", "range", "limit")


def _utc(ts: float | None) -> str:
    if ts is None:
        return ""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def _iso(ts: float | None) -> str:
    return "" if ts is None else datetime.fromtimestamp(ts, UTC).isoformat()


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(HERE / "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )
    env.filters["utc"] = _utc
    env.filters["iso"] = _iso
    env.filters["age"] = views.age_text
    return env


def _int_param(request: Request, name: str) -> int:
    try:
        return int(request.path_params[name])
    except (KeyError, ValueError):
        raise HTTPException(404) from None


class Console:
    """The console's request handlers."""

    def __init__(
        self,
        gateway: Gateway,
        clock: Callable[[], float] = time.time,
        bulk_seconds: float = BULK_SECONDS,
    ) -> None:
        self.gateway = gateway
        self.bulk_seconds = bulk_seconds
        self.outbox = gateway.outbox
        self.clock = clock
        self.templates = Jinja2Templates(env=_environment())
        self.signature_headers = {
            name: signature_headers(s.config.options) for name, s in gateway.sources.items()
        }
        self._flashes: OrderedDict[str, str] = OrderedDict()

    def _flash(self, message: str) -> str:
        """Keep ``message`` for the page a redirect leads to; the key goes in its URL."""
        key = secrets.token_urlsafe(12)
        self._flashes[key] = message
        while len(self._flashes) > _FLASH_KEEP:
            self._flashes.popitem(last=False)
        return key

    # -- rendering ---------------------------------------------------------------------

    def page(
        self, request: Request, name: str, context: dict[str, Any], status: int = 200
    ) -> Response:
        params = request.query_params
        counts = {k: params.get(k, "0") for k in ("n", "w", "failed", "left")}
        notice = _NOTICES.get(params.get("done", ""), "").format(
            **{k: int(v) if v.isdigit() else 0 for k, v in counts.items()}
        )
        base = {
            "scope": request.state.console_scope,
            "can_write": request.state.console_scope == WRITE,
            "static": f"{PREFIX}/static",
            "notice": notice,
            "failure": self._flashes.pop(params.get("flash", ""), ""),
            "now": self.clock(),
        }
        return self.templates.TemplateResponse(
            request, name, {**base, **context}, status_code=status, headers=SECURITY_HEADERS
        )

    # -- pages -------------------------------------------------------------------------

    def _overview(self) -> dict[str, Any]:
        now = self.clock()
        outbox = self.outbox
        outbox.flush_rejections()
        counts = outbox.source_counts(now - views.OVERVIEW_WINDOW)
        stats = outbox.stats(now)
        bucket = views.CHART_BUCKET
        # whole minutes, the last one being the current minute
        since = (now // bucket) * bucket - views.CHART_WINDOW + bucket
        activity = outbox.activity(since, bucket)
        counts = views.bounded_counts(counts, set(self.gateway.sources))
        names = sorted(set(self.gateway.sources) | set(counts))
        sources = []
        for name in names:
            c = counts.get(name)
            source = self.gateway.sources.get(name)
            sources.append(
                {
                    "name": name,
                    "provider": source.provider.name if source else "",
                    "configured": source is not None,
                    "accepted": c.accepted if c else 0,
                    "rejected": c.rejected if c else 0,
                    "quarantined": c.quarantined if c else 0,
                    "dead": c.dead if c else 0,
                }
            )
        forwarder = self.gateway.forwarder
        recent = [views.rejection_row(r) for r in outbox.rejections(limit=views.RECENT_REFUSALS)]
        return {
            "sources": sources,
            "recent_refusals": [r.as_json() for r in recent],
            "outbox": {
                "depth": stats.pending + stats.retrying + stats.leased,
                "pending": stats.pending,
                "retrying": stats.retrying,
                "leased": stats.leased,
                "dead": stats.dead,
                "quarantined": stats.quarantined,
                "delivered": stats.delivered,
                "oldest_age_seconds": round(stats.oldest_pending_age, 3),
            },
            "event_api": (
                "disabled"
                if forwarder is None
                else (forwarder.degraded or ("paused" if forwarder.paused else "ok"))
            ),
            "activity": [
                {"start": b.start, "accepted": b.accepted, "rejected": b.rejected} for b in activity
            ],
            "backfill": self.gateway.reconciler.overview() if self.gateway.reconciler else [],
            "_buckets": activity,
        }

    async def overview(self, request: Request) -> Response:
        data = await asyncio.to_thread(self._overview)
        chart = activity_svg(data.pop("_buckets"))
        return self.page(request, "overview.html", {**data, "chart": chart})

    async def api_overview(self, request: Request) -> Response:
        data = await asyncio.to_thread(self._overview)
        data.pop("_buckets")
        return json_response(200, data, SECURITY_HEADERS)

    def _list_params(self, params: Mapping[str, str]) -> dict[str, Any]:
        """The webhook list's filter and page from a query string (or a bulk form)."""
        status = params.get("status", "")
        if status not in views.STATUSES:
            raise HTTPException(400, f"status must be one of {', '.join(views.STATUSES[1:])}")
        limit_text = params.get("limit", str(views.PAGE_SIZE))
        limit = int(limit_text) if limit_text.isdigit() else views.PAGE_SIZE
        limit = max(1, min(limit, views.MAX_LIMIT))
        page_text = params.get("page", "1")
        page = int(page_text) if page_text.isdigit() and int(page_text) > 0 else 1
        if (page - 1) * limit > views.MAX_OFFSET:
            raise HTTPException(
                400, f"page {page} is too deep: narrow the time range (from, to) instead"
            )
        preset = params.get("range", "")
        if preset and preset not in views.RANGES:
            raise HTTPException(400, f"range must be one of {', '.join(views.RANGES)}")
        try:
            since = views.parse_time(params.get("from", "")[:40])
            until = views.parse_time(params.get("to", "")[:40])
        except ValueError as exc:
            raise HTTPException(400, f"from/to: {exc}") from None
        if preset:
            since = (until if until is not None else self.clock()) - views.RANGES[preset]
        return {
            "query": params.get("q", "")[:200],
            "status": status,
            "source": params.get("source", "")[:64],
            "limit": limit,
            "page": page,
            "since": since,
            "until": until,
        }

    def _list(self, params: dict[str, Any]) -> tuple[list[views.Row], bool]:
        return views.list_rows(
            self.outbox,
            query=params["query"],
            status=params["status"],
            source=params["source"],
            limit=params["limit"],
            offset=(params["page"] - 1) * params["limit"],
            since=params["since"],
            until=params["until"],
        )

    async def webhooks(self, request: Request) -> Response:
        params = self._list_params(request.query_params)
        rows, more = await asyncio.to_thread(self._list, params)
        kept = {k: v for k, v in request.query_params.items() if k in _FILTER_KEYS and v}
        # later pages keep the first page's end, so new arrivals do not shift them
        anchor = {"to": str(params["until"] if params["until"] is not None else self.clock())}
        if "range" in kept:
            anchor = {"from": str(params["since"]), **anchor}
            kept.pop("range")
        pinned = {**kept, **anchor}
        page = params["page"]
        return self.page(
            request,
            "webhooks.html",
            {
                "rows": rows,
                **params,
                "from_value": views.time_input(params["since"]),
                # a whole second, rounded up: resubmitting the form keeps every row it showed
                "to_value": views.time_input(
                    None if params["until"] is None else math.ceil(params["until"])
                ),
                "range": request.query_params.get("range", ""),
                "ranges": list(views.RANGES),
                "filters": kept,
                "older": f"?{urlencode({**pinned, 'page': page + 1})}" if more else "",
                "newer": f"?{urlencode({**pinned, 'page': page - 1})}" if page > 1 else "",
                "statuses": views.STATUSES,
                "sources": sorted(self.gateway.sources),
            },
        )

    async def api_webhooks(self, request: Request) -> Response:
        params = self._list_params(request.query_params)
        rows, more = await asyncio.to_thread(self._list, params)
        body = {"webhooks": [r.as_json() for r in rows], "page": params["page"], "more": more}
        return json_response(200, body, SECURITY_HEADERS)

    def _webhook_context(self, webhook_id: int) -> dict[str, Any] | None:
        record = self.outbox.webhook(webhook_id)
        if record is None:
            return None
        secrets = self.gateway.secrets
        webhook = record.webhook
        kind, body = views.pretty_body(
            webhook.body, secrets, webhook.headers.get("content-type", "")
        )
        events = []
        for event in record.events:
            _, payload = views.pretty_body(event.payload, secrets)
            attempts = views.attempt_rows(event.history)
            delivered = [a for a in attempts if a.attempt.outcome == "delivered"]
            events.append(
                {
                    "record": event,
                    "payload": payload,
                    "attempts": attempts,
                    "delivered_by": delivered[-1] if delivered else None,
                }
            )
        return {
            "record": record,
            "w": record.summary,
            "headers": views.masked(
                webhook.headers, secrets, self.signature_headers.get(webhook.source, [])
            ),
            "query_params": sorted(webhook.query.items()),
            "body_kind": kind,
            "body": body,
            "body_size": len(webhook.body),
            "detail": scrub(record.detail or "", secrets),
            "error": scrub(record.summary.error or "", secrets),
            "events": events,
            "dead": [e.seq for e in record.events if e.state == "dead"],
        }

    async def _webhook_page(
        self, request: Request, webhook_id: int, failure: str = "", status: int = 200
    ) -> Response:
        try:
            context = await asyncio.to_thread(self._webhook_context, webhook_id)
        except CipherError as exc:
            return problem(request.scope, 500, f"webhook {webhook_id} cannot be decrypted: {exc}")
        if context is None:
            return problem(request.scope, 404, f"webhook {webhook_id} is not stored (pruned?)")
        if failure:
            context["failure"] = failure
        return self.page(request, "webhook.html", context, status)

    async def webhook(self, request: Request) -> Response:
        return await self._webhook_page(request, _int_param(request, "webhook_id"))

    async def rejection(self, request: Request) -> Response:
        rejection_id = _int_param(request, "rejection_id")
        await asyncio.to_thread(self.outbox.flush_rejections)
        r = await asyncio.to_thread(self.outbox.rejection, rejection_id)
        if r is None:
            return problem(request.scope, 404, f"refused request {rejection_id} is not kept")
        secrets = self.gateway.secrets
        kind, body = views.truncated_json(r.body, secrets)
        if r.body and len(r.body) == r.body_size:
            kind, body = views.pretty_body(r.body, secrets, r.headers.get("content-type", ""))
        return self.page(
            request,
            "rejection.html",
            {
                "r": r,
                "message": scrub(r.message, secrets),
                "headers": views.masked(r.headers, secrets, []),
                "body_kind": kind,
                "body": body,
                "truncated": r.body_size > len(r.body),
            },
        )

    # -- actions -----------------------------------------------------------------------

    def _refuse_write(self, request: Request) -> Response | None:
        """403 for a read-only token, or a cross-site form post riding on basic auth."""
        metrics = self.gateway.metrics
        if request.state.console_scope != WRITE:
            metrics.console_auth_failures.labels("read_only").inc()
            return problem(
                request.scope,
                403,
                "this token has the read scope: replay and retry need a console token with the"
                " write scope",
            )
        if request.state.console_auth == "basic" and not _same_origin(request):
            metrics.console_auth_failures.labels("cross_site").inc()
            return problem(
                request.scope,
                403,
                "cross-site request refused: a form post must come from a console page (its"
                " Origin or Referer must be this console)",
            )
        return None

    def _done(self, request: Request, webhook_id: int, done: str, n: int) -> Response:
        if wants_json(request.scope):
            return json_response(
                200, {"status": done, "webhook_id": webhook_id, "events": n}, SECURITY_HEADERS
            )
        query = urlencode({"done": done, "n": n})
        return RedirectResponse(f"{PREFIX}/webhooks/{webhook_id}?{query}", 303, SECURITY_HEADERS)

    def _notify(self) -> None:
        if self.gateway.forwarder is not None:
            self.gateway.forwarder.notify()

    async def _record_to_change(self, request: Request) -> WebhookRecord | Response:
        """The webhook a write action names, or the response refusing the action."""
        refused = self._refuse_write(request)
        if refused is not None:
            return refused
        webhook_id = _int_param(request, "webhook_id")
        record = await asyncio.to_thread(self.outbox.webhook, webhook_id)
        if record is None:
            return problem(request.scope, 404, f"webhook {webhook_id} is not stored")
        return record

    async def replay(self, request: Request) -> Response:
        webhook_id = _int_param(request, "webhook_id")
        record = await self._record_to_change(request)
        if isinstance(record, Response):
            return record
        if record.summary.status != "quarantined":
            return problem(
                request.scope, 409, f"webhook {webhook_id} is not quarantined: nothing to replay"
            )
        try:
            stored = await self._replay(webhook_id)
        except LookupError:
            return problem(request.scope, 409, f"webhook {webhook_id} is no longer quarantined")
        except TransformError as exc:
            message = f"the transform still fails: {scrub(str(exc), self.gateway.secrets)}"
            if wants_json(request.scope):
                return json_response(422, {"error": message, "status": 422}, SECURITY_HEADERS)
            query = urlencode({"flash": self._flash(message)})
            return RedirectResponse(
                f"{PREFIX}/webhooks/{webhook_id}?{query}", 303, SECURITY_HEADERS
            )
        except KeyError as exc:
            return problem(request.scope, 409, f"cannot replay webhook {webhook_id}: {exc}")
        self._notify()
        return self._done(request, webhook_id, "replayed", stored)

    async def _replay(self, webhook_id: int) -> int:
        """Re-run one quarantined webhook; the events it stored. Raises ``TransformError``,
        ``KeyError`` (no such transform) or ``LookupError`` (no longer quarantined)."""
        record = await asyncio.to_thread(self.outbox.webhook, webhook_id)
        if record is None or record.summary.status != "quarantined":
            raise LookupError(webhook_id)
        webhook = record.webhook
        source = self.gateway.sources.get(webhook.source)
        limit = self.gateway.config.forwarder.max_event_bytes
        if source is not None:
            plan = ReplayPlan(
                source.transform, source.config.event_prefix, source.config.options, limit
            )
        else:
            plan = ReplayPlan(
                self.gateway.registry.get(webhook.provider), webhook.provider, None, limit
            )
        config = self.gateway.config.gateway
        result = await replay_async(
            self.outbox,
            webhook_id,
            webhook,
            plan,
            strict_names=config.strict_names,
            timeout=config.transform_timeout,
        )
        return result.stored

    async def retry(self, request: Request) -> Response:
        webhook_id = _int_param(request, "webhook_id")
        record = await self._record_to_change(request)
        if isinstance(record, Response):
            return record
        dead = [e.seq for e in record.events if e.state == "dead"]
        if "seq" in request.path_params:
            seq = _int_param(request, "seq")
            if seq not in dead:
                return problem(
                    request.scope,
                    409,
                    f"event {seq} of webhook {webhook_id} is not dead-lettered: nothing to retry",
                )
            dead = [seq]
        if not dead:
            return problem(request.scope, 409, f"webhook {webhook_id} has no dead-lettered events")
        count = await asyncio.to_thread(self.outbox.retry_dead, dead)
        self._notify()
        return self._done(request, webhook_id, "retried", count)

    async def _selection(self, request: Request) -> tuple[Selection, dict[str, str]]:
        """The list filter a bulk form posts, and the list's query string to go back to."""
        body = b""
        async for chunk in request.stream():
            body += chunk
            if len(body) > _FORM_MAX:
                raise HTTPException(413, f"a bulk form is at most {_FORM_MAX} bytes")
        form = dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=False))
        fields = {k: form[k][:200] for k in _FILTER_KEYS if form.get(k)}
        params = self._list_params(fields)
        selection = Selection(params["query"], params["source"], params["since"], params["until"])
        return selection, fields

    def _bulk_done(
        self,
        request: Request,
        fields: dict[str, str],
        done: str,
        webhooks: int,
        events: int,
        failed: int = 0,
        left: int = 0,
    ) -> Response:
        """JSON for scripts; else a redirect to the same list, saying what was done."""
        if wants_json(request.scope):
            body = {
                "status": done,
                "webhooks": webhooks,
                "events": events,
                "failed": failed,
                "left": left,
            }
            return json_response(200, body, SECURITY_HEADERS)
        counts = {"w": webhooks, "n": events, "failed": failed, "left": left}
        notice = f"bulk_{done}" + ("_partly" if left else "")
        query = urlencode({**fields, "done": notice, **counts})
        return RedirectResponse(f"{PREFIX}/webhooks?{query}", 303, SECURITY_HEADERS)

    async def bulk_retry(self, request: Request) -> Response:
        """Send every dead-lettered event of the selected webhooks again."""
        refused = self._refuse_write(request)
        if refused is not None:
            return refused
        selection, fields = await self._selection(request)
        webhooks, seqs = await asyncio.to_thread(dead_events, self.outbox, selection)
        count = await asyncio.to_thread(self.outbox.retry_dead, seqs) if seqs else 0
        self._notify()
        return self._bulk_done(request, fields, "retried", webhooks, count)

    async def bulk_replay(self, request: Request) -> Response:
        """Re-run every selected quarantined webhook through its transform."""
        refused = self._refuse_write(request)
        if refused is not None:
            return refused
        selection, fields = await self._selection(request)
        ids = await asyncio.to_thread(selection.webhook_ids, self.outbox, "quarantined")
        stored = failed = tried = 0
        deadline = time.monotonic() + self.bulk_seconds
        for webhook_id in ids:
            if tried and time.monotonic() > deadline:
                break  # a browser or a proxy would give up on a longer request
            tried += 1
            try:
                stored += await self._replay(webhook_id)
            except (TransformError, KeyError, LookupError):
                failed += 1
        self._notify()
        left = len(ids) - tried
        return self._bulk_done(request, fields, "replayed", tried, stored, failed, left)

    async def root(self, request: Request) -> Response:
        return RedirectResponse(PREFIX, 307)


def _same_origin(request: Request) -> bool:
    """The post's ``Origin`` (or ``Referer``) names this console's host and port.

    Only the host is compared, not the scheme: behind a TLS-terminating proxy the browser says
    ``https`` while the console sees ``http``.
    """
    host = request.headers.get("host", "")
    source = request.headers.get("origin") or request.headers.get("referer") or ""
    return bool(host) and urlsplit(source).netloc == host


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    message = {404: "not found", 405: f"method {request.method} not allowed"}.get(
        exc.status_code, str(exc.detail)
    )
    return problem(request.scope, exc.status_code, message)


def create_console_app(
    gateway: Gateway, clock: Callable[[], float] = time.time, bulk_seconds: float = BULK_SECONDS
) -> ConsoleAuth:
    """The console app for ``gateway``, wrapped in its authentication; a bulk replay starts
    no transform after ``bulk_seconds``."""
    console = Console(gateway, clock, bulk_seconds)
    routes = [
        Route("/", console.root, methods=["GET"]),
        Route(PREFIX, console.overview, methods=["GET"]),
        Route(f"{PREFIX}/api/overview", console.api_overview, methods=["GET"]),
        Route(f"{PREFIX}/api/webhooks", console.api_webhooks, methods=["GET"]),
        Route(f"{PREFIX}/webhooks", console.webhooks, methods=["GET"]),
        Route(f"{PREFIX}/webhooks/retry", console.bulk_retry, methods=["POST"]),
        Route(f"{PREFIX}/webhooks/replay", console.bulk_replay, methods=["POST"]),
        Route(f"{PREFIX}/webhooks/{{webhook_id:int}}", console.webhook, methods=["GET"]),
        Route(f"{PREFIX}/webhooks/{{webhook_id:int}}/replay", console.replay, methods=["POST"]),
        Route(f"{PREFIX}/webhooks/{{webhook_id:int}}/retry", console.retry, methods=["POST"]),
        Route(
            f"{PREFIX}/webhooks/{{webhook_id:int}}/events/{{seq:int}}/retry",
            console.retry,
            methods=["POST"],
        ),
        Route(f"{PREFIX}/rejected/{{rejection_id:int}}", console.rejection, methods=["GET"]),
        Mount(f"{PREFIX}/static", StaticFiles(directory=HERE / "static"), name="static"),
    ]
    app = Starlette(routes=routes, exception_handlers={HTTPException: _http_error})
    return ConsoleAuth(app, TokenSet(gateway.console_tokens), gateway.metrics)
