"""Readings for the bench that are not a server's own figures: the machine, the data
directory's file system, the gateway's outbox commit histogram (from ``/metrics``)."""

from __future__ import annotations

import math
import os
import platform
from pathlib import Path
from typing import Any

import procs

SERVER_CPU = 0
LOADGEN_CPU = 1


class BenchError(RuntimeError):
    """A step failed; the message says which."""


def machine_info(pinning: bool) -> dict[str, Any]:
    cpu_model = ""
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu_model = line.split(":", 1)[1].strip()
            break
    versions: dict[str, str] = {}
    for module in ("uvicorn", "starlette", "uvloop", "httptools", "httpx", "stripe", "orjson"):
        try:
            versions[module] = __import__(module).__version__
        except (ImportError, AttributeError):
            versions[module] = "not installed"
    mem_kb = 0
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            mem_kb = int(line.split()[1])
    return {
        "nproc": os.cpu_count(),
        "cpu_model": cpu_model,
        "memory_mib": mem_kb // 1024,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "versions": versions,
        "pinning": (
            f"servers on CPU {SERVER_CPU}; load generator and Event API stand-in on CPU "
            f"{LOADGEN_CPU} (taskset)"
            if pinning
            else "none (taskset missing or fewer than 2 CPUs)"
        ),
    }


def fs_type(path: Path) -> str:
    """The file system type of the mount that holds ``path``."""
    best, kind = "", "unknown"
    resolved = str(path.resolve())
    for line in Path("/proc/mounts").read_text().splitlines():
        parts = line.split()
        if len(parts) >= 3 and resolved.startswith(parts[1]) and len(parts[1]) > len(best):
            best, kind = parts[1], parts[2]
    return kind


_COMMIT_BUCKET = "webhook_gateway_outbox_commit_seconds_bucket"


def commit_histogram(server: procs.Server) -> dict[float, float]:
    """The gateway's outbox commit-duration histogram: cumulative count by upper bound (s)."""
    status, body = procs.request(server.port, "GET", "/metrics", timeout=30.0)
    if status != 200:
        raise BenchError(f"gateway /metrics answered {status}")
    buckets: dict[float, float] = {}
    for line in body.decode().splitlines():
        if line.startswith(_COMMIT_BUCKET + "{"):
            bound = line.split('le="', 1)[1].split('"', 1)[0]
            buckets[float(bound)] = float(line.rsplit(" ", 1)[1])
    return buckets


def commit_summary(before: dict[float, float], after: dict[float, float]) -> dict[str, Any]:
    """Commits during a run, and how many took longer than 10 ms and 100 ms (fsync stalls)."""
    diff = {bound: after[bound] - before.get(bound, 0.0) for bound in after}
    total = diff.get(math.inf, 0.0)
    return {
        "commits": int(total),
        "over_10ms": int(total - diff.get(0.01, total)),
        "over_100ms": int(total - diff.get(0.1, total)),
    }
