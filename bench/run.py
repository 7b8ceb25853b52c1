"""Benchmark the gateway against a bare-Starlette ceiling and a hand-written peer.

    python bench/run.py            # full run (about 6 minutes on 2 cores)
    python bench/run.py --quick    # shorter runs, 10,000-webhook drain, for development

Every server is a separate process on 127.0.0.1 (port 0), pinned to CPU 0; the load generator
and the Event API stand-in share CPU 1. See bench/README.md for what is measured and how.
Writes bench/results/<UTC timestamp>.json and bench/results/latest.json.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import payloads
import procs
import report
from payloads import Template
from readings import (
    LOADGEN_CPU,
    SERVER_CPU,
    BenchError,
    commit_histogram,
    commit_summary,
    fs_type,
    machine_info,
)

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
RESULTS = BENCH / "results"
MAX_WRK_SET = 3_000_000  # pre-signed requests per wrk run, at most


def log(message: str) -> None:
    sys.stderr.write(f"[bench {time.strftime('%H:%M:%S')}] {message}\n")
    sys.stderr.flush()


class Bench:
    """Owns every process it starts and stops them all in :meth:`close`."""

    def __init__(self, args: argparse.Namespace, workdir: Path) -> None:
        self.args = args
        self.workdir = workdir
        self.servers: list[procs.Server] = []
        self.tag = payloads.random_tag()
        self.next_id = 0
        self.secret = "whsec_" + payloads.random_tag(32)
        self.event_key = "benchkey" + payloads.random_tag(24)
        self.pin = procs.TASKSET is not None and (os.cpu_count() or 1) >= 2
        self.wrk = None if args.generator == "asyncio" else shutil.which("wrk")
        self.sink: procs.Server | None = None
        self.created = int(time.time())
        self.gateway_env: dict[str, str] = {}  # extra environment for gateways (the outbox URL)

    # -- processes ---------------------------------------------------------------------------

    def cpu(self, which: int) -> int | None:
        return which if self.pin else None

    def env(self, data_dir: Path | None = None) -> dict[str, str]:
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("INNGEST_", "GATEWAY_", "STRIPE_", "SLACK_", "INTERCOM_"))
        }
        env.update(
            STRIPE_WEBHOOK_SECRET=self.secret,
            INNGEST_EVENT_KEY=self.event_key,
            PYTHONPATH=str(REPO),
        )
        if self.sink is not None:
            env["INNGEST_EVENT_API_BASE_URL"] = self.sink.url
        if data_dir is not None:
            env["GATEWAY_DATA_DIR"] = str(data_dir)
        return env

    def start_sink(self) -> None:
        self.sink = self._start(
            "eventapi-sink",
            [
                sys.executable,
                str(BENCH / "eventapi_sink.py"),
                "--port",
                "0",
                "--key",
                self.event_key,
            ],
            cpu=self.cpu(LOADGEN_CPU),
        )

    def start_server(self, kind: str, label: str, config: Path | None = None) -> procs.Server:
        root = self.args.data_root or self.workdir
        data_dir = root / f"data-{kind}-{label.replace(' ', '')}-{len(self.servers)}"
        extra: dict[str, str] = {}
        if kind == "gateway":
            argv = [sys.executable, "-m", "gateway", "serve", "--host", "127.0.0.1", "--port", "0"]
            if config is not None:
                argv += ["--config", str(config)]
            ready: str | None = "/readyz"
            extra = self.gateway_env
        else:
            argv = [sys.executable, str(BENCH / f"{kind}_app.py"), "--port", "0"]
            ready = None
        return self._start(
            kind, argv, cpu=self.cpu(SERVER_CPU), data_dir=data_dir, ready=ready, extra=extra
        )

    def _start(
        self,
        name: str,
        argv: list[str],
        *,
        cpu: int | None,
        data_dir: Path | None = None,
        ready: str | None = None,
        extra: dict[str, str] | None = None,
    ) -> procs.Server:
        log_path = self.workdir / "logs" / f"{len(self.servers):02d}-{name}.log"
        server = procs.start(
            name,
            argv,
            {**self.env(data_dir), **(extra or {})},
            log_path,
            cpu=cpu,
            cwd=REPO,
            ready_path=ready,
        )
        self.servers.append(server)
        log(f"{name} listening on {server.url} (pid {server.pid}, log {log_path})")
        return server

    def close(self) -> None:
        for server in reversed(self.servers):
            status = server.stop()
            if status not in (0, None, -signal.SIGTERM):
                log(f"{server.name} exited with status {status}; log: {server.log_path}")

    # -- the Event API stand-in --------------------------------------------------------------

    def sink_call(self, method: str, path: str) -> Any:
        assert self.sink is not None
        status, body = procs.request(self.sink.port, method, path, timeout=30.0)
        if status != 200:
            raise BenchError(f"stand-in {method} {path} answered {status}")
        return json.loads(body)

    def sink_stats(self) -> dict[str, Any]:
        stats: dict[str, Any] = self.sink_call("GET", "/_control/stats")
        return stats

    def wait_delivered(self, expected: int, timeout: float, stall: float = 90.0) -> float | None:
        """Wait until the stand-in holds ``expected`` distinct ids; seconds waited or None."""
        start = time.monotonic()
        last, last_change = -1, start
        while True:
            distinct = self.sink_stats()["distinct_ids"]
            now = time.monotonic()
            if distinct >= expected:
                return now - start
            if distinct != last:
                last, last_change = distinct, now
            if now - start > timeout or now - last_change > stall:
                log(f"delivery stalled: {distinct:,} of {expected:,} after {now - start:.0f}s")
                return None
            time.sleep(0.05)

    # -- load generators ---------------------------------------------------------------------

    def take_ids(self, count: int) -> int:
        first = self.next_id
        self.next_id += count
        return first

    def template_file(self, template: Template) -> Path:
        path = self.workdir / f"template-{template.label.replace(' ', '')}.json"
        if not path.exists():
            path.write_text(json.dumps(template.to_json()))
        return path

    def run_wrk(
        self,
        server: procs.Server,
        template: Template,
        seconds: float,
        expect_rate: float,
        *,
        set_name: str = "wrk-set",
        connections: int | None = None,
        before_run: Callable[[], None] | None = None,
    ) -> dict[str, Any]:
        """Saturate ``server`` with wrk for ``seconds``; every request has its own id.

        ``before_run`` is called once the first set is signed (runs started together wait there).
        """
        assert self.wrk is not None
        connections = connections or self.args.connections
        count = min(MAX_WRK_SET, int(expect_rate * seconds * 1.6) + 5_000)
        for attempt in range(3):
            set_dir = self.workdir / set_name
            shutil.rmtree(set_dir, ignore_errors=True)
            first = self.take_ids(count)
            t0 = time.monotonic()
            payloads.write_wrk_set(
                set_dir,
                template,
                f"127.0.0.1:{server.port}",
                self.secret,
                self.tag,
                first,
                count,
                int(time.time()),  # fresh: the run starts now and lasts far less than 300 s
            )
            prepared = time.monotonic() - t0
            if before_run is not None and attempt == 0:
                before_run()
            argv = procs.pinned(
                [
                    self.wrk,
                    "-t1",
                    f"-c{connections}",
                    f"-d{seconds:g}s",
                    "--timeout",
                    "30s",
                    "-s",
                    str(BENCH / "wrk_stripe.lua"),
                    server.url,
                    "--",
                    str(set_dir),
                    "1",
                ],
                self.cpu(LOADGEN_CPU),
            )
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            done = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 120)
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            line = next(
                (ln for ln in done.stdout.splitlines() if ln.startswith("BENCH_JSON ")), None
            )
            if done.returncode != 0 or line is None:
                raise BenchError(f"wrk failed ({done.returncode}): {done.stdout}\n{done.stderr}")
            raw = json.loads(line[len("BENCH_JSON ") :])
            if raw["exhausted"]:
                log(f"wrk used all {count:,} pre-signed requests; retrying with more")
                count = min(MAX_WRK_SET, count * 2)
                continue
            duration = raw["duration_us"] / 1e6
            cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
            errors = raw["errors"]
            accepted = raw["requests"] - errors["status"]
            return {
                "generator": "wrk",
                "connections": connections,
                "duration_s": duration,
                "requests": raw["requests"],
                "accepted": accepted,
                "non_2xx": errors["status"],
                "socket_errors": {k: v for k, v in errors.items() if k != "status"},
                "sent": raw["sent"],
                "accepted_rate": accepted / duration,
                "latency_ms": {k: v / 1000 for k, v in raw["latency_us"].items()},
                "loadgen_cpu_s": cpu,
                "loadgen_cpu_share": cpu / duration,
                "presigned": count,
                "presign_s": prepared,
                "first_id": first,
            }
        raise BenchError("wrk kept running out of pre-signed requests")

    def run_loadgen(
        self, server: procs.Server, template: Template, *extra: str, timeout: float
    ) -> dict[str, Any]:
        """Run bench/loadgen.py (pinned next to the stand-in) and return its JSON."""
        argv = procs.pinned(
            [
                sys.executable,
                str(BENCH / "loadgen.py"),
                "--port",
                str(server.port),
                "--template",
                str(self.template_file(template)),
                "--tag",
                self.tag,
                *extra,
            ],
            self.cpu(LOADGEN_CPU),
        )
        done = subprocess.run(
            argv, capture_output=True, text=True, env=self.env(), timeout=timeout + 60
        )
        if done.returncode != 0:
            raise BenchError(f"loadgen failed ({done.returncode}):\n{done.stderr[-3000:]}")
        result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
        return result

    def saturate(
        self, server: procs.Server, template: Template, seconds: float, expect_rate: float
    ) -> dict[str, Any]:
        if self.wrk is not None:
            return self.run_wrk(server, template, seconds, expect_rate)
        first = self.take_ids(10_000_000)
        raw = self.run_loadgen(
            server,
            template,
            "--first",
            str(first),
            "--mode",
            "saturate",
            "--connections",
            str(self.args.connections),
            "--duration",
            f"{seconds:g}",
            timeout=seconds,
        )
        return {
            "generator": "asyncio (bench/loadgen.py)",
            "connections": raw["connections"],
            "duration_s": raw["duration_s"],
            "requests": raw["answered"],
            "accepted": raw["ok"],
            "non_2xx": raw["answered"] - raw["ok"],
            "socket_errors": raw["errors"],
            "sent": raw["issued"],
            "accepted_rate": raw["ok"] / raw["duration_s"],
            "latency_ms": raw["latency_ms"],
            "loadgen_cpu_s": raw["cpu_s"],
            "loadgen_cpu_share": raw["cpu_share"],
            "first_id": first,
        }

    def fixed_rate(
        self, server: procs.Server, template: Template, rate: float, seconds: float
    ) -> dict[str, Any]:
        first = self.take_ids(int(rate * seconds) + 10)
        raw = self.run_loadgen(
            server,
            template,
            "--first",
            str(first),
            "--mode",
            "rate",
            "--rate",
            f"{rate:.1f}",
            "--duration",
            f"{seconds:g}",
            "--connections",
            str(self.args.rate_connections),
            timeout=seconds + 10,
        )
        raw.pop("failed", None)
        return raw

    # -- hooks the outbox comparison (bench/outbox_compare.py) overrides ---------------------

    counts_db = False  # whether db_cpu_seconds reads a database server's processes

    def db_cpu_seconds(self) -> float:
        """CPU seconds of the database server's processes so far (none for SQLite)."""
        return 0.0

    def commit_histogram(self, server: procs.Server) -> dict[float, float]:
        return commit_histogram(server)

    # -- scenarios ---------------------------------------------------------------------------

    def load(self, kind: str, template: Template) -> dict[str, Any]:
        """Warm up, saturate, let delivery catch up, then the fixed half-load run."""
        config = self.args.gateway_config if kind == "gateway" else None
        server = self.start_server(kind, template.label, config=config)
        try:
            return self._load(server, kind, template)
        finally:
            server.stop()

    def _load(self, server: procs.Server, kind: str, template: Template) -> dict[str, Any]:
        args = self.args
        forwards = kind in ("gateway", "peer")
        self.sink_call("POST", "/_control/reset")
        log(f"{kind} {template.label}: warm-up {args.warmup:g}s")
        warm = self.saturate(server, template, args.warmup, args.expect_rate)
        if forwards and self.wait_delivered(warm["accepted"], timeout=120) is None:
            raise BenchError(f"{kind}: warm-up events were not all delivered")
        sink0 = self.sink_stats()
        assert self.sink is not None
        db0 = self.db_cpu_seconds()
        cpu0, sink_cpu0, (busy0, steal0) = (
            server.cpu_seconds(),
            self.sink.cpu_seconds(),
            procs.system_cpu(),
        )
        log(f"{kind} {template.label}: saturation {args.duration:g}s")
        t0 = time.monotonic()
        sat = self.saturate(server, template, args.duration, warm["accepted_rate"])
        t1 = time.monotonic()
        cpu1, sink_cpu1, (busy1, steal1) = (
            server.cpu_seconds(),
            self.sink.cpu_seconds(),
            procs.system_cpu(),
        )
        db1 = self.db_cpu_seconds()
        sink1 = self.sink_stats()
        ours = (cpu1 - cpu0) + (sink_cpu1 - sink_cpu0) + sat["loadgen_cpu_s"] + (db1 - db0)
        sat["other_cpu_cores"] = max(0.0, (busy1 - busy0) - ours) / (t1 - t0)
        sat["steal_cpu_cores"] = (steal1 - steal0) / (t1 - t0)
        sat["sink_cpu_share"] = (sink_cpu1 - sink_cpu0) / (t1 - t0)
        if sat["other_cpu_cores"] > 0.1:
            log(
                f"WARNING: other processes used {sat['other_cpu_cores']:.2f} cores during this "
                "run; its figures are disturbed"
            )
        result: dict[str, Any] = {"body_bytes": template.body_length, "saturation": sat}
        log(
            f"{kind} {template.label}: {sat['accepted_rate']:,.0f} accepted/s, "
            f"p99 {sat['latency_ms']['p99']:.2f} ms ({sat['non_2xx']} non-2xx)"
        )
        catch_up = 0.0
        if forwards:
            expected = warm["accepted"] + sat["accepted"]
            waited = self.wait_delivered(expected, timeout=args.catch_up_timeout)
            catch_up = waited if waited is not None else float("nan")
            sink2 = self.sink_stats()
            events = sink2["events"] - sink0["events"]
            ok_requests = sink2["ok_requests"] - sink0["ok_requests"]
            window = t1 - t0
            result["delivery"] = {
                "window_events_per_s": (sink1["events"] - sink0["events"]) / window,
                "window_requests_per_s": (sink1["ok_requests"] - sink0["ok_requests"]) / window,
                "events": events,
                "ok_requests": ok_requests,
                "events_per_request": events / ok_requests if ok_requests else None,
                "catch_up_s": waited,
                "distinct_ids": sink2["distinct_ids"],
                "repeats": sink2["repeats"],
                "non_200_requests": sink2["requests"] - sink2["ok_requests"],
                # Ids answered 200 by the server, against the distinct ids the stand-in got;
                # wrk does not count answers still in flight when it stops, hence <= sent.
                "exactly_once": sink2["repeats"] == 0
                and expected <= sink2["distinct_ids"] <= warm["sent"] + sat["sent"],
            }
        cpu2, db2 = server.cpu_seconds(), self.db_cpu_seconds()
        window = t1 - t0
        result["cpu"] = {
            "window_s": cpu1 - cpu0,
            "window_share": (cpu1 - cpu0) / window,
            "until_delivered_s": cpu2 - cpu0,
            "per_1000_s": (cpu2 - cpu0) / sat["accepted"] * 1000 if sat["accepted"] else None,
            "catch_up_wall_s": catch_up,
        }
        if self.counts_db:
            result["cpu"].update(
                db_window_share=(db1 - db0) / window,
                db_until_delivered_s=db2 - db0,
                db_per_1000_s=(db2 - db0) / sat["accepted"] * 1000 if sat["accepted"] else None,
            )
        rate = max(1.0, sat["accepted_rate"] * args.half_load)
        log(f"{kind} {template.label}: fixed rate {rate:,.0f}/s for {args.rate_duration:g}s")
        commits0 = self.commit_histogram(server) if kind == "gateway" else None
        result["half_load"] = self.fixed_rate(server, template, rate, args.rate_duration)
        half = result["half_load"]
        if commits0 is not None:
            half["outbox_commits"] = commit_summary(commits0, self.commit_histogram(server))
        log(
            f"{kind} {template.label}: half load p50 {half['latency_ms'].get('p50', 0):.2f} ms, "
            f"p99 {half['latency_ms'].get('p99', 0):.2f} ms"
        )
        if forwards:
            self.wait_delivered(
                warm["accepted"] + sat["accepted"] + half["ok"], timeout=args.catch_up_timeout
            )
        result["memory_kb"] = server.memory_kb()
        return result

    def drain(self, template: Template) -> dict[str, Any]:
        """Accept N webhooks while the Event API answers 503, then release it and time the drain."""
        args = self.args
        config = None
        note = "gateway defaults"
        if args.drain_backoff_max is not None:
            config = self.workdir / "drain.toml"
            config.write_text(
                "[[sources]]\n"
                'name = "stripe"\nprovider = "stripe"\nsecrets = ["env:STRIPE_WEBHOOK_SECRET"]\n'
                f"\n[forwarder]\nbackoff_max = {args.drain_backoff_max}\n"
            )
            note = f"forwarder.backoff_max = {args.drain_backoff_max:g} s, other settings default"
        server = self.start_server("gateway", f"drain-{template.label}", config=config)
        try:
            self.sink_call("POST", "/_control/reset")
            self.sink_call("POST", "/_control/down")
            count = args.drain_count
            first = self.take_ids(count)
            log(f"drain: sending {count:,} webhooks while the Event API stand-in answers 503")
            sent = self.run_loadgen(
                server,
                template,
                "--first",
                str(first),
                "--mode",
                "count",
                "--count",
                str(count),
                "--connections",
                str(args.connections),
                "--max-seconds",
                str(args.drain_max_seconds),
                timeout=args.drain_max_seconds,
            )
            down = self.sink_stats()
            failed = set(sent["failed"])
            if sent["failed_count"] > len(failed):
                raise BenchError(f"drain: {sent['failed_count']} webhooks were refused")
            expected = {
                payloads.event_id(self.tag, n)
                for n in range(first, first + count)
                if n not in failed
            }
            log(
                f"drain: {sent['ok']:,} accepted at {sent['rate']:,.0f}/s; "
                f"{down['requests']} Event API requests answered 503 meanwhile; releasing"
            )
            cpu0 = server.cpu_seconds()
            released = time.monotonic()
            self.sink_call("POST", "/_control/up")
            waited = self.wait_delivered(len(expected), timeout=args.drain_timeout)
            cpu1 = server.cpu_seconds()
            stats = self.sink_stats()
            received = set(self.sink_call("GET", "/_control/ids"))
            prefixed = {f"stripe-{i}" for i in expected}
            first_ok, last_ok = stats["first_ok_at"], stats["last_ok_at"]
            result = {
                "body_label": template.label,
                "body_bytes": template.body_length,
                "config_note": note,
                "sent": count,
                "accepted": sent["ok"],
                "accept_rate": sent["rate"],
                "accept_latency_ms": sent["latency_ms"],
                "loadgen_cpu_share": sent["cpu_share"],
                "requests_while_down": down["requests"],
                "drained": waited is not None,
                "drain_s": (last_ok - released) if waited is not None and last_ok else None,
                "wait_first_batch_s": (first_ok - released) if first_ok else None,
                "transfer_s": (last_ok - first_ok) if first_ok and last_ok else None,
                "ok_requests": stats["ok_requests"],
                "events": stats["events"],
                "events_per_request": (
                    stats["events"] / stats["ok_requests"] if stats["ok_requests"] else None
                ),
                "max_batch": stats["max_batch"],
                "distinct_ids": stats["distinct_ids"],
                "repeats": stats["repeats"],
                "missing": len(prefixed - received),
                "unexpected": len(received - prefixed),
                "exactly_once": received == prefixed and stats["events"] == len(prefixed),
                "cpu_s": cpu1 - cpu0,
                "memory_kb": server.memory_kb(),
            }
            if result["transfer_s"]:
                result["transfer_events_per_s"] = stats["events"] / result["transfer_s"]
            log(
                f"drain: {stats['events']:,} events in {stats['ok_requests']} requests, "
                f"exactly once: {result['exactly_once']}"
            )
            return result
        finally:
            self.sink_call("POST", "/_control/up")
            server.stop()

    def profile(self, template: Template, seconds: float) -> dict[str, Any]:
        """Saturate a gateway with py-spy attached; summarize where its CPU time goes."""
        import profile_summary

        py_spy = shutil.which("py-spy")
        if py_spy is None:
            raise BenchError("--profile needs py-spy (pip install py-spy); nothing was installed")
        server = self.start_server(
            "gateway", f"profile-{template.label}", config=self.args.gateway_config
        )
        try:
            self.sink_call("POST", "/_control/reset")
            warm = self.saturate(server, template, self.args.warmup, self.args.expect_rate)
            self.wait_delivered(warm["accepted"], timeout=120)
            RESULTS.mkdir(exist_ok=True)
            out = RESULTS / f"profile-{template.label.replace(' ', '')}.folded"
            out.unlink(missing_ok=True)
            spy_log = open(self.workdir / "logs" / "py-spy.log", "wb")  # noqa: SIM115
            spy = subprocess.Popen(
                procs.pinned(
                    [
                        py_spy,
                        "record",
                        "--pid",
                        str(server.pid),
                        "--duration",
                        f"{int(seconds) + 1}",
                        "--rate",
                        "200",
                        "--threads",
                        "--nonblocking",
                        "--format",
                        "raw",
                        "--output",
                        str(out),
                    ],
                    self.cpu(LOADGEN_CPU),
                ),
                stdout=subprocess.DEVNULL,
                stderr=spy_log,
            )
            try:
                time.sleep(0.5)
                sat = self.saturate(server, template, seconds, warm["accepted_rate"])
                spy.wait(timeout=seconds + 60)
            finally:
                if spy.poll() is None:
                    spy.kill()
                    spy.wait()
                spy_log.close()
            if not out.exists():
                problem = (self.workdir / "logs" / "py-spy.log").read_text(errors="replace")
                raise BenchError(f"py-spy wrote no profile (exit {spy.returncode}): {problem}")
            summary = profile_summary.summarize(out)
            summary["saturation_rate"] = sat["accepted_rate"]
            summary["folded_file"] = str(out.relative_to(REPO))
            return summary
        finally:
            server.stop()


@contextmanager
def terminate_on_sigterm() -> Iterator[None]:
    def handler(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="short runs, 10,000-webhook drain")
    parser.add_argument("--duration", type=float, help="saturation run, seconds (default 12)")
    parser.add_argument("--warmup", type=float, help="warm-up, seconds (default 3)")
    parser.add_argument("--rate-duration", type=float, help="fixed-rate run, seconds (default 12)")
    parser.add_argument("--half-load", type=float, default=0.5, help="fixed rate / max rate")
    parser.add_argument("--connections", type=int, default=64, help="keep-alive connections")
    parser.add_argument("--rate-connections", type=int, default=32)
    parser.add_argument("--sizes", default="2000,20000", help="body sizes in bytes")
    parser.add_argument(
        "--servers", default="ceiling,peer,gateway", help="which servers to load-test"
    )
    parser.add_argument("--drain-count", type=int, help="webhooks in the drain test (100,000)")
    parser.add_argument("--no-drain", action="store_true")
    parser.add_argument(
        "--drain-backoff-max",
        type=float,
        default=None,
        help="forwarder.backoff_max for the drain gateway (default: the gateway's own)",
    )
    parser.add_argument("--drain-timeout", type=float, default=900.0)
    parser.add_argument("--drain-max-seconds", type=float, default=1200.0)
    parser.add_argument("--catch-up-timeout", type=float, default=300.0)
    parser.add_argument(
        "--generator", choices=["auto", "asyncio"], default="auto", help="auto: wrk if installed"
    )
    parser.add_argument(
        "--gateway-config",
        type=Path,
        help="run the gateway with this TOML file (its sources need STRIPE_WEBHOOK_SECRET)",
    )
    parser.add_argument(
        "--data-root",
        type=Path,
        help="put the gateways' data directories here (e.g. /dev/shm, to take the disk out)",
    )
    parser.add_argument("--profile", action="store_true", help="also profile the gateway (py-spy)")
    parser.add_argument(
        "--outbox",
        choices=["sqlite", "postgres"],
        default="sqlite",
        help="postgres: compare 1 and 2 PostgreSQL-backed gateways with SQLite (outbox_compare.py)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    parser.add_argument("--no-save", action="store_true", help="do not write bench/results")
    args = parser.parse_args(argv)
    quick = args.quick
    args.duration = args.duration or (5.0 if quick else 12.0)
    args.warmup = args.warmup or (2.0 if quick else 3.0)
    args.rate_duration = args.rate_duration or (5.0 if quick else 12.0)
    args.drain_count = args.drain_count or (10_000 if quick else 100_000)
    args.expect_rate = 30_000.0  # sizes the first pre-signed set; later sets use measured rates
    return args


def label_of(size: int) -> str:
    return f"{size / 1000:g} KB"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="webhook-gateway-bench-"))
    if args.outbox == "postgres":
        import outbox_compare

        bench: Bench = outbox_compare.CompareBench(args, workdir)
    else:
        bench = Bench(args, workdir)
    machine = machine_info(bench.pin)
    generator = (
        f"wrk ({bench.wrk}) with bench/wrk_stripe.lua, 1 thread, {args.connections} connections"
        if bench.wrk
        else f"asyncio (bench/loadgen.py), {args.connections} connections"
    )
    if args.generator == "auto" and bench.wrk is None:
        print(
            "NOTE: wrk is not installed (apt-get install wrk); falling back to the asyncio "
            "generator, whose own CPU use is reported. Figures from the two are not comparable.",
            file=sys.stderr,
        )
    results: dict[str, Any] = {
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "command": " ".join([Path(sys.executable).name, "bench/run.py", *(argv or sys.argv[1:])]),
        "machine": machine,
        "settings": {
            "generator": generator,
            "fixed_rate_generator": (
                f"asyncio open loop (bench/loadgen.py), {args.rate_connections} connections, "
                "latency from each request's scheduled send time"
            ),
            "duration_s": args.duration,
            "warmup_s": args.warmup,
            "rate_duration_s": args.rate_duration,
            "half_load": args.half_load,
            "data_dir_fs": fs_type(args.data_root or workdir),
            "uvicorn": "1 worker, loop/http auto (uvloop/httptools), no access log",
            "gateway": "webhook-gateway serve, zero-config environment mode, defaults "
            "(durability power_loss, info logs to a file)",
        },
        "load": {},
    }
    print(
        f"Machine: {machine['nproc']} CPUs, {machine['cpu_model']}, "
        f"{machine['memory_mib']:,} MiB, Linux {machine['kernel']}, Python {machine['python']}"
    )
    print(f"Pinning: {machine['pinning']}")
    print(f"Load generator: {generator}")
    print(f"Fixed-rate runs: {results['settings']['fixed_rate_generator']}")
    print(f"Outbox data dir on {results['settings']['data_dir_fs']} ({args.data_root or workdir})")
    sys.stdout.flush()
    ok = False
    try:
        with terminate_on_sigterm():
            bench.start_sink()
            if args.outbox == "postgres":
                assert isinstance(bench, outbox_compare.CompareBench)
                results["outbox"] = outbox_compare.run(bench, args)
            else:
                sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
                for size in sizes:
                    template = Template.make(label_of(size), size, bench.created)
                    by_server: dict[str, Any] = {"body_bytes": template.body_length}
                    results["load"][template.label] = by_server
                    for kind in [s.strip() for s in args.servers.split(",") if s.strip()]:
                        by_server[kind] = bench.load(kind, template)
                if not args.no_drain:
                    drain_template = Template.make(label_of(sizes[0]), sizes[0], bench.created)
                    results["drain"] = bench.drain(drain_template)
                if args.profile:
                    profile_template = Template.make(label_of(sizes[0]), sizes[0], bench.created)
                    results["profile"] = bench.profile(profile_template, args.duration)
        ok = True
    finally:
        bench.close()
        if ok and not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            log(f"work directory kept: {workdir}")
    if "outbox" in results:
        print(outbox_compare.table(results["outbox"]))
        verdicts, lines = outbox_compare.evaluate(results["outbox"])
    else:
        print(report.table(results))
        if "drain" in results:
            print(report.drain_table(results["drain"]))
        verdicts, lines = report.evaluate(results)
    results["targets"] = verdicts
    if "profile" in results:
        import profile_summary

        print(profile_summary.render(results["profile"]))
    print("\n".join(lines))
    if not args.no_save:
        RESULTS.mkdir(exist_ok=True)
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        text = json.dumps(results, indent=2, sort_keys=False) + "\n"
        if "outbox" in results:  # a comparison, not the bench's latest run
            (RESULTS / f"postgres-{stamp}.json").write_text(text)
            print(f"\nResults: bench/results/postgres-{stamp}.json")
        else:
            (RESULTS / f"{stamp}.json").write_text(text)
            (RESULTS / "latest.json").write_text(text)
            print(f"\nResults: bench/results/{stamp}.json (and bench/results/latest.json)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
