"""Recover webhooks the gateway never received, from the providers' own APIs (docs/backfill.md).

- :mod:`~gateway.backfill.run` — what one run reports and the errors that end it.
- :mod:`~gateway.backfill.runner` — builds a run for a source and feeds items through its
  transform and the outbox, exactly like the receive path.
- :mod:`~gateway.backfill.stripe` — lists ``/v1/events`` with the ``stripe`` package's client.
- :mod:`~gateway.backfill.github` — lists a hook's deliveries and asks GitHub to redeliver.
- :mod:`~gateway.backfill.reconciler` — runs each source's backfill periodically inside
  ``serve``, on one replica at a time (an outbox lease).
- :mod:`~gateway.backfill.cli` — ``webhook-gateway backfill``.
"""
