"""Reference 1, the ceiling: a bare Starlette endpoint that reads the body and answers 200.

No verification, no storage, no forwarding: what one uvicorn worker can do for a POST of the
same size on the same settings. ``gateway req/s / ceiling req/s`` is the gateway's ratio.

    python bench/ceiling_app.py --port 0
"""

from __future__ import annotations

from serve import parse_args, serve
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

_ACCEPTED = b'{"status":"accepted"}'


async def receive(request: Request) -> Response:
    """Read the whole body, as the gateway must before it can verify anything."""
    await request.body()
    return Response(_ACCEPTED, 200, media_type="application/json")


app = Starlette(routes=[Route("/webhooks/{source}", receive, methods=["POST"])])

if __name__ == "__main__":
    args = parse_args(__doc__ or "")
    serve(app, args.host, args.port)
