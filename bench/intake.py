"""Webhook intake throughput: remediator's durable-ack intake next to a bare aiohttp handler.

Both servers run as their own process on loopback, measured one after the other in the same
run, under the same load: a fixed number of concurrent keep-alive connections posting
Alertmanager webhook notifications (1 alert and 50 alerts each). Every notification is a new
alert episode that the example rules match, so every request takes the durable path: matching,
guardrails, and a SQLite commit before the 2xx. The load is bounded by a request count and a
time limit, whichever comes first; the script stops by itself.

    python bench/intake.py                      # defaults: 32 connections, ~1 minute in all
    python bench/intake.py --json results.json  # also write the numbers

Reports notifications/s, alerts/s, p50/p99 latency, errors, the ratio to the bare handler for
the same payload, and the peak RSS of each server process.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import aiohttp

REPO = Path(__file__).resolve().parents[1]
TARGET = 0.5

BARE_SERVER = """
import sys
from aiohttp import web

async def alerts(request):
    await request.read()
    return web.json_response({"status": "ok"})

app = web.Application()
app.router.add_post("/api/v1/alerts", alerts)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None, access_log=None)
"""


@dataclass
class Result:
    server: str
    alerts_per_notification: int
    notifications: int
    seconds: float
    errors: int
    p50_ms: float
    p99_ms: float
    peak_rss_mib: float

    @property
    def per_second(self) -> float:
        return self.notifications / self.seconds

    @property
    def alerts_per_second(self) -> float:
        return self.per_second * self.alerts_per_notification


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def notification(index: int, alerts: int) -> bytes:
    """A version-4 notification shaped like the captured checkout group; every alert has its
    own fingerprint, so every one is a new episode."""
    items = []
    for n in range(alerts):
        fingerprint = f"{index:010x}{n:06x}"
        items.append(
            {
                "status": "firing",
                "labels": {
                    "alertname": "HighCPUUsage",
                    "cluster": "bench",
                    "namespace": "shop",
                    "deployment": f"checkout-{n}",
                    "pod": f"checkout-{n}-7d9f8b6c5-x2k4p",
                    "severity": "critical",
                    "team": "platform",
                },
                "annotations": {
                    "summary": "High CPU usage on shop/checkout",
                    "description": f"CPU usage of deployment checkout-{n} is 92% (threshold 85%).",
                    "runbook_url": "https://runbooks.example.com/alerts/HighCPUUsage",
                },
                "startsAt": "2026-11-22T21:14:14.512Z",
                "endsAt": "0001-01-01T00:00:00Z",
                "generatorURL": "http://127.0.0.1:19090/graph?g0.expr=vector%2892%29&g0.tab=1",
                "fingerprint": fingerprint,
            }
        )
    body = {
        "receiver": "remediation-plain",
        "status": "firing",
        "alerts": items,
        "groupLabels": {"namespace": "shop"},
        "commonLabels": {"namespace": "shop"},
        "commonAnnotations": {},
        "externalURL": "http://127.0.0.1:19093",
        "version": "4",
        "groupKey": '{}:{namespace="shop"}',
        "truncatedAlerts": 0,
    }
    return json.dumps(body).encode()


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def wait_ready(url: str, deadline: float) -> None:
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            try:
                async with session.get(url) as response:
                    if response.status < 500:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
    raise SystemExit(f"server at {url} did not become ready")


async def load(
    url: str, bodies: list[bytes], concurrency: int, seconds: float, warmup: list[bytes]
) -> tuple[int, float, int, list[float]]:
    connector = aiohttp.TCPConnector(limit=concurrency)
    headers = {"Content-Type": "application/json"}
    async with aiohttp.ClientSession(connector=connector) as session:

        async def post(body: bytes) -> bool:
            async with session.post(url, data=body, headers=headers) as response:
                await response.read()
                return response.status == 200

        await asyncio.gather(*(post(b) for b in warmup))
        next_index = 0
        latencies: list[float] = []
        errors = 0
        stop_at = time.monotonic() + seconds

        async def worker() -> None:
            nonlocal next_index, errors
            while next_index < len(bodies) and time.monotonic() < stop_at:
                body = bodies[next_index]
                next_index += 1
                started = time.perf_counter()
                try:
                    ok = await post(body)
                except aiohttp.ClientError:
                    ok = False
                latencies.append(time.perf_counter() - started)
                errors += not ok

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    return len(latencies), elapsed, errors, latencies


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))] * 1000


def measure(server: str, alerts: int, args: argparse.Namespace, workdir: Path) -> Result:
    port = free_port()
    if server == "bare":
        command = [sys.executable, "-c", BARE_SERVER, str(port)]
        ready = f"http://127.0.0.1:{port}/"
    else:
        state = workdir / f"state-{alerts}.db"
        command = [
            sys.executable,
            "-m",
            "remediator.cli",
            "serve",
            "--insecure-no-auth",
            "--dry-run",
            "--listen",
            f"127.0.0.1:{port}",
            "--rules-dir",
            str(REPO / "rules"),
            "--state-file",
            str(state),
            "--allow-namespaces",
            "*",
            "--log-level",
            "warning",
            "--log-format",
            "json",
            "--max-queue",
            "1000000",
        ]
        ready = f"http://127.0.0.1:{port}/readyz"
    requests = args.requests if alerts == 1 else max(1, args.requests // 10)
    warmup_count = min(200, requests // 10)
    offset = 10_000_000 * alerts  # distinct episodes per payload size
    bodies = [notification(offset + i, alerts) for i in range(warmup_count + requests)]
    log = (workdir / f"{server}-{alerts}.log").open("wb")
    process = subprocess.Popen(
        command,
        cwd=REPO,
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        asyncio.run(wait_ready(ready, time.monotonic() + 30))
        count, elapsed, errors, latencies = asyncio.run(
            load(
                f"http://127.0.0.1:{port}/api/v1/alerts",
                bodies[warmup_count:],
                args.concurrency,
                args.seconds,
                bodies[:warmup_count],
            )
        )
        rss = peak_rss_mib(process.pid)
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()
    return Result(
        server,
        alerts,
        count,
        elapsed,
        errors,
        percentile(latencies, 0.5),
        percentile(latencies, 0.99),
        rss,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--requests",
        type=int,
        default=6000,
        help="notifications per 1-alert measurement (50-alert: a tenth)",
    )
    parser.add_argument(
        "--seconds",
        type=float,
        default=15.0,
        help="time limit per measurement, whichever comes first",
    )
    parser.add_argument("--concurrency", type=int, default=32, help="concurrent connections")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="remediator-bench-") as tmp:
        for alerts in (1, 50):
            for server in ("bare", "remediator"):
                results.append(measure(server, alerts, args, Path(tmp)))
                print(f"measured {server} with {alerts}-alert payloads", file=sys.stderr)
    bare = {r.alerts_per_notification: r.per_second for r in results if r.server == "bare"}
    header = (
        f"{'server':<11} {'alerts':>6} {'notif/s':>9} {'alerts/s':>10} {'p50 ms':>8} "
        f"{'p99 ms':>8} {'errors':>6} {'ratio':>6} {'peak RSS MiB':>12}"
    )
    print(header)
    for r in results:
        ratio = r.per_second / bare[r.alerts_per_notification]
        print(
            f"{r.server:<11} {r.alerts_per_notification:>6} {r.per_second:>9.0f} "
            f"{r.alerts_per_second:>10.0f} {r.p50_ms:>8.2f} {r.p99_ms:>8.2f} {r.errors:>6} "
            f"{ratio:>5.2f}x {r.peak_rss_mib:>12.1f}"
        )
    headline = next(
        r for r in results if r.server == "remediator" and r.alerts_per_notification == 1
    )
    ratio = headline.per_second / bare[1]
    print(f"durable-ack intake, 1-alert: {ratio:.2f}x bare (target >= {TARGET}x)")
    if args.json:
        payload: dict[str, Any] = {
            "concurrency": args.concurrency,
            "results": [
                {
                    **asdict(r),
                    "per_second": r.per_second,
                    "ratio_to_bare": r.per_second / bare[r.alerts_per_notification],
                }
                for r in results
            ],
        }
        args.json.write_text(json.dumps(payload, indent=2))
    return 1 if any(r.errors for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
