"""The plugin author's path as docs/plugins.md tells it: test, configure, preview, override."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gateway import Event, Webhook
from gateway.cli import main
from gateway.config import load_config
from gateway.transform_runner import run_transform
from tests.helpers import FIXTURES
from tests.test_cli import cli

PREFIXED = """
from gateway import Event, transform


@transform("orders")
def orders(webhook):
    return Event(name=f"{webhook.prefix}/order.created", id=f"{webhook.prefix}-1", data={})
"""

FAILING = """
from gateway import transform


@transform("fragile")
def fragile(webhook):
    return helper(webhook.json)


def helper(payload):
    return payload["missing"]["key"]
"""

FILTERING = """
from gateway import transform


@transform("only-paid")
def only_paid(webhook):
    return None
"""


def test_run_transform_gives_the_transform_its_prefix() -> None:
    """As documented: a ``Webhook`` built in a test, run with ``prefix=``, sees that prefix."""

    def orders(webhook: Webhook) -> Event:
        return Event(name=f"{webhook.prefix}/order.created", data={})

    bare = Webhook(source="shop", provider="shopify", body=b"{}", received_at=1_700_000_000)
    [event] = run_transform(orders, bare, prefix="shop", strict_names=True).events
    assert event.name == "shop/order.created"
    explicit = Webhook(source="shop", provider="shopify", body=b"{}", prefix="shop")
    [event] = run_transform(orders, explicit, prefix="shop", strict_names=True).events
    assert event.name == "shop/order.created"


def test_the_documented_testing_example_matches_the_api() -> None:
    page = (Path(__file__).resolve().parent.parent / "docs" / "plugins.md").read_text()
    section = page.split("## Testing your transform", 1)[1]
    code = section.split("```python", 1)[1].split("```", 1)[0]
    call = "Webhook(" + code.split("Webhook(", 1)[1].split("\n    )", 1)[0] + "\n)"
    webhook = eval(call, {"Webhook": Webhook, "body": b"{}"})  # the documented call, as written
    assert (webhook.source, webhook.prefix, webhook.header("x-shopify-topic")) == (
        "shop",
        "shop",
        "orders/create",
    )
    assert 'run_transform(orders, webhook, prefix="shop"' in code


def test_relative_dirs_in_a_config_file_resolve_against_its_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    site = tmp_path / "site"
    (site / "plugins").mkdir(parents=True)
    (site / "plugins" / "orders.py").write_text(PREFIXED)
    (site / "gateway.toml").write_text(
        '[gateway]\ndata_dir = "state"\ntransforms_dir = "plugins"\n'
        '[[sources]]\nname = "shop"\nprovider = "shopify"\nsecrets = ["inline:k"]\n'
        'transform = "orders"\n'
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    config = load_config(Path("..") / "site" / "gateway.toml", {})
    assert Path(config.gateway.data_dir).resolve() == site / "state"
    assert Path(str(config.gateway.transforms_dir)).resolve() == site / "plugins"
    assert main(["transforms", "--config", "../site/gateway.toml", "-o", "json"], {}) == 0
    origins = {r["name"]: r["origin"] for r in json.loads(capsys.readouterr().out)}
    assert origins["orders"].endswith("site/plugins/orders.py")
    # the environment's data dir and absolute paths are taken as they are
    env_dir = load_config(site / "gateway.toml", {"GATEWAY_DATA_DIR": "rel"}).gateway.data_dir
    assert env_dir == "rel"
    (site / "abs.toml").write_text(f'[gateway]\ndata_dir = "{tmp_path / "x"}"\n')
    assert load_config(site / "abs.toml", {}).gateway.data_dir == str(tmp_path / "x")
    (site / "default.toml").write_text("[gateway]\nlog_level = 'info'\n")
    assert load_config(site / "default.toml", {}).gateway.data_dir == "./.webhook-gateway"


def test_overriding_a_builtin_is_a_json_log_line_naming_both_origins(tmp_path: Path) -> None:
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    override = plugins / "stripe_override.py"
    override.write_text(
        "from gateway import Event, transform\n\n\n@transform('stripe')\n"
        "def mine(webhook):\n    return Event(name='stripe/mine.done')\n"
    )
    result = cli(  # no event key: serve stops after loading the transforms
        "serve",
        "--port",
        "0",
        env={
            "STRIPE_WEBHOOK_SECRET": "whsec_x",
            "GATEWAY_DATA_DIR": str(tmp_path / "data"),
            "GATEWAY_TRANSFORMS_DIR": str(plugins),
        },
    )
    assert result.returncode == 2
    lines = [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]
    [warning] = [line for line in lines if line.get("msg") == "transform overrides a built-in"]
    assert warning["level"] == "warning"
    assert warning["transform"] == "stripe"
    assert warning["origin"] == f"directory {override}"
    assert warning["builtin"] == "builtin (transforms.stripe)"


def test_preview_shows_the_traceback_and_says_when_it_filtered(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / "fragile.py").write_text(FAILING)
    (plugins / "only_paid.py").write_text(FILTERING)
    env = {"GATEWAY_TRANSFORMS_DIR": str(plugins)}
    payload = str(FIXTURES / "stripe/invoice.paid.json")
    args = ["preview", "stripe", payload, "--transform", "fragile"]
    assert main(args, env) == 1
    err = capsys.readouterr().err
    assert "transform raised KeyError: 'missing'" in err and "Traceback" not in err
    assert main([*args, "--traceback"], env) == 1
    err = capsys.readouterr().err
    assert err.startswith("Traceback (most recent call last):")
    assert "fragile.py" in err and "in helper" in err and 'payload["missing"]["key"]' in err
    assert err.rstrip().endswith(
        "webhook-gateway: transform error: transform raised KeyError: 'missing'"
    )

    assert main(["preview", "stripe", payload, "--transform", "only-paid"], env) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out) == []
    assert "filtered: transform 'only-paid' returned no events" in captured.err
    assert main(["preview", "stripe", payload], env) == 0
    captured = capsys.readouterr()
    assert len(json.loads(captured.out)) == 1 and "filtered" not in captured.err
