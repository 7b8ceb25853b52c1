"""Run a transform: normalize and validate its result; bound its time.

:func:`run_transform` calls a transform in the calling thread. :func:`run_transform_bounded`
runs it off the event loop in a :class:`TransformPool` thread and gives up after a timeout.
Python cannot kill a thread: a transform that never returns keeps its thread until it does.
The pool is bounded, so hung transforms occupy at most ``size`` threads; the webhook whose
transform timed out is quarantined by the caller, and later webhooks wait for a free thread
within their own timeout. Pool threads are daemon threads so a hung transform cannot keep the
process from exiting (a ``ThreadPoolExecutor`` joins its threads at interpreter exit).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import queue
import threading
import traceback
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from pydantic import ValidationError

from gateway.events import Event, follows_convention
from gateway.plugins import TransformError, TransformFunc
from gateway.webhook import Webhook

T = TypeVar("T")
_Call = tuple[Callable[[], T], asyncio.AbstractEventLoop, asyncio.Future[T]]
DEFAULT_POOL_SIZE = 8


@dataclass(frozen=True)
class TransformOutcome:
    """Validated events, their serialized payloads, and naming-convention warnings."""

    events: list[Event]
    payloads: list[bytes]
    convention_warnings: list[str] = field(default_factory=list)


def check_sizes(outcome: TransformOutcome, limit: int | None) -> None:
    """Raise :class:`TransformError` when an event is over ``limit`` bytes (the Event API's
    per-event limit, ``forwarder.max_event_bytes``): decided at ingest, so the webhook is
    quarantined (replayable once the limit is raised) instead of dead-lettered later."""
    if limit is None:
        return
    for index, (event, payload) in enumerate(zip(outcome.events, outcome.payloads, strict=True)):
        if len(payload) > limit:
            raise TransformError(
                f"event {index} ({event.name}) is {len(payload)} bytes, over the per-event limit"
                f" of {limit} bytes (forwarder.max_event_bytes)"
            )


def _validation_problems(exc: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(p) for p in err['loc']) or 'event'}: {err['msg']}" for err in exc.errors()
    )


def _as_event(item: Any, index: int, trusted: bool = False) -> Event:
    # Events are validated again: ``model_copy(update=...)`` and ``model_construct`` skip it.
    # A built-in transform (``trusted``) builds its events with ``Event(...)``: validated once.
    if trusted and type(item) is Event:
        return item
    if isinstance(item, Event | Mapping):
        try:
            return Event.model_validate(dict(item))
        except ValidationError as exc:
            raise TransformError(f"event {index} is invalid: {_validation_problems(exc)}") from None
    raise TransformError(
        f"event {index} is a {type(item).__name__}; a transform returns an Event (or a dict with "
        "its fields), a list of them, or None"
    )


def normalize(result: Any, *, trusted: bool = False) -> list[Event]:
    """Turn a transform's return value into a list of valid events (``None`` -> ``[]``).

    ``trusted`` (the built-in transforms) takes ``Event`` instances as they are.
    """
    if result is None:
        return []
    if isinstance(result, Event | Mapping):
        return [_as_event(result, 0, trusted)]
    if isinstance(result, list | tuple):
        return [_as_event(item, i, trusted) for i, item in enumerate(result)]
    raise TransformError(
        f"transform returned a {type(result).__name__}; expected Event, list[Event] or None"
    )


def _call(func: TransformFunc, webhook: Webhook) -> Any:
    try:
        return func(webhook)
    except TransformError as exc:
        if exc.detail is None:
            exc.detail = "".join(traceback.format_exception(exc))
        raise
    except ValidationError as exc:
        # An Event(...) built inside the transform: name the bad field, keep the traceback.
        raise TransformError(
            f"transform built an invalid event: {_validation_problems(exc)}",
            detail="".join(traceback.format_exception(exc)),
        ) from exc
    except (Exception, SystemExit) as exc:  # a plugin calling sys.exit() must not stop us
        raise TransformError(
            f"transform raised {type(exc).__name__}: {exc}",
            detail="".join(traceback.format_exception(exc)),
        ) from exc


def run_transform(
    func: TransformFunc,
    webhook: Webhook,
    *,
    prefix: str,
    strict_names: bool = False,
    trusted: bool = False,
) -> TransformOutcome:
    """Call ``func`` and validate what it returns; any failure is a :class:`TransformError`.

    Events must serialize to JSON and have distinct ids (Inngest dedups on id). A
    name that breaks ``{prefix}/noun.verb`` is a warning, or an error when ``strict_names``.
    ``trusted`` is for the built-in transforms: their ``Event`` objects are not validated twice.
    The transform sees ``prefix`` as ``webhook.prefix`` (a ``Webhook`` built in a test has none).
    """
    if webhook.prefix != prefix:
        webhook = dataclasses.replace(webhook, prefix=prefix)
    events = normalize(_call(func, webhook), trusted=trusted)
    payloads: list[bytes] = []
    warnings: list[str] = []
    seen_ids: dict[str, int] = {}
    for i, event in enumerate(events):
        try:
            payloads.append(event.to_json())
        except TypeError as exc:
            raise TransformError(
                f"event {i} ({event.name}): data is not JSON-serializable: {exc}"
            ) from None
        if event.id is not None:
            if event.id in seen_ids:
                raise TransformError(
                    f"events {seen_ids[event.id]} and {i} share the id {event.id!r}; only the "
                    "first would start Inngest runs"
                )
            seen_ids[event.id] = i
        if not follows_convention(event.name, prefix):
            message = (
                f"event name {event.name!r} does not follow the convention '{prefix}/noun.verb'"
            )
            if strict_names:
                raise TransformError(message)
            warnings.append(message)
    return TransformOutcome(events, payloads, warnings)


class TransformPool:
    """At most ``size`` calls run at once, each in one of at most ``size`` daemon threads.

    Usable from any event loop. A call waits for a free slot; a slot is freed when its call
    returns, even after the caller stopped waiting for it. Threads are started on demand and
    then kept: a thread whose call returned waits for the next one, so a webhook costs a
    hand-over to a waiting thread, not a thread start. A hung call keeps its thread (and its
    slot) until it returns.
    """

    def __init__(self, size: int = DEFAULT_POOL_SIZE, *, name: str = "transform") -> None:
        if size < 1:
            raise ValueError("pool size must be at least 1")
        self.size = size
        self.name = name
        self._lock = threading.Lock()
        self._free = size
        self._waiters: deque[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = deque()
        self._started = 0
        self._idle = 0  # threads waiting on ``_calls``
        self._calls: queue.SimpleQueue[_Call[Any]] = queue.SimpleQueue()

    @property
    def busy(self) -> int:
        """How many slots are held by running calls (hung ones included)."""
        with self._lock:
            return self.size - self._free

    @property
    def threads(self) -> int:
        """Threads started so far (never more than ``size``)."""
        with self._lock:
            return self._started

    async def run(self, call: Callable[[], T], timeout: float) -> T:
        """``call()`` in a pool thread; ``TimeoutError`` after ``timeout`` s (waiting included)."""
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(timeout):
            await self._acquire(loop)
            result: asyncio.Future[T] = loop.create_future()
            try:
                self._dispatch((call, loop, result))
            except BaseException:
                self._release()
                raise
            return await result

    def _dispatch(self, item: _Call[Any]) -> None:
        """Give a call (its slot already held) to a waiting thread, or to a new one."""
        with self._lock:
            if self._idle:
                self._idle -= 1
                self._calls.put(item)
                return
            # Every started thread is running a call, and each holds a slot: fewer than
            # ``size`` threads exist, so this one stays within the bound.
            self._started += 1
            thread_name = f"{self.name}-{self._started}"
        thread = threading.Thread(target=self._serve, args=(item,), name=thread_name, daemon=True)
        try:
            thread.start()
        except BaseException:
            with self._lock:
                self._started -= 1
            raise

    def _serve(self, item: _Call[Any]) -> None:
        while True:
            self._work(*item)
            del item  # keep no finished webhook alive while waiting
            item = self._calls.get()

    def _work(
        self, call: Callable[[], T], loop: asyncio.AbstractEventLoop, result: asyncio.Future[T]
    ) -> None:
        try:
            value = call()
        except BaseException as exc:
            outcome: tuple[bool, Any] = (False, exc)
        else:
            outcome = (True, value)
        # Counted idle before the slot is freed: the call that takes the slot finds this thread.
        with self._lock:
            self._idle += 1
        self._release()
        with contextlib.suppress(RuntimeError):  # a closed loop: nobody is waiting any more
            loop.call_soon_threadsafe(_settle, result, outcome)

    async def _acquire(self, loop: asyncio.AbstractEventLoop) -> None:
        with self._lock:
            if self._free and not self._waiters:
                self._free -= 1
                return
            waiter: asyncio.Future[None] = loop.create_future()
            self._waiters.append((loop, waiter))
        try:
            await waiter
        except asyncio.CancelledError:
            with self._lock:
                queued = (loop, waiter) in self._waiters
                if queued:
                    self._waiters.remove((loop, waiter))
            if not queued and waiter.done() and not waiter.cancelled():
                self._release()  # the slot was handed over just before the cancellation
            raise

    def _release(self) -> None:
        """Hand the slot to the oldest waiter, or mark it free. Called from any thread."""
        with self._lock:
            while self._waiters:
                loop, waiter = self._waiters.popleft()
                try:
                    loop.call_soon_threadsafe(self._hand_over, waiter)
                    return
                except RuntimeError:
                    continue  # that waiter's loop is closed
            self._free += 1

    def _hand_over(self, waiter: asyncio.Future[None]) -> None:
        if waiter.done():  # cancelled between being picked and woken: pass the slot on
            self._release()
        else:
            waiter.set_result(None)


def _settle(future: asyncio.Future[T], outcome: tuple[bool, Any]) -> None:
    if future.done():
        return
    ok, value = outcome
    if ok:
        future.set_result(value)
    else:
        future.set_exception(value)


_DEFAULT_POOL = TransformPool()


async def run_transform_bounded(
    func: TransformFunc,
    webhook: Webhook,
    *,
    prefix: str,
    strict_names: bool = False,
    timeout: float = 5.0,
    pool: TransformPool | None = None,
) -> TransformOutcome:
    """:func:`run_transform` in a pool thread; ``TransformError`` after ``timeout`` seconds.

    The timeout covers waiting for a free thread and the transform itself. On timeout the
    thread runs on until the transform returns; its result is discarded.
    """
    chosen = _DEFAULT_POOL if pool is None else pool
    try:
        return await chosen.run(
            lambda: run_transform(func, webhook, prefix=prefix, strict_names=strict_names),
            timeout,
        )
    except TimeoutError:
        raise TransformError(
            f"transform timed out after {timeout:g}s ({chosen.busy} of {chosen.size} transform "
            "threads busy)"
        ) from None
