"""Transform functions: the decorator, the registry, and discovery.

A transform is ``(webhook) -> Event | list[Event] | None``. Transforms come from three places,
all loaded explicitly by :func:`load_registry` (never as an import side effect):

1. the built-ins in the ``transforms`` package,
2. installed packages, through the ``webhook_gateway.transforms`` entry-point group,
3. every ``.py`` file in a configured directory.

A source may also name a transform as ``module:function``.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import os
import sys
from collections.abc import Callable
from importlib.metadata import entry_points
from pathlib import Path
from types import ModuleType
from typing import Any, TypeVar, overload

from gateway.events import Event
from gateway.webhook import Webhook

TransformResult = Event | list[Event] | None
TransformFunc = Callable[[Webhook], Any]
F = TypeVar("F", bound=TransformFunc)

ENTRY_POINT_GROUP = "webhook_gateway.transforms"
_MARK = "__webhook_gateway_transform__"


class TransformError(Exception):
    """A transform raised, returned something that is not events, or returned an invalid event."""


class PluginLoadError(Exception):
    """A plugin could not be loaded: names the plugin, the file and the error."""


@overload
def transform(func: F, /) -> F: ...
@overload
def transform(name: str | None = None, /) -> Callable[[F], F]: ...
def transform(arg: Any = None, /) -> Any:
    """Mark a function as a transform, registered under its own name or the one given.

    ``@transform`` and ``@transform("my-name")`` both work. Marking has no side effect: the
    gateway finds marked functions when it loads the module.
    """
    if callable(arg):
        setattr(arg, _MARK, arg.__name__)
        return arg

    def mark(func: F) -> F:
        setattr(func, _MARK, arg or func.__name__)
        return func

    return mark


BUILTIN_MODULES = ("transforms.stripe", "transforms.slack", "transforms.intercom")


def marked_functions(module: ModuleType) -> list[tuple[str, TransformFunc]]:
    """The functions in ``module`` marked with :func:`transform`, as ``(name, function)``."""
    found: list[tuple[str, TransformFunc]] = []
    for value in vars(module).values():
        name = getattr(value, _MARK, None)
        if (
            isinstance(name, str)
            and callable(value)
            and getattr(value, "__module__", None) == (module.__name__)
        ):
            found.append((name, value))
    return found


class TransformRegistry:
    """Transform name -> function, with where each came from."""

    def __init__(self) -> None:
        self._funcs: dict[str, TransformFunc] = {}
        self._origins: dict[str, str] = {}
        self._builtin: set[str] = set()

    def register(
        self, name: str, func: TransformFunc, origin: str, *, builtin: bool = False
    ) -> None:
        """Add ``func`` under ``name``.

        A plugin may override a built-in (logged); two plugins claiming one name is an error.
        """
        if name in self._funcs:
            if name not in self._builtin:
                raise PluginLoadError(
                    f"transform {name!r} from {origin} clashes with the one from "
                    f"{self._origins[name]}"
                )
            logging.getLogger("webhook_gateway").warning(
                "transform overrides a built-in",
                extra={"transform": name, "origin": origin, "builtin": self._origins[name]},
            )
            self._builtin.discard(name)
        self._funcs[name] = func
        self._origins[name] = origin
        if builtin:
            self._builtin.add(name)

    def get(self, ref: str) -> TransformFunc:
        """A registered name, or ``module:function`` imported on demand."""
        if ref in self._funcs:
            return self._funcs[ref]
        if ":" in ref:
            module_name, _, attr = ref.partition(":")
            try:
                module = importlib.import_module(module_name)
            except Exception as exc:
                raise PluginLoadError(
                    f"transform {ref!r}: cannot import {module_name}: {type(exc).__name__}: {exc}"
                ) from exc
            func = getattr(module, attr, None)
            if not callable(func):
                raise PluginLoadError(f"transform {ref!r}: {module_name} has no function {attr!r}")
            self.register(ref, func, f"reference {ref}")
            return func  # type: ignore[no-any-return]
        known = ", ".join(sorted(self._funcs)) or "none"
        raise KeyError(f"unknown transform {ref!r} (registered: {known})")

    def items(self) -> list[tuple[str, str]]:
        """``(name, origin)`` for every registered transform, sorted by name."""
        return sorted(self._origins.items())

    def __contains__(self, name: object) -> bool:
        return name in self._funcs


def _load_file(path: Path) -> ModuleType:
    module_name = f"webhook_gateway_plugins.{path.stem}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise PluginLoadError(f"plugin file {path}: cannot be loaded as a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        sys.modules.pop(module_name, None)
        where = f" line {exc.lineno}" if isinstance(exc, SyntaxError) and exc.lineno else ""
        raise PluginLoadError(f"plugin file {path}{where}: {type(exc).__name__}: {exc}") from exc
    return module


def load_registry(transforms_dir: str | os.PathLike[str] | None = None) -> TransformRegistry:
    """Built-ins, then entry points, then a directory's ``.py`` files; errors name the plugin."""
    registry = TransformRegistry()
    for module_name in BUILTIN_MODULES:
        module = importlib.import_module(module_name)
        for name, func in marked_functions(module):
            registry.register(name, func, f"builtin ({module_name})", builtin=True)

    for ep in entry_points(group=ENTRY_POINT_GROUP):
        dist = f"{ep.dist.name} {ep.dist.version}" if ep.dist else "unknown distribution"
        origin = f"entry point {ENTRY_POINT_GROUP}: {ep.value} ({dist})"
        try:
            target = ep.load()
        except Exception as exc:
            raise PluginLoadError(
                f"plugin {ep.name!r} ({ep.value}, {dist}): {type(exc).__name__}: {exc}"
            ) from exc
        if isinstance(target, ModuleType):
            funcs = marked_functions(target)
            if not funcs:
                raise PluginLoadError(f"plugin {ep.name!r} ({ep.value}): no @transform function")
            for name, func in funcs:
                registry.register(name, func, origin)
        elif callable(target):
            registry.register(ep.name, target, origin)
        else:
            raise PluginLoadError(f"plugin {ep.name!r} ({ep.value}) is not a function or module")

    if transforms_dir:
        directory = Path(transforms_dir)
        if not directory.is_dir():
            raise PluginLoadError(f"transforms directory {directory} does not exist")
        for path in sorted(directory.glob("*.py")):
            if path.name.startswith("_"):
                continue
            module = _load_file(path)
            for name, func in marked_functions(module):
                registry.register(name, func, f"directory {path}")
    return registry
