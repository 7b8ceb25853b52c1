"""``bench/run.py --outbox postgres``: the PostgreSQL outbox side by side with SQLite.

One local PostgreSQL (``tests.pg.PgCluster``, fsync on) serves a fresh database per scenario.
Three gateway set-ups take the same load, one body size: one process on the SQLite outbox, one
process on PostgreSQL, two processes sharing one PostgreSQL database (each its own port, the
load split evenly between them, both pinned to the server CPU like every other server). CPU per
webhook counts the gateway processes and the PostgreSQL server's processes (the postmaster, its
live children, and the children it has reaped). Then the drain test runs on each backend.
"""

from __future__ import annotations

import argparse
import resource
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import procs
from payloads import Template
from readings import commit_histogram
from run import Bench, label_of, log

TARGET_PG_RATIO = 0.6  # one PostgreSQL-backed process >= 0.6 x the SQLite backend's webhooks/s
TARGET_DRAIN = 100.0  # events per outbound request while draining
_TICKS = procs._TICKS


def _stat_fields(pid: int | str) -> list[str]:
    raw = Path(f"/proc/{pid}/stat").read_text()
    return raw[raw.rindex(")") + 2 :].split()


def cluster_cpu_seconds(postmaster: int) -> float:
    """CPU seconds of a PostgreSQL server so far: the postmaster, its reaped and live children."""
    fields = _stat_fields(postmaster)
    total = sum(int(fields[i]) for i in (11, 12, 13, 14))  # utime stime cutime cstime
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            child = _stat_fields(entry.name)
        except (OSError, ValueError):
            continue  # gone meanwhile: its time is in the postmaster's cutime now
        if int(child[1]) == postmaster:
            total += int(child[11]) + int(child[12])
    return total / _TICKS


class Group:
    """Several gateway processes measured as one server (summed CPU and memory)."""

    def __init__(self, members: list[procs.Server]) -> None:
        self.members = members
        self.name = f"gateway x{len(members)}"

    def cpu_seconds(self) -> float:
        return sum(m.cpu_seconds() for m in self.members)

    def memory_kb(self) -> dict[str, int]:
        readings = [m.memory_kb() for m in self.members]
        return {key: sum(r.get(key, 0) for r in readings) for key in ("VmHWM", "VmRSS")}

    def stop(self) -> None:
        for member in self.members:
            member.stop()


def _each(group: Group, run: Callable[[int, procs.Server], dict[str, Any]]) -> list[dict[str, Any]]:
    """``run(i, member)`` for every member of ``group`` at the same time; their results."""
    with ThreadPoolExecutor(len(group.members)) as pool:
        return list(pool.map(run, range(len(group.members)), group.members))


def _merge(parts: list[dict[str, Any]], summed: tuple[str, ...]) -> dict[str, Any]:
    """One result from each member's: counts and rates summed, latency figures the worst."""
    merged: dict[str, Any] = dict(parts[0])
    for key, value in parts[0].items():
        if key in summed:
            merged[key] = sum(p[key] for p in parts)
        elif key.endswith("_ms") and isinstance(value, dict):
            merged[key] = {k: max(p[key].get(k, 0.0) for p in parts) for k in value}
        elif key == "duration_s":
            merged[key] = max(p[key] for p in parts)
    merged["members"] = parts
    return merged


class CompareBench(Bench):
    """The bench with a PostgreSQL server counted and gateway groups load-tested together."""

    def __init__(self, args: argparse.Namespace, workdir: Path) -> None:
        super().__init__(args, workdir)
        self.postmaster: int | None = None
        self._ids = threading.Lock()

    counts_db = True

    def db_cpu_seconds(self) -> float:
        return 0.0 if self.postmaster is None else cluster_cpu_seconds(self.postmaster)

    def take_ids(self, count: int) -> int:
        with self._ids:
            return super().take_ids(count)

    def commit_histogram(self, server: Any) -> dict[float, float]:
        if not isinstance(server, Group):
            return commit_histogram(server)
        total: dict[float, float] = {}
        for member in server.members:
            for bound, count in commit_histogram(member).items():
                total[bound] = total.get(bound, 0.0) + count
        return total

    def saturate(
        self, server: Any, template: Template, seconds: float, expect_rate: float
    ) -> dict[str, Any]:
        if not isinstance(server, Group):
            return super().saturate(server, template, seconds, expect_rate)
        n = len(server.members)
        barrier = threading.Barrier(n)
        before = resource.getrusage(resource.RUSAGE_CHILDREN)

        def one(i: int, member: procs.Server) -> dict[str, Any]:
            if self.wrk is None:
                return super(CompareBench, self).saturate(
                    member, template, seconds, expect_rate / n
                )
            return self.run_wrk(
                member,
                template,
                seconds,
                expect_rate / n,
                set_name=f"wrk-set-{i}",
                connections=max(1, self.args.connections // n),
                before_run=lambda: barrier.wait(timeout=600),
            )

        parts = _each(server, one)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        merged = _merge(
            parts, ("requests", "accepted", "non_2xx", "sent", "accepted_rate", "connections")
        )
        if self.wrk is not None:  # each wrk's own reading also counted the other one
            cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
            merged["loadgen_cpu_s"] = cpu
            merged["loadgen_cpu_share"] = cpu / merged["duration_s"]
        else:
            merged["loadgen_cpu_s"] = sum(p["loadgen_cpu_s"] for p in parts)
        return merged

    def fixed_rate(
        self, server: Any, template: Template, rate: float, seconds: float
    ) -> dict[str, Any]:
        if not isinstance(server, Group):
            return super().fixed_rate(server, template, rate, seconds)
        share = rate / len(server.members)
        parts = _each(
            server, lambda _i, m: super(CompareBench, self).fixed_rate(m, template, share, seconds)
        )
        return _merge(parts, ("issued", "answered", "ok", "offered_rate", "failed_count"))

    def load_variant(self, template: Template, url: str | None, processes: int) -> dict[str, Any]:
        """The load scenario for ``processes`` gateways on ``url`` (None: SQLite)."""
        self.gateway_env = {"GATEWAY_DATABASE_URL": url} if url else {}
        members = [self.start_server("gateway", template.label) for _ in range(processes)]
        server: Any = members[0] if processes == 1 else Group(members)
        try:
            result = self._load(server, "gateway", template)
        finally:
            for member in members:
                member.stop()
        result["processes"] = processes
        result["outbox"] = "postgres" if url else "sqlite"
        return result

    def drain_on(self, template: Template, url: str | None) -> dict[str, Any]:
        self.gateway_env = {"GATEWAY_DATABASE_URL": url} if url else {}
        return self.drain(template)


def run(bench: CompareBench, args: argparse.Namespace) -> dict[str, Any]:
    """Start PostgreSQL, run every variant and the drains; return the ``outbox`` results."""
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from tests.pg import PgCluster

    cluster = PgCluster.start_local(fsync=True)
    try:
        assert cluster.directory is not None
        pid_file = cluster.directory / "data" / "postmaster.pid"
        bench.postmaster = int(pid_file.read_text().split("\n", 1)[0])
        log(f"PostgreSQL started (fsync on), postmaster pid {bench.postmaster}")
        size = int(args.sizes.split(",")[0])
        template = Template.make(label_of(size), size, bench.created)
        variants: dict[str, Any] = {}
        for name, processes, url in (
            ("sqlite", 1, None),
            ("postgres", 1, cluster.new_database()),
            ("postgres x2", 2, cluster.new_database()),
        ):
            log(f"outbox comparison: {name}")
            variants[name] = bench.load_variant(template, url, processes)
        drains: dict[str, Any] = {}
        if not args.no_drain:
            for name, url in (("sqlite", None), ("postgres", cluster.new_database())):
                log(f"outbox comparison: drain on {name}")
                drains[name] = bench.drain_on(template, url)
        server_version = _server_version(cluster.url)
    finally:
        bench.gateway_env = {}
        cluster.close()
    return {
        "body_label": template.label,
        "body_bytes": template.body_length,
        "postgres": f"{server_version}, local unix socket, fsync on, server processes not pinned",
        "variants": variants,
        "drain": drains,
    }


def _server_version(url: str) -> str:
    import psycopg

    with psycopg.connect(url) as conn:
        row = conn.execute("SHOW server_version").fetchone()
    return f"PostgreSQL {row[0] if row else '?'}"


def _get(node: Any, *path: str) -> Any:
    for key in path:
        if not isinstance(node, dict) or key not in node:
            return None
        node = node[key]
    return node


def _fmt(value: float | None, spec: str = "{:,.0f}") -> str:
    return "-" if value is None else spec.format(value)


def _cpu_ms(result: dict[str, Any], which: str) -> float | None:
    gateway = _get(result, "cpu", "per_1000_s")
    db = _get(result, "cpu", "db_per_1000_s") or 0.0
    if gateway is None:
        return None
    return {"gateway": gateway, "db": db, "total": gateway + db}[which]


def _pair(latency: dict[str, float] | None) -> str:
    return "-" if not latency else f"{latency['p50']:.2f} / {latency['p99']:.2f}"


def table(outbox: dict[str, Any]) -> str:
    variants: dict[str, Any] = outbox["variants"]
    drains: dict[str, Any] = outbox.get("drain", {})
    rows: list[tuple[str, Any]] = [
        ("accepted webhooks/s (saturation)",
         lambda r: _fmt(_get(r, "saturation", "accepted_rate"))),
        ("CPU ms per webhook, gateway", lambda r: _fmt(_cpu_ms(r, "gateway"), "{:.3f}")),
        ("CPU ms per webhook, database server", lambda r: _fmt(_cpu_ms(r, "db"), "{:.3f}")),
        ("CPU ms per webhook, both", lambda r: _fmt(_cpu_ms(r, "total"), "{:.3f}")),
        ("gateway CPU busy during saturation", lambda r: _pct(_get(r, "cpu", "window_share"))),
        ("database CPU during saturation", lambda r: _pct(_get(r, "cpu", "db_window_share"))),
        ("fixed offered load (req/s)", lambda r: _fmt(_get(r, "half_load", "offered_rate"))),
        ("ack latency p50 / p99, half load (ms)",
         lambda r: _pair(_get(r, "half_load", "latency_ms"))),
        ("events per outbound request (saturation)",
         lambda r: _fmt(_get(r, "delivery", "events_per_request"), "{:,.1f}")),
        ("delivered exactly once",
         lambda r: "yes" if _get(r, "delivery", "exactly_once") else "NO"),
        ("load generator CPU", lambda r: _pct(_get(r, "saturation", "loadgen_cpu_share"))),
        ("other processes' CPU during saturation",
         lambda r: _pct(_get(r, "saturation", "other_cpu_cores"))),
    ]  # fmt: skip
    names = list(variants)
    width = max(len(label) for label, _ in rows)
    lines = [
        f"\nOutbox backends, body {outbox['body_label']} ({outbox['body_bytes']:,} bytes); "
        f"{outbox['postgres']}",
        f"  {'':<{width}}  " + "  ".join(f"{n:>14}" for n in names),
    ]
    lines.append("  " + "-" * (len(lines[-1]) - 2))
    for label, cell in rows:
        lines.append(f"  {label:<{width}}  " + "  ".join(f"{cell(variants[n]):>14}" for n in names))
    if drains:
        drain_rows: list[tuple[str, Any]] = [
            ("drain: webhooks accepted while down", lambda d: _fmt(d.get("accepted"))),
            ("drain: time to drain from release (s)", lambda d: _fmt(d.get("drain_s"), "{:.2f}")),
            ("drain: outbound requests", lambda d: _fmt(d.get("ok_requests"))),
            ("drain: events per outbound request",
             lambda d: _fmt(d.get("events_per_request"), "{:,.1f}")),
            ("drain: every event exactly once", lambda d: "yes" if d.get("exactly_once") else "NO"),
        ]  # fmt: skip
        lines.append("")
        for label, cell in drain_rows:
            lines.append(
                f"  {label:<{width}}  "
                + "  ".join(f"{cell(drains[n]) if n in drains else '-':>14}" for n in names)
            )
    return "\n".join(lines)


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.0f}%"


def evaluate(outbox: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """The two targets of the PostgreSQL outbox, met or missed."""
    verdicts: dict[str, Any] = {}
    lines = ["", "Targets (outbox backends)"]
    sqlite = _get(outbox, "variants", "sqlite", "saturation", "accepted_rate")
    pg = _get(outbox, "variants", "postgres", "saturation", "accepted_rate")
    if sqlite and pg:
        ratio = pg / sqlite
        met = ratio >= TARGET_PG_RATIO
        verdicts["postgres/sqlite"] = {"value": ratio, "target": TARGET_PG_RATIO, "met": met}
        lines.append(
            f"  one PostgreSQL-backed process / SQLite, webhooks/s: {ratio:.2f} "
            f"(target >= {TARGET_PG_RATIO:g}) {'met' if met else 'MISSED'}"
        )
    per_request = _get(outbox, "drain", "postgres", "events_per_request")
    if per_request is not None:
        met = per_request >= TARGET_DRAIN
        verdicts["postgres drain"] = {"value": per_request, "target": TARGET_DRAIN, "met": met}
        lines.append(
            f"  PostgreSQL drain, events per outbound request: {per_request:.1f} "
            f"(target >= {TARGET_DRAIN:g}) {'met' if met else 'MISSED'}"
        )
    return verdicts, lines
