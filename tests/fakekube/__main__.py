"""Run the fake API server standalone, for end-to-end tests and for the conformance battery in CI.

    python -m tests.fakekube [--host H] [--port P] [--kubeconfig-out PATH]
                             [--seed-deployment NS/NAME=REPLICAS ...]

Prints ``FAKEKUBE_URL=<url>`` on stdout once listening (after the kubeconfig is written) and
serves until SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import signal
from pathlib import Path

from tests.fakekube.server import FakeKube

_SEED = re.compile(r"^(?P<namespace>[^/=]+)/(?P<name>[^/=]+)(?:=(?P<replicas>\d+))?$")


def seed(text: str) -> tuple[str, str, int]:
    """``NS/NAME=REPLICAS`` (replicas default to 1) as (namespace, name, replicas)."""
    match = _SEED.match(text)
    if match is None:
        raise argparse.ArgumentTypeError(f"expected NS/NAME=REPLICAS, got {text!r}")
    return match["namespace"], match["name"], int(match["replicas"] or 1)


async def serve(args: argparse.Namespace) -> None:
    fake = FakeKube()
    for namespace, name, replicas in args.seed_deployment:
        fake.add_deployment(namespace, name, replicas=replicas)
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
    parser = argparse.ArgumentParser(
        prog="python -m tests.fakekube", description=(__doc__ or "").splitlines()[0]
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--kubeconfig-out", help="write a kubeconfig for the server here")
    parser.add_argument(
        "--seed-deployment",
        type=seed,
        action="append",
        default=[],
        metavar="NS/NAME=REPLICAS",
        help="create a Deployment (labelled app=NAME) before serving; repeatable",
    )
    asyncio.run(serve(parser.parse_args()))


if __name__ == "__main__":
    main()
