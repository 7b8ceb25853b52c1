"""Transform discovery (built-ins, entry points, a directory, module:function) and running."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from gateway import Event, TransformError, Webhook
from gateway.plugins import PluginLoadError, load_registry, transform
from gateway.transform_runner import run_transform, run_transform_bounded
from tests.helpers import fixture
from tests.server import anyio_run

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples" / "transforms"


def stripe_webhook(name: str = "invoice.paid.json") -> Webhook:
    return Webhook(source="stripe", provider="stripe", body=fixture(f"stripe/{name}"))


def test_decorator_marks_without_side_effects() -> None:
    @transform
    def plain(webhook: Webhook) -> None:
        return None

    @transform("custom-name")
    def named(webhook: Webhook) -> None:
        return None

    assert plain.__webhook_gateway_transform__ == "plain"  # type: ignore[attr-defined]
    assert named.__webhook_gateway_transform__ == "custom-name"  # type: ignore[attr-defined]
    assert "plain" not in load_registry()


def test_builtins_listed_with_origin() -> None:
    items = dict(load_registry().items())
    assert items["stripe"] == "builtin (transforms.stripe)"
    assert items["slack"] == "builtin (transforms.slack)"
    assert items["intercom"] == "builtin (transforms.intercom)"


def test_directory_plugin_and_worked_example(tmp_path: Path) -> None:
    registry = load_registry(EXAMPLES)
    assert "stripe-billing" in registry
    assert dict(registry.items())["stripe-billing"] == (
        f"directory {EXAMPLES / 'stripe_billing.py'}"
    )
    outcome = run_transform(registry.get("stripe-billing"), stripe_webhook(), prefix="stripe")
    assert [e.name for e in outcome.events] == ["stripe/invoice.paid", "stripe/revenue.recorded"]
    revenue = outcome.events[1]
    assert revenue.id == "stripe-evt_1OA9vC2eZvKYlo2C5lW6Yl8R-revenue"
    assert revenue.data == {"customer": "cus_NffrFeUfNV2Hib", "amount": 2000, "currency": "usd"}
    filtered = run_transform(
        registry.get("stripe-billing"),
        stripe_webhook("checkout.session.completed.json"),
        prefix="stripe",
    )
    assert filtered.events == []


def test_docs_show_the_tested_example_verbatim() -> None:
    docs = (ROOT / "docs" / "plugins.md").read_text()
    assert (EXAMPLES / "stripe_billing.py").read_text().strip() in docs


def test_module_function_reference(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "refmod_abc.py").write_text(
        textwrap.dedent("""
        from gateway import Event
        def rename(webhook):
            return Event(name="stripe/renamed.event", data={"n": 1})
    """)
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    registry = load_registry()
    func = registry.get("refmod_abc:rename")
    assert run_transform(func, stripe_webhook(), prefix="stripe").events[0].name == (
        "stripe/renamed.event"
    )
    with pytest.raises(PluginLoadError, match="no function 'missing'"):
        registry.get("refmod_abc:missing")
    with pytest.raises(PluginLoadError, match="cannot import"):
        registry.get("no_such_module_xyz:f")
    with pytest.raises(KeyError, match="unknown transform 'nope'"):
        registry.get("nope")


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("def broken(:\n", "line 1: SyntaxError"),
        ("import no_such_module_for_plugin\n", "ModuleNotFoundError"),
        ("raise RuntimeError('boom at import')\n", "RuntimeError: boom at import"),
    ],
)
def test_broken_plugin_file_fails_at_load(tmp_path: Path, source: str, message: str) -> None:
    bad = tmp_path / "bad_plugin.py"
    bad.write_text(source)
    with pytest.raises(PluginLoadError) as info:
        load_registry(tmp_path)
    assert str(bad) in str(info.value)
    assert message in str(info.value)


def test_missing_directory_and_name_clash(tmp_path: Path) -> None:
    with pytest.raises(PluginLoadError, match="does not exist"):
        load_registry(tmp_path / "absent")
    for name in ("one", "two"):
        (tmp_path / f"{name}.py").write_text(
            "from gateway import transform\n@transform('same')\ndef f(w):\n    return None\n"
        )
    with pytest.raises(PluginLoadError, match="clashes"):
        load_registry(tmp_path)


def test_directory_plugin_may_override_a_builtin(tmp_path: Path) -> None:
    (tmp_path / "override.py").write_text(
        "from gateway import Event, transform\n"
        "@transform('stripe')\ndef mine(w):\n    return Event(name='stripe/mine.done')\n"
    )
    registry = load_registry(tmp_path)
    assert (
        run_transform(registry.get("stripe"), stripe_webhook(), prefix="stripe").events[0].name
        == "stripe/mine.done"
    )


def test_entry_point_plugin_from_an_installed_package(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pkg = tmp_path / "src"
    (pkg / "acme_gw_plugin").mkdir(parents=True)
    (pkg / "acme_gw_plugin" / "__init__.py").write_text(
        textwrap.dedent("""
        from gateway import Event, transform

        @transform("acme")
        def acme(webhook):
            return Event(name="acme/thing.happened", data={"bytes": len(webhook.body)})

        def by_entry_point_name(webhook):
            return None
    """)
    )
    (pkg / "pyproject.toml").write_text(
        textwrap.dedent("""
        [build-system]
        requires = ["setuptools>=61"]
        build-backend = "setuptools.build_meta"
        [project]
        name = "acme-gw-plugin"
        version = "1.2.3"
        [project.entry-points."webhook_gateway.transforms"]
        acme = "acme_gw_plugin"
        acme-direct = "acme_gw_plugin:by_entry_point_name"
    """)
    )
    target = tmp_path / "site"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "--target",
            str(target),
            str(pkg),
        ],
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        pytest.skip(f"pip cannot build a local package here: {result.stderr[-500:]}")
    monkeypatch.syspath_prepend(str(target))
    registry = load_registry()
    items = dict(registry.items())
    assert items["acme"].startswith("entry point webhook_gateway.transforms: acme_gw_plugin")
    assert "acme-gw-plugin 1.2.3" in items["acme"]
    assert "acme-direct" in items
    events = run_transform(registry.get("acme"), stripe_webhook(), prefix="acme").events
    assert events[0].name == "acme/thing.happened"
    assert events[0].data == {"bytes": len(fixture("stripe/invoice.paid.json"))}


# -- running transforms ------------------------------------------------------------------


def test_fan_out_filter_and_dicts() -> None:
    webhook = stripe_webhook()
    many = run_transform(
        lambda w: [Event(name="stripe/a.b"), {"name": "stripe/c.d"}], webhook, prefix="stripe"
    )
    assert [e.name for e in many.events] == ["stripe/a.b", "stripe/c.d"]
    assert many.payloads == [b'{"name":"stripe/a.b","data":{}}', b'{"name":"stripe/c.d","data":{}}']
    assert run_transform(lambda w: None, webhook, prefix="stripe").events == []
    assert run_transform(lambda w: [], webhook, prefix="stripe").events == []


@pytest.mark.parametrize(
    ("result", "message"),
    [
        ({"name": "inngest/function.failed"}, "reserved"),
        ({"name": ""}, "non-empty"),
        ({"name": "stripe/a.b", "ts": 1.5}, "ts"),
        ({"name": "stripe/a.b", "data": [1]}, "data"),
        ("a string", "str"),
        ([Event(name="stripe/a.b"), 7], "event 1 is a int"),
        (Event(name="stripe/a.b", data={"when": object()}), "not JSON"),
    ],
)
def test_invalid_results_are_transform_errors(result: object, message: str) -> None:
    with pytest.raises(TransformError, match=message):
        run_transform(lambda w: result, stripe_webhook(), prefix="stripe")


def test_raising_transform_keeps_traceback() -> None:
    def explode(webhook: Webhook) -> None:
        raise KeyError("type")

    with pytest.raises(TransformError, match="transform raised KeyError") as info:
        run_transform(explode, stripe_webhook(), prefix="stripe")
    assert "explode" in info.value.detail  # type: ignore[attr-defined]


def test_convention_warning_and_strict_mode() -> None:
    def odd(webhook: Webhook) -> Event:
        return Event(name="stripe/CustomerCreated")

    outcome = run_transform(odd, stripe_webhook(), prefix="stripe")
    assert len(outcome.events) == 1
    assert "does not follow the convention" in outcome.convention_warnings[0]
    with pytest.raises(TransformError, match="convention"):
        run_transform(odd, stripe_webhook(), prefix="stripe", strict_names=True)


def test_hanging_transform_is_bounded() -> None:
    release = threading.Event()

    def hang(webhook: Webhook) -> None:
        release.wait(30)

    try:
        with pytest.raises(TransformError, match=r"timed out after 0\.2s"):
            anyio_run(run_transform_bounded(hang, stripe_webhook(), prefix="stripe", timeout=0.2))
    finally:
        release.set()
