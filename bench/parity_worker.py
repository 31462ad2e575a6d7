"""A worker process for bench/parity.py: ours (as deployed) or the hand-written baseline.

    python -m bench.parity_worker ours [--no-cache] [--local-load] [--cprofile FILE]
    python -m bench.parity_worker baseline [--cprofile FILE] -- <bench.baseline arguments>

`ours` runs worker/main.py `main()` unchanged (settings from the environment, as
`python -m worker`); `--no-cache` gives the by-name loader no definition cache, i.e.
the loader as it was before the cache (activities/definitions.py); `--local-load` runs
the workflow as it was before the start-activity patch (bench/variants.py), to measure
before and after in one run. `baseline` runs bench/baseline.py `main()`.

`--cprofile FILE` profiles every thread of the process with cProfile from start to
exit (SIGTERM) and writes the merged stats to FILE (pstats format).
"""

from __future__ import annotations

import argparse
import cProfile
import functools
import pstats
import sys
import threading
from typing import Any


def _run_ours(no_cache: bool, local_load: bool) -> None:
    import worker.main as worker_main
    from activities.definitions import DefinitionActivities
    from bench.variants import StoredWorkflowLocalLoad

    if local_load:
        worker_main.StoredWorkflow = StoredWorkflowLocalLoad  # type: ignore[misc]
    if no_cache:
        worker_main.DefinitionActivities = functools.partial(  # type: ignore[misc]
            DefinitionActivities, cache_size=0
        )
    worker_main.main()


def _run_baseline(rest: list[str]) -> None:
    from bench import baseline

    sys.argv = ["bench.baseline", *rest]
    baseline.main()


def _profiled(run: Any, out: str) -> None:
    profiles: list[cProfile.Profile] = []

    def start_profile(*_: Any) -> None:
        profile = cProfile.Profile()
        profiles.append(profile)
        profile.enable()  # replaces this hook for the thread that called it

    main = cProfile.Profile()
    profiles.append(main)
    threading.setprofile(start_profile)
    main.enable()
    try:
        run()
    finally:
        main.disable()
        threading.setprofile(None)  # type: ignore[arg-type]
        stats: pstats.Stats | None = None
        for profile in profiles:
            profile.disable()
            try:
                if stats is None:
                    stats = pstats.Stats(profile)
                else:
                    stats.add(profile)
            except TypeError:  # a thread that never ran anything profiled
                continue
        if stats is not None:
            stats.dump_stats(out)


def main() -> None:
    argv = sys.argv[1:]
    rest: list[str] = []
    if "--" in argv:
        at = argv.index("--")
        argv, rest = argv[:at], argv[at + 1 :]
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("which", choices=["ours", "baseline"])
    parser.add_argument("--no-cache", action="store_true")
    parser.add_argument("--local-load", action="store_true")
    parser.add_argument("--cprofile", default=None)
    args = parser.parse_args(argv)
    if args.which == "ours":
        run = functools.partial(_run_ours, args.no_cache, args.local_load)
    else:
        run = functools.partial(_run_baseline, rest)
    if args.cprofile:
        _profiled(run, args.cprofile)
    else:
        run()


if __name__ == "__main__":
    main()
