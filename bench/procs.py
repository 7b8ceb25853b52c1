"""Server subprocesses for the bench: start, find the port, read CPU and memory, stop.

Every server is its own process on 127.0.0.1, started with ``--port 0``; its port is read from
the ``Uvicorn running on http://127.0.0.1:PORT`` line it writes to stderr. CPU time and peak RSS
come from ``/proc/<pid>/stat`` and ``/proc/<pid>/status`` (they cover every thread).
"""

from __future__ import annotations

import http.client
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

_RUNNING = re.compile(rb"Uvicorn running on http://127\.0\.0\.1:(\d+)")
_TICKS = os.sysconf("SC_CLK_TCK")
TASKSET = shutil.which("taskset")


class ServerFailed(RuntimeError):
    """A server did not start, or died."""


def system_cpu() -> tuple[float, float]:
    """Machine-wide busy and steal CPU seconds so far (all CPUs, from ``/proc/stat``)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields[:8]
    return (user + nice + system + irq + softirq) / _TICKS, steal / _TICKS


def pinned(argv: Sequence[str], cpu: int | None) -> list[str]:
    """``argv`` run on one CPU with ``taskset`` (which execs, so the pid stays the server's)."""
    if cpu is None or TASKSET is None:
        return list(argv)
    return [TASKSET, "-c", str(cpu), *argv]


@dataclass
class Server:
    """One running server process."""

    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path
    port: int = 0
    stopped: bool = field(default=False)

    @property
    def pid(self) -> int:
        return self.popen.pid

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def cpu_seconds(self) -> float:
        """User + system CPU time of the whole process so far."""
        raw = Path(f"/proc/{self.pid}/stat").read_text()
        fields = raw[raw.rindex(")") + 2 :].split()
        return (int(fields[11]) + int(fields[12])) / _TICKS

    def memory_kb(self) -> dict[str, int]:
        """``VmHWM`` (peak RSS) and ``VmRSS`` in KiB."""
        out: dict[str, int] = {}
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("VmHWM", "VmRSS"):
                out[key] = int(value.split()[0])
        return out

    def alive(self) -> bool:
        return self.popen.poll() is None

    def log_tail(self, lines: int = 20) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self, timeout: float = 45.0) -> int | None:
        """SIGTERM, wait up to ``timeout`` seconds, then SIGKILL; returns the exit status."""
        if self.stopped:
            return self.popen.returncode
        self.stopped = True
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(10)
        return self.popen.returncode


def start(
    name: str,
    argv: Sequence[str],
    env: Mapping[str, str],
    log_path: Path,
    *,
    cpu: int | None,
    cwd: Path,
    ready_path: str | None = None,
    timeout: float = 60.0,
) -> Server:
    """Start ``argv`` pinned to ``cpu``; return once it listens (and ``ready_path`` answers)."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "wb") as log:
        popen = subprocess.Popen(
            pinned(argv, cpu),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=dict(env),
            cwd=cwd,
            start_new_session=True,  # a Ctrl-C on the bench reaches only the bench
        )
    server = Server(name, popen, log_path)
    deadline = time.monotonic() + timeout
    try:
        while True:
            match = _RUNNING.search(log_path.read_bytes())
            if match:
                server.port = int(match.group(1))
                break
            if popen.poll() is not None:
                raise ServerFailed(f"{name} exited with {popen.returncode}:\n{server.log_tail()}")
            if time.monotonic() > deadline:
                raise ServerFailed(f"{name} did not start in {timeout:.0f}s:\n{server.log_tail()}")
            time.sleep(0.05)
        if ready_path is not None:
            wait_ready(server, ready_path, deadline)
    except BaseException:
        server.stop(timeout=10)
        raise
    return server


def wait_ready(server: Server, path: str, deadline: float) -> None:
    """Poll ``GET path`` until it answers 200."""
    while True:
        try:
            status, _ = request(server.port, "GET", path, timeout=2.0)
            if status == 200:
                return
        except OSError:
            pass
        if not server.alive():
            raise ServerFailed(f"{server.name} died:\n{server.log_tail()}")
        if time.monotonic() > deadline:
            raise ServerFailed(f"{server.name} never became ready on {path}")
        time.sleep(0.05)


def request(
    port: int, method: str, path: str, body: bytes | None = None, timeout: float = 10.0
) -> tuple[int, bytes]:
    """One HTTP request to 127.0.0.1:``port``."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, body=body)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()
