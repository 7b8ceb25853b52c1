"""The provider registry: built-ins, then the ``webhook_gateway.providers`` entry points.

Every name maps to one class, and a name never changes hands: a plugin claiming a built-in's
name (or another plugin's) is a :class:`~gateway.plugins.PluginLoadError` naming both origins.
A verifier silently replaced by an installed package would be a security hole, so unlike
transforms, providers cannot be overridden. A source may also name a class as
``package.module:Class``; it is imported when first asked for and registered under its ``name``
with the same rule.
"""

from __future__ import annotations

import importlib
import re
from importlib.metadata import EntryPoint, entry_points
from typing import TYPE_CHECKING

from gateway.plugins import PluginLoadError, dist_label, import_reference, load_entry_point

if TYPE_CHECKING:
    from gateway.providers import Provider

ENTRY_POINT_GROUP = "webhook_gateway.providers"
#: a provider's name is a URL segment (``/webhooks/<name>``) and a variable's stem
#: (``<NAME>_WEBHOOK_SECRET``): lower-case letters, digits and underscores
NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$")

_REGISTRY: dict[str, type[Provider]] = {}
_ORIGINS: dict[str, str] = {}
_loaded: list[bool] = []  # non-empty once the built-ins and the entry points are registered


def _builtin_origin(cls: type[Provider]) -> str | None:
    from gateway.providers import BUILTIN_PROVIDER_MODULES

    module = cls.__module__
    return f"builtin ({module})" if module in BUILTIN_PROVIDER_MODULES else None


def checked_name(cls: object, origin: str) -> str:
    """``cls.name`` when ``cls`` is a :class:`Provider` subclass with a valid name of its own."""
    from gateway.providers import Provider

    if not (isinstance(cls, type) and issubclass(cls, Provider)):
        raise PluginLoadError(f"{origin}: {cls!r} is not a subclass of gateway.providers.Provider")
    name = vars(cls).get("name")  # its own: a subclass must not inherit its base's name
    if not isinstance(name, str) or not NAME.match(name):
        raise PluginLoadError(
            f"{origin}: {cls.__qualname__}.name is {name!r}; a provider needs its own name of "
            "lower-case letters, digits and underscores (at most 64), starting with a letter"
        )
    return name


def add(cls: type[Provider], origin: str) -> None:
    """Register ``cls`` under ``cls.name``; :class:`PluginLoadError` when the name is taken.

    Registering the class already held under its name again changes nothing.
    """
    name = checked_name(cls, origin)
    held = _REGISTRY.get(name)
    if held is cls:
        return
    if held is not None:
        kind = "a built-in" if _ORIGINS[name].startswith("builtin") else "another plugin"
        raise PluginLoadError(
            f"provider {name!r} from {origin} clashes with {kind}: {_ORIGINS[name]} "
            "(providers cannot be replaced; give yours another name)"
        )
    _REGISTRY[name] = cls
    _ORIGINS[name] = origin


def register_provider(cls: type[Provider]) -> type[Provider]:
    """Class decorator of the built-in providers: make ``cls`` available under ``cls.name``.

    Plugins need not use it (their entry point names the class); a plugin that does is held to
    the same rule: a taken name is a :class:`PluginLoadError`.
    """
    origin = _builtin_origin(cls) or f"class {cls.__module__}:{cls.__qualname__}"
    add(cls, origin)
    return cls


def _load_entry_point(ep: EntryPoint) -> None:
    dist = dist_label(ep)
    target = load_entry_point(ep, f"provider plugin {ep.name!r} (entry point {ep.value}, {dist})")
    origin = f"entry point {ENTRY_POINT_GROUP}: {ep.value} ({dist})"
    name = checked_name(target, origin)
    if ep.name != name:
        raise PluginLoadError(
            f"{origin}: the entry point is named {ep.name!r} but the class's name is "
            f"{name!r}; name the entry point after the provider"
        )
    add(target, origin)


def load_providers() -> None:
    """The built-ins, then every entry point of ``webhook_gateway.providers`` (once).

    A failure is a :class:`PluginLoadError` and is raised again on the next call.
    """
    if _loaded:
        return
    from gateway.providers import BUILTIN_PROVIDER_MODULES

    for module in BUILTIN_PROVIDER_MODULES:
        importlib.import_module(module)
    for ep in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda ep: ep.name):
        _load_entry_point(ep)
    _loaded.append(True)


def reload_plugins() -> None:
    """Forget every plugin provider and load the entry points again (tests install packages)."""
    for name, origin in list(_ORIGINS.items()):
        if not origin.startswith("builtin"):
            del _REGISTRY[name], _ORIGINS[name]
    _loaded.clear()
    load_providers()


def _from_reference(ref: str) -> type[Provider]:
    cls, module = import_reference(ref, "provider", "package.module:Class")
    where = getattr(module, "__file__", "?")
    if cls is None:
        raise PluginLoadError(
            f"provider {ref!r}: {module.__name__} ({where}) has no class {ref.partition(':')[2]!r}"
        )
    origin = f"reference {ref} ({where})"
    add(cls, origin)
    return cls  # type: ignore[no-any-return]


def get_provider(name: str) -> type[Provider]:
    """The class registered under ``name``, or the ``package.module:Class`` it names.

    ``KeyError`` lists the known names; :class:`PluginLoadError` when a plugin cannot be loaded.
    """
    load_providers()
    if name in _REGISTRY:
        return _REGISTRY[name]
    if ":" in name:
        return _from_reference(name)
    known = ", ".join(sorted(_REGISTRY))
    raise KeyError(f"unknown provider {name!r} (known: {known})")


def provider_names() -> list[str]:
    """Every registered provider name."""
    load_providers()
    return sorted(_REGISTRY)


def provider_origin(name: str) -> str:
    """Where the provider registered as ``name`` came from: ``builtin (module)``, an entry point
    (with its distribution) or a ``module:Class`` reference."""
    load_providers()
    return _ORIGINS[name]
