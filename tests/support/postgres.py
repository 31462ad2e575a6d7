"""A private PostgreSQL cluster (the machine's own server binaries) that a test may stop."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from core.devserver import free_port


def _bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    if not found:
        raise RuntimeError(f"PostgreSQL server binary {name} not found under /usr/lib/postgresql")
    return found[-1]


def _as_postgres(*args: str) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *args] if os.geteuid() == 0 else list(args)


@dataclass
class PrivatePostgres:
    folder: Path
    port: int

    @property
    def url(self) -> str:
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/postgres"

    @classmethod
    def create(cls) -> PrivatePostgres:
        folder = Path(tempfile.mkdtemp(prefix="si-pg-"))
        if os.geteuid() == 0:
            shutil.chown(folder, "postgres", "postgres")
        subprocess.run(
            _as_postgres(
                _bin("initdb"), "-D", str(folder / "data"), "-A", "trust", "-U", "postgres"
            ),
            check=True,
            capture_output=True,
        )
        return cls(folder=folder, port=free_port())

    def start(self) -> None:
        subprocess.run(
            _as_postgres(
                _bin("pg_ctl"),
                "-D",
                str(self.folder / "data"),
                "-o",
                f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1",
                "-l",
                str(self.folder / "log"),
                "-w",
                "start",
            ),
            check=True,
            capture_output=True,
        )

    def stop(self) -> None:
        subprocess.run(
            _as_postgres(
                _bin("pg_ctl"), "-D", str(self.folder / "data"), "-m", "immediate", "stop"
            ),
            check=False,
            capture_output=True,
        )

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.folder, ignore_errors=True)
