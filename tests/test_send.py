"""``webhook-gateway send`` and ``Provider.sign``: test webhooks signed as each provider signs."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
import standardwebhooks
from slack_sdk.signature import SignatureVerifier

from gateway.cli import main
from gateway.commands.send import fresh_ids, read_sample, sample_names, target_url
from gateway.config import load_config
from gateway.providers import Provider, VerificationError, get_provider, provider_names
from tests.eventapi_standin import event_api
from tests.helpers import INTERCOM_SECRET, SLACK_SECRET, STRIPE_SECRET
from tests.server import run_gateway
from tests.signing import sign_stripe

SW_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
HMAC_OPTIONS = {
    "header": "X-Acme-Signature",
    "prefix": "sha256=",
    "timestamp_header": "X-Acme-Timestamp",
    "signed_content": "{timestamp}.{body}",
    "id_path": "id",
}
#: source name -> (provider, secret, options)
SOURCES: dict[str, tuple[str, str, dict[str, Any]]] = {
    "stripe": ("stripe", STRIPE_SECRET, {}),
    "slack": ("slack", SLACK_SECRET, {}),
    "intercom": ("intercom", INTERCOM_SECRET, {}),
    "github": ("github", "It's a Secret to Everybody", {}),
    "shopify": ("shopify", "shpss_secret", {}),
    "standard": ("standard", SW_SECRET, {}),
    "acme": ("hmac", "acme_k", HMAC_OPTIONS),
}
BUILTIN = ("stripe", "slack", "intercom", "github", "shopify", "standard", "hmac")


def provider_for(source: str) -> Provider:
    name, secret, options = SOURCES[source]
    return get_provider(name)([secret], 300, options)


def test_every_builtin_provider_has_samples() -> None:
    assert set(BUILTIN) <= set(provider_names())
    for name in BUILTIN:
        assert sample_names(name), name
    assert {"invoice.paid", "customer.created"} <= set(sample_names("stripe"))
    assert {"push", "pull_request.opened"} <= set(sample_names("github"))
    assert {"slash_command", "app_mention"} <= set(sample_names("slack"))


@pytest.mark.parametrize("source", sorted(SOURCES))
def test_sign_makes_what_verify_accepts(source: str) -> None:
    provider = provider_for(source)
    kind = sample_names(provider.name)[0]
    body = read_sample(provider.name, kind)
    headers = provider.sign(body, timestamp=1_700_000_000)
    assert all(name == name.lower() for name in headers)
    provider.verify(body, headers, now=1_700_000_010)
    with pytest.raises(VerificationError) as refused:
        provider.verify(body + b" ", headers, now=1_700_000_010)
    assert refused.value.code == "signature_mismatch"


def test_signatures_match_the_providers_own_sdks() -> None:
    body = b'{"id": "evt_1", "type": "invoice.paid"}'
    stripe_headers = provider_for("stripe").sign(body, timestamp=1_700_000_000)
    assert (
        stripe_headers["stripe-signature"]
        == sign_stripe(body, STRIPE_SECRET, 1_700_000_000)["stripe-signature"]
    )
    form = b"command=%2Fweather&text=94070"
    slack = provider_for("slack").sign(form, timestamp=1_700_000_000)
    assert slack["content-type"] == "application/x-www-form-urlencoded"
    assert SignatureVerifier(SLACK_SECRET, clock=_Clock(1_700_000_000)).is_valid(
        form, slack["x-slack-request-timestamp"], slack["x-slack-signature"]
    )
    standard = provider_for("standard").sign(body, timestamp=int(time.time()))
    assert standard["webhook-id"].startswith("msg_")
    verified = standardwebhooks.Webhook(SW_SECRET).verify(body, standard)
    assert verified == json.loads(body)


class _Clock:
    def __init__(self, now: int) -> None:
        self.value = now

    def now(self) -> float:
        return float(self.value)


def test_sign_refuses_when_the_gateway_holds_only_a_public_key() -> None:
    import base64

    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    raw = Ed25519PrivateKey.generate().public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    public = "whpk_" + base64.b64encode(raw).decode()
    provider = get_provider("standard")([public])
    with pytest.raises(NotImplementedError, match="public key"):
        provider.sign(b"{}")
    header_signed = get_provider("hmac")(
        ["k"], options={"header": "X-Sig", "signed_content": "{header:X-Account}.{body}"}
    )
    with pytest.raises(NotImplementedError, match="x-account"):
        header_signed.sign(b"{}")


@pytest.mark.parametrize(
    ("provider", "secret", "problem"),
    [
        ("stripe", "whsec_abc", None),
        ("stripe", "abc", "does not start with whsec_"),
        ("stripe", "sk_live_123", "is a Stripe API key"),
        ("slack", SLACK_SECRET, None),
        ("slack", "xoxb-1-2-3", "is a Slack token"),
        ("shopify", "shpss_1", None),
        ("shopify", "shpat_1", "access token"),
        ("standard", SW_SECRET, None),
        ("standard", "whsk_abc", "private key"),
        ("standard", "whsec_***", "not whsec_ followed by base64"),
        ("github", "anything", None),
        ("intercom", "anything", None),
        ("hmac", "anything", None),
    ],
)
def test_secret_problems(provider: str, secret: str, problem: str | None) -> None:
    found = get_provider(provider).secret_problem(secret)
    if problem is None:
        assert found is None
    else:
        assert found is not None and problem in found and secret not in found


def test_samples_get_fresh_ids_and_urls_default_to_the_local_gateway() -> None:
    body = b'{"id": "evt_1OA9vC2eZvKYlo2C5lW6Yl8R", "object": "event"}'
    first, second = json.loads(fresh_ids(body)), json.loads(fresh_ids(body))
    assert first["id"].startswith("evt_") and first["id"] != second["id"]
    assert first["object"] == "event"
    assert fresh_ids(b"a=1&b=2") == b"a=1&b=2"
    assert target_url(None, "stripe") == "http://127.0.0.1:8080/webhooks/stripe"
    assert target_url("https://gw.example.com/", "s") == "https://gw.example.com/webhooks/s"
    assert target_url("http://h:1/hooks/x", "s") == "http://h:1/hooks/x"


def write_config(tmp_path: Path, api_url: str, secrets: dict[str, str] | None = None) -> Path:
    lines = [
        f'[gateway]\ndata_dir = "{tmp_path / "data"}"\nstrict_names = true\n',
        f'[inngest]\nbase_url = "{api_url}"\nevent_key = "inline:test-key"\n',
        "[forwarder]\nbackoff_base = 0.01\nbackoff_max = 0.05\nidle_poll = 0.02\n",
    ]
    for name, (provider, secret, options) in SOURCES.items():
        secret = (secrets or {}).get(name, secret)
        lines.append(
            f'[[sources]]\nname = "{name}"\nprovider = "{provider}"\n'
            f"secrets = [{json.dumps('inline:' + secret)}]\n"
        )
        if options:
            lines.append(
                "[sources.options]\n"
                + "".join(f"{k} = {json.dumps(v)}\n" for k, v in options.items())
            )
    path = tmp_path / "gateway.toml"
    path.write_text("\n".join(lines))
    return path


def test_send_delivers_a_sample_of_every_builtin_provider(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Each sample is signed by ``send`` and accepted by a real gateway on a loopback socket."""
    wanted = {
        "stripe": ("invoice.paid", "stripe/invoice.paid"),
        "slack": ("slash_command", "slack/command.invoked"),
        "intercom": ("conversation.user.created", "intercom/conversation.user.created"),
        "github": ("pull_request.opened", "github/pull_request.opened"),
        "shopify": ("orders.create", "shopify/orders.create"),
        "standard": ("contact.created", "standard/contact.created"),
        "acme": ("order.created", "acme/order.created"),
    }
    with event_api() as api:
        path = write_config(tmp_path, api.url)
        with run_gateway(load_config(path, {})) as gw:
            for source, (sample, _) in wanted.items():
                argv = ["send", source, "--sample", sample, "--url", gw.url, "--config", str(path)]
                assert main(argv, {}) == 0, capsys.readouterr()
                out = capsys.readouterr().out.splitlines()
                assert out[0].startswith(f"POST {gw.url}/webhooks/{source} (")
                assert out[1] == "200 OK: accepted: 1 event(s) stored, 0 duplicate(s) skipped"
            # a second send of the same sample is a new event, not a duplicate
            argv = ["send", "stripe", "--sample", "invoice.paid", "--url", gw.url]
            assert main([*argv, "--config", str(path)], {}) == 0
            assert "1 event(s) stored" in capsys.readouterr().out
            assert api.wait_for_events(len(wanted) + 1)
    names = sorted(event["name"] for event in api.events)
    assert names == sorted([name for _, name in wanted.values()] + ["stripe/invoice.paid"])
    stripe_ids = {e["id"] for e in api.events if e["name"] == "stripe/invoice.paid"}
    assert len(stripe_ids) == 2


def test_send_a_payload_file_and_see_refusals(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    payload = tmp_path / "push.json"
    payload.write_bytes(b'{"ref": "refs/heads/main", "repository": {"full_name": "o/r"}}')
    with event_api() as api:
        path = write_config(tmp_path, api.url)
        config = str(path)
        with run_gateway(load_config(path, {})) as gw:
            assert (
                main(["send", "github", str(payload), "--url", gw.url, "--config", config], {}) == 0
            )
            assert "200 OK: accepted: 1 event(s)" in capsys.readouterr().out
            assert api.wait_for_events(1)
            assert api.events[0]["name"] == "github/push"  # the event header from the file name

            ping = ["send", "github", "--sample", "ping", "--url", gw.url, "--config", config]
            assert main(ping, {}) == 0
            assert capsys.readouterr().out.splitlines()[1] == '200 OK: {"ok":true}'  # answered

            wrong = write_config(tmp_path, api.url, {"stripe": "whsec_not_the_one"})
            argv = ["send", "stripe", "--sample", "invoice.paid", "--url", gw.url]
            assert main([*argv, "--config", str(wrong)], {}) == 1
            out = capsys.readouterr().out
            assert "401 Unauthorized: " in out and "signature" in out

            assert main(["send", "stripe", "--sample", "nope", "--config", config], {}) == 2
            err = capsys.readouterr().err
            assert "no sample 'nope'" in err and "invoice.paid" in err
            assert main(["send", "stripe", "--config", config], {}) == 2
            assert "give a PAYLOAD_FILE or --sample TYPE" in capsys.readouterr().err
            assert main(["send", "nope", "--sample", "x", "--config", config], {}) == 2
            assert (
                "no source 'nope' is configured (sources: stripe, slack" in capsys.readouterr().err
            )
    unreachable = ["send", "stripe", "--sample", "invoice.paid", "--url", "http://127.0.0.1:9"]
    assert main([*unreachable, "--config", config], {}) == 2
    assert "cannot reach http://127.0.0.1:9/webhooks/stripe" in capsys.readouterr().err


def test_samples_ship_in_the_wheel(tmp_path: Path) -> None:
    """``send --sample`` works from an installed package (the image), not only from a checkout."""
    import subprocess
    import sys
    import zipfile

    root = Path(__file__).resolve().parent.parent
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
         "-w", str(tmp_path), str(root)],
        check=True,
        capture_output=True,
        timeout=300,
    )  # fmt: skip
    [wheel] = tmp_path.glob("webhook_gateway-*.whl")
    shipped = {n for n in zipfile.ZipFile(wheel).namelist() if n.startswith("gateway/samples/")}
    in_tree = {p.relative_to(root).as_posix() for p in (root / "gateway" / "samples").rglob("*.*")}
    assert in_tree and in_tree == shipped
