"""`service-integration`: run the whole stack, or one part of it.

service-integration dev        Temporal dev server + worker + gateway + example services
service-integration worker     a worker against TEMPORAL_ADDRESS (--processes N: N of them)
service-integration gateway    the gateway on GATEWAY_PORT (8005)
service-integration examples   the example services on 8006
service-integration migrate    apply the registry's migrations to DATABASE_URL
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import sys
import time

from core.devserver import DevServer, wait_for_port
from core.settings import get_settings

EXAMPLES_ADDRESS = "127.0.0.1:8006"
"""Where `dev` runs the example services, and the one internal address it lets steps call."""


def _dev(args: argparse.Namespace) -> int:
    settings = get_settings()
    data = settings.data_dir.resolve()
    data.mkdir(parents=True, exist_ok=True)
    host, _, port = settings.temporal_address.rpartition(":")
    server = DevServer(
        db_file=data / "temporal.db",
        host=host or "127.0.0.1",
        port=int(port),
        ui_port=args.ui_port,
        namespace=settings.temporal_namespace,
        log_file=data / "temporal.log",
    )
    print(f"starting Temporal dev server on {server.address} (state in {server.db_file})")
    server.start()
    env = {**os.environ, "DATA_DIR": str(data)}
    if not args.no_examples and not settings.allowed_hosts:
        # Outbound calls refuse loopback by default; the dev stack allows exactly its own
        # example services, nothing else on this machine.
        env["ALLOWED_HOSTS"] = EXAMPLES_ADDRESS
    children: list[tuple[str, subprocess.Popen[bytes]]] = []

    def spawn(name: str, *command: str) -> None:
        children.append((name, subprocess.Popen([sys.executable, "-m", *command], env=env)))

    stopping = False

    def stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        asyncio.run(_migrate())
        spawn("worker", "worker")
        spawn("gateway", "cli", "gateway")
        if not args.no_examples:
            spawn("examples", "examples")
        wait_for_port(settings.gateway_host, settings.gateway_port, timeout=60)
        print(
            f"\nService Integration is up:\n"
            f"  gateway      http://{settings.gateway_host}:{settings.gateway_port}/api "
            f"(OpenAPI: /docs)\n"
            f"  Temporal UI  http://127.0.0.1:{args.ui_port}\n"
            + ("" if args.no_examples else f"  examples     http://{EXAMPLES_ADDRESS}\n")
            + "Press Ctrl-C to stop.\n",
            flush=True,
        )
        while not stopping:
            for name, child in children:
                if child.poll() is not None:
                    print(f"{name} exited with {child.returncode}; stopping the stack")
                    stopping = True
            time.sleep(0.2)
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        for _, child in reversed(children):
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        for _, child in children:
            try:
                child.wait(40)
            except subprocess.TimeoutExpired:
                child.kill()
        server.stop()
        print("stopped")
    return 0


async def _migrate() -> None:
    from registry.db import open_database

    async with open_database(get_settings().resolved_database_url):
        pass


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="service-integration",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True)
    dev = commands.add_parser("dev", help="run the whole stack on this machine")
    dev.add_argument("--ui-port", type=int, default=8233, help="Temporal web UI port")
    dev.add_argument("--no-examples", action="store_true", help="don't start the example services")
    worker = commands.add_parser("worker", help="run a worker")
    worker.add_argument(
        "--processes",
        type=int,
        default=None,
        help="worker processes on the task queue, supervised (default: WORKER_PROCESSES or 1)",
    )
    gateway = commands.add_parser("gateway", help="run the gateway")
    gateway.add_argument("--port", type=int, default=None)
    examples = commands.add_parser("examples", help="run the example services")
    examples.add_argument("--port", type=int, default=8006)
    examples.add_argument("--host", default="127.0.0.1")
    commands.add_parser("migrate", help="apply database migrations")
    args = parser.parse_args(argv)

    if args.command == "dev":
        return _dev(args)
    if args.command == "worker":
        from worker.processes import default_processes, run

        return run(args.processes if args.processes is not None else default_processes())
    elif args.command == "gateway":
        from cli.gateway import main as gateway_main

        gateway_main(port=args.port)
    elif args.command == "examples":
        from examples.services import main as examples_main

        examples_main(host=args.host, port=args.port)
    elif args.command == "migrate":
        asyncio.run(_migrate())
    return 0


if __name__ == "__main__":
    sys.exit(main())
