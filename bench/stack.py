"""The stack the benchmark starts for itself, everything on loopback in a temp folder.

- a Temporal dev server (headless, its own SQLite file and ports, settings preset of
  bench/tuning.py);
- the stub services (bench/stubs.py);
- one worker process, `python -m worker`, exactly as deployed;
- one gateway process, `python -m cli gateway`, with its SQLite registry in the folder;
- a second gateway with GATEWAY_EMBEDDED_WORKER on its own task queue, the project's
  low-latency setup (eager start of mode=low_latency workflows);
- the baseline's worker process (bench/baseline.py), with the same worker settings;
- a second worker process running a proposed change of the workflow (bench/variants.py);
- a bare FastAPI app under uvicorn with the gateway's flags (bench/bare.py).
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from bench.procs import Child, spawn, wait_http
from bench.stubs import SERVICES
from bench.tuning import SERVER_PRESETS, preset_server
from core.devserver import DevServer, free_port

TASK_QUEUE = "bench-si"
BASELINE_TASK_QUEUE = "bench-baseline"
VARIANT_TASK_QUEUE = "bench-si-variant"
EMBEDDED_TASK_QUEUE = "bench-si-embedded"

ACTION_SCHEMAS = {
    "extract": (
        {
            "type": "object",
            "properties": {"document_url": {"type": "string"}},
            "required": ["document_url"],
        },
        {"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]},
    ),
    "analyze": (
        {"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]},
        {
            "type": "object",
            "properties": {"sentiment": {"type": "string"}, "score": {"type": "number"}},
            "required": ["sentiment"],
        },
    ),
    "summarize": (
        {
            "type": "object",
            "properties": {"text": {"type": "string"}, "sentiment": {"type": "string"}},
            "required": ["text", "sentiment"],
        },
        {"type": "object", "properties": {"summary": {"type": "string"}}, "required": ["summary"]},
    ),
}
"""Input and output JSON Schemas of the stub actions, as a user would register them."""

RETRY_POLICY = {
    "initial_interval": 1,
    "backoff_coefficient": 2,
    "maximum_interval": 30,
    "maximum_attempts": 5,
}
"""The baseline's RetryPolicy (bench/baseline.py RETRY), so both retry alike."""


@dataclass
class Stack:
    workdir: Path
    server_preset: str
    server: DevServer | None = None
    stubs: Child | None = None
    worker: Child | None = None
    gateway: Child | None = None
    embedded_gateway: Child | None = None
    baseline_worker: Child | None = None
    variant_worker: Child | None = None
    bare: Child | None = None
    endpoints: dict[str, str] = field(default_factory=dict)
    gateway_url: str = ""
    embedded_gateway_url: str = ""
    bare_url: str = ""
    database_url: str = ""
    workflow_ids: dict[str, str] = field(default_factory=dict)

    def children(self) -> dict[str, Child]:
        found = {
            "worker": self.worker,
            "gateway": self.gateway,
            "gateway (embedded worker)": self.embedded_gateway,
            "baseline worker": self.baseline_worker,
            "variant worker": self.variant_worker,
            "stubs": self.stubs,
            "bare app": self.bare,
        }
        return {name: child for name, child in found.items() if child is not None}

    def server_pid(self) -> int | None:
        return self.server.process.pid if self.server and self.server.process else None

    def pids(self) -> list[int]:
        pids = [os.getpid(), *(c.pid for c in self.children().values())]
        server = self.server_pid()
        return pids + ([server] if server else [])

    def env(self) -> dict[str, str]:
        assert self.server is not None
        return {
            **os.environ,
            "ENVIRONMENT": "local",
            "TEMPORAL_ADDRESS": self.server.address,
            "TEMPORAL_NAMESPACE": "default",
            "TASK_QUEUE": TASK_QUEUE,
            "DATABASE_URL": self.database_url,
            "DATA_DIR": str(self.workdir),
            "API_KEYS": "",
            "ALLOWED_HOSTS": "127.0.0.1",  # the stub services are on loopback
            "WORKER_GRACEFUL_SHUTDOWN_SECONDS": "2",
            "GATEWAY_GRACEFUL_SHUTDOWN_SECONDS": "2",
            "PYTHONUNBUFFERED": "1",
        }

    def start(self, *, log=print) -> Stack:  # noqa: ANN001
        try:
            self._start(log)
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self, log) -> None:  # noqa: ANN001
        w = self.workdir
        ports = [free_port() for _ in SERVICES]
        self.stubs = spawn(
            "stubs",
            [sys.executable, "-m", "bench.stubs", *map(str, ports)],
            log=w / "stubs.log",
            ready_line="ready",
        )
        self.endpoints = {s: f"http://127.0.0.1:{p}" for s, p in zip(SERVICES, ports, strict=True)}
        flags = " ".join(SERVER_PRESETS[self.server_preset]) or "no extra flags"
        log(f"stack: dev server ({self.server_preset}: {flags})")
        (w / "temporal").mkdir(exist_ok=True)
        self.server = preset_server(
            self.server_preset,
            db_file=w / "temporal" / "temporal.db",
            port=free_port(),
            ui_port=None,
            log_file=w / "temporal" / "server.log",
        ).start()
        self.database_url = f"sqlite+aiosqlite:///{w / 'registry.db'}"
        env = self.env()
        log("stack: worker, gateway, baseline worker, bare app")
        gateway_port, bare_port = free_port(), free_port()
        self.gateway = spawn(
            "gateway",
            [sys.executable, "-m", "cli", "gateway"],
            env={**env, "GATEWAY_PORT": str(gateway_port)},
            log=w / "gateway.log",
        )
        self.gateway_url = f"http://127.0.0.1:{gateway_port}/api"
        # The gateway migrates the registry; the worker waits for it so they do not race.
        wait_http(f"{self.gateway_url}/health", child=self.gateway)
        self.worker = spawn(
            "worker",
            [sys.executable, "-m", "worker"],
            env=env,
            log=w / "worker.log",
            ready_line="worker polling task queue",
        )
        self.variant_worker = spawn(
            "variant worker",
            [sys.executable, "-m", "bench.variants"],
            env={**env, "TASK_QUEUE": VARIANT_TASK_QUEUE},
            log=w / "variant-worker.log",
            ready_line="worker polling task queue",
        )
        self.baseline_worker = spawn(
            "baseline worker",
            [
                sys.executable,
                "-m",
                "bench.baseline",
                "--address",
                self.server.address,
                "--task-queue",
                BASELINE_TASK_QUEUE,
                "--endpoints",
                *(self.endpoints[s] for s in SERVICES),
            ],
            log=w / "baseline-worker.log",
            ready_line="ready",
        )
        # The gateway's low-latency setup: a worker inside the gateway process
        # (GATEWAY_EMBEDDED_WORKER), so low_latency workflows start eagerly. Its own task
        # queue, so it takes no work from the worker process measured in b-e.
        embedded_port = free_port()
        self.embedded_gateway = spawn(
            "gateway (embedded worker)",
            [sys.executable, "-m", "cli", "gateway"],
            env={
                **env,
                "GATEWAY_PORT": str(embedded_port),
                "GATEWAY_EMBEDDED_WORKER": "true",
                "TASK_QUEUE": EMBEDDED_TASK_QUEUE,
            },
            log=w / "gateway-embedded.log",
        )
        self.embedded_gateway_url = f"http://127.0.0.1:{embedded_port}/api"
        wait_http(f"{self.embedded_gateway_url}/health", child=self.embedded_gateway)
        self.bare = spawn(
            "bare app",
            [
                sys.executable,
                "-m",
                "bench.bare",
                "--port",
                str(bare_port),
                "--database",
                str(w / "registry.db"),
            ],
            env=env,
            log=w / "bare.log",
        )
        self.bare_url = f"http://127.0.0.1:{bare_port}"
        wait_http(f"{self.bare_url}/api/ping", child=self.bare)

    def register(self) -> None:
        """Register the stub services and the 3-step workflows through the gateway's API.

        `bench-doc` runs its steps as activities; `bench-doc-local` runs the same steps,
        registered with `"mode": "local"`, as local activities; `bench-doc-lowlat` is
        `bench-doc` stored with the workflow's `"mode": "low_latency"`.
        """
        with httpx.Client(base_url=self.gateway_url, timeout=30) as http:
            for suffix, mode in (("", "activity"), ("-local", "local")):
                for service in SERVICES:
                    input_schema, output_schema = ACTION_SCHEMAS[service]
                    answer = http.post(
                        "/services",
                        json={
                            "name": f"bench-{service}{suffix}",
                            "endpoint": self.endpoints[service],
                            "actions": [
                                {
                                    "name": service,
                                    "input_schema": input_schema,
                                    "output_schema": output_schema,
                                    "timeout": 30,
                                    "retry_policy": RETRY_POLICY,
                                    "mode": mode,
                                }
                            ],
                        },
                    )
                    answer.raise_for_status()
                steps = [
                    {
                        "id": service,
                        "service": f"bench-{service}{suffix}",
                        "action": service,
                        "next": following,
                    }
                    for service, following in zip(SERVICES, [*SERVICES[1:], None], strict=True)
                ]
                answer = http.post(
                    "/workflows", json={"name": f"bench-doc{suffix}", "steps": steps}
                )
                answer.raise_for_status()
                self.workflow_ids[f"bench-doc{suffix}"] = answer.json()["id"]
                if suffix:
                    continue
                # The project's low-latency mode: the same steps, mode=low_latency.
                answer = http.post(
                    "/workflows",
                    json={"name": "bench-doc-lowlat", "steps": steps, "mode": "low_latency"},
                )
                answer.raise_for_status()
                self.workflow_ids["bench-doc-lowlat"] = answer.json()["id"]

    def stop(self) -> None:
        for child in reversed(list(self.children().values())):
            child.stop()
        if self.server is not None:
            self.server.stop()
