"""Transform discovery: the decorator, built-ins, a directory, module:function references."""

from __future__ import annotations

import logging
import sys
import textwrap
from pathlib import Path

import pytest

from gateway import Event, Webhook
from gateway.plugins import (
    PluginLoadError,
    TransformRegistry,
    UnknownTransformError,
    builtin_modules,
    default_transform_for,
    load_registry,
    transform,
)
from gateway.transform_runner import run_transform
from transforms.intercom import intercom
from transforms.slack import slack
from transforms.stripe import stripe

FIXTURES = Path(__file__).parent / "fixtures" / "transforms"


def stripe_webhook() -> Webhook:
    body = (FIXTURES / "stripe" / "customer.created.json").read_bytes()
    return Webhook(source="stripe", provider="stripe", body=body, received_at=1.7e9)


def write(path: Path, source: str) -> Path:
    path.write_text(textwrap.dedent(source).lstrip())
    return path


def test_decorator_marks_without_registering() -> None:
    @transform
    def plain(webhook: Webhook) -> None:
        return None

    @transform("custom-name")
    def named(webhook: Webhook) -> None:
        return None

    assert plain.__webhook_gateway_transform__ == "plain"  # type: ignore[attr-defined]
    assert named.__webhook_gateway_transform__ == "custom-name"  # type: ignore[attr-defined]
    assert plain(stripe_webhook()) is None  # still the plain function
    assert "plain" not in load_registry()
    assert "custom-name" not in load_registry()


@pytest.mark.parametrize("bad", ["a:b", "two words", ""])
def test_decorator_rejects_names_that_cannot_be_referenced(bad: str) -> None:
    with pytest.raises(ValueError, match="without ':' or whitespace"):
        transform(bad)


def test_builtins_and_their_origins() -> None:
    registry = load_registry()
    items = dict(registry.items())
    assert items["stripe"] == "builtin (transforms.stripe)"
    assert items["slack"] == "builtin (transforms.slack)"
    assert items["intercom"] == "builtin (transforms.intercom)"
    assert registry.get("stripe") is stripe
    assert registry.get("slack") is slack
    assert registry.get("intercom") is intercom
    assert registry.origin("slack") == "builtin (transforms.slack)"
    # Every module of the transforms package is a built-in, and nothing else is.
    assert {origin for origin in items.values()} == {
        f"builtin ({module})" for module in builtin_modules()
    }
    assert len(registry) == len(items)


def test_default_transform_for_a_provider() -> None:
    assert default_transform_for("stripe") is stripe
    assert default_transform_for("intercom") is intercom
    with pytest.raises(UnknownTransformError, match="no built-in transform for provider 'acme'"):
        default_transform_for("acme")


def test_directory_plugin(tmp_path: Path) -> None:
    plugin = write(
        tmp_path / "billing.py",
        """
        from gateway import Event, Webhook, transform

        @transform
        def customers(webhook: Webhook) -> Event:
            customer = webhook.json["data"]["object"]
            return Event(name="billing/customer.signed_up", data={"email": customer["email"]})

        def helper():  # not marked: not a transform
            return None
        """,
    )
    write(tmp_path / "_shared.py", "raise RuntimeError('files starting with _ are skipped')\n")
    write(tmp_path / "notes.txt", "not python")
    registry = load_registry(tmp_path)
    assert dict(registry.items())["customers"] == f"directory {plugin}"
    assert "helper" not in registry
    outcome = run_transform(registry.get("customers"), stripe_webhook(), prefix="billing")
    assert outcome.events == [
        Event(name="billing/customer.signed_up", data={"email": "jenny.rosen@example.com"})
    ]
    assert outcome.convention_warnings == []


def test_directory_plugin_may_use_dataclasses_and_pydantic(tmp_path: Path) -> None:
    write(
        tmp_path / "typed.py",
        """
        from __future__ import annotations
        from dataclasses import dataclass
        from pydantic import BaseModel
        from gateway import Event, Webhook, transform

        @dataclass
        class Ref:
            id: str

        class Customer(BaseModel):
            id: str
            email: str

        @transform("typed")
        def typed(webhook: Webhook) -> Event:
            customer = Customer.model_validate(webhook.json["data"]["object"], strict=False)
            return Event(name="stripe/customer.seen", data={"ref": Ref(customer.id).id})
        """,
    )
    registry = load_registry(tmp_path)
    [event] = run_transform(registry.get("typed"), stripe_webhook(), prefix="stripe").events
    assert event.data == {"ref": "cus_QhXjZ5uM0dUvq2"}


def test_same_file_name_in_two_directories(tmp_path: Path) -> None:
    for team in ("a", "b"):
        (tmp_path / team).mkdir()
        write(
            tmp_path / team / "orders.py",
            f"""
            from gateway import Event, transform

            @transform("orders-{team}")
            def orders(webhook):
                return Event(name="shop/order.{team}")
            """,
        )
    first = load_registry(tmp_path / "a").get("orders-a")
    second = load_registry(tmp_path / "b").get("orders-b")
    assert first.__module__ != second.__module__
    assert sys.modules[first.__module__].__file__ == str(tmp_path / "a" / "orders.py")
    assert run_transform(first, stripe_webhook(), prefix="shop").events[0].name == "shop/order.a"
    assert run_transform(second, stripe_webhook(), prefix="shop").events[0].name == "shop/order.b"


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("x = 1\ndef broken(:\n    pass\n", "line 2: SyntaxError: "),
        ("import os\nimport no_such_module_for_plugin\n", "line 2: ModuleNotFoundError: No module"),
        ("def f():\n    pass\nraise RuntimeError('boom')\n", "line 3: RuntimeError: boom"),
        ("from gateway import transform\n@transform('a b')\ndef f(w): ...\n", "line 2: ValueError"),
    ],
)
def test_broken_plugin_file_names_file_line_and_error(
    tmp_path: Path, source: str, message: str
) -> None:
    bad = write(tmp_path / "bad_plugin.py", source)
    with pytest.raises(PluginLoadError) as info:
        load_registry(tmp_path)
    assert str(info.value).startswith(f"plugin file {bad} {message}")


def test_error_inside_an_imported_helper_names_both_files(tmp_path: Path) -> None:
    helper_dir = tmp_path / "lib"
    helper_dir.mkdir()
    helper = write(helper_dir / "gw_helper_raises_xyz.py", "x = 1\nraise LookupError('config')\n")
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    plugin = write(plugins / "uses_helper.py", "import gw_helper_raises_xyz\n")
    sys.path.insert(0, str(helper_dir))
    try:
        with pytest.raises(PluginLoadError) as info:
            load_registry(plugins)
    finally:
        sys.path.remove(str(helper_dir))
        sys.modules.pop("gw_helper_raises_xyz", None)
    assert str(info.value) == (
        f"plugin file {plugin} line 1: LookupError: config (at {helper} line 2)"
    )


def test_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(PluginLoadError, match=r"transforms directory .*absent does not exist"):
        load_registry(tmp_path / "absent")


class Records(logging.Handler):
    """Collects records straight from a logger (whatever its propagation settings)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def test_a_plugin_may_override_a_builtin_with_a_warning(tmp_path: Path) -> None:
    override = write(
        tmp_path / "override.py",
        """
        from gateway import Event, transform

        @transform("stripe")
        def mine(webhook):
            return Event(name="stripe/mine.done")
        """,
    )
    logger = logging.getLogger("webhook_gateway.plugins")
    handler, level = Records(), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.WARNING)  # whatever another test configured for the parent
    try:
        registry = load_registry(tmp_path)
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    [record] = handler.records
    assert record.levelno == logging.WARNING
    assert record.getMessage() == "transform overrides a built-in"
    assert record.__dict__["transform"] == "stripe"
    assert record.__dict__["origin"] == f"directory {override}"
    assert record.__dict__["builtin"] == "builtin (transforms.stripe)"
    assert dict(registry.items())["stripe"] == f"directory {override}"
    [event] = run_transform(registry.get("stripe"), stripe_webhook(), prefix="stripe").events
    assert event.name == "stripe/mine.done"
    assert default_transform_for("stripe") is stripe  # the built-in stays reachable


def test_two_plugins_with_one_name_stop_the_load(tmp_path: Path) -> None:
    for name in ("one", "two"):
        write(
            tmp_path / f"{name}.py",
            "from gateway import transform\n@transform('same')\ndef f(w): ...\n",
        )
    with pytest.raises(PluginLoadError) as info:
        load_registry(tmp_path)
    assert str(info.value) == (
        f"transform 'same' from directory {tmp_path / 'two.py'} clashes with the one from "
        f"directory {tmp_path / 'one.py'}"
    )


def test_a_plugin_overriding_a_builtin_twice_is_a_clash(tmp_path: Path) -> None:
    for name in ("one", "two"):
        write(
            tmp_path / f"{name}.py",
            "from gateway import transform\n@transform('slack')\ndef f(w): ...\n",
        )
    with pytest.raises(
        PluginLoadError, match=r"transform 'slack' from directory .*two\.py clashes"
    ):
        load_registry(tmp_path)


def test_register_validates_name_and_function() -> None:
    registry = TransformRegistry()
    with pytest.raises(PluginLoadError, match="here: transform name 'a:b'"):
        registry.register("a:b", stripe, "here")
    with pytest.raises(PluginLoadError, match="here: transform 'x' is not callable"):
        registry.register("x", "stripe", "here")  # type: ignore[arg-type]


def test_module_function_reference(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    module = write(
        tmp_path / "gw_refmod_xyz.py",
        """
        from gateway import Event

        def rename(webhook):  # a reference need not be marked
            return Event(name="stripe/renamed.event", data={"n": 1})

        NOT_A_FUNCTION = 3
        """,
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "gw_refmod_xyz", raising=False)
    registry = load_registry()
    func = registry.get("gw_refmod_xyz:rename")
    assert registry.get("gw_refmod_xyz:rename") is func
    assert dict(registry.items())["gw_refmod_xyz:rename"] == (
        f"reference gw_refmod_xyz:rename ({module})"
    )
    [event] = run_transform(func, stripe_webhook(), prefix="stripe").events
    assert (event.name, event.data) == ("stripe/renamed.event", {"n": 1})
    with pytest.raises(PluginLoadError, match="has no function 'missing'"):
        registry.get("gw_refmod_xyz:missing")
    with pytest.raises(PluginLoadError, match="has no function 'NOT_A_FUNCTION'"):
        registry.get("gw_refmod_xyz:NOT_A_FUNCTION")
    with pytest.raises(PluginLoadError, match="looks like module:function"):
        registry.get(":rename")
    sys.modules.pop("gw_refmod_xyz", None)


def test_reference_to_a_module_that_fails_to_import(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    broken = write(tmp_path / "gw_refbroken_xyz.py", "import json\n1 / 0\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    registry = load_registry()
    with pytest.raises(PluginLoadError) as info:
        registry.get("gw_refbroken_xyz:f")
    assert str(info.value) == (
        f"transform 'gw_refbroken_xyz:f': cannot import gw_refbroken_xyz ({broken} line 2): "
        "ZeroDivisionError: division by zero"
    )
    with pytest.raises(PluginLoadError, match="cannot import no_such_module_xyz"):
        registry.get("no_such_module_xyz:f")


def test_unknown_name() -> None:
    registry = load_registry()
    with pytest.raises(KeyError) as info:
        registry.get("nope")
    assert isinstance(info.value, UnknownTransformError)
    names = ", ".join(name for name, _ in registry.items())
    assert "intercom, " in names
    assert str(info.value) == f"unknown transform 'nope' (registered: {names})"


def test_only_the_builtins_run_inline_and_a_plugin_in_the_pool(tmp_path: Path) -> None:
    """Built-ins run on the event loop; plugins (overriding a built-in too) in the pool."""
    import asyncio
    import json

    from gateway.app import build_sources
    from gateway.config import Config
    from gateway.metrics import Metrics
    from gateway.outbox.sqlite import SQLiteOutbox
    from gateway.receive import Receiver

    (tmp_path / "plugins").mkdir()
    write(
        tmp_path / "plugins" / "threads.py",
        """
        import threading
        from gateway import Event, transform

        @transform("seen_by")
        def seen_by(webhook):
            name = threading.current_thread().name
            return Event(name="stripe/thread.seen", id="t-" + webhook.json["id"], data={"t": name})

        @transform("slack")  # overrides the built-in of that name: a plugin now
        def slack(webhook):
            return None
        """,
    )
    registry = load_registry(tmp_path / "plugins")
    config = Config.model_validate(
        {
            "sources": [
                {"name": "stripe", "provider": "stripe", "secrets": ["inline:whsec_t"]},
                {
                    "name": "mine",
                    "provider": "stripe",
                    "secrets": ["inline:whsec_t"],
                    "transform": "seen_by",
                },
                {"name": "slack", "provider": "slack", "secrets": ["inline:slack-secret"]},
            ]
        }
    )
    sources, _ = build_sources(config, registry, {})
    assert {name: s.inline for name, s in sources.items()} == {
        "stripe": True,
        "mine": False,
        "slack": False,
    }
    with SQLiteOutbox(tmp_path / "outbox.db") as outbox:
        receiver = Receiver(sources, outbox, Metrics())
        webhook = stripe_webhook()

        async def store() -> None:
            response = await receiver._store(webhook, sources["mine"], "r1", 0.0, None)
            assert json.loads(bytes(response.body))["events"] == 1

        asyncio.run(store())
        [event] = outbox.claim(max_events=9, max_bytes=10**6, lease_seconds=5)
    assert json.loads(event.payload)["data"]["t"].startswith("transform-")
