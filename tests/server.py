"""Run the real gateway over a real loopback socket (port 0) for integration tests."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import pytest
import uvicorn

from gateway.app import build_gateway, create_app
from gateway.config import Config
from gateway.http_server import server_config


class ThreadedServer:
    """uvicorn serving an ASGI app in a background thread; ``url`` once started."""

    def __init__(self, app: Any) -> None:
        options: dict[str, Any] = {
            "host": "127.0.0.1",
            "port": 0,
            "log_config": None,
            "access_log": False,
            "lifespan": "on",
        }
        gateway = getattr(getattr(app, "state", None), "gateway", None)
        if gateway is not None and hasattr(app, "receiver"):  # the public app: as serve runs it
            self.config = server_config(app, gateway.config.http, gateway.metrics, **options)
        else:
            self.config = uvicorn.Config(app, **options)
        self.server = uvicorn.Server(self.config)
        self.server.install_signal_handlers = lambda: None  # type: ignore[method-assign]
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.url = ""

    def start(self, timeout: float = 30.0) -> None:
        self.thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("gateway did not start")
            time.sleep(0.01)
        port = self.server.servers[0].sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=60)


@contextmanager
def run_gateway(
    config: Config, environ: Mapping[str, str] | None = None, *, dev: bool = False
) -> Iterator[ThreadedServer]:
    """Build the gateway from ``config`` and serve it on 127.0.0.1:<free port>."""
    gateway = build_gateway(config, environ or {}, dev=dev)
    server = ThreadedServer(create_app(gateway))
    server.start()
    try:
        yield server
    finally:
        server.stop()


def console_script() -> list[str]:
    """The installed ``webhook-gateway`` script next to this interpreter (or on PATH)."""
    beside = Path(sys.executable).with_name("webhook-gateway")
    found = str(beside) if beside.exists() else shutil.which("webhook-gateway")
    if found is None:
        pytest.skip("the webhook-gateway console script is not installed")
    return [found]


_LISTENING = re.compile(r"Uvicorn running on http://[\d.]+:(\d+)")


class GatewayProcess:
    """``webhook-gateway serve`` as a subprocess on port 0; the port is read from its log."""

    def __init__(
        self,
        args: list[str],
        env: Mapping[str, str],
        log_path: Path,
        *,
        command: list[str] | None = None,
        cwd: Path | None = None,
    ) -> None:
        """``command`` defaults to ``python -m gateway``; ``["webhook-gateway"]`` is the script."""
        self.log_path = log_path
        self._log: IO[bytes] = open(log_path, "wb")  # noqa: SIM115 - closed in stop()
        full_env = {**os.environ, **env}
        program = command or [sys.executable, "-m", "gateway"]
        self.proc = subprocess.Popen(
            [*program, "serve", "--host", "127.0.0.1", "--port", "0", *args],
            env=full_env,
            cwd=cwd,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        self.url = ""

    def wait_ready(self, timeout: float = 60.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = self.log_path.read_text(errors="replace")
            match = _LISTENING.search(text)
            if match:
                self.url = f"http://127.0.0.1:{match.group(1)}"
                return self.url
            if self.proc.poll() is not None:
                raise RuntimeError(f"gateway exited with {self.proc.returncode}:\n{text}")
            time.sleep(0.05)
        raise RuntimeError(f"gateway did not report its port:\n{self.log_path.read_text()}")

    def stop(self, sig: int | None = None, timeout: float = 60.0) -> int:
        if self.proc.poll() is None:
            if sig is None:
                self.proc.terminate()
            else:
                self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        return self.proc.returncode


def anyio_run(coro: Any) -> Any:
    """Run a coroutine to completion from a sync test."""
    return asyncio.run(coro)
