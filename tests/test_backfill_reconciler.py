"""Issue 16: the reconciler inside serve — runs at start, recovers, shows itself in the console
overview and the metrics, and runs on one replica at a time (the outbox lease)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx

from gateway.app import build_gateway, build_sources, create_app
from gateway.backfill.reconciler import Reconciler, plans_for
from gateway.backfill.run import BackfillReport
from gateway.config import BackfillConfig, Config
from gateway.metrics import Metrics
from gateway.plugins import load_registry
from tests.backfill_support import open_outbox
from tests.console_support import console_config, run_console, wait_until
from tests.eventapi_standin import event_api
from tests.helpers import make_config
from tests.server import ThreadedServer
from tests.stripe_standin import stripe_api
from tests.test_metrics_catalogue import value

KEY = "rk_test_reconciler"


def with_backfill(config: Config, url: str) -> Config:
    config.sources[0].backfill = BackfillConfig(
        api_key=f"inline:{KEY}", api_base=url, every="1h", lookback="2h"
    )
    return config


def test_serve_reconciles_at_start_and_reports_in_overview_and_metrics(tmp_path: Path) -> None:
    with event_api() as api, stripe_api() as stripe:
        stripe.add_key(KEY)
        events = [stripe.event("invoice.paid") for _ in range(4)]
        config = with_backfill(console_config(tmp_path, api.url), stripe.url)
        with run_console(config) as running, running.client() as console:

            def last_run() -> dict[str, object] | None:
                rows = console.get("/console/api/overview").json()["backfill"]
                return rows[0]["last_run"] if rows else None

            assert wait_until(lambda: last_run() is not None)
            run = last_run()
            assert run is not None
            assert (run["found"], run["recovered"], run["status"]) == (4, 4, "ok")
            assert api.wait_for_events(4)
            assert sorted(i for i in api.event_ids() if i) == sorted(
                f"stripe-{e['id']}" for e in events
            )
            page = console.get("/console").text
            assert 'id="backfill"' in page and "recovered" in page
            metrics = httpx.get(f"{running.public}/metrics").text
            name = "webhook_gateway_backfill_items_total"
            assert value(metrics, name, source="stripe", state="recovered") == 4
            assert value(metrics, "webhook_gateway_backfill_runs_total", state="ok") == 1


def test_two_replicas_sharing_the_outbox_run_one_backfill_per_period(tmp_path: Path) -> None:
    with stripe_api() as stripe:
        stripe.add_key(KEY)
        stripe.event("customer.created")
        gateways = [
            build_gateway(with_backfill(make_config(tmp_path), stripe.url), {}) for _ in range(2)
        ]
        servers = [ThreadedServer(create_app(g)) for g in gateways]
        try:
            for server in servers:
                server.start()
            statuses = [g.reconciler.status["stripe"] for g in gateways if g.reconciler]

            def decided() -> bool:
                return all(s.last is not None or s.skipped_at is not None for s in statuses)

            assert wait_until(decided)
            ran = [s for s in statuses if s.last is not None]
            assert len(ran) == 1
            assert ran[0].last is not None and ran[0].last.recovered == 1
            assert len(stripe.requests_to("/v1/events")) == 1
        finally:
            for server in servers:
                server.stop()


def test_shutdown_stops_a_run_waiting_out_a_rate_limit(tmp_path: Path) -> None:
    with stripe_api() as stripe:
        stripe.add_key(KEY)
        stripe.event("customer.created")
        stripe.rate_limit_next(1, retry_after="600")
        config = with_backfill(make_config(tmp_path), stripe.url)
        assert config.sources[0].backfill is not None
        config.sources[0].backfill.max_wait = "1h"
        gateway = build_gateway(config, {})
        server = ThreadedServer(create_app(gateway))
        server.start()
        try:
            assert wait_until(lambda: len(stripe.requests_to("/v1/events")) == 1)
        finally:
            server.stop()
        assert not server.thread.is_alive()
        assert gateway.reconciler is not None
        last = gateway.reconciler.status["stripe"].last
        assert last is not None and last.status == "interrupted"
        assert [r.status for r in stripe.requests_to("/v1/events")] == [429]


def test_a_run_longer_than_its_period_keeps_the_lease(tmp_path: Path) -> None:
    """Replica A's run waits out a rate limit past its period; B still does not start one."""
    with stripe_api() as stripe:
        stripe.add_key(KEY)
        stripe.event("customer.created")
        stripe.rate_limit_next(1, retry_after="600")
        config = with_backfill(make_config(tmp_path), stripe.url)
        settings = config.sources[0].backfill
        assert settings is not None
        settings.every, settings.max_wait = "2s", "1h"
        sources, _ = build_sources(config, load_registry(None), {})

        async def scenario() -> tuple[object, BackfillReport | None]:
            with open_outbox(tmp_path) as a_box, open_outbox(tmp_path) as b_box:
                a = Reconciler(plans_for(sources, {}, 86400), a_box, Metrics(), holder="a")
                b = Reconciler(plans_for(sources, {}, 86400), b_box, Metrics(), holder="b")
                running = asyncio.create_task(a.once(a.plans[0]))
                while not stripe.requests_to("/v1/events"):
                    await asyncio.sleep(0.05)
                await asyncio.sleep(3)  # past A's first lease (2 s): only renewal holds it
                other = await b.once(b.plans[0])
                a.token.set()
                return other, await running

        other, report = asyncio.run(scenario())
        assert other is None  # B found the lease held
        assert report is not None and report.status == "interrupted"
        assert len(stripe.requests_to("/v1/events")) == 1


def test_backfill_credentials_are_scrubbed_from_the_logs(tmp_path: Path) -> None:
    config = with_backfill(make_config(tmp_path), "http://127.0.0.1:9")
    gateway = build_gateway(config, {})
    try:
        assert KEY in gateway.secrets
    finally:
        gateway.outbox.close()
