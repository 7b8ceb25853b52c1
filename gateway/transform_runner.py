"""Run a transform: normalize and validate its result; bound its time."""

from __future__ import annotations

import asyncio
import traceback
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from gateway.events import Event, follows_convention
from gateway.plugins import TransformError, TransformFunc
from gateway.webhook import Webhook

#: Transforms run here, never on the event loop. A hung transform cannot be killed in Python:
#: it holds one of these threads until it returns, while the webhook is already quarantined.
_POOL = ThreadPoolExecutor(max_workers=8, thread_name_prefix="transform")


@dataclass(frozen=True)
class TransformOutcome:
    """Validated events, their serialized payloads, and naming-convention warnings."""

    events: list[Event]
    payloads: list[bytes]
    convention_warnings: list[str] = field(default_factory=list)


def _as_event(item: Any, index: int) -> Event:
    if isinstance(item, Event):
        return item
    if isinstance(item, Mapping):
        try:
            return Event.model_validate(dict(item))
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in err['loc']) or 'event'}: {err['msg']}"
                for err in exc.errors()
            )
            raise TransformError(f"event {index} is invalid: {problems}") from None
    raise TransformError(
        f"event {index} is a {type(item).__name__}; a transform returns Event, a list of them, "
        "or None"
    )


def normalize(result: Any) -> list[Event]:
    """Turn a transform's return value into a list of valid events."""
    if result is None:
        return []
    if isinstance(result, Event | Mapping):
        return [_as_event(result, 0)]
    if isinstance(result, list | tuple):
        return [_as_event(item, i) for i, item in enumerate(result)]
    raise TransformError(
        f"transform returned a {type(result).__name__}; expected Event, list[Event] or None"
    )


def run_transform(
    func: TransformFunc, webhook: Webhook, *, prefix: str, strict_names: bool = False
) -> TransformOutcome:
    """Call ``func`` and validate what it returns; any failure is a :class:`TransformError`.

    The error's ``detail`` attribute holds the formatted traceback of the original exception.
    """
    try:
        result = func(webhook)
    except TransformError:
        raise
    except Exception as exc:
        error = TransformError(f"transform raised {type(exc).__name__}: {exc}")
        error.detail = "".join(traceback.format_exception(exc))  # type: ignore[attr-defined]
        raise error from exc
    events = normalize(result)
    payloads: list[bytes] = []
    warnings: list[str] = []
    for i, event in enumerate(events):
        try:
            payloads.append(event.to_json())
        except TypeError as exc:
            raise TransformError(f"event {i} ({event.name}): data is not JSON: {exc}") from None
        if not follows_convention(event.name, prefix):
            message = (
                f"event name {event.name!r} does not follow the convention '{prefix}/noun.verb'"
            )
            if strict_names:
                raise TransformError(message)
            warnings.append(message)
    return TransformOutcome(events, payloads, warnings)


async def run_transform_bounded(
    func: TransformFunc,
    webhook: Webhook,
    *,
    prefix: str,
    strict_names: bool = False,
    timeout: float = 5.0,
) -> TransformOutcome:
    """:func:`run_transform` in a worker thread, giving up after ``timeout`` seconds."""
    loop = asyncio.get_running_loop()
    future = loop.run_in_executor(
        _POOL, lambda: run_transform(func, webhook, prefix=prefix, strict_names=strict_names)
    )
    try:
        return await asyncio.wait_for(future, timeout)
    except TimeoutError:
        raise TransformError(f"transform timed out after {timeout:g}s") from None
