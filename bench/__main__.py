"""`python -m bench <scenario> [options]`: one benchmark scenario (`--help` after it for its
options). `python -m bench.<scenario>` runs the same.

    run              the benchmark of issue 5 (about 10 minutes; `./run bench`): direct
                     calls, hand-written Temporal code, ours by the SDK and the gateway,
                     low-latency mode, the registry at 10,000 services
    parity           started by name vs hand-written (about 3 minutes)
    gateway          POST /execute over the SDK start; list pages against a bare endpoint
    scale            1 and 2 worker processes, and what one execution costs
    language         what the workflow language costs (mapping, parallel, map)
    visibility_cost  what search-attribute upserts and patches cost the dev server
    regex            the catastrophic pattern on the project's validator (RE2)
    schemas          the project's JSON Schema validation against jsonschema-rs
"""

from __future__ import annotations

import importlib
import sys

SCENARIOS = ("run", "parity", "gateway", "scale", "language", "visibility_cost", "regex", "schemas")


def main(argv: list[str]) -> None:
    if argv[:1] in (["-h"], ["--help"]):
        print(__doc__)
        return
    if not argv or argv[0] not in SCENARIOS:
        given = f"unknown scenario {argv[0]!r}; " if argv else ""
        raise SystemExit(f"{given}choose one of: {', '.join(SCENARIOS)} (--help says what each is)")
    scenario = importlib.import_module(f"bench.{argv[0]}")
    sys.argv = [f"python -m bench {argv[0]}", *argv[1:]]
    scenario.main()


if __name__ == "__main__":
    main(sys.argv[1:])
