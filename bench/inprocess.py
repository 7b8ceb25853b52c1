"""Where a webhook's CPU goes, without HTTP: drive the gateway's ASGI app in-process.

    python bench/inprocess.py                     # every variant, 20,000 webhooks each
    python bench/inprocess.py --variants full,no-log --count 50000

Each variant builds a fresh gateway (its own SQLite file, forwarder off: this measures the
accept path only), sends ``--count`` distinct, signed ~2 KB Stripe webhooks through the ASGI app
``--concurrency`` at a time, and prints the process CPU (all threads) and wall time per webhook.
Variants switch one part off, so the differences say what that part costs:

- ``full``: the gateway as ``serve`` runs it (durability ``power_loss``, info log line per webhook)
- ``no-log``: log level ``warning`` (no per-webhook line)
- ``no-fsync``: durability ``process_crash``
- ``no-outbox``: the outbox write replaced by an immediate answer (a measurement, not a mode)
- ``forward``: ``full`` plus the forwarder, delivering to ``eventapi_sink.py`` (its own process,
  on CPU 1 when ``taskset`` is there); the figures run until every event was delivered

uvicorn's own cost is not in these figures; ``bench/run.py`` measures the whole server.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(Path(__file__).resolve().parent)]

import payloads  # noqa: E402

from gateway.app import build_gateway, create_app  # noqa: E402
from gateway.config import Config  # noqa: E402
from gateway.logs import configure_logging  # noqa: E402
from gateway.outbox import AcceptResult  # noqa: E402

SECRET = "whsec_inprocess_bench_secret_0123456789"
VARIANTS = ("full", "no-log", "no-fsync", "no-outbox", "forward")
EVENT_KEY = "inprocess-bench-key"


def make_config(data_dir: str, variant: str, sink_url: str | None) -> Config:
    return Config.model_validate(
        {
            "gateway": {"data_dir": data_dir},
            "sources": [{"name": "stripe", "provider": "stripe", "secrets": [f"inline:{SECRET}"]}],
            "outbox": {"durability": "process_crash" if variant == "no-fsync" else "power_loss"},
            "forwarder": {"enabled": variant == "forward"},
            "inngest": {"base_url": sink_url, "event_key": f"inline:{EVENT_KEY}"},
        }
    )


def start_sink(workdir: Path) -> Any:
    import procs

    cpu = 1 if procs.TASKSET is not None and (os.cpu_count() or 1) >= 2 else None
    argv = [sys.executable, str(REPO / "bench" / "eventapi_sink.py"), "--port", "0"]
    return procs.start(
        "eventapi-sink",
        [*argv, "--key", EVENT_KEY],
        dict(os.environ),
        workdir / "sink.log",
        cpu=cpu,
        cwd=REPO,
    )


def requests(count: int, size: int) -> list[tuple[list[tuple[bytes, bytes]], bytes]]:
    template = payloads.Template.make("bench", size, int(time.time()))
    tag = payloads.random_tag()
    now = int(time.time())
    out = []
    for n in range(count):
        evt = payloads.event_id(tag, n)
        body = template.body(evt).encode()
        sig = payloads.signature(template, SECRET, evt, now)
        headers = [
            (b"host", b"127.0.0.1"),
            (b"user-agent", payloads.USER_AGENT.encode()),
            (b"content-type", b"application/json; charset=utf-8"),
            (b"content-length", str(len(body)).encode()),
            (b"stripe-signature", f"t={now},v1={sig}".encode()),
        ]
        out.append((headers, body))
    return out


async def drive(app: Any, reqs: list[Any], concurrency: int) -> list[int]:
    statuses: list[int] = []
    queue = iter(reqs)

    async def one(headers: list[tuple[bytes, bytes]], body: bytes) -> None:
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "POST",
            "scheme": "http",
            "path": "/webhooks/stripe",
            "raw_path": b"/webhooks/stripe",
            "query_string": b"",
            "root_path": "",
            "headers": headers,
            "client": ("127.0.0.1", 5000),
            "server": ("127.0.0.1", 8000),
            "state": {},
        }
        sent = False

        async def receive() -> dict[str, Any]:
            nonlocal sent
            if sent:
                await asyncio.sleep(3600)
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                statuses.append(message["status"])

        await app(scope, receive, send)

    async def worker() -> None:
        for headers, body in queue:
            await one(headers, body)

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return statuses


def thread_cpu() -> dict[str, float]:
    """CPU seconds of each live thread of this process, by thread name."""
    import threading

    tick = os.sysconf("SC_CLK_TCK")
    out: dict[str, float] = {}
    for thread in threading.enumerate():
        try:
            stat = Path(f"/proc/self/task/{thread.native_id}/stat").read_text()
        except (OSError, TypeError):
            continue
        fields = stat.rpartition(")")[2].split()
        name = thread.name.rstrip("0123456789-_") or thread.name
        out[name] = out.get(name, 0.0) + (int(fields[11]) + int(fields[12])) / tick
    return out


def run_variant(variant: str, count: int, size: int, concurrency: int) -> dict[str, float]:
    reqs = requests(count + 1000, size)
    with tempfile.TemporaryDirectory(prefix="gw-inprocess-") as tmp:
        log_file = open(os.path.join(tmp, "gateway.log"), "w")  # noqa: SIM115
        configure_logging("warning" if variant == "no-log" else "info", [SECRET], log_file)
        sink = start_sink(Path(tmp)) if variant == "forward" else None
        gateway = build_gateway(make_config(tmp, variant, sink.url if sink else None), {})
        if variant == "no-outbox":

            async def accept_async(
                webhook: Any, events: Any, ids: Any, names: Any, body_key: Any = None
            ) -> Any:
                return AcceptResult(0, len(events), 0)

            gateway.outbox.accept_async = accept_async  # type: ignore[method-assign]
        app = create_app(gateway)
        lifespan = app.router.lifespan_context(app) if sink is not None else None

        per_thread: dict[str, float] = {}
        gc_time = [0.0, 0]
        gc_start = [0.0]

        def on_gc(phase: str, info: dict[str, Any]) -> None:
            if phase == "start":
                gc_start[0] = time.perf_counter()
            else:
                gc_time[0] += time.perf_counter() - gc_start[0]
                gc_time[1] += 1

        async def main() -> tuple[float, float, list[int]]:
            if lifespan is not None:
                await lifespan.__aenter__()  # starts the forwarder
            try:
                return await measure()
            finally:
                if lifespan is not None:
                    await lifespan.__aexit__(None, None, None)

        async def measure() -> tuple[float, float, list[int]]:
            await drive(app, reqs[:1000], concurrency)  # warm-up
            gc.collect()
            gc.freeze()
            cpu0, wall0 = time.process_time(), time.perf_counter()
            threads0 = thread_cpu()
            gc.callbacks.append(on_gc)
            statuses = await drive(app, reqs[1000:], concurrency)
            while sink is not None and gateway.outbox.stats().pending:
                await asyncio.sleep(0.01)
            gc.callbacks.remove(on_gc)
            threads = thread_cpu()
            for name, seconds in threads.items():
                per_thread[name] = seconds - threads0.get(name, 0.0)
            return time.process_time() - cpu0, time.perf_counter() - wall0, statuses

        try:
            cpu, wall, statuses = asyncio.run(main())
        finally:
            if sink is not None:
                sink.stop()
        if lifespan is None:
            gateway.outbox.close()
        log_file.close()
        logging.getLogger("webhook_gateway").handlers.clear()
    bad = sum(1 for s in statuses if s != 200)
    if bad:
        raise SystemExit(f"{variant}: {bad} of {len(statuses)} answers were not 200")
    return {
        "cpu_us": cpu / count * 1e6,
        "wall_us": wall / count * 1e6,
        "gc_us": gc_time[0] / count * 1e6,
        "gcs": gc_time[1],
        **{f"thread {name}": sec / count * 1e6 for name, sec in per_thread.items()},
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=20000)
    parser.add_argument("--size", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--repeat", type=int, default=1, help="run the variant list this often")
    args = parser.parse_args()
    variants = args.variants.split(",")
    unknown = set(variants) - set(VARIANTS)
    if unknown:
        parser.error(f"unknown variants: {', '.join(sorted(unknown))}")
    print(f"{args.count:,} webhooks of ~{args.size:,} bytes, {args.concurrency} at a time")
    print(f"{'variant':<12}{'CPU us/webhook':>16}{'wall us/webhook':>17}{'GC us/webhook':>15}")
    results: dict[str, list[float]] = {v: [] for v in variants}
    for _ in range(args.repeat):
        for variant in variants:
            r = run_variant(variant, args.count, args.size, args.concurrency)
            results[variant].append(r["cpu_us"])
            print(
                f"{variant:<12}{r['cpu_us']:>16.1f}{r['wall_us']:>17.1f}{r['gc_us']:>15.1f}   "
                + ", ".join(f"{k[7:]} {v:.0f}" for k, v in r.items() if k.startswith("thread ")),
                flush=True,
            )
    if "full" in results:
        base = min(results["full"])
        print("\nbest of runs, share of full:")
        for variant, cpus in results.items():
            print(f"  {variant:<12}{min(cpus):>8.1f} us  {min(cpus) / base:>6.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
