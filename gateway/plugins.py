"""Transform functions: the decorator, the registry, and discovery.

A transform is ``(webhook) -> Event | list[Event] | None``. Transforms come from three places,
all loaded explicitly by :func:`load_registry` (never as an import side effect):

1. the built-ins in the ``transforms`` package,
2. installed packages, through the ``webhook_gateway.transforms`` entry-point group,
3. every ``.py`` file in a configured directory.

A source may also name a transform as ``module:function``.
"""

from __future__ import annotations

from collections.abc import Callable
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
