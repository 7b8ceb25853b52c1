"""Record refused requests for the console, off the hot path, and keep the record bounded."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import math
import time
from collections.abc import Callable, Iterable, Mapping

from gateway.config import ConsoleConfig
from gateway.console.masking import mask_headers
from gateway.logs import get_logger
from gateway.outbox import Outbox, OutboxUnavailable, Rejection

FLUSH_EVERY = 1.0  # seconds a refused request may wait in memory when nothing else commits
PRUNE_EVERY = 10.0  # seconds between prunes (each in small transactions)
UNKNOWN = "(unknown)"  # the one source name refusals for unconfigured paths are stored under
UNKNOWN_SAMPLES = 5  # unknown names quoted in an aggregated record
NAME_CHARS = 64


def cap_headers(headers: Mapping[str, str], value_bytes: int, total_bytes: int) -> dict[str, str]:
    """``headers`` with each value cut to ``value_bytes`` and all of them to ``total_bytes``
    (names included); what was cut is said in the kept text, never silently."""
    kept: dict[str, str] = {}
    used = 0
    for index, (name, value) in enumerate(headers.items()):
        name = name[:NAME_CHARS]
        if len(value) > value_bytes:
            value = f"{value[:value_bytes]}... [{len(value) - value_bytes} more bytes not kept]"
        if used + len(name) + len(value) > total_bytes:
            kept["x-gateway-headers-not-kept"] = f"{len(headers) - index} header(s) over the cap"
            break
        kept[name] = value
        used += len(name) + len(value)
    return kept


class RejectionRecorder:
    """The receiver's ``on_reject`` hook: mask, cap, hand to the outbox's buffer.

    Bounded whatever a client sends: headers and body are capped per request; refusals for
    unknown sources (any path a client makes up) are stored as one record per prune interval
    under the source ``(unknown)``, the rest counted; and at most ``rejected_max_bytes / 2``
    are recorded between two prunes (the rest are only counted in the metrics).
    """

    def __init__(
        self,
        outbox: Outbox,
        config: ConsoleConfig,
        secrets: Iterable[str] = (),
        signature_headers: Mapping[str, list[str]] | None = None,
    ) -> None:
        self.outbox = outbox
        self.config = config
        self.secrets = list(secrets)
        self.signature_headers = dict(signature_headers or {})
        self.budget = config.rejected_max_bytes // 2  # bytes until the next prune
        self.dropped = 0  # refusals not recorded since the last prune (budget spent)
        self._unknown: list[Rejection] = []  # the first of this interval, then samples
        self._unknown_count = 0

    def __call__(self, rejection: Rejection) -> None:
        if rejection.reason == "unknown_source":
            self._unknown_count += 1
            if len(self._unknown) >= UNKNOWN_SAMPLES:
                return
            self._unknown.append(rejection)
            if len(self._unknown) > 1:
                return  # quoted in the interval's summary (see flush_unknown)
            name = rejection.source[:NAME_CHARS]
            rejection = dataclasses.replace(
                rejection, source=UNKNOWN, message=f"unknown source {name!r}"
            )
        body = rejection.body[: self.config.rejected_body_bytes]
        headers = cap_headers(
            mask_headers(
                rejection.headers, self.secrets, self.signature_headers.get(rejection.source, ())
            ),
            self.config.rejected_header_value_bytes,
            self.config.rejected_header_bytes,
        )
        size = len(body) + sum(len(k) + len(v) for k, v in headers.items())
        if size > self.budget:
            self.dropped += 1
            return
        self.budget -= size
        self.outbox.record_rejection(
            dataclasses.replace(
                rejection, source=rejection.source[:NAME_CHARS], headers=headers, body=body
            )
        )

    def flush_unknown(self) -> None:
        """Record one summary of the interval's further unknown-source refusals, if any."""
        more = self._unknown_count - 1
        samples = [r.source[:NAME_CHARS] for r in self._unknown[1:]]
        first = self._unknown[0] if self._unknown else None
        self._unknown, self._unknown_count = [], 0
        if first is None or more <= 0:
            return
        quoted = ", ".join(repr(name) for name in samples)
        self.outbox.record_rejection(
            dataclasses.replace(
                first,
                source=UNKNOWN,
                message=f"{more} more request(s) for unknown sources, e.g. {quoted}",
                headers={},
                body=b"",
                body_size=0,
            )
        )

    def pruned(self) -> None:
        """The store was pruned: a new recording budget."""
        self.budget = self.config.rejected_max_bytes // 2
        self.dropped = 0


async def housekeep(
    outbox: Outbox,
    config: ConsoleConfig,
    stop: asyncio.Event,
    *,
    clock: Callable[[], float] = time.time,
    flush_every: float = FLUSH_EVERY,
    prune_every: float = PRUNE_EVERY,
    recorder: RejectionRecorder | None = None,
    monotonic: Callable[[], float] = time.monotonic,
) -> None:
    """Until ``stop``: flush buffered rejections every ``flush_every`` s; prune them every
    ``prune_every`` s (by age, count and bytes, in small transactions)."""
    log = get_logger()
    next_prune = -math.inf
    while not stop.is_set():
        try:
            await asyncio.to_thread(outbox.flush_rejections)
            if monotonic() >= next_prune:
                next_prune = monotonic() + prune_every
                if recorder is not None:
                    recorder.flush_unknown()
                await asyncio.to_thread(
                    outbox.prune_rejections,
                    clock() - config.rejected_retention,
                    config.rejected_max,
                    config.rejected_max_bytes,
                )
                if recorder is not None:
                    recorder.pruned()
        except OutboxUnavailable as exc:
            log.warning(
                "could not write refused requests for the console", extra={"error": str(exc)}
            )
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=flush_every)
