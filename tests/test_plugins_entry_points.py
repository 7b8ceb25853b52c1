"""Entry-point plugins from a package really built and installed with pip (offline)."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from gateway.plugins import ENTRY_POINT_GROUP, PluginLoadError, load_registry
from gateway.transform_runner import run_transform
from gateway.webhook import Webhook

NEEDS_PIP = pytest.mark.skipif(
    importlib.util.find_spec("pip") is None or importlib.util.find_spec("setuptools") is None,
    reason="building a plugin package needs pip and setuptools installed",
)
pytestmark = NEEDS_PIP

FIXTURE = Path(__file__).parent / "fixtures" / "transforms" / "stripe" / "invoice.paid.json"


def install(
    tmp_path: Path,
    dist: str,
    package: str,
    module_source: str,
    entry_points: str,
    group: str = ENTRY_POINT_GROUP,
) -> Path:
    """Write a one-module package, ``pip install`` it into a target directory, return that."""
    src = tmp_path / "src"
    (src / package).mkdir(parents=True)
    (src / package / "__init__.py").write_text(textwrap.dedent(module_source).lstrip())
    (src / "pyproject.toml").write_text(
        textwrap.dedent(
            f"""
            [build-system]
            requires = ["setuptools>=61"]
            build-backend = "setuptools.build_meta"

            [project]
            name = "{dist}"
            version = "1.2.3"

            [tool.setuptools]
            packages = ["{package}"]

            [project.entry-points."{group}"]
            """
        ).lstrip()
        + textwrap.dedent(entry_points).lstrip()
    )
    return pip_install(src, tmp_path / "site")


def pip_install(src: Path, target: Path) -> Path:
    """Build the package in ``src`` and ``pip install`` it into ``target`` (offline)."""
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
            "--disable-pip-version-check",
            "--target",
            str(target),
            str(src),
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "PIP_ROOT_USER_ACTION": "ignore"},
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return target


def test_installed_package_is_discovered(tmp_path: Path, on_path: list[str]) -> None:
    target = install(
        tmp_path,
        "acme-gw-plugin",
        "acme_gw_plugin",
        """
        from gateway import Event, Webhook, transform

        @transform("acme")
        def acme(webhook: Webhook) -> Event:
            invoice = webhook.json["data"]["object"]
            return Event(name="acme/invoice.settled", data={"amount": invoice["amount_paid"]})

        @transform
        def acme_quiet(webhook: Webhook) -> None:
            return None

        def unmarked(webhook: Webhook) -> Event:
            return Event(name="acme/direct.called")
        """,
        """
        acme = "acme_gw_plugin"
        acme-direct = "acme_gw_plugin:unmarked"
        """,
    )
    assert "acme" not in load_registry()  # not on sys.path yet
    sys.path.insert(0, str(target))
    on_path.append(str(target))

    registry = load_registry()
    module_origin = f"entry point {ENTRY_POINT_GROUP}: acme_gw_plugin (dist acme-gw-plugin 1.2.3)"
    plugins = {name: origin for name, origin in registry.items() if "builtin" not in origin}
    assert plugins == {
        "acme": module_origin,
        "acme_quiet": module_origin,
        "acme-direct": (
            f"entry point {ENTRY_POINT_GROUP}: acme_gw_plugin:unmarked (dist acme-gw-plugin 1.2.3)"
        ),
    }
    assert dict(registry.items())["stripe"] == "builtin (transforms.stripe)"
    webhook = Webhook(source="acme", provider="stripe", body=FIXTURE.read_bytes())
    [event] = run_transform(registry.get("acme"), webhook, prefix="acme").events
    assert (event.name, event.data) == ("acme/invoice.settled", {"amount": 2000})
    assert run_transform(registry.get("acme_quiet"), webhook, prefix="acme").events == []
    [direct] = run_transform(registry.get("acme-direct"), webhook, prefix="acme").events
    assert direct.name == "acme/direct.called"


def test_broken_installed_plugin_names_plugin_dist_and_file(
    tmp_path: Path, on_path: list[str]
) -> None:
    target = install(
        tmp_path,
        "acme-broken-plugin",
        "acme_broken_plugin",
        """
        from gateway import transform

        SETTINGS = {}
        TIMEOUT = SETTINGS["timeout"]
        """,
        'acme-broken = "acme_broken_plugin"\n',
    )
    sys.path.insert(0, str(target))
    on_path.append(str(target))
    with pytest.raises(PluginLoadError) as info:
        load_registry()
    assert str(info.value) == (
        "plugin 'acme-broken' (entry point acme_broken_plugin, dist acme-broken-plugin 1.2.3), "
        f"{target / 'acme_broken_plugin' / '__init__.py'} line 4: KeyError: 'timeout'"
    )


def test_module_entry_point_without_transforms_is_an_error(
    tmp_path: Path, on_path: list[str]
) -> None:
    target = install(
        tmp_path,
        "acme-empty-plugin",
        "acme_empty_plugin",
        "VALUE = 1\n",
        'acme-empty = "acme_empty_plugin"\n',
    )
    sys.path.insert(0, str(target))
    on_path.append(str(target))
    with pytest.raises(PluginLoadError) as info:
        load_registry()
    assert str(info.value) == (
        "plugin 'acme-empty' (entry point acme_empty_plugin, dist acme-empty-plugin 1.2.3): "
        f"module {target / 'acme_empty_plugin' / '__init__.py'} defines no @transform function"
    )
