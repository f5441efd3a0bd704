"""Webhook intake throughput: remediator's durable-ack intake next to a bare aiohttp handler.

Both servers run as their own process on loopback, measured one after the other in the same
run, under the same load: a fixed number of concurrent keep-alive connections posting
Alertmanager webhook notifications (1 alert and 50 alerts each), shaped exactly like the
captured ``firing-checkout-grouped.json`` (version "4", compact JSON). Every alert has its own
fingerprint, so every notification is a new episode that the bench rule matches: each request
takes the durable path (matching, guardrails, a SQLite commit) before its 2xx. After each
remediator run the script checks the state file holds a record for every acknowledged alert.

The load is bounded by a request count and a time limit per measurement, whichever comes
first; the script stops by itself. Each server and payload is measured --rounds times,
alternating bare and remediator, and the median run is reported (under a minute in all with
the defaults on a 2-CPU machine).

    python bench/intake.py                       # 32 connections, 5000 / 500 requests, 20 s cap
    python bench/intake.py --json results.json   # also write the numbers (every run)
    python bench/intake.py --requests 30000 --rounds 5   # steadier numbers

Reports notifications/s, alerts/s, p50/p99 latency, errors, the ratio to the bare handler for
the same payload, the peak RSS (VmHWM) of each server process, and the CPU used by the server
and by the load generator during the measured window (a load generator near 100% means the
numbers are bounded by the client, not the server). Exit status 1 if any request failed or an
acknowledged alert has no durable record.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import sqlite3
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
PAYLOAD_SIZES = (1, 50)
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")

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

# The example rule for HighCPUUsage (rules/high-cpu.yaml), kept here so edits to the example
# rules do not change what is measured. Every payload alert matches it.
BENCH_RULES = """\
rules:
  - name: scale-out-on-high-cpu
    match:
      alertname: HighCPUUsage
      labels:
        - severity=~"critical|page"
    threshold:
      value_from:
        annotation: description
        regex: 'is (?P<value>[0-9.]+%)'
      op: ">="
      value: 85%
    target:
      kind: Deployment
      namespace: "{labels.namespace}"
      name: "{labels.deployment}"
    action:
      type: scale
      params:
        replicas: "+2"
        min_replicas: 2
        max_replicas: 10
    cooldown: 10m
    max_actions:
      count: 3
      window: 1h
"""

GENERATOR_URL = (
    "http://127.0.0.1:19090/graph?g0.expr=label_replace%28label_replace%28label_replace%28"
    "vector%2892%29%2C+%22namespace%22%2C+%22shop%22%2C+%22%22%2C+%22%22%29%2C+%22deployment"
    "%22%2C+%22checkout%22%2C+%22%22%2C+%22%22%29%2C+%22pod%22%2C+%22{pod}%22%2C+%22%22%2C+"
    "%22%22%29&g0.tab=1"
)


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
    server_cpu_percent: float
    client_cpu_percent: float
    acknowledged_alerts: int
    durable_records: int | None  # remediator only: alerts with a row in the state file

    @property
    def per_second(self) -> float:
        return self.notifications / self.seconds if self.seconds else 0.0

    @property
    def alerts_per_second(self) -> float:
        return self.per_second * self.alerts_per_notification

    @property
    def missing_records(self) -> int:
        if self.durable_records is None:
            return 0
        return max(0, self.acknowledged_alerts - self.durable_records)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def notification(index: int, alerts: int) -> bytes:
    """Notification number ``index``: a version-4 body shaped like the captured checkout group
    (same keys in the same order, compact, ``&`` escaped as Go does). Every alert gets its own
    16-hex fingerprint, so every alert of every notification is a new episode."""
    labels: list[dict[str, str]] = []
    items: list[dict[str, Any]] = []
    annotations = {
        "description": "CPU usage of deployment checkout is 92% (threshold 85%).",
        "runbook_url": "https://runbooks.example.com/alerts/HighCPUUsage",
        "summary": "High CPU usage on shop/checkout",
    }
    for n in range(alerts):
        pod = f"checkout-7d9f8b6c5-{n:05x}"
        labels.append(
            {
                "alertname": "HighCPUUsage",
                "cluster": "lab-fixture",
                "deployment": "checkout",
                "namespace": "shop",
                "pod": pod,
                "severity": "critical",
                "team": "platform",
            }
        )
        items.append(
            {
                "status": "firing",
                "labels": labels[-1],
                "annotations": annotations,
                "startsAt": "2026-11-22T21:14:14.512Z",
                "endsAt": "0001-01-01T00:00:00Z",
                "generatorURL": GENERATOR_URL.format(pod=pod),
                "fingerprint": f"{index:010x}{n:06x}",
            }
        )
    # Like Alertmanager: the label pairs equal across every alert sent.
    common = {k: v for k, v in labels[0].items() if all(other.get(k) == v for other in labels)}
    body = {
        "receiver": "remediation-plain",
        "status": "firing",
        "alerts": items,
        "groupLabels": {"deployment": "checkout", "namespace": "shop"},
        "commonLabels": common,
        "commonAnnotations": annotations,
        "externalURL": "http://127.0.0.1:19093",
        "version": "4",
        "groupKey": '{}:{deployment="checkout", namespace="shop"}',
        "truncatedAlerts": 0,
    }
    text = json.dumps(body, separators=(",", ":")).replace("&", "\\u0026")
    return text.encode() + b"\n"


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def cpu_seconds(pid: int) -> float:
    """User + system CPU of every thread of ``pid`` so far."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime, stime


def durable_records(state_file: Path) -> int:
    """Alerts (distinct fingerprints) with a decision or an audit row in the state file."""
    conn = sqlite3.connect(f"file:{state_file}?mode=ro", uri=True)
    try:
        row = conn.execute(
            "SELECT COUNT(*) FROM (SELECT fingerprint FROM audit UNION SELECT fingerprint "
            "FROM decisions)"
        ).fetchone()
    finally:
        conn.close()
    return int(row[0])


async def wait_ready(url: str, process: subprocess.Popen[bytes], *, any_answer: bool) -> str:
    """Until ``url`` answers 200 (or anything at all, with ``any_answer``); "" when it does,
    else why not."""
    deadline = time.monotonic() + 30
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                return f"server exited with {process.returncode} before it was ready"
            try:
                async with session.get(url) as response:
                    await response.read()
                    if any_answer or response.status == 200:
                        return ""
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
    return f"server at {url} was not ready after 30 s"


@dataclass
class Load:
    notifications: int
    seconds: float
    errors: int
    latencies: list[float]
    acknowledged: int  # notifications answered 200, warm-up included
    client_cpu: float
    server_cpu: float
    first_error: str | None


async def load(
    url: str,
    bodies: list[bytes],
    warmup: list[bytes],
    concurrency: int,
    seconds: float,
    server_pid: int,
) -> Load:
    connector = aiohttp.TCPConnector(limit=concurrency)
    timeout = aiohttp.ClientTimeout(total=30)
    headers = {"Content-Type": "application/json", "User-Agent": "Alertmanager/0.25.0"}
    acknowledged = 0
    first_error: str | None = None

    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

        async def post(body: bytes) -> bool:
            nonlocal acknowledged, first_error
            try:
                async with session.post(url, data=body, headers=headers) as response:
                    answer = await response.read()
                    if response.status == 200:
                        acknowledged += 1
                        return True
                    error = f"HTTP {response.status}: {answer[:200]!r}"
            except (aiohttp.ClientError, TimeoutError) as exc:
                error = f"{type(exc).__name__}: {exc}"
            first_error = first_error or error
            return False

        warmup_queue = iter(warmup)

        async def warm() -> None:
            for body in warmup_queue:
                await post(body)

        await asyncio.gather(*(warm() for _ in range(concurrency)))

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
                ok = await post(body)
                latencies.append(time.perf_counter() - started)
                errors += not ok

        client_before = time.process_time()
        server_before = cpu_seconds(server_pid)
        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
        server_cpu = cpu_seconds(server_pid) - server_before
        client_cpu = time.process_time() - client_before
    return Load(
        len(latencies),
        elapsed,
        errors,
        latencies,
        acknowledged,
        client_cpu / elapsed * 100,
        server_cpu / elapsed * 100,
        first_error,
    )


def percentile(values: list[float], fraction: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))] * 1000


def server_command(
    server: str, port: int, workdir: Path, state_file: Path, log_level: str
) -> list[str]:
    if server == "bare":
        return [sys.executable, "-c", BARE_SERVER, str(port)]
    rules = workdir / "rules"
    rules.mkdir(exist_ok=True)
    (rules / "bench.yaml").write_text(BENCH_RULES)
    return [
        sys.executable,
        "-m",
        "remediator.cli",
        "serve",
        "--insecure-no-auth",
        "--dry-run",
        "--listen",
        f"127.0.0.1:{port}",
        "--rules-dir",
        str(rules),
        "--state-file",
        str(state_file),
        "--allow-namespaces",
        "*",
        "--log-level",
        log_level,
        "--log-format",
        "json",
        "--max-queue",
        "100000",
    ]


@dataclass
class Workload:
    alerts: int  # per notification
    warmup: list[bytes]
    bodies: list[bytes]


def workload(alerts: int, args: argparse.Namespace) -> Workload:
    """The same bodies serve every measurement: each remediator run gets a new state file, so
    within a run every alert is still a new episode."""
    scale = 1 if alerts == 1 else 10
    requests = max(1, args.requests // scale)
    warmup = args.warmup // scale
    bodies = [notification(i, alerts) for i in range(warmup + requests)]
    return Workload(alerts, bodies[:warmup], bodies[warmup:])


def measure(
    server: str, work: Workload, args: argparse.Namespace, workdir: Path, run_id: str
) -> Result:
    port = free_port()
    alerts = work.alerts
    log_path = workdir / f"{server}-{run_id}.log"
    state_file = workdir / f"bench-{run_id}.db"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("REMEDIATOR_KUBECONFIG", None)  # no cluster: dry-run, whatever the caller's env
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            server_command(server, port, workdir, state_file, args.log_level),
            cwd=workdir,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
        )
    try:
        # The bare app has only the POST route: any answer (405) to a GET means it is up.
        path = "/readyz" if server == "remediator" else "/api/v1/alerts"
        url = f"http://127.0.0.1:{port}{path}"
        problem = asyncio.run(wait_ready(url, process, any_answer=server == "bare"))
        if problem:
            tail = log_path.read_text(errors="replace")[-2000:]
            raise SystemExit(f"{server}: {problem}; its output:\n{tail}")
        run = asyncio.run(
            load(
                f"http://127.0.0.1:{port}/api/v1/alerts",
                work.bodies,
                work.warmup,
                args.concurrency,
                args.seconds,
                process.pid,
            )
        )
        rss = peak_rss_mib(process.pid)
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    if run.first_error:
        print(f"{server}, {alerts}-alert: first error: {run.first_error}", file=sys.stderr)
    if process.returncode not in (0, -signal.SIGTERM):
        print(f"{server} exited with {process.returncode}; log: {log_path}", file=sys.stderr)
    # After a clean stop, so decisions still being carried out have their audit rows.
    records = durable_records(state_file) if server == "remediator" else None
    return Result(
        server=server,
        alerts_per_notification=alerts,
        notifications=run.notifications,
        seconds=run.seconds,
        errors=run.errors,
        p50_ms=percentile(run.latencies, 0.5),
        p99_ms=percentile(run.latencies, 0.99),
        peak_rss_mib=rss,
        server_cpu_percent=run.server_cpu,
        client_cpu_percent=run.client_cpu,
        acknowledged_alerts=run.acknowledged * alerts,
        durable_records=records,
    )


def median_run(runs: list[Result]) -> Result:
    """The run with the median throughput (the lower middle one for an even count)."""
    ordered = sorted(runs, key=lambda r: r.per_second)
    return ordered[(len(ordered) - 1) // 2]


def table(medians: dict[tuple[str, int], Result], runs: list[Result]) -> str:
    """One row per server and payload: the median run, with the range of the throughput, and
    the errors and peak RSS over all runs."""
    lines = [
        f"{'server':<11} {'payload':>8} {'notif/s':>8} {'(range)':>11} {'alerts/s':>9} "
        f"{'p50 ms':>7} {'p99 ms':>7} {'errors':>6} {'vs bare':>7} {'RSS MiB':>7} "
        f"{'srv CPU%':>8} {'gen CPU%':>8}"
    ]
    for key, r in medians.items():
        same = [x for x in runs if (x.server, x.alerts_per_notification) == key]
        spread = f"{min(x.per_second for x in same):.0f}-{max(x.per_second for x in same):.0f}"
        ratio = r.per_second / medians["bare", r.alerts_per_notification].per_second
        lines.append(
            f"{r.server:<11} {f'{r.alerts_per_notification}-alert':>8} {r.per_second:>8.0f} "
            f"{spread:>11} {r.alerts_per_second:>9.0f} {r.p50_ms:>7.2f} {r.p99_ms:>7.2f} "
            f"{sum(x.errors for x in same):>6} {ratio:>6.2f}\u00d7 "
            f"{max(x.peak_rss_mib for x in same):>7.1f} {r.server_cpu_percent:>8.0f} "
            f"{r.client_cpu_percent:>8.0f}"
        )
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--requests",
        type=int,
        default=5000,
        metavar="N",
        help="notifications per 1-alert measurement; the 50-alert one sends a tenth (default 5000)",
    )
    parser.add_argument(
        "--seconds",
        type=float,
        default=20.0,
        help="time limit per measurement; whichever of N and this comes first (default 20)",
    )
    parser.add_argument(
        "--warmup",
        type=int,
        default=200,
        metavar="N",
        help="uncounted notifications before each 1-alert measurement; 50-alert: a tenth "
        "(default 200)",
    )
    parser.add_argument(
        "--concurrency", type=int, default=32, help="concurrent connections (default 32)"
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="measure each server and payload this many times, alternating, and report the "
        "median run (default 3; loopback numbers on a shared machine vary by 20%%)",
    )
    parser.add_argument(
        "--log-level",
        default="info",
        choices=("info", "warning"),
        help="remediator's log level: info (the default, as deployed) writes one JSON audit "
        "line per decision to the server's log file; warning leaves the audit to SQLite only",
    )
    parser.add_argument("--json", type=Path, metavar="OUT", help="also write the results here")
    args = parser.parse_args(argv)
    if min(args.requests, args.concurrency, args.rounds) < 1 or args.seconds <= 0:
        parser.error("--requests, --concurrency, --rounds and --seconds must be positive")
    if args.warmup < 0:
        parser.error("--warmup must not be negative")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.monotonic()
    runs: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="remediator-bench-") as tmp:
        for alerts in PAYLOAD_SIZES:
            work = workload(alerts, args)
            for round_number in range(1, args.rounds + 1):
                for server in ("bare", "remediator"):
                    run_id = f"{alerts}-{round_number}"
                    result = measure(server, work, args, Path(tmp), run_id)
                    runs.append(result)
                    print(
                        f"round {round_number}: {server:<10} {alerts:>2}-alert: "
                        f"{result.notifications} notifications in {result.seconds:.2f} s, "
                        f"{result.per_second:.0f}/s",
                        file=sys.stderr,
                    )
    medians = {
        (server, alerts): median_run(
            [r for r in runs if (r.server, r.alerts_per_notification) == (server, alerts)]
        )
        for alerts in PAYLOAD_SIZES
        for server in ("bare", "remediator")
    }
    print(
        f"loopback, {args.concurrency} connections, {os.cpu_count()} CPUs, median of "
        f"{args.rounds} run(s) each, remediator --log-level {args.log_level}, "
        f"{time.monotonic() - started:.0f} s in all"
    )
    print(table(medians, runs))
    ratio = medians["remediator", 1].per_second / medians["bare", 1].per_second
    print(f"durable-ack intake, 1-alert: {ratio:.2f}\u00d7 bare (target \u2265 {TARGET}\u00d7)")
    problems = []
    for r in runs:
        where = f"{r.server} {r.alerts_per_notification}-alert"
        if r.missing_records:
            problems.append(
                f"{where}: {r.missing_records} of {r.acknowledged_alerts} acknowledged alerts "
                "have no record in the state file"
            )
        if r.errors:
            problems.append(f"{where}: {r.errors} failed requests")
    for problem in problems:
        print(f"PROBLEM: {problem}")
    if args.json:
        payload: dict[str, Any] = {
            "concurrency": args.concurrency,
            "cpus": os.cpu_count(),
            "rounds": args.rounds,
            "target_ratio": TARGET,
            "headline_ratio": ratio,
            "medians": [
                {
                    **asdict(r),
                    "per_second": r.per_second,
                    "alerts_per_second": r.alerts_per_second,
                    "ratio_to_bare": r.per_second / medians["bare", alerts].per_second,
                }
                for (_, alerts), r in medians.items()
            ],
            "runs": [
                {**asdict(r), "per_second": r.per_second, "alerts_per_second": r.alerts_per_second}
                for r in runs
            ],
        }
        args.json.write_text(json.dumps(payload, indent=2) + "\n")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
