"""Turn bench results into the printed table, the targets and the ratio line."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

TARGETS = {
    "ceiling_ratio": 0.70,  # gateway req/s >= 0.70 x ceiling req/s
    "peer_ratio": 5.0,  # gateway req/s >= 5 x peer req/s
    "p99_half_load_ms": 10.0,  # gateway p99 at half its maximum load < 10 ms
    "drain_events_per_request": 100.0,  # >= 100 events per outbound request while draining
}
SERVERS = ("ceiling", "peer", "gateway")


def _num(value: float | None, fmt: str = "{:,.0f}") -> str:
    return "-" if value is None else fmt.format(value)


def _get(result: dict[str, Any], *path: str) -> Any:
    node: Any = result
    for key in path:
        if not isinstance(node, dict) or key not in node:
            return None
        node = node[key]
    return node


Row = tuple[str, Callable[[dict[str, Any]], str]]

_ROWS: list[Row] = [
    ("accepted webhooks/s (saturation)", lambda r: _num(_get(r, "saturation", "accepted_rate"))),
    (
        "ack latency p50 / p99, saturation (ms)",
        lambda r: _pair(_get(r, "saturation", "latency_ms")),
    ),
    ("fixed offered load (req/s)", lambda r: _num(_get(r, "half_load", "offered_rate"))),
    (
        "ack latency p50 / p99, half load (ms)",
        lambda r: _pair(_get(r, "half_load", "latency_ms")),
    ),
    (
        "  generator's own timer lag p99 (ms)",
        lambda r: _num(_get(r, "half_load", "send_lag_ms", "p99"), "{:.2f}"),
    ),
    (
        "  due -> sent p99, incl. waiting for a connection",
        lambda r: _num(_get(r, "half_load", "send_wait_ms", "p99"), "{:.2f}"),
    ),
    (
        "  outbox commits over 10 ms / 100 ms (fsync stalls)",
        lambda r: _stalls(_get(r, "half_load", "outbox_commits")),
    ),
    (
        "events/s delivered to Event API (saturation)",
        lambda r: _num(_get(r, "delivery", "window_events_per_s")),
    ),
    (
        "events per outbound request",
        lambda r: _num(_get(r, "delivery", "events_per_request"), "{:,.1f}"),
    ),
    (
        "delivery caught up after load (s)",
        lambda r: _num(_get(r, "delivery", "catch_up_s"), "{:.2f}"),
    ),
    ("delivered exactly once (distinct ids)", lambda r: _once(r)),
    ("peak RSS (MiB)", lambda r: _num(_kib_to_mib(_get(r, "memory_kb", "VmHWM")), "{:.1f}")),
    ("CPU s per 1,000 webhooks", lambda r: _num(_get(r, "cpu", "per_1000_s"), "{:.3f}")),
    ("server CPU busy during saturation", lambda r: _pct(_get(r, "cpu", "window_share"))),
    (
        "load generator CPU (its own core)",
        lambda r: _pct(_get(r, "saturation", "loadgen_cpu_share")),
    ),
    (
        "stand-in CPU (load generator's core)",
        lambda r: _pct(_get(r, "saturation", "sink_cpu_share")),
    ),
    (
        "other processes' CPU during saturation",
        lambda r: _pct(_get(r, "saturation", "other_cpu_cores")),
    ),
]


def _pair(latency: dict[str, float] | None) -> str:
    if not latency:
        return "-"
    return f"{latency['p50']:.2f} / {latency['p99']:.2f}"


def _stalls(commits: dict[str, int] | None) -> str:
    if not commits:
        return "-"
    return f"{commits['over_10ms']} / {commits['over_100ms']} of {commits['commits']:,}"


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.0f}%"


def _kib_to_mib(value: int | None) -> float | None:
    return None if value is None else value / 1024


def _once(result: dict[str, Any]) -> str:
    delivery = result.get("delivery") or {}
    if "distinct_ids" not in delivery:
        return "-"
    ok = delivery.get("exactly_once")
    return f"{'yes' if ok else 'NO'} ({delivery['distinct_ids']:,})"


def table(results: dict[str, Any]) -> str:
    """The load table: one block of columns per body size."""
    lines: list[str] = []
    for label, by_server in results["load"].items():
        size = by_server.get("body_bytes")
        lines.append(f"\nBody {label} ({size:,} bytes)")
        width = max(len(name) for name, _ in _ROWS)
        header = f"  {'':<{width}}  " + "  ".join(f"{s:>14}" for s in SERVERS)
        lines.append(header)
        lines.append("  " + "-" * (len(header) - 2))
        for name, cell in _ROWS:
            cells = [cell(by_server[s]) if s in by_server else "-" for s in SERVERS]
            lines.append(f"  {name:<{width}}  " + "  ".join(f"{c:>14}" for c in cells))
    return "\n".join(lines)


def drain_table(drain: dict[str, Any]) -> str:
    rows = [
        ("webhooks accepted while the Event API was down", _num(drain.get("accepted"))),
        ("acceptance rate while down (webhooks/s)", _num(drain.get("accept_rate"))),
        ("requests answered 503 while down", _num(drain.get("requests_while_down"))),
        ("release -> first accepted batch (s)", _num(drain.get("wait_first_batch_s"), "{:.2f}")),
        ("first -> last accepted batch (s)", _num(drain.get("transfer_s"), "{:.2f}")),
        ("time to drain, from release (s)", _num(drain.get("drain_s"), "{:.2f}")),
        ("drain rate (events/s, first -> last batch)", _num(drain.get("transfer_events_per_s"))),
        ("outbound requests used (accepted)", _num(drain.get("ok_requests"))),
        ("events per outbound request", _num(drain.get("events_per_request"), "{:,.1f}")),
        ("largest batch (events)", _num(drain.get("max_batch"))),
        ("every event exactly once (by id)", "yes" if drain.get("exactly_once") else "NO"),
        ("gateway CPU during drain (s)", _num(drain.get("cpu_s"), "{:.2f}")),
        ("peak RSS (MiB)", _num(_kib_to_mib(_get(drain, "memory_kb", "VmHWM")), "{:.1f}")),
    ]
    width = max(len(name) for name, _ in rows)
    out = [f"\nDrain test ({drain.get('body_label', '')} bodies; {drain.get('config_note', '')})"]
    out += [f"  {name:<{width}}  {value:>14}" for name, value in rows]
    return "\n".join(out)


def evaluate(results: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """Ratios and targets (met / missed) from the results; and their printed lines."""
    verdicts: dict[str, Any] = {}
    lines: list[str] = ["", "Targets"]
    ratio_parts: list[str] = []
    for label, by_server in results["load"].items():
        gateway = _get(by_server, "gateway", "saturation", "accepted_rate")
        ceiling = _get(by_server, "ceiling", "saturation", "accepted_rate")
        peer = _get(by_server, "peer", "saturation", "accepted_rate")
        p99 = _get(by_server, "gateway", "half_load", "latency_ms", "p99")
        checks: dict[str, Any] = {}
        if gateway and ceiling:
            ratio = gateway / ceiling
            checks["gateway/ceiling"] = _verdict(ratio, TARGETS["ceiling_ratio"], ">=")
            ratio_parts.append(f"{label}: gateway/ceiling {ratio:.2f}")
        if gateway and peer:
            ratio = gateway / peer
            checks["gateway/peer"] = _verdict(ratio, TARGETS["peer_ratio"], ">=")
            ratio_parts.append(f"gateway/peer {ratio:.2f}")
        if p99 is not None:
            checks["p99 at half load (ms)"] = _verdict(p99, TARGETS["p99_half_load_ms"], "<")
        verdicts[label] = checks
        for name, check in checks.items():
            lines.append(
                f"  [{label}] {name}: {check['value']:.2f} (target {check['op']} "
                f"{check['target']:g}) {'met' if check['met'] else 'MISSED'}"
            )
    drain = results.get("drain")
    if drain and drain.get("events_per_request") is not None:
        check = _verdict(drain["events_per_request"], TARGETS["drain_events_per_request"], ">=")
        verdicts["drain"] = {"events per outbound request": check}
        lines.append(
            f"  [drain] events per outbound request: {check['value']:.1f} (target >= "
            f"{check['target']:g}) {'met' if check['met'] else 'MISSED'}"
        )
    lines.append("")
    lines.append("Ratios: " + "; ".join(ratio_parts) if ratio_parts else "Ratios: -")
    return verdicts, lines


def _verdict(value: float, target: float, op: str) -> dict[str, Any]:
    met = value >= target if op == ">=" else value < target
    return {"value": value, "target": target, "op": op, "met": met}
