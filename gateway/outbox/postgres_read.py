"""The PostgreSQL outbox's read side: the shared queries (:mod:`gateway.outbox.reads`) in
PostgreSQL's dialect. They run on the pool's connections and see every replica's rows."""

from __future__ import annotations

from gateway.outbox.reads import Dialect

POSTGRES = Dialect(
    param=lambda name: f"%({name})s",
    names="SELECT string_agg(e.name, E'\\n' ORDER BY e.seq) FROM events e"
    " WHERE e.webhook_id = w.id",
    bucket="floor((received_at - :since) / :bucket)::bigint",
)
