"""Where do the ~50 ms per activity go? Dev-server settings and worker options, measured.

Runs the hand-written baseline (bench/baseline.py) against several dev servers at
once, one per settings preset (bench/tuning.py), each with its own worker process,
and against several worker processes with different options on one server. The
sequential runs are interleaved (one execution per variant in turn), so background
load on the machine hits every variant alike; the throughput phases run one after
the other. The server's event times split each execution into workflow-task dispatch
and run, and activity dispatch and run (bench/history.py).

Part of `python -m bench.run`; alone: `python -m bench.investigate`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from temporalio.client import Client

from bench import baseline
from bench.history import breakdown
from bench.procs import Child, spawn, wait_for_quiet
from bench.report import table
from bench.stats import in_blocks, throughput
from bench.tuning import RECOMMENDED_SERVER, SERVER_PRESETS, preset_server
from core.devserver import DevServer, free_port

WORKER_VARIANTS: list[tuple[str, str, dict[str, Any]]] = [
    # (name, server preset, worker options of bench.tuning.worker_options)
    ("default options", RECOMMENDED_SERVER, {}),
    ("2 wf + 1 activity poller", RECOMMENDED_SERVER, {"wf_pollers": 2, "act_pollers": 1}),
    ("20 pollers each", RECOMMENDED_SERVER, {"wf_pollers": 20, "act_pollers": 20}),
    ("autoscaling pollers", RECOMMENDED_SERVER, {"wf_pollers": "auto", "act_pollers": "auto"}),
    ("nonsticky ratio 1.0", RECOMMENDED_SERVER, {"nonsticky_ratio": 1.0}),
    ("no sticky cache", RECOMMENDED_SERVER, {"max_cached_workflows": 0}),
    ("no eager activities", RECOMMENDED_SERVER, {"disable_eager_activities": True}),
    ("no eager activities", "default", {"disable_eager_activities": True}),
]

WORKER_VARIANTS_DEFAULT = [
    v
    for v in WORKER_VARIANTS
    if v[0]
    in (
        "default options",
        "2 wf + 1 activity poller",
        "20 pollers each",
        "autoscaling pollers",
        "nonsticky ratio 1.0",
        "no sticky cache",
        "no eager activities",
    )
]
"""The variants `python -m bench.run` measures (all of them: `python -m bench.investigate`)."""


@dataclass
class Target:
    name: str
    preset: str
    tuning: dict[str, Any]
    server: DevServer
    task_queue: str
    worker: Child | None = None
    client: Client | None = None
    figures: dict[str, Any] = field(default_factory=dict)


def _start_servers(presets: list[str], workdir: Path) -> dict[str, DevServer]:
    def start(preset: str) -> tuple[str, DevServer]:
        folder = workdir / f"temporal-{preset}"
        folder.mkdir(parents=True, exist_ok=True)
        server = preset_server(
            preset,
            db_file=folder / "temporal.db",
            port=free_port(),
            ui_port=None,
            log_file=folder / "server.log",
        )
        return preset, server.start()

    with ThreadPoolExecutor(max_workers=len(presets)) as pool:
        return dict(pool.map(start, presets))


async def run(
    *,
    endpoints: dict[str, str],
    workdir: Path,
    blocks: int,
    block: int,
    total: int,
    in_flight: int,
    presets: list[str] | None = None,
    variants: list[tuple[str, str, dict[str, Any]]] | None = None,
    quiet: tuple[float, float] = (0.3, 20.0),
    throughput_of: list[str] | None = None,
    log: Any = print,
) -> dict[str, Any]:
    """Measure every preset and worker variant; return the figures by section.

    Args:
        quiet: (cores, seconds): before each phase, wait up to `seconds` until other
            processes use under `cores`.
    """
    variants = WORKER_VARIANTS if variants is None else variants
    presets = list(presets or SERVER_PRESETS)
    for _, preset, _ in variants:
        if preset not in presets:
            presets.append(preset)
    log(f"investigation: starting {len(presets)} dev servers ({', '.join(presets)})")
    servers = _start_servers(presets, workdir)
    targets: list[Target] = []
    for preset in presets:
        targets.append(
            Target(f"server: {preset}", preset, {}, servers[preset], f"inv-{uuid.uuid4().hex[:8]}")
        )
    variant_targets: list[Target] = [
        Target(
            f"worker: {name} ({preset})",
            preset,
            tuning,
            servers[preset],
            f"inv-{uuid.uuid4().hex[:8]}",
        )
        for name, preset, tuning in variants
    ]
    everything = targets + variant_targets
    try:
        for target in everything:
            target.worker = spawn(
                f"baseline worker {target.name}",
                [
                    sys.executable,
                    "-m",
                    "bench.baseline",
                    "--address",
                    target.server.address,
                    "--task-queue",
                    target.task_queue,
                    "--endpoints",
                    endpoints["extract"],
                    endpoints["analyze"],
                    endpoints["summarize"],
                    "--tuning",
                    json.dumps(target.tuning),
                ],
                log=workdir / f"worker-{target.task_queue}.log",
                ready_line="ready",
            )
        clients = {p: await Client.connect(s.address) for p, s in servers.items()}
        for target in everything:
            target.client = clients[target.preset]

        ours = [
            os.getpid(),
            *(t.worker.pid for t in everything if t.worker),
            *(s.process.pid for s in servers.values() if s.process),
        ]
        background = [wait_for_quiet(ours, threshold=quiet[0], max_wait=quiet[1])]
        log(
            f"investigation: {blocks} x {block} back-to-back executions of each of "
            f"{len(everything)} variants"
        )
        handles: dict[str, list[Any]] = {t.name: [] for t in everything}

        def pipeline(target: Target, workflow: str = "DocumentPipeline"):
            async def call() -> None:
                assert target.client is not None
                handle = await target.client.start_workflow(
                    workflow,
                    baseline.PipelineInput(document_url="http://docs/report.pdf"),
                    id=f"inv-{uuid.uuid4().hex}",
                    task_queue=target.task_queue,
                )
                await handle.result()
                if workflow == "DocumentPipeline":
                    handles[target.name].append(handle)

            return call

        calls = {t.name: pipeline(t) for t in everything}
        calls.update({f"{t.name} [no activity]": pipeline(t, "Empty") for t in targets})
        discard = min(block // 3, 8)
        sequential = await in_blocks(calls, blocks=blocks, block=block, discard=discard)
        for target in everything:
            target.figures["sequential"] = sequential[target.name]
            kept = [h for i, h in enumerate(handles[target.name]) if i % block >= discard]
            target.figures["breakdown"] = await breakdown(kept[-30:])
            if target in targets:
                target.figures["empty"] = sequential[f"{target.name} [no activity]"]
        for target in everything:
            if throughput_of is not None and target.name not in throughput_of:
                continue
            background.append(wait_for_quiet(ours, threshold=quiet[0], max_wait=quiet[1]))
            log(
                f"investigation: throughput of {target.name}, {total} executions, "
                f"{in_flight} in flight"
            )
            target.figures["throughput"] = await throughput(
                pipeline(target), total=total, in_flight=in_flight
            )
            handles[target.name].clear()
        return {"targets": everything, "background_cores": background}
    finally:
        for target in everything:
            if target.worker is not None:
                target.worker.stop()
        for server in servers.values():
            server.stop()


def rows(result: dict[str, Any]) -> tuple[list[str], list[list[object]]]:
    headers = [
        "variant",
        "p50 ms",
        "p95 ms",
        "no-activity p50",
        "WFT dispatch p50",
        "WFT run p50",
        "activity dispatch p50",
        "activity run p50",
        "wf/s (200 in flight)",
    ]
    out = []
    for target in result["targets"]:
        seq = target.figures["sequential"]
        hop = target.figures["breakdown"]
        empty = target.figures.get("empty")
        out.append(
            [
                target.name,
                seq.p50,
                seq.p95,
                empty.p50 if empty else None,
                hop.get("wft_dispatch", {}).get("p50"),
                hop.get("wft_run", {}).get("p50"),
                hop.get("activity_dispatch", {}).get("p50"),
                hop.get("activity_run", {}).get("p50"),
                target.figures["throughput"].per_second if "throughput" in target.figures else None,
            ]
        )
    return headers, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--blocks", type=int, default=2)
    parser.add_argument("--block", type=int, default=20)
    parser.add_argument("--total", type=int, default=300)
    parser.add_argument("--in-flight", type=int, default=200)
    parser.add_argument("--presets", nargs="*", default=None, help="server presets (all)")
    parser.add_argument("--no-worker-variants", action="store_true")
    parser.add_argument("--only-variants", nargs="*", default=None, help="worker variant names")
    args = parser.parse_args()

    from bench.stubs import SERVICES

    async def _run() -> None:
        with tempfile.TemporaryDirectory(prefix="bench-investigate-") as tmp:
            workdir = Path(tmp)
            ports = [free_port() for _ in SERVICES]
            stubs = spawn(
                "stubs",
                [sys.executable, "-m", "bench.stubs", *map(str, ports)],
                log=workdir / "stubs.log",
                ready_line="ready",
            )
            try:
                endpoints = {
                    s: f"http://127.0.0.1:{p}" for s, p in zip(SERVICES, ports, strict=True)
                }
                result = await run(
                    endpoints=endpoints,
                    workdir=workdir,
                    blocks=args.blocks,
                    block=args.block,
                    total=args.total,
                    in_flight=args.in_flight,
                    presets=args.presets,
                    variants=[]
                    if args.no_worker_variants
                    else [
                        v
                        for v in WORKER_VARIANTS
                        if args.only_variants is None or v[0] in args.only_variants
                    ],
                )
            finally:
                stubs.stop()
            headers, body = rows(result)
            print(table(headers, body, markdown=False))
            print("cores used by other processes before each phase:", result["background_cores"])

    asyncio.run(_run())


if __name__ == "__main__":
    main()
