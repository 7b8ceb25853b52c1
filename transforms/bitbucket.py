"""Bitbucket Cloud webhooks become ``bitbucket/<noun>.<verb>`` events.

- ``name``: ``"bitbucket/" + X-Event-Key`` with its ``:`` as dots (``repo:push`` ->
  ``bitbucket/repo.push``, ``pullrequest:comment_created`` ->
  ``bitbucket/pullrequest.comment_created``).
- ``id``: ``"bitbucket-" + X-Request-UUID``.
- ``ts``: the event's own time where the payload has one (:data:`TS_PATHS`, first found: a
  comment's, an approval's, a commit status's, then the pull request's or issue's
  ``updated_on``); else the receive time (``repo:push`` and other repository events carry none).
- ``data``: the payload.
"""

from __future__ import annotations

from gateway import Event, Webhook, transform
from gateway.providers.generic_hmac import lookup
from transforms._naming import dotted
from transforms._time import to_ms

TS_PATHS = (
    "comment.updated_on",
    "comment.created_on",
    "approval.date",
    "changes_request.date",
    "commit_status.updated_on",
    "pullrequest.updated_on",
    "issue.updated_on",
)


def event_time(payload: dict[str, object]) -> int | None:
    """The first usable time at :data:`TS_PATHS` in ``payload``, in ms."""
    for path in TS_PATHS:
        try:
            ms = to_ms(lookup(payload, path))
        except KeyError:
            continue
        if ms is not None:
            return ms
    return None


@transform("bitbucket")
def bitbucket(webhook: Webhook) -> Event:
    """One Bitbucket webhook -> one event."""
    payload = webhook.json
    if not isinstance(payload, dict):
        raise ValueError("a Bitbucket payload is a JSON object")
    key = webhook.header("x-event-key")
    noun_verb = dotted(key, ":")
    if noun_verb is None:
        raise ValueError(f"X-Event-Key {key!r} is not noun:verb like repo:push")
    request_id = webhook.header("x-request-uuid")
    return Event(
        name="bitbucket/" + noun_verb,
        id=f"bitbucket-{request_id}" if request_id else None,
        ts=event_time(payload) or webhook.received_at_ms or None,
        data=payload,
    )
