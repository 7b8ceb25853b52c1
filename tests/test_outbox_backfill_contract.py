"""Issue 16's two outbox methods, run against every backend of the contract suite.

``held_event_ids`` is the dedup lookup a backfill makes before storing anything;
``take_lease`` keeps a periodic job (the backfill reconciler) on one replica at a time.
"""

from __future__ import annotations

from gateway.outbox import Outbox
from tests.test_outbox_contract import WINDOW, Clock, claim, clock, evs, hook, outbox

__all__ = ["clock", "outbox"]  # the contract suite's fixtures, one run per backend


def test_held_event_ids_are_those_accept_would_skip(outbox: Outbox, clock: Clock) -> None:
    outbox.accept(hook(1), *evs("s/a.one", "s/a.two"))
    outbox.accept(hook(2), *evs("s/b.one", ids=False))
    asked = ["id-s/a.one", "id-s/a.two", "id-s/unknown"]
    assert outbox.held_event_ids(asked) == {"id-s/a.one", "id-s/a.two"}
    assert outbox.held_event_ids([]) == set()
    seqs = claim(outbox)
    outbox.dead_letter(seqs[0], "400 from the Event API")
    # a dead-lettered event may be accepted again, so it is not held
    assert outbox.held_event_ids(asked) == {"id-s/a.two"}
    clock.now += WINDOW + 1
    assert outbox.held_event_ids(asked) == set()  # beyond the dedup window


def test_held_event_ids_takes_more_ids_than_one_query_list(outbox: Outbox) -> None:
    names = [f"s/e.n{i}" for i in range(1200)]
    outbox.accept(hook(1), *evs(*names))
    wanted = [f"id-{n}" for n in names] + ["id-missing"]
    assert outbox.held_event_ids(wanted) == set(wanted[:-1])


def test_a_lease_is_held_by_one_holder_until_it_expires(outbox: Outbox, clock: Clock) -> None:
    t = clock.now
    assert outbox.take_lease("backfill:stripe", "replica-a", 60, now=t)
    assert not outbox.take_lease("backfill:stripe", "replica-b", 60, now=t + 30)
    assert outbox.take_lease("backfill:github", "replica-b", 60, now=t + 30)  # another name
    assert outbox.take_lease("backfill:stripe", "replica-a", 60, now=t + 50)  # renewed: t + 110
    assert not outbox.take_lease("backfill:stripe", "replica-b", 60, now=t + 100)
    assert outbox.take_lease("backfill:stripe", "replica-b", 60, now=t + 111)  # expired
    assert not outbox.take_lease("backfill:stripe", "replica-a", 60, now=t + 112)
