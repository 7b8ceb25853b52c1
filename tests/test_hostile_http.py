"""Issue 13, points 2-3: oversized heads, dribbling and idle connections, over real sockets.

The public port answers 431 (JSON) once the head is over its limits, without buffering it
whole; closes connections whose head or body does not arrive in time; and keeps room for
health checks and webhooks however many idle connections an attacker holds open.
"""

from __future__ import annotations

import json
import socket
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from gateway.config import Config, HttpConfig
from gateway.webhook import normalize_headers
from tests.helpers import STRIPE_SECRET, fixture, make_config
from tests.server import GatewayProcess, ThreadedServer, run_gateway
from tests.signing import stripe_headers
from tests.test_metrics_catalogue import value

REFUSED = "webhook_gateway_http_refused_total"
REJECTED = "webhook_gateway_webhooks_rejected_total"


def config(tmp_path: Path, **http: float) -> Config:
    base = make_config(tmp_path)
    return base.model_copy(update={"http": HttpConfig(**http)})


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[ThreadedServer]:
    with run_gateway(config(tmp_path)) as server:
        yield server


def connect(url: str) -> socket.socket:
    host, port = url.removeprefix("http://").split(":")
    return socket.create_connection((host, int(port)), timeout=10)


def read_response(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection (bounded by the timeout)."""
    chunks = []
    try:
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    except (ConnectionResetError, TimeoutError):
        pass
    return b"".join(chunks)


def status_and_json(raw: bytes) -> tuple[int, dict[str, object]]:
    head, _, body = raw.partition(b"\r\n\r\n")
    return int(head.split(b" ")[1]), json.loads(body)


def stripe_webhook(client: httpx.Client, event_id: str) -> httpx.Response:
    event = json.loads(fixture("stripe/customer.created.json"))
    event["id"] = event_id
    body = json.dumps(event).encode()
    headers = stripe_headers(body, STRIPE_SECRET)
    return client.post("/webhooks/stripe", content=body, headers=headers)


def metrics(url: str) -> str:
    return httpx.get(f"{url}/metrics", timeout=10).text


def test_huge_header_is_refused_with_431_before_it_is_buffered(gateway: ThreadedServer) -> None:
    sock = connect(gateway.url)
    sock.sendall(b"POST /webhooks/stripe HTTP/1.1\r\nHost: gw\r\nX-Big: ")
    sent = 0
    refused_early = False
    chunk = b"a" * 65536
    try:
        while sent < 64 * 1024 * 1024:  # the server must stop reading long before this
            sock.sendall(chunk)
            sent += len(chunk)
    except (BrokenPipeError, ConnectionResetError):
        refused_early = True
    raw = read_response(sock)
    sock.close()
    assert refused_early, "the whole header was accepted"
    status, body = status_and_json(raw)
    assert (status, body["reason"]) == (431, "header_too_large")
    assert "32768 bytes" in str(body["error"])
    with httpx.Client(base_url=gateway.url) as client:
        assert stripe_webhook(client, "evt_after_big_header").status_code == 200
    assert value(metrics(gateway.url), REFUSED, reason="header_too_large") == 1


def test_too_many_headers_get_431(gateway: ThreadedServer) -> None:
    sock = connect(gateway.url)
    repeated = b"X-A: 1\r\n" * 3000
    sock.sendall(b"POST /webhooks/stripe HTTP/1.1\r\nHost: gw\r\n" + repeated + b"\r\n")
    status, body = status_and_json(read_response(sock))
    sock.close()
    assert (status, body["reason"]) == (431, "too_many_headers")
    with httpx.Client(base_url=gateway.url) as client:  # within the limits: served
        headers = {f"X-Extra-{i}": "v" for i in range(50)}
        response = client.post("/webhooks/stripe", content=b"{}", headers=headers)
        assert response.status_code == 401
    assert value(metrics(gateway.url), REFUSED, reason="too_many_headers") == 1


def test_bytes_that_are_not_http_get_a_json_400(gateway: ThreadedServer) -> None:
    sock = connect(gateway.url)
    sock.sendall(b"\x16\x03\x01 not http at all\r\n\r\n")
    status, body = status_and_json(read_response(sock))
    sock.close()
    assert (status, body["reason"]) == (400, "bad_request")
    assert value(metrics(gateway.url), REFUSED, reason="bad_request") == 1


def test_repeated_headers_are_joined_in_order() -> None:
    pairs = [("X-A", str(i)) for i in range(100_000)] + [("Other", "o")]
    merged = normalize_headers(pairs)
    assert merged["x-a"] == ", ".join(str(i) for i in range(100_000))
    assert merged["other"] == "o"


def dribble_until_closed(sock: socket.socket, byte: bytes, bound: float) -> bytes | None:
    """Send ``byte`` every 50 ms until the server closes; its answer, or None past ``bound``."""
    sock.settimeout(0.05)
    deadline = time.monotonic() + bound
    received = b""
    while time.monotonic() < deadline:
        try:
            sock.sendall(byte)
        except (BrokenPipeError, ConnectionResetError):
            return received
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            continue
        except ConnectionResetError:
            return received
        if not chunk:
            return received
        received += chunk
    return None


@pytest.mark.parametrize("phase", ["header", "body"])
def test_dribbling_connections_are_closed(tmp_path: Path, phase: str) -> None:
    with run_gateway(config(tmp_path, header_timeout=0.5, body_timeout=0.5)) as gw:
        results: list[bytes | None] = []

        def attack() -> None:
            sock = connect(gw.url)
            head = b"POST /webhooks/stripe HTTP/1.1\r\nHost: gw\r\n"
            if phase == "body":
                head += b"Content-Type: application/json\r\nContent-Length: 100000\r\n\r\n{"
            sock.sendall(head)
            results.append(dribble_until_closed(sock, b" " if phase == "body" else b"X", 30))
            sock.close()

        attackers = [threading.Thread(target=attack) for _ in range(5)]
        for thread in attackers:
            thread.start()
        with httpx.Client(base_url=gw.url, timeout=10) as client:
            # a valid webhook and a health check get through while the attack is in progress
            assert stripe_webhook(client, f"evt_during_{phase}_dribble").status_code == 200
            assert client.get("/healthz").status_code == 200
        for thread in attackers:
            thread.join()
        text = metrics(gw.url)
    assert len(results) == 5 and all(r is not None for r in results), "never closed"
    for raw in results:
        assert raw is not None
        status, body = status_and_json(raw)
        assert (status, body["reason"]) == (408, f"{phase}_timeout")
    assert value(text, REFUSED, reason=f"{phase}_timeout") == 5
    if phase == "body":
        assert value(text, REJECTED, source="stripe", reason="body_timeout") == 5
        assert value(text, REJECTED, reason="internal_error") == 0


def test_idle_connections_are_closed_after_the_header_timeout(tmp_path: Path) -> None:
    with run_gateway(config(tmp_path, header_timeout=0.5)) as gw:
        sock = connect(gw.url)
        sock.settimeout(30)
        assert read_response(sock) == b""  # closed quietly: nothing was asked
        sock.close()
        assert value(metrics(gw.url), REFUSED, reason="header_timeout") == 1


def test_connection_cap_keeps_room_for_probes_and_webhooks(tmp_path: Path) -> None:
    cap = 20
    # long timeouts: only the cap can make room
    with (
        run_gateway(config(tmp_path, max_connections=cap, header_timeout=300)) as gw,
        httpx.Client(base_url=gw.url, timeout=10) as client,
    ):
        started = [connect(gw.url) for _ in range(cap // 2)]
        for sock in started[::2]:  # mid-head
            sock.sendall(b"POST /webhooks/stripe HTTP/1.1\r\nHost: gw\r\n")
        for sock in started[1::2]:  # mid-body: the receiver is waiting for the rest
            sock.sendall(
                b"POST /webhooks/stripe HTTP/1.1\r\nHost: gw\r\nContent-Length: 10\r\n\r\n{"
            )
        deadline = time.monotonic() + 20
        received = "webhook_gateway_webhooks_received_total"
        while value(client.get("/metrics").text, received) < cap // 4:
            assert time.monotonic() < deadline, "the mid-body requests did not arrive"
            time.sleep(0.02)
        idle = [connect(gw.url) for _ in range(2 * cap)]
        for i in range(5):
            assert client.get("/healthz").status_code == 200
            assert stripe_webhook(client, f"evt_capped_{i}").status_code == 200
        closed = 0
        for sock in started + idle:
            sock.settimeout(0.05)
            try:
                sock.recv(1)  # b"" (closed quietly) or the start of a 503: the server acted
                closed += 1
            except TimeoutError:
                pass
            except ConnectionResetError:
                closed += 1
            sock.close()
        text = client.get("/metrics").text
    assert closed >= 2 * cap - cap // 2, closed  # the oldest unfinished ones made room
    assert value(text, REFUSED, reason="connection_limit") >= closed
    # the webhooks cut off mid-body are counted as refused by the cap, not as hang-ups
    assert value(text, REJECTED, source="stripe", reason="connection_limit") == cap // 4
    assert value(text, REJECTED, reason="client_disconnected") == 0


def test_idle_connection_flood_cannot_exhaust_the_file_descriptors(tmp_path: Path) -> None:
    """``serve`` under a 256-descriptor limit: 600 idle connections, then a probe and a webhook."""
    config_file = tmp_path / "gateway.toml"
    config_file.write_text(
        f"""
[gateway]
data_dir = "{tmp_path / "data"}"

[forwarder]
enabled = false

[http]
header_timeout = 300.0             # only the connection cap can make room

[[sources]]
name = "stripe"
provider = "stripe"
secrets = ["inline:{STRIPE_SECRET}"]
"""
    )
    limited = ["sh", "-c", 'ulimit -n 256 && exec "$0" -m gateway "$@"', sys.executable]
    env = {"GATEWAY_CONFIG": str(config_file)}
    process = GatewayProcess([], env, tmp_path / "gw.log", command=limited)
    idle: list[socket.socket] = []
    try:
        url = process.wait_ready()
        for _ in range(600):
            idle.append(connect(url))
        with httpx.Client(base_url=url, timeout=20) as client:
            assert client.get("/healthz").status_code == 200
            assert stripe_webhook(client, "evt_after_fd_flood").status_code == 200
            text = client.get("/metrics").text
        assert value(text, REFUSED, reason="connection_limit") >= 600 - 256
    finally:
        for sock in idle:
            sock.close()
        process.stop()
    log = (tmp_path / "gw.log").read_text()
    assert "Too many open files" not in log
    assert "max_connections lowered by the file descriptor limit" in log
