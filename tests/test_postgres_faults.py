"""Faults with real processes on one PostgreSQL outbox: replicas that die, a database that restarts.

``webhook-gateway serve`` processes over loopback, no load balancer (the test spreads signed
Stripe webhooks over them and, like a provider, retries a refused or unanswered webhook on
another replica), the Event API stand-in, and the real PostgreSQL of tests/pg.py. Every id that
got a 2xx must reach the stand-in at least once (at-least-once, docs/outbox.md); no id that was
never sent may appear. The load tests kill replicas at whatever point they reach; the takeover
test makes the victim's batch provably in flight (the stand-in takes it and withholds the
answer) before the kill -9.
"""

from __future__ import annotations

import itertools
import json
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path

import httpx
import psycopg
import pytest

from tests.eventapi_standin import EventApiStandIn, event_api
from tests.helpers import STRIPE_SECRET, fixture
from tests.pg import PgCluster
from tests.server import GatewayProcess
from tests.signing import stripe_headers

LEASE_SECONDS = 3  # a killed replica's claims become due again this soon
TIMEOUT = 180.0  # generous: a loaded 2-core machine
Row = tuple[str, str | None, float | None]  # an outbox row's state, lease token, lease end


def gateway_config(
    directory: Path, api_url: str, *, source: str = "", forwarder: str = "", gateway: str = ""
) -> Path:
    """A config file: one Stripe source, the postgres outbox, short leases and backoff;
    ``source``, ``forwarder`` and ``gateway`` are more lines for those tables."""
    path = directory / "gateway.toml"
    path.write_text(
        f"""
[gateway]
data_dir = "{directory / "data"}"
{gateway}

[[sources]]
name = "stripe"
provider = "stripe"
secrets = ["env:STRIPE_WEBHOOK_SECRET"]
{source}

[inngest]
event_key = "env:INNGEST_EVENT_KEY"
base_url = "{api_url}"

[outbox]
backend = "postgres"
url = "env:GATEWAY_DATABASE_URL"
connect_timeout = 2
statement_timeout = 5

[forwarder]
backoff_base = 0.1
backoff_max = 1
idle_poll = 0.5
shutdown_deadline = 2
{forwarder or f"lease_seconds = {LEASE_SECONDS}"}
"""
    )
    return path


def start_replica(
    stack: ExitStack, config: Path, database_url: str, name: str, event_key: str = "pg-fault-key"
) -> GatewayProcess:
    """A ready gateway on ``config`` with its own port and event key; stopped with ``stack``."""
    env = {
        "STRIPE_WEBHOOK_SECRET": STRIPE_SECRET,
        "GATEWAY_DATABASE_URL": database_url,
        "INNGEST_EVENT_KEY": event_key,
        "GATEWAY_CONFIG": str(config),
    }
    gateway = GatewayProcess([], env, config.parent / f"{name}.log")
    stack.callback(gateway.stop)
    gateway.wait_ready(timeout=TIMEOUT)
    return gateway


@contextmanager
def replicas(
    tmp_path: Path, count: int, database_url: str, api_url: str
) -> Iterator[list[GatewayProcess]]:
    """``count`` gateway processes on one database, each on its own port; stopped afterwards."""
    config = gateway_config(tmp_path, api_url)
    with ExitStack() as stack:
        yield [start_replica(stack, config, database_url, f"gw{i}") for i in range(count)]


def signed_webhook(event_id: str) -> tuple[bytes, dict[str, str]]:
    template = json.loads(fixture("stripe/customer.created.json"))
    template["id"] = event_id
    body = json.dumps(template).encode()
    return body, stripe_headers(body, STRIPE_SECRET)


class Load:
    """Senders that spread webhooks over the replicas and record every answer.

    Each webhook goes to the next replica in turn; a 503 or a connection failure is retried on
    the next one after a short pause (what a provider does, sooner), until a 2xx or ``TIMEOUT``.
    """

    def __init__(self, urls: Sequence[str], ids: Sequence[str], senders: int = 3) -> None:
        self.urls = list(urls)
        self.ids = list(ids)
        self.lock = threading.Lock()
        self.acked: set[str] = set()
        self.statuses: Counter[int] = Counter()  # 0: no answer (refused, reset, timed out)
        self.unexpected: list[tuple[str, int, str]] = []
        self._turn = itertools.count()
        self._threads = [
            threading.Thread(target=self._send, args=(self.ids[i::senders],), daemon=True)
            for i in range(senders)
        ]

    def start(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def join(self) -> None:
        for thread in self._threads:
            thread.join(TIMEOUT + 60)
            assert not thread.is_alive(), "a sender did not finish"

    def acked_count(self) -> int:
        with self.lock:
            return len(self.acked)

    def _send(self, ids: list[str]) -> None:
        with httpx.Client(timeout=httpx.Timeout(30.0, connect=5.0)) as client:
            for event_id in ids:
                self._deliver(client, event_id)

    def _deliver(self, client: httpx.Client, event_id: str) -> None:
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline:
            url = self.urls[next(self._turn) % len(self.urls)]
            body, headers = signed_webhook(event_id)
            try:
                status = client.post(f"{url}/webhooks/stripe", content=body, headers=headers)
            except httpx.HTTPError:
                code, text = 0, ""
            else:
                code, text = status.status_code, status.text
            with self.lock:
                self.statuses[code] += 1
                if 200 <= code < 300:
                    self.acked.add(f"stripe-{event_id}")
                    return
                if code not in (0, 503):
                    self.unexpected.append((event_id, code, text))
            time.sleep(0.05)


def wait_until(predicate: Callable[[], bool], what: str, timeout: float = TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def assert_delivered(api: EventApiStandIn, acked: set[str], sent: set[str]) -> Counter[str]:
    """Every acknowledged id reached the stand-in; nothing that was never sent did."""
    wait_until(lambda: acked <= set(api.event_ids()), "every acknowledged id at the stand-in")
    counted = Counter(str(i) for i in api.event_ids())
    assert set(counted) <= sent, set(counted) - sent
    assert all(counted[i] >= 1 for i in acked)
    return counted


def test_killed_and_scaled_down_replicas_lose_no_acknowledged_webhook(
    tmp_path: Path, pg_url: str
) -> None:
    ids = [f"evt_fleet_{i}" for i in range(240)]
    sent = {f"stripe-{i}" for i in ids}
    with event_api() as api, replicas(tmp_path, 3, pg_url, api.url) as gateways:
        api.down = True  # the Event API is failing: everything stays in the shared outbox
        api.delay = 1.0  # and slow: a replica is often (not provably) killed mid-request
        killed, scaled_down, survivor = gateways
        load = Load([g.url for g in gateways], ids).start()
        wait_until(lambda: load.acked_count() >= len(ids) // 4, "a quarter acknowledged")
        assert killed.stop(signal.SIGKILL) == -signal.SIGKILL  # mid-load
        wait_until(lambda: load.acked_count() >= len(ids) // 2, "half acknowledged")
        # a scale-down: SIGTERM, gone for good (uvicorn re-raises the signal after a clean stop)
        assert scaled_down.stop(signal.SIGTERM) in (0, -signal.SIGTERM)
        load.join()
        assert load.unexpected == []
        assert load.acked == sent  # the survivor answered what the others could not
        assert survivor.proc.poll() is None
        assert api.events == []  # nothing delivered while the API was down

        api.down, api.delay = False, 0.0  # only the survivor is left to deliver
        counted = assert_delivered(api, load.acked, sent)
        assert survivor.proc.poll() is None
    duplicates = {i: n for i, n in counted.items() if n > 1}
    # at-least-once: a duplicate is the same event sent again, never a different one
    for event_id in duplicates:
        payloads = {json.dumps(e, sort_keys=True) for e in api.events if e.get("id") == event_id}
        assert len(payloads) == 1, event_id


STEPS = 5  # events per webhook in the takeover test: one more than a batch may hold
TAKEOVER_LEASE = 6  # renewed every 2 s: a busy machine cannot make the live holder lose it
FANOUT = f"""
from gateway import Event, transform


@transform("fanout")
def fanout(webhook):
    event = webhook.json
    return [
        Event(name="stripe/customer.step", id=f"stripe-{{event['id']}}-{{n}}",
              data={{"webhook": event["id"], "step": n}})
        for n in range({STEPS})
    ]
"""


def outbox_rows(database_url: str, event_ids: Iterable[str] | None = None) -> dict[str, Row]:
    """``event_id -> (state, lease_token, lease_until)`` read from the shared outbox."""
    wanted = None if event_ids is None else list(event_ids)
    with psycopg.connect(database_url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT event_id, state, lease_token, lease_until FROM events"
            " WHERE %(ids)s::text[] IS NULL OR event_id = ANY(%(ids)s)",
            {"ids": wanted},
        ).fetchall()
    return {row[0]: (row[1], row[2], row[3]) for row in rows}


def held_under_one_token(database_url: str, event_ids: Sequence[str]) -> tuple[str, float]:
    """The one lease token (and the latest lease end) all of ``event_ids`` are leased under."""
    rows = outbox_rows(database_url, event_ids)
    assert sorted(rows) == sorted(event_ids)
    assert {state for state, _, _ in rows.values()} == {"leased"}, rows
    tokens = {token for _, token, _ in rows.values()}
    assert len(tokens) == 1 and None not in tokens, rows
    return tokens.pop(), max(until for _, _, until in rows.values())


def test_a_replica_killed_while_holding_leases_is_taken_over_after_the_lease(
    tmp_path: Path, pg_url: str
) -> None:
    """kill -9 a replica whose batch is provably in flight: the Event API took the events but
    the answer never came, the rows are leased under its token and it keeps renewing them.
    The survivors take them over once the lease runs out; nothing else is sent twice."""
    transforms = tmp_path / "transforms"
    transforms.mkdir()
    (transforms / "fanout.py").write_text(FANOUT)
    victim_key, survivor_keys = "victim-key", {"survivor-key-1", "survivor-key-2"}
    first = "evt_lease_0"
    last = f"stripe-{first}-{STEPS - 1}"  # the first webhook's event that misses the batch
    ids = [first] + [f"evt_lease_{i}" for i in range(1, 61)]
    wanted = {f"stripe-{w}-{n}" for w in ids for n in range(STEPS)}
    with event_api() as api, ExitStack() as stack:
        config = gateway_config(
            tmp_path,
            api.url,
            gateway=f'transforms_dir = "{transforms}"',
            source='transform = "fanout"',
            forwarder=f"lease_seconds = {TAKEOVER_LEASE}\nmax_batch_events = {STEPS - 1}\n"
            "request_timeout = 600\nbatch_linger = 0",
        )
        api.hold_answers(victim_key)
        victim = start_replica(stack, config, pg_url, "victim", victim_key)
        # alone, the victim claims the first webhook: its first STEPS - 1 events in one batch
        body, headers = signed_webhook(first)
        response = httpx.post(f"{victim.url}/webhooks/stripe", content=body, headers=headers)
        assert response.status_code == 200, response.text
        wait_until(lambda: len(api.held) == 1, "the victim's batch at the stand-in")
        in_flight = [str(e["id"]) for e in api.held[0].accepted]
        assert in_flight == [f"stripe-{first}-{n}" for n in range(STEPS - 1)]
        token, until = held_under_one_token(pg_url, in_flight)
        assert outbox_rows(pg_url, [last])[last][0] == "pending"  # behind its leased events
        # the live victim renews its leases under that token while its request hangs
        wait_until(
            lambda: held_under_one_token(pg_url, in_flight)[1] > until, "the victim renewing"
        )

        survivors = [
            start_replica(stack, config, pg_url, f"survivor{i}", key)
            for i, key in enumerate(sorted(survivor_keys))
        ]
        load = Load([victim.url] + [g.url for g in survivors], ids[1:]).start()
        wait_until(lambda: load.acked_count() >= len(ids) // 4, "a quarter acknowledged")
        wait_until(
            lambda: any(r.key in survivor_keys and r.status == 200 for r in list(api.requests)),
            "the survivors delivering",
        )
        # mid-load and mid-request: still leased under the victim's token, renewed, not taken
        assert held_under_one_token(pg_url, in_flight)[0] == token
        assert victim.stop(signal.SIGKILL) == -signal.SIGKILL
        api.release_answers()  # the answer goes nowhere: the victim never learns of it

        load.join()
        assert load.unexpected == []
        assert load.acked == {f"stripe-{i}" for i in ids[1:]}
        wait_until(lambda: wanted <= set(api.event_ids()), "every acknowledged event delivered")
        wait_until(
            lambda: {s for s, _, _ in outbox_rows(pg_url).values()} == {"delivered"},
            "nothing left leased or pending",
        )
        for gateway in survivors:
            assert gateway.proc.poll() is None

    arrived = [str(i) for i in api.event_ids()]
    counted = Counter(arrived)
    assert set(counted) == wanted
    # at-least-once: the only events sent twice are the victim's batch, re-sent by a survivor
    assert {i: n for i, n in counted.items() if n > 1} == dict.fromkeys(in_flight, 2)
    resent = [str(e["id"]) for r in api.requests if r.key in survivor_keys for e in r.accepted]
    assert set(in_flight) <= set(resent)
    # order per webhook: each event first arrives after every earlier one of its webhook ...
    first_seen = {i: arrived.index(i) for i in wanted}
    for webhook in ids:
        steps = [first_seen[f"stripe-{webhook}-{n}"] for n in range(STEPS)]
        assert steps == sorted(steps), webhook
    # ... and the taken-over webhook's last event waited for the re-sent batch
    last_resend = max(n for n, i in enumerate(arrived) if i in in_flight)
    assert arrived.index(last) > last_resend
    rows = outbox_rows(pg_url, in_flight)
    assert all(state == "delivered" and t is None for state, t, _ in rows.values()), rows


def test_a_database_restart_under_load_answers_503_and_loses_nothing(
    tmp_path: Path, pg_cluster: PgCluster
) -> None:
    if pg_cluster.directory is None:
        pytest.skip("the server is not this test run's own (GATEWAY_TEST_POSTGRES_URL)")
    database_url = pg_cluster.new_database()
    ids = [f"evt_restart_{i}" for i in range(240)]
    sent = {f"stripe-{i}" for i in ids}
    try:
        with event_api() as api, replicas(tmp_path, 2, database_url, api.url) as gateways:
            load = Load([g.url for g in gateways], ids, senders=2).start()
            try:
                wait_until(lambda: load.acked_count() >= len(ids) // 4, "a quarter acknowledged")
                pg_cluster.stop()
                # while the database is down the replicas refuse, never acknowledge
                acked_before = load.acked_count()
                wait_until(lambda: load.statuses[503] >= 5, "503s while the database is down")
                for gateway in gateways:
                    assert httpx.get(f"{gateway.url}/readyz", timeout=30).status_code == 503
                refused_while_down = load.statuses[503]
                acked_while_down = load.acked_count() - acked_before
            finally:
                pg_cluster.start()
            load.join()
            assert load.unexpected == []
            assert refused_while_down >= 5 and acked_while_down <= 2  # answers already committed
            assert load.acked == sent  # the same processes accept again after the restart
            assert_delivered(api, load.acked, sent)
            for gateway in gateways:
                assert gateway.proc.poll() is None  # recovered without a restart
                assert httpx.get(f"{gateway.url}/readyz", timeout=30).status_code == 200
    finally:
        pg_cluster.drop_database(database_url)
