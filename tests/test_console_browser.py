"""``webhook-gateway serve`` with its console, driven end to end by headless Chromium.

The browser test needs Debian's ``chromium`` at /usr/bin/chromium and the ``playwright``
package (``.ci/run`` installs the browser); it skips with the reason otherwise (fails under
``CI=true``). Playwright only drives the system browser: no browser download is ever needed.
"""

from __future__ import annotations

import importlib.util
import os
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.console_support import READ_TOKEN, WRITE_TOKEN, wait_until
from tests.eventapi_standin import EventApiStandIn, event_api
from tests.helpers import STRIPE_SECRET
from tests.png import decode
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


# a loaded 2-core machine can take longer than Playwright's 30 s default to serve a page
PAGE_TIMEOUT_MS = 90_000


@pytest.fixture
def chromium() -> None:
    """Skip (with the reason) unless Playwright and the system Chromium are installed; under
    ``CI=true`` a missing browser fails instead, so CI never passes without the browser test."""
    missing = None
    if importlib.util.find_spec("playwright") is None:
        missing = "browser test: the playwright package is not installed (pip install playwright)"
    elif not Path(CHROMIUM).exists():
        missing = f"browser test: no Chromium at {CHROMIUM} (apt-get install chromium; .ci/run)"
    if missing is not None:
        if os.environ.get("CI") == "true":
            pytest.fail(missing)
        pytest.skip(missing)


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
            page.set_default_timeout(PAGE_TIMEOUT_MS)
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
            page.wait_for_url(re.compile(r"/console/webhooks$"))
            page.wait_for_load_state()  # the filters submit on change once the script is in
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
            attempts = page.locator("article.event tr.attempt")
            outcomes = [attempts.nth(i).get_attribute("data-outcome") for i in range(3)]
            assert outcomes == ["dead", "requeued", "delivered"]
            # the Event API's answer to each request, and the attempt that delivered the event
            statuses = [attempts.nth(i).locator("td.answer").inner_text() for i in range(3)]
            assert statuses == ["400", "", "200"]
            assert attempts.nth(0).locator("td.latency").inner_text().endswith(" ms")
            assert "Delivered by attempt 2" in page.locator("p.delivered-by").inner_text()
            assert attempts.nth(2).get_attribute("class") == "attempt delivering"

            # a read-only operator sees the page but no buttons
            reader = browser.new_context(
                http_credentials={"username": "viewer", "password": READ_TOKEN}
            ).new_page()
            reader.set_default_timeout(PAGE_TIMEOUT_MS)
            reader.goto(page.url.split("?")[0])
            assert reader.locator("#scope").inner_text() == "read access"
            assert reader.locator("button.retry, #retry-all, #replay").count() == 0
        finally:
            browser.close()


OK_GREEN = (0x2E, 0x9D, 0x5B)  # console.css --ok: accepted bars
WARN_AMBER = (0xB7, 0x79, 0x1F)  # console.css --warn: the bulk action buttons
PHONE = {"width": 390, "height": 844}


def _box(locator: Any) -> dict[str, float]:
    box = locator.bounding_box()
    assert box is not None, locator
    return box  # type: ignore[no-any-return]


def _overlaps(a: dict[str, float], b: dict[str, float]) -> bool:
    return (
        a["x"] < b["x"] + b["width"]
        and b["x"] < a["x"] + a["width"]
        and a["y"] < b["y"] + b["height"]
        and b["y"] < a["y"] + a["height"]
    )


def _fits(page: Any, width: int) -> None:
    """Nothing on the page is wider than the screen (tables scroll inside their own box)."""
    scroll = page.evaluate("document.documentElement.scrollWidth")
    assert scroll <= width, f"{page.url} is {scroll}px wide on a {width}px screen"


def test_an_operator_pages_filters_and_acts_on_a_selection_in_the_browser(
    chromium: None, served: Served, api: EventApiStandIn, tmp_path: Path
) -> None:
    from playwright.sync_api import sync_playwright

    api.poison_names = {"stripe/invoice.payment_failed"}
    for n in range(1, 4):
        assert served.send(n) == 200
    for n in (4, 5):
        assert served.send(n, type_="invoice.payment_failed") == 200
    assert served.send(6, secret="whsec_forged") == 401
    assert wait_until(
        lambda: len(served.api("/console/api/webhooks", status="dead")["webhooks"]) == 2
    )
    assert wait_until(
        lambda: len(served.api("/console/api/webhooks", status="delivered")["webhooks"]) == 3
    )
    api.poison_names = set()
    # GATEWAY_TEST_SCREENSHOTS=/some/dir keeps them for a person to look at
    shots = Path(os.environ.get("GATEWAY_TEST_SCREENSHOTS") or tmp_path / "screenshots")
    shots.mkdir(parents=True, exist_ok=True)

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(
                http_credentials={"username": "operator", "password": WRITE_TOKEN},
                viewport={"width": 1280, "height": 900},
            )
            page = context.new_page()
            page.set_default_timeout(PAGE_TIMEOUT_MS)
            page.on("dialog", lambda dialog: dialog.accept())

            # the chart fills its box, and no label sits on a bar
            page.goto(f"{served.console}/console")
            figure, svg = page.locator("figure.chart"), page.locator("svg.chart")
            inner = page.evaluate(
                "() => { const f = document.querySelector('figure.chart');"
                " const s = getComputedStyle(f);"
                " return f.clientWidth - parseFloat(s.paddingLeft) - parseFloat(s.paddingRight); }"
            )
            assert abs(_box(svg)["width"] - inner) <= 1
            assert _box(figure)["width"] >= 0.9 * _box(page.locator("main"))["width"] - 50
            bars = [_box(r) for r in page.locator("svg.chart rect").all()]
            assert bars, "the webhooks of this test show as bars"
            labels = [_box(s) for s in page.locator("figure.chart figcaption span").all()]
            assert len(labels) == 3
            for label in labels:
                assert not any(_overlaps(label, bar) for bar in bars), label
            chart = decode(figure.screenshot(path=str(shots / "chart.png")))
            fig = _box(figure)
            svg_box, top = _box(svg), min(label["y"] for label in labels)
            bar_rows = (0, 0, chart.width, int(svg_box["y"] + svg_box["height"] - fig["y"]))
            label_rows = (0, int(top - fig["y"]), chart.width, chart.height)
            assert chart.count(OK_GREEN, bar_rows) > 20  # the accepted bars are drawn
            assert chart.count(OK_GREEN, label_rows) == 0  # and none under the labels

            # a filtered selection: every dead-lettered webhook, retried at once
            page.goto(f"{served.console}/console/webhooks?status=dead")
            assert page.locator("#webhooks tbody tr").count() == 2
            requests: list[str] = []
            page.on("request", lambda r: requests.append(f"{r.method} {r.url}"))
            page.click("#bulk-retry")
            page.wait_for_url(re.compile(r"done=bulk_retried"))
            assert (
                "2 dead-lettered event(s) of 2 webhook(s)" in page.locator("#notice").inner_text()
            )
            assert api.wait_for(
                lambda a: {"stripe-evt_e2e_4", "stripe-evt_e2e_5"} <= set(a.event_ids())
            )
            page.screenshot(path=str(shots / "bulk-retried.png"))
            # POST-redirect-GET: a reload repeats the GET, never the POST
            requests.clear()
            page.reload()
            assert [r.split()[0] for r in requests if "/console/webhooks" in r] == ["GET"]
            # the refresh button reloads without the notice of what was already done
            page.click("#refresh")
            page.wait_for_url(re.compile(r"^(?!.*done=).*status=dead"))
            assert page.locator("#notice").count() == 0
            assert wait_until(
                lambda: served.api("/console/api/webhooks", status="dead")["webhooks"] == []
            )

            # pages and a time range
            def row_ids() -> list[str | None]:
                return [r.get_attribute("id") for r in page.locator("#webhooks tbody tr").all()]

            page.goto(f"{served.console}/console/webhooks?limit=2")
            first = row_ids()
            page.click("#older")
            page.wait_for_url(re.compile(r"page=2"))
            second = row_ids()
            assert len(first) == len(second) == 2 and not set(first) & set(second)
            assert page.locator("#page").inner_text() == "page 2"
            page.click("#newer")
            page.wait_for_url(re.compile(r"page=1"))
            assert row_ids() == first
            page.select_option("#range", "15m")
            page.wait_for_url(re.compile(r"range=15m"))
            assert page.locator("#webhooks tbody tr").count() == 2  # still 2 a page
            page.fill("#to", "2001-01-01T00:00:00")
            page.click("form#search button[type=submit]")
            page.wait_for_url(re.compile(r"to=2001"))
            assert page.locator("#empty").inner_text() == "Nothing matches."

            # each attempt of a retried event: the Event API's status and latency
            page.goto(f"{served.console}/console/webhooks?q=evt_e2e_4")
            page.locator("#webhooks tbody tr a.open").first.click()
            attempts = page.locator("article.event tr.attempt")
            assert attempts.first.locator("td.answer").inner_text() == "400"
            delivered = page.locator("article.event tr.attempt.delivering")
            assert delivered.locator("td.answer").inner_text() == "200"
            assert delivered.locator("td.latency").inner_text().endswith(" ms")
            page.locator("article.event").first.screenshot(path=str(shots / "attempts.png"))

            # the page refreshes itself while open (a clock moved on by hand, not waited for)
            page.clock.install()
            page.goto(f"{served.console}/console")
            with page.expect_navigation():
                page.clock.fast_forward(16_000)
            page.uncheck("#auto-refresh")  # and stays put once switched off
            page.clock.fast_forward(60_000)
            assert page.url.endswith("/console")
            context.close()

            # readable on a phone, 390 px wide: nothing overflows, the actions are on screen
            phone = browser.new_context(
                http_credentials={"username": "operator", "password": WRITE_TOKEN},
                viewport=PHONE,
                device_scale_factor=1,
            ).new_page()
            phone.set_default_timeout(PAGE_TIMEOUT_MS)
            for path in ("/console", "/console/webhooks", "/console/webhooks/1"):
                phone.goto(f"{served.console}{path}")
                _fits(phone, PHONE["width"])
            phone.goto(f"{served.console}/console/webhooks")
            for selector in ("#bulk-retry", "#refresh", "form#search button[type=submit]", "#q"):
                box = _box(phone.locator(selector))
                assert box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"], selector
            shot = decode(phone.screenshot(path=str(shots / "phone-webhooks.png")))
            assert shot.width == PHONE["width"]
            button = _box(phone.locator("#bulk-retry"))
            area = (
                int(button["x"]),
                int(button["y"]),
                int(button["x"] + button["width"]),
                int(button["y"] + button["height"]),
            )
            assert shot.count(WARN_AMBER, area) > 0.3 * button["width"] * button["height"]
            phone.goto(f"{served.console}/console")
            decode(phone.screenshot(path=str(shots / "phone-overview.png"), full_page=True))
            assert _box(phone.locator("svg.chart"))["width"] <= PHONE["width"]
        finally:
            browser.close()
