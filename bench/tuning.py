"""Dev-server settings and worker options the benchmark measures, by name.

The same presets apply to the baseline's worker and to ours, so a comparison never
mixes settings.
"""

from __future__ import annotations

from typing import Any

from temporalio.worker import PollerBehaviorAutoscaling, PollerBehaviorSimpleMaximum

from core.devserver import DevServer


def _dc(key: str, value: object) -> list[str]:
    return ["--dynamic-config-value", f"{key}={value}"]


TRANSFER_RPS = _dc("history.transferProcessorMaxPollRPS", 1000)
"""The history service reads its transfer queue (the tasks that hand workflow tasks and
non-eager activity tasks to matching) at most 20 times a second by default. The dev
server has a single history shard, so every workflow task waits for the next read:
up to 50 ms, about 35 ms on average once the worker is quick. 1000 reads a second
removes the wait; a read is one indexed SQLite query."""

SQLITE_WAL = ["--sqlite-pragma", "journal_mode=wal"]
"""Write-ahead log instead of the rollback journal: a commit appends to one file
instead of creating, syncing and deleting a journal, and readers do not wait for it."""

SQLITE_SYNC_NORMAL = ["--sqlite-pragma", "synchronous=normal"]
"""In WAL mode: fsync at checkpoints, not at every commit. Never corrupts the file; a
power cut can lose the last commits."""

SQLITE_NO_SYNC = ["--sqlite-pragma", "synchronous=off"]
"""Commit without fsync. Loses the last transactions on a power cut (not on a crash of
the process); for a dev server or a benchmark only."""

ONE_PARTITION = _dc("matching.numTaskqueueReadPartitions", 1) + _dc(
    "matching.numTaskqueueWritePartitions", 1
)

SERVER_PRESETS: dict[str, list[str]] = {
    "default": [],
    "transfer-rps": TRANSFER_RPS,
    "one-partition": ONE_PARTITION,
    "wal": SQLITE_WAL,
    "wal+no-sync": SQLITE_WAL + SQLITE_NO_SYNC,
    "no-sync": SQLITE_NO_SYNC,
    "transfer-rps+wal": TRANSFER_RPS + SQLITE_WAL,
    "transfer-rps+one-partition+wal": TRANSFER_RPS + ONE_PARTITION + SQLITE_WAL,
    "transfer-rps+wal+normal+one-partition": TRANSFER_RPS
    + SQLITE_WAL
    + SQLITE_SYNC_NORMAL
    + ONE_PARTITION,
    "transfer-rps+wal+normal": TRANSFER_RPS + SQLITE_WAL + SQLITE_SYNC_NORMAL,
    "transfer-rps+wal+no-sync": TRANSFER_RPS + SQLITE_WAL + SQLITE_NO_SYNC,
}
"""Extra arguments of `temporal server start-dev`, for DevServer(extra_args=...)."""

RECOMMENDED_SERVER = "transfer-rps+wal+normal"


def worker_options(tuning: dict[str, Any]) -> dict[str, Any]:
    """Worker(...) keyword arguments from a JSON-friendly dict.

    Keys: `wf_pollers` and `act_pollers` (a maximum, or "auto" for the autoscaling
    poller behaviour), `nonsticky_ratio`, `max_cached_workflows`,
    `disable_eager_activities`.
    """
    options: dict[str, Any] = {}
    for key, option in (
        ("wf_pollers", "workflow_task_poller_behavior"),
        ("act_pollers", "activity_task_poller_behavior"),
    ):
        value = tuning.get(key)
        if value == "auto":
            options[option] = PollerBehaviorAutoscaling()
        elif value is not None:
            options[option] = PollerBehaviorSimpleMaximum(maximum=int(value))
    if "nonsticky_ratio" in tuning:
        options["nonsticky_to_sticky_poll_ratio"] = float(tuning["nonsticky_ratio"])
    if "max_cached_workflows" in tuning:
        options["max_cached_workflows"] = int(tuning["max_cached_workflows"])
    if tuning.get("disable_eager_activities"):
        options["disable_eager_activity_execution"] = True
    return options


_SETTING_FLAGS = frozenset({"--dynamic-config-value", "--sqlite-pragma"})


def preset_server(preset: str, **kwargs: Any) -> DevServer:
    """A dev server whose settings are exactly the preset's.

    The project's DevServer may add settings of its own (core/devserver.py); they are
    taken out of its command here, so "default" means Temporal's defaults and every
    preset is measured from the same clean command.
    """
    extra = SERVER_PRESETS[preset]

    class _PresetServer(DevServer):
        def command(self) -> list[str]:
            saved, self.extra_args = self.extra_args, []
            try:
                base = super().command()
            finally:
                self.extra_args = saved
            clean: list[str] = []
            skip = False
            for arg in base:
                if skip:
                    skip = False
                elif arg in _SETTING_FLAGS:
                    skip = True
                else:
                    clean.append(arg)
            return clean + list(extra)

    return _PresetServer(**kwargs)
