"""``webhook-gateway serve`` with its console, driven end to end by headless Chromium.

The browser test needs Debian's ``chromium`` at /usr/bin/chromium and the ``playwright``
package (``.ci/run`` installs the browser); it skips with the reason otherwise. Playwright only
drives the system browser: no browser download is ever needed.
"""

from __future__ import annotations

import importlib.util
import os
import re
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.console_support import READ_TOKEN, WRITE_TOKEN, wait_until
from tests.eventapi_standin import EventApiStandIn, event_api
from tests.helpers import STRIPE_SECRET
from tests.server import GatewayProcess
from tests.signing import stripe_headers

CHROMIUM = os.environ.get("GATEWAY_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
_CONSOLE_URL = re.compile(r'"msg": ?"console listening".*?"url": ?"(http://[^"]+)"')


def _config(tmp_path: Path, api_url: str, tokens: bool = True) -> Path:
    token_tables = (
        f'[[console.tokens]]\nsecret = "inline:{READ_TOKEN}"\nscope = "read"\n\n'
        f'[[console.tokens]]\nsecret = "inline:{WRITE_TOKEN}"\nscope = "write"\n'
        if tokens
        else ""
    )
    path = tmp_path / "gateway.toml"
    path.write_text(
        f"""
[gateway]
data_dir = "{tmp_path / "data"}"

[[sources]]
name = "stripe"
provider = "stripe"
secrets = ["inline:{STRIPE_SECRET}"]

[inngest]
base_url = "{api_url}"
event_key = "inline:test-key"

[forwarder]
backoff_base = 0.01
backoff_max = 0.05
idle_poll = 0.02
shutdown_deadline = 2

[console]
enabled = true
host = "127.0.0.1"
port = 0

{token_tables}
"""
    )
    return path


class Served:
    def __init__(self, proc: GatewayProcess, public: str, console: str) -> None:
        self.proc, self.public, self.console = proc, public, console

    def send(self, n: int, secret: str = STRIPE_SECRET, type_: str = "customer.created") -> int:
        body = (
            b'{"id": "evt_e2e_%d", "object": "event", "type": "%s", "created": %d,'
            b' "data": {"object": {"id": "cus_%d"}}}' % (n, type_.encode(), int(time.time()), n)
        )
        headers = stripe_headers(body, secret)
        return httpx.post(
            f"{self.public}/webhooks/stripe", content=body, headers=headers
        ).status_code

    def api(self, path: str, **params: str) -> dict:  # type: ignore[type-arg]
        headers = {"authorization": f"Bearer {READ_TOKEN}"}
        response = httpx.get(f"{self.console}{path}", params=params, headers=headers)
        response.raise_for_status()
        return response.json()  # type: ignore[no-any-return]


def _console_url(proc: GatewayProcess, timeout: float = 60.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        match = _CONSOLE_URL.search(proc.log_path.read_text(errors="replace"))
        if match:
            return match.group(1).removesuffix("/console")
        time.sleep(0.05)
    raise RuntimeError(f"no console URL in the log:\n{proc.log_path.read_text()}")


@pytest.fixture
def api() -> Iterator[EventApiStandIn]:
    with event_api() as standin:
        yield standin


@pytest.fixture
def served(tmp_path: Path, api: EventApiStandIn) -> Iterator[Served]:
    config = _config(tmp_path, api.url)
    proc = GatewayProcess(["--config", str(config)], {}, tmp_path / "gateway.log")
    try:
        public = proc.wait_ready()
        yield Served(proc, public, _console_url(proc))
    finally:
        proc.stop()


def test_serve_runs_the_console_on_its_own_port_only(served: Served) -> None:
    assert served.public != served.console
    assert httpx.get(f"{served.public}/console").status_code == 404
    assert httpx.get(f"{served.console}/console").status_code == 401
    assert httpx.get(f"{served.console}/webhooks/stripe").status_code == 401  # no receivers here
    assert served.send(1) == 200
    overview = served.api("/console/api/overview")
    assert [s["name"] for s in overview["sources"]] == ["stripe"]
    assert served.proc.stop() in (0, -15)  # SIGTERM stops both servers


def test_serve_refuses_to_start_an_open_console(tmp_path: Path, api: EventApiStandIn) -> None:
    config = _config(tmp_path, api.url, tokens=False)
    proc = GatewayProcess(["--config", str(config)], {}, tmp_path / "gateway.log")
    code = proc.proc.wait(timeout=60)
    proc.stop()
    assert code == 2
    assert "console.enabled is true but no token is configured" in proc.log_path.read_text()


@pytest.fixture
def chromium() -> None:
    """Skip (with the reason) unless Playwright and the system Chromium are installed."""
    if importlib.util.find_spec("playwright") is None:
        pytest.skip(
            "browser test: the playwright package is not installed (pip install playwright)"
        )
    if not Path(CHROMIUM).exists():
        pytest.skip(
            f"browser test: no Chromium at {CHROMIUM} (apt-get install chromium; .ci/run does)"
        )


def test_an_operator_finds_a_dead_letter_and_replays_it_in_the_browser(
    chromium: None, served: Served, api: EventApiStandIn
) -> None:
    from playwright.sync_api import sync_playwright

    assert served.send(1) == 200  # delivered
    assert served.send(2, secret="whsec_forged") == 401  # refused: wrong secret
    api.poison_names = {"stripe/invoice.payment_failed"}
    assert served.send(3, type_="invoice.payment_failed") == 200  # dead-lettered by the API
    assert wait_until(lambda: served.api("/console/api/webhooks", status="dead")["webhooks"] != [])
    api.poison_names = set()  # the cause is fixed: a retry will now be accepted
    assert "stripe-evt_e2e_3" not in api.event_ids()

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(
                http_credentials={"username": "operator", "password": WRITE_TOKEN}
            )
            page = context.new_page()
            page.on("dialog", lambda dialog: dialog.accept())  # the replay confirmation

            page.goto(f"{served.console}/console")
            row = page.locator('#sources tr[data-source="stripe"]')
            assert row.locator("td.accepted").inner_text() == "2"
            assert row.locator("td.rejected").inner_text() == "1"
            assert row.locator("td.dead").inner_text() == "1"
            assert page.locator("svg.chart").count() == 1
            assert page.locator("#scope").inner_text() == "write access"
            refusals = page.locator("#recent-refusals").inner_text()
            assert "signature_mismatch" in refusals  # the wrong secret, at a glance

            # why was a webhook refused? the list, filtered by status (submits on change)
            page.click("text=Webhooks")
            page.select_option("#status", "rejected")
            page.wait_for_url(re.compile(r"status=rejected"))
            rows = page.locator("#webhooks tbody tr")
            assert rows.count() == 1
            assert "signature_mismatch" in rows.first.inner_text()
            rows.first.locator("a.open").click()
            assert page.locator("#reason").inner_text() == "signature_mismatch"
            assert STRIPE_SECRET not in page.content()
            assert "••••" in page.locator("table.headers").inner_text()

            # search by the provider's event id
            page.goto(f"{served.console}/console/webhooks")
            page.fill("#q", "evt_e2e_3")
            page.click("form#search button")
            page.wait_for_url(re.compile(r"q=evt_e2e_3"))
            rows = page.locator("#webhooks tbody tr")
            assert rows.count() == 1 and rows.first.get_attribute("data-status") == "dead"
            rows.first.locator("a.open").click()
            event = page.locator("article.event").first
            assert event.get_attribute("data-state") == "dead"
            assert "stripe-evt_e2e_3" in event.inner_text()

            page.click("#retry-all")
            page.wait_for_url(re.compile(r"done=retried"))
            assert "queued for delivery again" in page.locator("#notice").inner_text()
            assert api.wait_for(lambda a: "stripe-evt_e2e_3" in a.event_ids())
            assert wait_until(
                lambda: (
                    served.api("/console/api/webhooks", q="evt_e2e_3")["webhooks"][0]["status"]
                    == "delivered"
                )
            )
            page.reload()
            assert page.locator("article.event").first.get_attribute("data-state") == "delivered"
            outcomes = page.locator("article.event tr.attempt").all_inner_texts()
            assert [o.split("\t")[1].strip() for o in outcomes] == ["dead", "requeued", "delivered"]

            # a read-only operator sees the page but no buttons
            reader = browser.new_context(
                http_credentials={"username": "viewer", "password": READ_TOKEN}
            ).new_page()
            reader.goto(page.url.split("?")[0])
            assert reader.locator("#scope").inner_text() == "read access"
            assert reader.locator("button.retry, #retry-all, #replay").count() == 0
        finally:
            browser.close()
