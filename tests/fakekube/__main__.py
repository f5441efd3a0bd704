"""Run the fake API server standalone: ``python -m tests.fakekube --kubeconfig-out PATH``."""

from __future__ import annotations

import argparse
import asyncio
import signal
from pathlib import Path

from tests.fakekube.server import FakeKube


async def serve(args: argparse.Namespace) -> None:
    fake = FakeKube()
    for seed in args.seed_deployment:
        target, _, replicas = seed.partition("=")
        namespace, _, name = target.partition("/")
        fake.add_deployment(namespace, name, replicas=int(replicas or "1"))
    url = await fake.start(args.host, args.port)
    if args.kubeconfig_out:
        fake.write_kubeconfig(Path(args.kubeconfig_out))
    print(f"FAKEKUBE_URL={url}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await fake.stop()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.fakekube", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--kubeconfig-out", help="write a kubeconfig for the server here")
    parser.add_argument(
        "--seed-deployment",
        action="append",
        default=[],
        metavar="NS/NAME=REPLICAS",
        help="create a Deployment at start",
    )
    asyncio.run(serve(parser.parse_args()))


if __name__ == "__main__":
    main()
