"""GitLab hooks become ``gitlab/<object_kind>[.<action>]`` events.

- ``name``: ``"gitlab/" + object_kind`` (``push``, ``tag_push``, ``merge_request``, ``issue``,
  ``note``, ``pipeline``, ``build``, ...) plus ``"." + object_attributes.action`` when there is
  one (``gitlab/merge_request.open``, ``gitlab/issue.close``); else ``X-Gitlab-Event`` in
  snake case (``Push Hook`` -> ``gitlab/push_hook``) when the payload has no ``object_kind``;
  system hooks' ``event_name`` with its first ``_`` as the dot (``gitlab/project.create``).
- ``id``: ``"gitlab-" + Idempotency-Key`` (kept on retries), else ``X-Gitlab-Event-UUID``.
- ``ts``: ``object_attributes.updated_at`` (GitLab writes ISO-8601 or ``2024-01-02 03:04:05
  UTC``), else the receive time.
- ``data``: the payload.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from gateway import Event, Webhook, transform
from gateway.providers.gitlab import ID_HEADERS
from transforms._naming import snake


def _ms(value: Any) -> int | None:
    if not isinstance(value, str):
        return None
    text = value.replace(" UTC", "+00:00").replace("Z", "+00:00")
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    if moment.tzinfo is None or not 1980 <= moment.year < 2100:
        return None
    return int(moment.timestamp() * 1000)


@transform("gitlab")
def gitlab(webhook: Webhook) -> Event:
    """One GitLab hook -> one event."""
    payload = webhook.json
    if not isinstance(payload, dict):
        raise ValueError("a GitLab payload is a JSON object")
    kind = payload.get("object_kind")
    system = payload.get("event_name")
    if not kind and isinstance(system, str) and system:
        kind = system.replace("_", ".", 1)  # system hooks: project_create -> project.create
    if not isinstance(kind, str) or not kind:
        header = webhook.header("x-gitlab-event") or ""
        kind = snake(header)
    if not kind:
        raise ValueError("a GitLab payload has object_kind or an X-Gitlab-Event header")
    attributes = payload.get("object_attributes")
    attributes = attributes if isinstance(attributes, dict) else {}
    action = attributes.get("action")
    name = f"gitlab/{kind}.{action}" if isinstance(action, str) and action else f"gitlab/{kind}"
    delivery = next((v for h in ID_HEADERS if (v := webhook.header(h))), None)
    return Event(
        name=name,
        id=f"gitlab-{delivery}" if delivery else None,
        ts=_ms(attributes.get("updated_at")) or webhook.received_at_ms or None,
        data=payload,
    )
