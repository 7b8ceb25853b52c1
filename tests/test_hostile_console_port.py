"""The console's admin port has the public port's guards: oversized heads get a JSON 431, idle
and dribbling connections are closed after ``http.header_timeout``, and a connection cap keeps
room for the operator however many idle connections are held open. A real ``serve`` process.
"""

from __future__ import annotations

import re
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.helpers import STRIPE_SECRET
from tests.server import GatewayProcess
from tests.test_hostile_http import connect, read_response, status_and_json
from tests.test_metrics_catalogue import value

REFUSED = "webhook_gateway_http_refused_total"
TOKEN = "console-read-token"
CONSOLE_URL = re.compile(r'"msg": ?"console listening".*?"url": ?"(http://[^"]+)"')


def _serve(tmp_path: Path, header_timeout: float) -> Iterator[tuple[str, str]]:
    config_file = tmp_path / "gateway.toml"
    config_file.write_text(
        f"""
[gateway]
data_dir = "{tmp_path / "data"}"

[forwarder]
enabled = false

[http]
header_timeout = {header_timeout}
max_header_bytes = 4096

[[sources]]
name = "stripe"
provider = "stripe"
secrets = ["inline:{STRIPE_SECRET}"]

[console]
enabled = true
host = "127.0.0.1"
port = 0

[[console.tokens]]
secret = "inline:{TOKEN}"
scope = "read"
"""
    )
    process = GatewayProcess([], {"GATEWAY_CONFIG": str(config_file)}, tmp_path / "gw.log")
    try:
        public = process.wait_ready()
        deadline = time.monotonic() + 30
        while not (match := CONSOLE_URL.search((tmp_path / "gw.log").read_text())):
            assert time.monotonic() < deadline, "the console did not start"
            time.sleep(0.05)
        yield public, match.group(1).removesuffix("/console")
    finally:
        process.stop()


@pytest.fixture
def quick(tmp_path: Path) -> Iterator[tuple[str, str]]:
    yield from _serve(tmp_path, header_timeout=0.5)


@pytest.fixture
def patient(tmp_path: Path) -> Iterator[tuple[str, str]]:
    yield from _serve(tmp_path, header_timeout=300)


def console_page(admin: str) -> int:
    headers = {"authorization": f"Bearer {TOKEN}"}
    return httpx.get(f"{admin}/console", headers=headers, timeout=20).status_code


def test_an_oversized_head_gets_a_json_431(quick: tuple[str, str]) -> None:
    public, admin = quick
    sock = connect(admin)
    sock.sendall(b"GET /console HTTP/1.1\r\nHost: gw\r\nX-Big: " + b"a" * 8192 + b"\r\n\r\n")
    status, body = status_and_json(read_response(sock))
    sock.close()
    assert (status, body["reason"]) == (431, "header_too_large")
    assert console_page(admin) == 200
    text = httpx.get(f"{public}/metrics", timeout=10).text
    assert value(text, REFUSED, reason="console_header_too_large") == 1
    assert value(text, REFUSED, reason="header_too_large") == 0  # the public port's own count


def test_idle_and_dribbling_connections_are_closed(quick: tuple[str, str]) -> None:
    public, admin = quick
    idle = connect(admin)
    dribbler = connect(admin)
    dribbler.sendall(b"GET /console HTTP/1.1\r\nHost: gw\r\n")
    for sock in (idle, dribbler):
        sock.settimeout(30)
    assert read_response(idle) == b""  # nothing was asked: closed quietly
    status, body = status_and_json(read_response(dribbler))
    assert (status, body["reason"]) == (408, "header_timeout")
    for sock in (idle, dribbler):
        sock.close()
    text = httpx.get(f"{public}/metrics", timeout=10).text
    assert value(text, REFUSED, reason="console_header_timeout") == 2


def test_idle_connections_cannot_lock_the_operator_out(patient: tuple[str, str]) -> None:
    public, admin = patient
    held: list[socket.socket] = []
    try:
        held = [connect(admin) for _ in range(300)]
        assert console_page(admin) == 200
    finally:
        for sock in held:
            sock.close()
    text = httpx.get(f"{public}/metrics", timeout=10).text
    assert value(text, REFUSED, reason="console_connection_limit") >= 300 - 64
