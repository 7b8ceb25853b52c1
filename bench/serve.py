"""Serve a bench ASGI app the way ``webhook-gateway serve`` serves the gateway.

The same uvicorn settings as ``webhook-gateway serve`` (one worker, ``loop`` left on ``auto``
so uvloop is used when installed, the gateway's guarded httptools protocol with the default
``[http]`` limits, no access log, no server header, no proxy headers), so a comparison app pays
the same HTTP layer as the gateway. The socket is bound here to port 0 before uvicorn starts,
and the port is announced on stderr in the same words uvicorn uses, so ``bench/run.py`` finds
every server's port the same way.
"""

from __future__ import annotations

import argparse
import socket
import sys
from collections import Counter
from typing import Any

import uvicorn

from gateway.config import HttpConfig
from gateway.http_server import server_config


class Refusals:
    """The HTTP layer's refusals by reason (a bench run should see none)."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()

    def refused_http(self, reason: str) -> None:
        self.counts[reason] += 1


def parse_args(description: str, argv: list[str] | None = None) -> argparse.Namespace:
    """``--host`` and ``--port`` (0 picks a free port), as ``webhook-gateway serve`` takes."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    return parser.parse_args(argv)


def serve(app: Any, host: str, port: int) -> None:
    """Bind, announce ``Uvicorn running on http://HOST:PORT``, then serve until SIGTERM/SIGINT."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)  # connections queue here until uvicorn takes the socket over
    bound_host, bound_port = sock.getsockname()[:2]
    config = server_config(
        app,
        HttpConfig(),
        Refusals(),
        log_config=None,
        access_log=False,
        server_header=False,
        proxy_headers=False,
        lifespan="auto",
    )
    server = uvicorn.Server(config)
    sys.stderr.write(f'{{"msg": "Uvicorn running on http://{bound_host}:{bound_port}"}}\n')
    sys.stderr.flush()
    server.run(sockets=[sock])
