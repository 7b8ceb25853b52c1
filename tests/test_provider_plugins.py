"""Provider plugins: real packages built and pip-installed offline, ``module:Class`` references,
the refusal to replace a built-in, start-up errors, zero-config over a real socket, the listing.

The installed package is docs/plugins.md's worked example (examples/provider-plugin), checked
against the page verbatim. Requests are signed here with hashlib, independently of the
provider's own ``sign``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from gateway.app import build_sources
from gateway.cli import main
from gateway.config import Config, GatewayConfig, SourceConfig, config_from_env
from gateway.plugins import PluginLoadError, load_registry
from gateway.providers import (
    ENTRY_POINT_GROUP,
    SignatureMismatch,
    TimestampOutOfTolerance,
    get_provider,
    provider_origin,
)
from gateway.providers._registry import reload_plugins
from tests.eventapi_standin import event_api
from tests.server import GatewayProcess, run_gateway
from tests.test_plugins_entry_points import NEEDS_PIP, install, pip_install
from tests.test_serve_env import clean_env

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "provider-plugin"
SECRET = "acme_whsec_5WbX5kEWLlfzsGNjH64I8lOOqUB6e8FH"
NOW = 1_700_000_000
EVENT = {
    "id": "evt_01HF3J",
    "type": "invoice.paid",
    "created": NOW,
    "data": {"invoice": "inv_42", "amount": 1999, "currency": "eur"},
}
BODY = json.dumps(EVENT).encode()
ORIGIN = f"entry point {ENTRY_POINT_GROUP}: acme_webhooks:AcmeProvider (dist acme-webhooks 1.0.0)"


def acme_headers(body: bytes, secret: str = SECRET, at: int = NOW) -> dict[str, str]:
    """What Acme sends: ``t=<unix>,v1=<hex HMAC-SHA256 of "t.body">``."""
    mac = hmac.new(secret.encode(), f"{at}.".encode() + body, hashlib.sha256).hexdigest()
    return {
        "acme-signature": f"t={at},v1={mac}",
        "acme-delivery": "dlv_1",
        "content-type": "application/json",
    }


def use(target: Path, added: list[str]) -> None:
    sys.path.insert(0, str(target))
    added.append(str(target))


def install_example(tmp_path: Path) -> Path:
    """The documented example package, built from a copy (a build writes into its source)."""
    src = tmp_path / "example"
    shutil.copytree(EXAMPLE, src, ignore=shutil.ignore_patterns("build", "*.egg-info"))
    return pip_install(src, tmp_path / "site")


def test_the_docs_show_the_example_package_verbatim() -> None:
    page = (ROOT / "docs" / "plugins.md").read_text()
    section = page.split("## Writing a provider", 1)[1]
    for path in ("acme_webhooks/__init__.py", "pyproject.toml"):
        assert (EXAMPLE / path).read_text().strip() in section, path


@NEEDS_PIP
def test_installed_package_registers_its_provider_and_transform(
    tmp_path: Path, on_path: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    target = install_example(tmp_path)
    assert "acme" not in {row["provider"] for row in listing(capsys)}  # not on sys.path yet
    use(target, on_path)
    reload_plugins()

    cls = get_provider("acme")
    assert provider_origin("acme") == ORIGIN
    assert provider_origin("stripe") == "builtin (gateway.providers.stripe)"
    provider = cls([SECRET], cls.default_tolerance, {})
    provider.verify(BODY, acme_headers(BODY), now=NOW)
    assert provider.sign(BODY, timestamp=NOW) == {
        "acme-signature": acme_headers(BODY)["acme-signature"]
    }
    with pytest.raises(SignatureMismatch):
        provider.verify(BODY + b" ", acme_headers(BODY), now=NOW)
    with pytest.raises(SignatureMismatch):
        provider.verify(BODY, acme_headers(BODY, secret="acme_whsec_other"), now=NOW)
    for skew in (-301, 301):
        with pytest.raises(TimestampOutOfTolerance):
            provider.verify(BODY, acme_headers(BODY), now=NOW + skew)

    registry = load_registry()
    assert registry.origin("acme") == (
        "entry point webhook_gateway.transforms: acme_webhooks:acme (dist acme-webhooks 1.0.0)"
    )
    rows = {row["provider"]: row for row in listing(capsys)}
    assert rows["acme"] == {
        "provider": "acme",
        "zero-config variable": "ACME_WEBHOOK_SECRET",
        "verification": "Acme-Signature: t=<unix>,v1=<hex> HMAC-SHA256 of {t}.{body}",
        "handshake": "none",
        "dedup id": "Acme-Delivery",
        "replay window": "300 s",
        "origin": ORIGIN,
    }
    assert rows["stripe"]["origin"] == "builtin (gateway.providers.stripe)"
    assert main(["providers"], {}) == 0
    table = capsys.readouterr().out
    assert "ORIGIN" in table.splitlines()[0] and ORIGIN in table

    # zero-config: ACME_WEBHOOK_SECRET enables /webhooks/acme with the plugin's transform
    config = config_from_env({"ACME_WEBHOOK_SECRET": SECRET})
    [source] = config.sources
    assert (source.name, source.provider, source.event_prefix) == ("acme", "acme", "acme")
    assert sorted(build_sources(config, registry, {"ACME_WEBHOOK_SECRET": SECRET})[0]) == ["acme"]


def listing(capsys: pytest.CaptureFixture[str]) -> list[dict[str, str]]:
    assert main(["providers", "-o", "json"], {}) == 0
    rows: list[dict[str, str]] = json.loads(capsys.readouterr().out)
    return rows


@NEEDS_PIP
def test_check_validates_a_plugin_providers_secrets(
    tmp_path: Path, on_path: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    use(install_example(tmp_path), on_path)
    reload_plugins()
    env = {"ACME_WEBHOOK_SECRET": "whsec_from_another_provider", "GATEWAY_DATA_DIR": str(tmp_path)}
    assert main(["check"], env) == 1
    assert (
        "problem: sources[0] (acme).secrets: secret #1 is not an Acme signing secret "
        "(those start with acme_whsec_)"
    ) in capsys.readouterr().err
    env["ACME_WEBHOOK_SECRET"] = SECRET
    env["INNGEST_DEV"] = "1"
    assert main(["check"], env) == 0
    assert "source acme: provider acme, transform acme" in capsys.readouterr().out


def test_module_class_reference_works_without_an_entry_point(
    tmp_path: Path, on_path: list[str]
) -> None:
    use(EXAMPLE, on_path)  # importable, but not installed: no entry point
    reload_plugins()
    with pytest.raises(KeyError, match="unknown provider 'acme'"):
        get_provider("acme")
    source = SourceConfig(
        name="billing",
        provider="acme_webhooks:AcmeProvider",
        secrets=["env:ACME_SIGNING_SECRET"],
        transform="acme_webhooks:acme",
    )
    config = Config(gateway=GatewayConfig(data_dir=str(tmp_path / "data")), sources=[source])
    config.forwarder.enabled = False
    assert source.event_prefix == "acme"  # the class's name, not the reference
    assert provider_origin("acme") == (
        f"reference acme_webhooks:AcmeProvider ({EXAMPLE / 'acme_webhooks' / '__init__.py'})"
    )
    env = {"ACME_SIGNING_SECRET": SECRET}
    with run_gateway(config, env) as gw, httpx.Client(base_url=gw.url, timeout=10) as client:
        ok = client.post("/webhooks/billing", content=BODY, headers=acme_headers(BODY, at=NOW))
        # NOW is years ago: the signature matches, the timestamp is refused
        assert (ok.status_code, ok.json()["reason"]) == (401, "timestamp_out_of_tolerance")
        fresh = int(time.time())
        ok = client.post("/webhooks/billing", content=BODY, headers=acme_headers(BODY, at=fresh))
        assert ok.status_code == 200 and ok.json()["status"] == "accepted", ok.text
        forged = client.post(
            "/webhooks/billing", content=BODY + b" ", headers=acme_headers(BODY, at=fresh)
        )
        assert (forged.status_code, forged.json()["reason"]) == (401, "signature_mismatch")


def test_a_reference_that_cannot_be_loaded_stops_check_with_status_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "gateway.toml"
    for provider, message in (
        (
            "no_such_pkg.hooks:Provider",
            "provider 'no_such_pkg.hooks:Provider': cannot import no_such_pkg.hooks: "
            "ModuleNotFoundError: No module named 'no_such_pkg'",
        ),
        (
            "gateway.providers.stripe:Nothing",
            "provider 'gateway.providers.stripe:Nothing': gateway.providers.stripe "
            f"({ROOT / 'gateway' / 'providers' / 'stripe.py'}) has no class 'Nothing'",
        ),
        (
            "gateway.providers:DEFAULT_TOLERANCE",
            "reference gateway.providers:DEFAULT_TOLERANCE",
        ),
    ):
        config.write_text(
            f'[[sources]]\nname = "x"\nprovider = "{provider}"\nsecrets = ["inline:k"]\n'
        )
        assert main(["check", "--config", str(config)], {}) == 2
        err = capsys.readouterr().err
        assert err.startswith("webhook-gateway: error: ") and message in err, err


EVIL = """
from gateway.providers.stripe import StripeProvider


class Stripe(StripeProvider):
    name = "stripe"

    def verify(self, body, headers, *, now=None):
        return None  # accepts anything
"""


@NEEDS_PIP
def test_a_plugin_may_not_replace_a_builtin(tmp_path: Path, on_path: list[str]) -> None:
    target = install(
        tmp_path, "acme-evil", "acme_evil", EVIL, 'stripe = "acme_evil:Stripe"\n', ENTRY_POINT_GROUP
    )
    use(target, on_path)
    expected = (
        f"provider 'stripe' from entry point {ENTRY_POINT_GROUP}: acme_evil:Stripe "
        "(dist acme-evil 1.2.3) clashes with a built-in: builtin (gateway.providers.stripe) "
        "(providers cannot be replaced; give yours another name)"
    )
    with pytest.raises(PluginLoadError) as info:
        reload_plugins()
    assert str(info.value) == expected
    with pytest.raises(PluginLoadError):  # every later look-up says so again
        get_provider("stripe")
    # serve and check, as real processes: refused at start-up with status 2
    env = clean_env(PYTHONPATH=str(target), STRIPE_WEBHOOK_SECRET="whsec_x")
    env["GATEWAY_DATA_DIR"] = str(tmp_path / "data")
    for command in (["serve", "--port", "0"], ["check"]):
        result = subprocess.run(
            [sys.executable, "-m", "gateway", *command],
            capture_output=True, text=True, env=env, timeout=60, check=False,
        )  # fmt: skip
        assert result.returncode == 2, (command, result.stderr)
        assert f"webhook-gateway: error: {expected}" in result.stderr
        assert "Traceback" not in result.stderr


REGISTERING = """
from gateway.providers import register_provider
from gateway.providers.github import GitHubProvider


@register_provider
class Mine(GitHubProvider):
    name = "github"
"""
NOT_A_CLASS = "def acme(body, headers):\n    return None\n"
NAMELESS = """
from gateway.providers import Provider


class Acme(Provider):
    def verify(self, body, headers, *, now=None):
        return None
"""
RENAMED = """
from gateway.providers import Provider


class Acme(Provider):
    name = "acme_other"

    def verify(self, body, headers, *, now=None):
        return None
"""
FAILING = """
SETTINGS = {}
KEY = SETTINGS["acme_key"]
"""


@NEEDS_PIP
@pytest.mark.parametrize(
    ("source", "value", "message"),
    [
        (
            REGISTERING,
            "acme_broken:Mine",
            "provider 'github' from class acme_broken:Mine clashes with a built-in: "
            "builtin (gateway.providers.github)",
        ),
        (
            NOT_A_CLASS,
            "acme_broken:acme",
            "(dist acme-broken 1.2.3): <function acme at 0x",
        ),
        (
            NAMELESS,
            "acme_broken:Acme",
            "(dist acme-broken 1.2.3): Acme.name is None; a provider needs its own name",
        ),
        (
            RENAMED,
            "acme_broken:Acme",
            "(dist acme-broken 1.2.3): the entry point is named 'acme' but the class's name "
            "is 'acme_other'; name the entry point after the provider",
        ),
        (
            FAILING,
            "acme_broken:Acme",
            "provider plugin 'acme' (entry point acme_broken:Acme, dist acme-broken 1.2.3), "
            "{init} line 2: KeyError: 'acme_key'",
        ),
    ],
    ids=["registers-a-builtin-name", "not-a-class", "no-name", "misnamed", "import-fails"],
)
def test_a_broken_plugin_is_a_clear_start_up_error(
    tmp_path: Path, on_path: list[str], source: str, value: str, message: str
) -> None:
    target = install(
        tmp_path, "acme-broken", "acme_broken", source, f'acme = "{value}"\n', ENTRY_POINT_GROUP
    )
    use(target, on_path)
    with pytest.raises(PluginLoadError) as info:
        reload_plugins()
    expected = message.format(init=target / "acme_broken" / "__init__.py")
    assert expected in str(info.value)
    if source is NOT_A_CLASS:
        assert str(info.value).endswith("is not a subclass of gateway.providers.Provider")


@NEEDS_PIP
def test_zero_config_serve_with_an_installed_provider_over_a_real_socket(tmp_path: Path) -> None:
    target = install_example(tmp_path)
    with event_api() as api:
        env = clean_env(
            PYTHONPATH=str(target),
            ACME_WEBHOOK_SECRET=SECRET,
            GATEWAY_DATA_DIR=str(tmp_path / "data"),
            INNGEST_EVENT_API_BASE_URL=api.url,
            INNGEST_EVENT_KEY="plugin-key",
        )
        gateway = GatewayProcess([], env, tmp_path / "gw.log")
        try:
            url = gateway.wait_ready()
            now = int(time.time())
            with httpx.Client(base_url=url, timeout=10) as client:
                forged = client.post(
                    "/webhooks/acme", content=BODY, headers=acme_headers(BODY, "acme_whsec_x", now)
                )
                assert (forged.status_code, forged.json()["reason"]) == (401, "signature_mismatch")
                ok = client.post("/webhooks/acme", content=BODY, headers=acme_headers(BODY, at=now))
                assert ok.status_code == 200 and ok.json()["status"] == "accepted", ok.text
            # `send` signs with the plugin's own sign(), as Acme would
            refund = {**EVENT, "id": "evt_02HF3K", "type": "refund.created"}
            (tmp_path / "refund.json").write_text(json.dumps(refund))
            sent = subprocess.run(
                [sys.executable, "-m", "gateway", "send", "acme", str(tmp_path / "refund.json"),
                 "--url", url],
                capture_output=True, text=True, env=env, timeout=60, check=False,
            )  # fmt: skip
            assert sent.returncode == 0, sent.stdout + sent.stderr
            assert "200 OK: accepted: 1 event(s) stored" in sent.stdout
            assert api.wait_for_events(2, timeout=30)
        finally:
            gateway.stop()
        event, sent_event = sorted(api.events, key=lambda e: e["id"])
    assert (sent_event["name"], sent_event["id"]) == ("acme/refund.created", "acme-evt_02HF3K")
    assert event["name"] == "acme/invoice.paid"
    assert event["id"] == "acme-evt_01HF3J"
    assert event["ts"] == NOW * 1000
    assert event["data"] == EVENT
    assert SECRET not in (tmp_path / "gw.log").read_text()
