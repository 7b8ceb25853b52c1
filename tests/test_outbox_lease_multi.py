"""Issue 16: the named job lease across several instances on one store (every backend of
``tests/test_outbox_multi.py``): of replicas racing for ``backfill:<source>``, exactly one wins."""

from __future__ import annotations

import threading
from collections.abc import Callable

from gateway.outbox import Outbox
from tests.test_outbox_multi import T0, backend, clock, instances

__all__ = ["backend", "clock", "instances"]  # the multi-instance suite's fixtures


def test_racing_replicas_get_the_lease_once(instances: Callable[[int], list[Outbox]]) -> None:
    boxes = instances(3)
    start = threading.Barrier(len(boxes))
    won: list[str] = []

    def race(i: int, box: Outbox) -> None:
        start.wait()
        for _ in range(20):
            if box.take_lease("backfill:stripe", f"replica-{i}", 60, now=T0):
                won.append(f"replica-{i}")

    threads = [threading.Thread(target=race, args=(i, b)) for i, b in enumerate(boxes)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(won)) == 1  # one holder, who renews; the others never get it
    holder = won[0]
    others = [b for i, b in enumerate(boxes) if f"replica-{i}" != holder]
    assert not any(b.take_lease("backfill:stripe", "late", 60, now=T0 + 59) for b in others)
    assert others[0].take_lease("backfill:stripe", "late", 60, now=T0 + 61)
