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
import threading
import time
from typing import IO

from core.devserver import DevServer, wait_for_port
from core.settings import get_settings

EXAMPLES_ADDRESS = "127.0.0.1:8006"
"""Where `dev` runs the example services; it adds this address to ALLOWED_HOSTS."""
PREFIX_WIDTH = len("examples")
"""`dev` writes each child's lines after its name padded to this width: `worker  | `."""


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
    # Unbuffered, so a child's lines reach the console as it writes them, not in blocks.
    env = {**os.environ, "DATA_DIR": str(data), "PYTHONUNBUFFERED": "1"}
    if not args.no_examples:
        # Outbound calls refuse loopback by default; the dev stack allows its own example
        # services and whatever ALLOWED_HOSTS names, nothing else on this machine.
        env["ALLOWED_HOSTS"] = with_examples_allowed(settings.allowed_hosts)
    children: list[tuple[str, subprocess.Popen[bytes]]] = []
    readers: list[threading.Thread] = []
    console = threading.Lock()  # held for each line: the children's and ours never mix

    def say(text: str) -> None:
        with console:
            print(text, flush=True)

    def spawn(name: str, *command: str) -> None:
        child = subprocess.Popen(
            [sys.executable, "-m", *command],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        children.append((name, child))
        assert child.stdout is not None
        reader = threading.Thread(
            target=_copy_lines,
            args=(child.stdout, f"{name:<{PREFIX_WIDTH}}| ", console),
            name=f"{name}-output",
            daemon=True,
        )
        reader.start()
        readers.append(reader)

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
        say(
            f"\nService Integration is up:\n"
            f"  gateway      http://{settings.gateway_host}:{settings.gateway_port}/api "
            f"(OpenAPI: /docs)\n"
            f"  Temporal UI  http://127.0.0.1:{args.ui_port}\n"
            + ("" if args.no_examples else f"  examples     http://{EXAMPLES_ADDRESS}\n")
            + "Press Ctrl-C to stop.\n"
        )
        while not stopping:
            for name, child in children:
                if child.poll() is not None:
                    say(f"{name} exited with {child.returncode}; stopping the stack")
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
        for reader in readers:
            reader.join(5)  # the last lines of each child, before "stopped"
        server.stop()
        print("stopped")
    return 0


def with_examples_allowed(allowed_hosts: str) -> str:
    """ALLOWED_HOSTS for the dev stack: the given entries and the example services.

    Args:
        allowed_hosts: ALLOWED_HOSTS as set (comma-separated; may be empty).

    Returns:
        The entries, comma-joined, with EXAMPLES_ADDRESS added unless already there.
    """
    entries = [e.strip() for e in allowed_hosts.split(",") if e.strip()]
    if EXAMPLES_ADDRESS not in entries:
        entries.append(EXAMPLES_ADDRESS)
    return ",".join(entries)


def _copy_lines(stream: IO[bytes], prefix: str, console: threading.Lock) -> None:
    """Copy a child's output to ours line by line, each line after `prefix`, until EOF."""
    with stream:
        for raw in iter(stream.readline, b""):
            line = raw.decode(errors="replace").rstrip("\r\n")
            with console:
                sys.stdout.write(f"{prefix}{line}\n")
                sys.stdout.flush()


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
    gateway.add_argument(
        "--port",
        type=int,
        default=None,
        help="port to listen on (default: GATEWAY_PORT or 8005; the host is GATEWAY_HOST)",
    )
    examples = commands.add_parser("examples", help="run the example services")
    examples.add_argument("--port", type=int, default=8006, help="port to listen on")
    examples.add_argument("--host", default="127.0.0.1", help="address to listen on")
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
