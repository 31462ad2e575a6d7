"""The gateway package imports no worker code: the embedded worker is handed to
create_app by the entry point (cli/gateway.py), so a gateway can be deployed, built and
type-checked without the worker, its workflows or its activities."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

PROBE = """
import importlib, json, pkgutil, sys
import gateway, gateway.app
for module in pkgutil.walk_packages(gateway.__path__, "gateway."):
    importlib.import_module(module.name)
print(json.dumps(sorted(sys.modules)))
"""


def imported_by_the_gateway() -> list[str]:
    answer = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert answer.returncode == 0, answer.stderr
    return json.loads(answer.stdout.splitlines()[-1])


def test_importing_the_whole_gateway_package_imports_no_worker_code():
    modules = imported_by_the_gateway()
    assert "gateway.app" in modules and "gateway.routes.executions" in modules
    for package in ("worker", "workflows", "activities"):
        offenders = [m for m in modules if m == package or m.startswith(f"{package}.")]
        assert offenders == [], f"the gateway imports {offenders}"


def test_the_entry_point_wires_the_embedded_worker():
    import cli.gateway
    from gateway.app import EmbeddedWorker

    hook: EmbeddedWorker = cli.gateway.embedded_worker
    assert callable(hook)
