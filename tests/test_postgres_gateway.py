"""Gateways on one PostgreSQL outbox: serving, wake-ups, start-up, errors, the commands.

Real gateways over loopback (in-process uvicorn, or ``webhook-gateway serve`` processes), the
Event API stand-in, and a real PostgreSQL (tests/pg.py).
"""

from __future__ import annotations

import json
import re
import time
import tomllib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import psycopg
import pytest

from gateway.app import build_gateway, create_app
from gateway.cli import main
from gateway.config import Config, ConfigError, OutboxConfig, config_from_env
from gateway.outbox.migrate import latest_version, schema_version
from gateway.outbox.postgres import PostgresOutbox
from gateway.webhook import Webhook
from tests.console_support import console_config, run_console
from tests.eventapi_standin import event_api
from tests.helpers import STRIPE_SECRET, fixture, make_config
from tests.pg import PgCluster
from tests.server import GatewayProcess, ThreadedServer
from tests.signing import stripe_headers


def on_postgres(config: Config, url: str) -> Config:
    config.outbox = OutboxConfig(backend="postgres", url=f"inline:{url}")
    return config


@contextmanager
def serving(config: Config) -> Iterator[tuple[ThreadedServer, PostgresOutbox]]:
    gateway = build_gateway(config, {})
    assert isinstance(gateway.outbox, PostgresOutbox)
    server = ThreadedServer(create_app(gateway))
    server.start()
    try:
        yield server, gateway.outbox
    finally:
        server.stop()


def post_stripe(url: str, event_id: str) -> httpx.Response:
    template = json.loads(fixture("stripe/customer.created.json"))
    template["id"] = event_id
    body = json.dumps(template).encode()
    return httpx.post(
        f"{url}/webhooks/stripe", content=body, headers=stripe_headers(body, STRIPE_SECRET)
    )


def test_another_replicas_webhook_wakes_this_forwarder(tmp_path: Path, pg_url: str) -> None:
    """B forwards what A accepted long before its idle poll (60 s) would have looked."""
    with event_api() as api:
        receiver = on_postgres(make_config(tmp_path / "a"), pg_url)  # no forwarder
        sender = on_postgres(make_config(tmp_path / "b", api.url, idle_poll=60.0), pg_url)
        with serving(receiver) as (a, _), serving(sender) as (_, b_outbox):
            assert b_outbox.listening.wait(10)
            assert post_stripe(a.url, "evt_wake_1").status_code == 200
            assert api.wait_for_events(1, timeout=30)
            assert post_stripe(a.url, "evt_wake_2").status_code == 200
            assert api.wait_for_events(2, timeout=30)
            # the second replica's console sees the first one's webhooks
            assert len(b_outbox.webhooks(source="stripe")) == 2
    assert sum("evt_wake" in (i or "") for i in api.event_ids()) == 2


def test_database_errors_answer_503_and_the_gateway_recovers(
    tmp_path: Path, pg_url: str, pg_cluster: PgCluster
) -> None:
    config = on_postgres(make_config(tmp_path), pg_url)
    with serving(config) as (server, _), psycopg.connect(pg_cluster.url, autocommit=True) as admin:
        dbname = pg_url.split("?")[0].rsplit("/", 1)[1]
        assert post_stripe(server.url, "evt_up_1").status_code == 200
        admin.execute(f'ALTER DATABASE "{dbname}" ALLOW_CONNECTIONS false'.encode())
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
            (dbname,),
        )
        refused = post_stripe(server.url, "evt_down_1")
        assert refused.status_code == 503
        assert refused.json()["source"] == "stripe" and refused.json()["error"]
        assert httpx.get(f"{server.url}/readyz").status_code == 503
        admin.execute(f'ALTER DATABASE "{dbname}" ALLOW_CONNECTIONS true'.encode())
        deadline = time.monotonic() + 30
        while (status := post_stripe(server.url, "evt_down_1").status_code) != 200:
            assert status == 503 and time.monotonic() < deadline
            time.sleep(0.2)
        assert httpx.get(f"{server.url}/readyz").status_code == 200
    with psycopg.connect(pg_url) as conn:
        ids = [r[0] for r in conn.execute("SELECT event_id FROM events ORDER BY seq").fetchall()]
    # the refused webhook was not stored; its retry was, once
    assert len(ids) == 2 and "evt_up_1" in ids[0] and "evt_down_1" in ids[1]


def test_two_gateways_starting_at_once_both_come_up(
    tmp_path: Path, pg_cluster: PgCluster, event_api_url: str
) -> None:
    url = pg_cluster.new_database(schema=False)  # empty: both want to migrate it
    env = {
        "STRIPE_WEBHOOK_SECRET": STRIPE_SECRET,
        "GATEWAY_DATABASE_URL": url,
        "INNGEST_EVENT_API_BASE_URL": event_api_url,
        "INNGEST_EVENT_KEY": "pg-test-key",
        "GATEWAY_CONFIG": "",
        "GATEWAY_DATA_DIR": str(tmp_path / "unused"),
    }
    gateways = [GatewayProcess([], env, tmp_path / f"gw{i}.log") for i in range(2)]
    try:
        for gateway in gateways:
            gateway.wait_ready()
            assert httpx.get(f"{gateway.url}/readyz").status_code == 200
        assert post_stripe(gateways[1].url, "evt_started").status_code == 200
    finally:
        for gateway in gateways:
            gateway.stop()
    with psycopg.connect(url) as conn:
        assert schema_version(conn) == latest_version()
    assert not (tmp_path / "unused").exists()  # no SQLite file beside the database


@pytest.fixture
def event_api_url() -> Iterator[str]:
    with event_api() as api:
        yield api.url


def test_a_gateway_refuses_a_database_with_a_newer_schema(tmp_path: Path, pg_url: str) -> None:
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("UPDATE meta SET value = '999' WHERE key = 'schema_version'")
    with pytest.raises(ConfigError, match="newer than this gateway knows"):
        build_gateway(on_postgres(make_config(tmp_path), pg_url), {})


def test_the_database_url_alone_selects_postgres(pg_url: str) -> None:
    env = {"GATEWAY_DATABASE_URL": pg_url, "INNGEST_DEV": "1"}
    gateway = build_gateway(config_from_env(env), env)
    try:
        assert isinstance(gateway.outbox, PostgresOutbox)
    finally:
        gateway.outbox.close()


def test_commands_see_every_replicas_rows(
    pg_cluster: PgCluster, capsys: pytest.CaptureFixture[str]
) -> None:
    url = pg_cluster.new_database(schema=False)
    env = {"GATEWAY_DATABASE_URL": url}
    assert main(["outbox", "status"], env) == 2  # commands never create the schema
    assert "run `webhook-gateway outbox migrate`" in capsys.readouterr().err
    assert main(["outbox", "migrate", "--check", "-o", "json"], env) == 1
    assert json.loads(capsys.readouterr().out)["current"] is False
    assert main(["outbox", "migrate", "-o", "json"], env) == 0
    latest = latest_version()
    assert json.loads(capsys.readouterr().out) == {
        "from": 0,
        "to": latest,
        "latest": latest,
        "current": True,
    }
    assert main(["outbox", "migrate", "--check"], env) == 0
    assert "CURRENT" in capsys.readouterr().out  # a table without -o json
    replicas = [PostgresOutbox(url, listen=False) for _ in range(2)]
    try:
        one, two = replicas
        hook = Webhook(source="stripe", provider="stripe", body=b"{}", received_at=1.0)
        one.accept(hook, [b'{"name":"stripe/a.b"}'], ["x"], ["stripe/a.b"])
        two.accept(hook, [b'{"name":"stripe/c.d"}'], ["y"], ["stripe/c.d"])
        invoice = Webhook(
            source="stripe", provider="stripe", body=fixture("stripe/invoice.paid.json")
        )
        held = two.quarantine(invoice, "transform raised KeyError", "Traceback ...")
        good, bad = (e.seq for e in one.claim(max_events=5, max_bytes=10**6, lease_seconds=5))
        one.ack([good])
        one.dead_letter(bad, "event API: bad data")
        assert main(["outbox", "status", "-o", "json"], env) == 0
        status = json.loads(capsys.readouterr().out)
        assert (status["backend"], status["dead"], status["delivered"]) == ("postgres", 1, 1)
        assert status["quarantined"] == 1 and status["location"].startswith("postgres ")
        assert main(["outbox", "list", "-o", "json"], env) == 0
        listed = json.loads(capsys.readouterr().out)
        assert {(row["kind"], row["id"]) for row in listed} == {("event", bad), ("webhook", held)}
        assert main(["outbox", "retry", str(bad)], env) == 0
        assert "1 dead-lettered event(s) queued" in capsys.readouterr().out
        assert two.stats().dead == 0
        assert main(["quarantine", "list", "-o", "json"], env) == 0
        assert [q["webhook_id"] for q in json.loads(capsys.readouterr().out)] == [held]
        assert main(["quarantine", "replay", str(held)], env) == 0
        assert f"webhook {held}: 1 event(s) queued" in capsys.readouterr().out
        assert main(["outbox", "purge", "--yes"], env) == 0
        assert one.stats().delivered == 0
    finally:
        for r in replicas:
            r.close()


def test_outbox_migrate_is_for_postgres(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["outbox", "migrate"], {"GATEWAY_DATA_DIR": str(tmp_path)}) == 2
    assert 'backend = "postgres"' in capsys.readouterr().err


def test_the_package_and_the_image_carry_the_postgres_client() -> None:
    root = Path(__file__).resolve().parent.parent
    extras = tomllib.loads((root / "pyproject.toml").read_text())["project"]
    postgres = extras["optional-dependencies"]["postgres"]
    assert any(dep.startswith("psycopg[binary,pool]") for dep in postgres)
    assert set(postgres) <= set(extras["optional-dependencies"]["test"])
    # the image installs only the hash-locked requirements: the lock must carry the extra's client
    dockerfile = (root / "Dockerfile").read_text()
    assert "--require-hashes" in dockerfile and "-r requirements/image.txt" in dockerfile
    lock = (root / "requirements" / "image.txt").read_text()
    for name in ("psycopg", "psycopg-binary", "psycopg-pool"):
        pinned = re.search(rf"^{name}==\S+ \\\n\s+--hash=sha256:[0-9a-f]{{64}}", lock, re.M)
        assert pinned, f"{name} is not pinned with a hash in requirements/image.txt"
    assert "psycopg[binary,pool]" in (root / "requirements" / "image.in").read_text()


def test_a_replicas_console_shows_every_replicas_webhooks(tmp_path: Path, pg_url: str) -> None:
    receiver = on_postgres(make_config(tmp_path / "a"), pg_url)
    viewer = on_postgres(console_config(tmp_path / "b", None), pg_url)
    with serving(receiver) as (a, _), run_console(viewer) as b:
        assert post_stripe(a.url, "evt_seen_elsewhere").status_code == 200
        with b.client() as client:
            overview = client.get("/console/api/overview").json()
            page = client.get("/console/webhooks", params={"q": "evt_seen_elsewhere"})
    assert page.status_code == 200 and "evt_seen_elsewhere" in page.text
    assert overview["outbox"]["pending"] == 1  # the shared depth, not this replica's own
