"""``webhook-gateway serve``: the public server, and the console on its admin port."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import socket
from collections.abc import Iterator, Mapping
from typing import Any

from gateway.commands.common import load
from gateway.config import ConfigError

DEFAULT_HOST = "0.0.0.0"
DEFAULT_PORT = 8080


def run(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    import uvicorn

    from gateway.app import build_gateway, create_app
    from gateway.http_server import (
        ConsoleRefusals,
        connection_cap,
        console_limits,
        raise_fd_limit,
        server_config,
    )
    from gateway.logs import configure_logging

    config = load(args, environ)
    level = args.log_level or config.gateway.log_level
    configure_logging(level)  # start-up warnings (a plugin overriding a built-in) as JSON lines
    gateway = build_gateway(config, environ, dev=args.dev)
    log = configure_logging(level, gateway.secrets)
    if not gateway.sources:
        log.warning(
            "no sources configured: set a provider's secret variable (STRIPE_WEBHOOK_SECRET, "
            "<NAME>_WEBHOOK_SECRET; 'webhook-gateway providers' lists them), or pass --config"
        )
    app = create_app(gateway)
    _freeze_startup_heap()
    raise_fd_limit(config.http.max_connections)
    cap = connection_cap(config.http.max_connections)
    if cap < config.http.max_connections:
        log.warning(
            "http.max_connections lowered by the file descriptor limit (ulimit -n)",
            extra={"max_connections": cap, "configured": config.http.max_connections},
        )
    public = server_config(
        app,
        config.http,
        gateway.metrics,
        host=args.host,
        port=args.port,
        log_config=None,
        access_log=False,
        server_header=False,
        proxy_headers=False,
        timeout_graceful_shutdown=int(config.forwarder.shutdown_deadline) + 5,
    )
    if not config.console.enabled:
        uvicorn.Server(public).run()
        return 0
    from gateway.console import create_console_app

    console = config.console
    sock = _bind(console.host, console.port)
    admin = server_config(
        create_console_app(gateway),
        console_limits(config.http),
        ConsoleRefusals(gateway.metrics),
        lifespan="off",
        log_config=None,
        access_log=False,
        server_header=False,
        proxy_headers=False,
        timeout_graceful_shutdown=5,
    )
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    log.info("console listening", extra={"url": f"http://{shown}:{port}/console"})
    asyncio.run(_serve_both(uvicorn.Server(public), uvicorn.Server(admin), sock))
    return 0


def _freeze_startup_heap() -> None:
    """Keep the start-up heap out of the garbage collector's full collections.

    Modules, classes, pydantic schemas and the stripe package are some 70,000 objects that live
    as long as the process. A full (generation 2) collection walks them all: on the 2-core bench
    machine that stalled the event loop for 40-55 ms every few seconds under load. Frozen, they
    are never collected (they would not be anyway) and a full collection takes a few ms.
    """
    gc.collect()
    gc.freeze()


def _bind(host: str, port: int) -> socket.socket:
    """The admin port's socket, bound before anything starts so a clash stops ``serve``."""
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
        return socket.create_server((host, port), family=family, backlog=128)
    except OSError as exc:
        raise ConfigError(f"console.port: cannot listen on {host}:{port}: {exc.strerror}") from None


async def _serve_both(public: Any, admin: Any, sock: socket.socket) -> None:
    """The public server (which owns the lifespan and the signals) and the admin server.

    The admin server stops as soon as the public one starts to shut down.
    """

    @contextlib.contextmanager
    def no_signals() -> Iterator[None]:
        yield

    admin.capture_signals = no_signals  # the public server handles SIGTERM/SIGINT for both
    admin_task = asyncio.create_task(admin.serve(sockets=[sock]))

    async def follow() -> None:
        while not public.should_exit and not admin_task.done():
            await asyncio.sleep(0.1)
        admin.should_exit = True

    follower = asyncio.create_task(follow())
    try:
        await public.serve()
    finally:
        admin.should_exit = True
        await follower
        with contextlib.suppress(Exception):
            await admin_task
