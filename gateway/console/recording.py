"""Record refused requests for the console, off the hot path, and keep the record bounded."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from collections.abc import Callable, Iterable, Mapping

from gateway.config import ConsoleConfig
from gateway.console.masking import mask_headers
from gateway.logs import get_logger
from gateway.outbox import Outbox, OutboxUnavailable, Rejection

FLUSH_EVERY = 1.0  # seconds a refused request may wait in memory when nothing else commits
PRUNE_EVERY = 60.0


class RejectionRecorder:
    """The receiver's ``on_reject`` hook: mask, truncate, hand to the outbox's buffer."""

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

    def __call__(self, rejection: Rejection) -> None:
        body = rejection.body[: self.config.rejected_body_bytes]
        headers = mask_headers(
            rejection.headers, self.secrets, self.signature_headers.get(rejection.source, ())
        )
        self.outbox.record_rejection(
            dataclasses.replace(rejection, source=rejection.source[:64], headers=headers, body=body)
        )


async def housekeep(
    outbox: Outbox,
    config: ConsoleConfig,
    stop: asyncio.Event,
    *,
    clock: Callable[[], float] = time.time,
    flush_every: float = FLUSH_EVERY,
    prune_every: float = PRUNE_EVERY,
) -> None:
    """Until ``stop``: flush buffered rejections every ``flush_every`` s; prune them too."""
    log = get_logger()
    next_prune = 0.0
    while not stop.is_set():
        try:
            await asyncio.to_thread(outbox.flush_rejections)
            if clock() >= next_prune:
                next_prune = clock() + prune_every
                await asyncio.to_thread(
                    outbox.prune_rejections,
                    clock() - config.rejected_retention,
                    config.rejected_max,
                )
        except OutboxUnavailable as exc:
            log.warning(
                "could not write refused requests for the console", extra={"error": str(exc)}
            )
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=flush_every)
