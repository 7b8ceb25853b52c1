"""Transform functions: the decorator, the registry, and discovery.

A transform is ``(webhook) -> Event | list[Event] | None``. Transforms come from three places,
all loaded explicitly by :func:`load_registry` (never as an import side effect):

1. the built-ins: every module of the ``transforms`` package,
2. installed packages, through the ``webhook_gateway.transforms`` entry-point group,
3. every ``.py`` file in a configured directory.

A source may also name a transform as ``module:function``. A plugin (entry point or directory)
may override a built-in of the same name, with a logged warning; two plugins claiming one name
are a :class:`PluginLoadError`.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import logging
import os
import pkgutil
import re
import sys
import traceback
from collections.abc import Callable
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path
from types import ModuleType
from typing import Any, TypeVar, overload

from gateway.events import Event
from gateway.webhook import Webhook

TransformResult = Event | list[Event] | None
TransformFunc = Callable[[Webhook], Any]
F = TypeVar("F", bound=TransformFunc)

ENTRY_POINT_GROUP = "webhook_gateway.transforms"
BUILTIN_PACKAGE = "transforms"
_MARK = "__webhook_gateway_transform__"
# Registered names never contain ':' (that means module:function) nor whitespace.
_NAME = re.compile(r"^[^\s:]+$")
_IMPORTLIB_DIR = os.path.dirname(importlib.__file__)
_GATEWAY_DIR = os.path.dirname(__file__)

log = logging.getLogger("webhook_gateway.plugins")


class TransformError(Exception):
    """A transform raised, returned something that is not events, or returned an invalid event.

    ``detail`` holds the formatted traceback of the original exception when there is one.
    """

    def __init__(self, message: str, *, detail: str | None = None) -> None:
        super().__init__(message)
        self.detail = detail


class PluginLoadError(Exception):
    """A plugin could not be loaded: names the plugin, the file and the error."""


class UnknownTransformError(KeyError):
    """No transform is registered under the name asked for."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "unknown transform"


def _check_name(name: object) -> str:
    if not isinstance(name, str) or not _NAME.match(name):
        raise ValueError(
            f"transform name {name!r} must be a non-empty string without ':' or whitespace"
        )
    return name


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
        setattr(arg, _MARK, _check_name(arg.__name__))
        return arg
    if arg is not None:
        _check_name(arg)

    def mark(func: F) -> F:
        setattr(func, _MARK, arg or _check_name(func.__name__))
        return func

    return mark


def marked_functions(module: ModuleType) -> list[tuple[str, TransformFunc]]:
    """The functions defined in ``module`` and marked with :func:`transform`.

    Marked functions the module merely imports (a wrapper importing the built-in it wraps) are
    left out, so they are not registered twice.
    """
    found: list[tuple[str, TransformFunc]] = []
    for value in vars(module).values():
        name = getattr(value, _MARK, None)
        if (
            isinstance(name, str)
            and callable(value)
            and getattr(value, "__module__", None) == module.__name__
        ):
            found.append((name, value))
    return found


def _frames(exc: BaseException) -> list[traceback.FrameSummary]:
    """The traceback's frames outside import machinery and the gateway itself."""
    return [
        frame
        for frame in traceback.extract_tb(exc.__traceback__)
        if not frame.filename.startswith(("<", _IMPORTLIB_DIR, _GATEWAY_DIR))
    ]


def _where(exc: BaseException) -> str:
    """``file line N`` of the code that failed."""
    if isinstance(exc, SyntaxError) and exc.filename:
        return f"{exc.filename} line {exc.lineno}"
    frames = _frames(exc)
    return f"{frames[-1].filename} line {frames[-1].lineno}" if frames else ""


def _describe(exc: BaseException) -> str:
    message = exc.msg if isinstance(exc, SyntaxError) else str(exc)
    return f"{type(exc).__name__}: {message}"


def import_reference(ref: str, what: str, shape: str) -> tuple[Any, ModuleType]:
    """The attribute a ``module:attribute`` reference names (``None`` if absent), and its module.

    :class:`PluginLoadError` when ``ref`` is not of that shape or its module cannot be imported.
    """
    module_name, _, attr = ref.partition(":")
    if not module_name or not attr:
        raise PluginLoadError(f"{what} {ref!r}: a reference looks like {shape}")
    module = _import(module_name, f"{what} {ref!r}: cannot import {module_name}", bracket=True)
    return getattr(module, attr, None), module


def _import(module_name: str, what: str, *, bracket: bool) -> ModuleType:
    """Import ``module_name``; a failure is a :class:`PluginLoadError` saying ``what`` failed,
    where (``(file line N)`` when ``bracket``, else ``, file line N``) and the error."""
    try:
        return importlib.import_module(module_name)
    except Exception as exc:
        where = _where(exc)
        located = (f" ({where})" if bracket else f", {where}") if where else ""
        raise PluginLoadError(f"{what}{located}: {_describe(exc)}") from exc


def dist_label(ep: EntryPoint) -> str:
    """``dist NAME VERSION`` of the package declaring ``ep``."""
    return f"dist {ep.dist.name} {ep.dist.version}" if ep.dist else "unknown dist"


def load_entry_point(ep: EntryPoint, plugin: str) -> Any:
    """What ``ep`` names; an import failure is a :class:`PluginLoadError` naming ``plugin``."""
    try:
        return ep.load()
    except PluginLoadError:
        raise
    except Exception as exc:
        where = _where(exc)
        raise PluginLoadError(f"{plugin}{f', {where}' if where else ''}: {_describe(exc)}") from exc


class TransformRegistry:
    """Transform name -> function, with where each came from."""

    def __init__(self) -> None:
        self._funcs: dict[str, TransformFunc] = {}
        self._origins: dict[str, str] = {}
        self._builtin: set[str] = set()

    def register(
        self, name: str, func: TransformFunc, origin: str, *, builtin: bool = False
    ) -> None:
        """Add ``func`` under ``name``; ``origin`` says where it came from (for listings).

        A plugin may override a built-in (logged as a warning); two plugins, or two built-ins,
        claiming one name is a :class:`PluginLoadError`.
        """
        try:
            _check_name(name)
        except ValueError as exc:
            raise PluginLoadError(f"{origin}: {exc}") from None
        if not callable(func):
            raise PluginLoadError(f"{origin}: transform {name!r} is not callable")
        self._add(name, func, origin, builtin=builtin)

    def _add(self, name: str, func: TransformFunc, origin: str, *, builtin: bool) -> None:
        if name in self._funcs:
            if builtin or name not in self._builtin:
                raise PluginLoadError(
                    f"transform {name!r} from {origin} clashes with the one from "
                    f"{self._origins[name]}"
                )
            log.warning(
                "transform overrides a built-in",
                extra={"transform": name, "origin": origin, "builtin": self._origins[name]},
            )
            self._builtin.discard(name)
        self._funcs[name] = func
        self._origins[name] = origin
        if builtin:
            self._builtin.add(name)

    def get(self, ref: str) -> TransformFunc:
        """A registered name, or ``module:function`` imported on demand (marked or not).

        Raises :class:`UnknownTransformError` (a ``KeyError``) for an unknown name and
        :class:`PluginLoadError` when a reference cannot be imported.
        """
        if ref in self._funcs:
            return self._funcs[ref]
        if ":" not in ref:
            known = ", ".join(sorted(self._funcs)) or "none"
            raise UnknownTransformError(f"unknown transform {ref!r} (registered: {known})")
        func, module = import_reference(ref, "transform", "module:function")
        if not callable(func):
            raise PluginLoadError(
                f"transform {ref!r}: {module.__name__} ({getattr(module, '__file__', '?')}) has "
                f"no function {ref.partition(':')[2]!r}"
            )
        self._add(ref, func, f"reference {ref} ({getattr(module, '__file__', '?')})", builtin=False)
        return func  # type: ignore[no-any-return]

    def is_builtin(self, name: str) -> bool:
        """Whether ``name`` is a built-in transform (not overridden by a plugin)."""
        return name in self._builtin

    def origin(self, name: str) -> str:
        """Where the transform registered as ``name`` came from."""
        return self._origins[name]

    def items(self) -> list[tuple[str, str]]:
        """``(name, origin)`` for every registered transform, sorted by name."""
        return sorted(self._origins.items())

    def __contains__(self, name: object) -> bool:
        return name in self._funcs

    def __len__(self) -> int:
        return len(self._funcs)


def builtin_modules() -> list[str]:
    """Every public module of the ``transforms`` package, by name."""
    package = importlib.import_module(BUILTIN_PACKAGE)
    return sorted(
        f"{BUILTIN_PACKAGE}.{info.name}"
        for info in pkgutil.iter_modules(package.__path__)
        if not info.name.startswith("_")
    )


def _load_builtins(registry: TransformRegistry) -> None:
    for module_name in builtin_modules():
        module = _import(module_name, f"built-in {module_name}", bracket=False)
        for name, func in marked_functions(module):
            registry.register(name, func, f"builtin ({module_name})", builtin=True)


def _load_entry_point(registry: TransformRegistry, ep: EntryPoint) -> None:
    dist = dist_label(ep)
    origin = f"entry point {ENTRY_POINT_GROUP}: {ep.value} ({dist})"
    plugin = f"plugin {ep.name!r} (entry point {ep.value}, {dist})"
    target = load_entry_point(ep, plugin)
    if isinstance(target, ModuleType):
        funcs = marked_functions(target)
        if not funcs:
            raise PluginLoadError(
                f"{plugin}: module {target.__file__} defines no @transform function"
            )
        for name, func in funcs:
            registry.register(name, func, origin)
    elif callable(target):
        registry.register(ep.name, target, origin)
    else:
        raise PluginLoadError(f"{plugin}: {type(target).__name__} is not a function or module")


def _module_name(path: Path) -> str:
    # Unique per file, so two directories may both hold an ``orders.py``.
    digest = hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:10]
    stem = re.sub(r"\W", "_", path.stem)
    return f"webhook_gateway_plugin_{stem}_{digest}"


def _file_error(path: Path, exc: BaseException) -> str:
    """``plugin file PATH line N: Type: message (at OTHER line M)``."""
    name = str(path)
    where = _where(exc)
    own = [frame.lineno for frame in _frames(exc) if frame.filename == name]
    if where.startswith(f"{name} line "):
        line, where = where[len(name) :], ""
    else:
        line = f" line {own[-1]}" if own else ""
    return f"plugin file {path}{line}: {_describe(exc)}{f' (at {where})' if where else ''}"


def _load_file(path: Path) -> ModuleType:
    """Execute one plugin file as a module; errors are :class:`PluginLoadError` naming it."""
    module_name = _module_name(path)
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise PluginLoadError(f"plugin file {path}: cannot be loaded as a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module  # so dataclasses and pydantic models in it resolve
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        sys.modules.pop(module_name, None)
        raise PluginLoadError(_file_error(path, exc)) from exc
    return module


def _load_directory(registry: TransformRegistry, directory: Path) -> None:
    if not directory.is_dir():
        raise PluginLoadError(f"transforms directory {directory} does not exist")
    for path in sorted(directory.glob("*.py")):
        if path.name.startswith("_"):
            continue
        module = _load_file(path)
        for name, func in marked_functions(module):
            registry.register(name, func, f"directory {path}")


def load_registry(transforms_dir: str | os.PathLike[str] | None = None) -> TransformRegistry:
    """Built-ins, then entry points, then the ``.py`` files of ``transforms_dir`` (sorted).

    Any failure is a :class:`PluginLoadError` naming the plugin, its file and the error.
    """
    registry = TransformRegistry()
    _load_builtins(registry)
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        _load_entry_point(registry, ep)
    if transforms_dir:
        _load_directory(registry, Path(transforms_dir))
    return registry


def default_transform_for(provider: str) -> TransformFunc:
    """The built-in transform named after ``provider`` (never a plugin that overrides it)."""
    for module_name in builtin_modules():
        for name, func in marked_functions(importlib.import_module(module_name)):
            if name == provider:
                return func
    raise UnknownTransformError(f"no built-in transform for provider {provider!r}")
