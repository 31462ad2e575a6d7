"""What the workflow language costs: `python -m bench.language` (about 1 minute).

Starts the tests' stack in a temp folder (bench/workload.py `running_stack`), everything
on 127.0.0.1: a headless Temporal dev server with core/devserver.py's settings, one
worker process (`python -m worker`, exactly as deployed, on its own task queue) and the
stub services of harness/services.py, whose `delay` behaviour echoes the JSON body it
is sent after the delay its action names (`d0`, `d10`, `d100`: 0, 10, 100 ms). Flows
are started as the gateway starts them, with the pinned definition in the options
(tests/replay/record.py run_flow).

Measures:

    expressions  definitions/expressions.py Evaluator in this process: µs per
                 evaluation of a 3-field input template, parsed cold and cached, and
                 cached under the builtins the workflow sandbox installs
    mapping      a 3-step chain (0 ms service) as a seed chain (property matching,
                 no flow), as a flow without templates, and as a flow whose every
                 step has a 3-field input template; 100 rounds after 3 warm-up ones,
                 one execution of each per round, the order rotated each round;
                 p50/p95, and the worker's workflow-task time per execution (summed
                 WORKFLOW_TASK_STARTED -> COMPLETED of its history)
    parallel     3 branches of one 100 ms step each, next to a 1-step 100 ms flow
                 and a 1-step 0 ms flow (the fixed cost of an execution)
    map          1,000 items, max_concurrency 50, 10 ms service, next to a 20-step
                 chain of 10 ms steps (20 sequential rounds); the worker's CPU per
                 item and the history events of the map (parent and its batches)

Prints each figure with its target and whether it is met (nothing is asserted, nothing
is written). `--profile` then runs the map, and 30 executions each of the seed and the
mapped chain, with the project's worker inside this process under cProfile (every
thread, workflow threads included), and prints where its time goes by area. The worker
gets a bytecode cache in the temp folder, as the image has (`--no-bytecode-cache`: run
it as this environment would, PYTHONDONTWRITEBYTECODE kept). docs/benchmarks.md,
"Workflow language", has the figures of one run.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from temporalio.client import Client

from bench.history import hops
from bench.procs import cpu_seconds, machine, peak_rss_mb, wait_for_quiet
from bench.profiles import every_thread, merged, stats_summary
from bench.report import fmt, table
from bench.stats import Call, Latencies, interleaved, percentile
from bench.workload import Bench, log, running_stack
from core.temporal import connect
from definitions.expressions import Evaluator, compiled
from definitions.language import Flow, TaskStep, iter_steps
from definitions.models import (
    ActionSpec,
    ExecutionOptions,
    PinnedDefinition,
    PinnedStep,
    RetryPolicySpec,
)
from harness.stack import WORKER_COMMAND, WORKER_READY

TASK_QUEUE = "bench-language"
PROFILE_TASK_QUEUE = "bench-language-profile"
SERVICE = "stub"
FIELDS = ("x", "y", "z")
INPUT = {"x": 1, "y": "two", "z": [3, 4, 5]}
RETRY = RetryPolicySpec(initial_interval=1, backoff_coefficient=2, maximum_interval=30)


def start_worker(bench: Bench) -> subprocess.Popen[bytes]:
    """`python -m worker` on this scenario's task queue; returns once it polls."""
    log("stack: worker (python -m worker)")
    return bench.stack.spawn(
        WORKER_COMMAND, "worker", env={"TASK_QUEUE": TASK_QUEUE}, ready_line=WORKER_READY
    )


# ---------------------------------------------------------------------- definitions


def spec(action: str, properties: tuple[str, ...] = ()) -> ActionSpec:
    schema: dict[str, Any] = {"type": "object"}
    if properties:
        schema["properties"] = {name: {} for name in properties}
    return ActionSpec(name=action, input_schema=schema, timeout=30, retry_policy=RETRY)


def flow_definition(
    name: str, flow: dict[str, Any], endpoint: str, properties: tuple[str, ...] = ()
) -> PinnedDefinition:
    """A flow pinned as the gateway pins it: every task with its endpoint and spec."""
    parsed = Flow.model_validate(flow)
    pinned = [
        PinnedStep(
            id=step.id,
            service=step.service,
            action=step.action,
            next=None,
            endpoint=endpoint,
            spec=spec(step.action, properties),
        )
        for step in iter_steps(parsed.steps)
        if isinstance(step, TaskStep)
    ]
    return PinnedDefinition(name=name, entry="-", steps=pinned, flow=parsed)


def seed_definition(
    name: str, actions: list[tuple[str, str]], endpoint: str, properties: tuple[str, ...]
) -> PinnedDefinition:
    """The seed's chain (no flow): each step's input is matched from the data so far."""
    ids = [step_id for step_id, _ in actions]
    return PinnedDefinition(
        name=name,
        entry=ids[0],
        steps=[
            PinnedStep(
                id=step_id,
                service=SERVICE,
                action=action,
                next=following,
                endpoint=endpoint,
                spec=spec(action, properties),
            )
            for (step_id, action), following in zip(actions, [*ids[1:], None], strict=True)
        ],
    )


def task(step_id: str, action: str, following: str | None = None, **fields: Any) -> dict[str, Any]:
    return {"id": step_id, "service": SERVICE, "action": action, "next": following, **fields}


def template(source: str) -> dict[str, str]:
    """A 3-field input template reading `source` (`$input` or `$steps.<id>.output`)."""
    return {name: f"{{% {source}.{name} %}}" for name in FIELDS}


def chain_flow(steps: int, action: str, *, mapped: bool) -> dict[str, Any]:
    ids = [f"s{i + 1}" for i in range(steps)]
    out = []
    for index, step_id in enumerate(ids):
        following = ids[index + 1] if index + 1 < steps else None
        extra: dict[str, Any] = {}
        if mapped:
            extra["input"] = template("$input" if index == 0 else f"$steps.{ids[index - 1]}.output")
        out.append(task(step_id, action, following, **extra))
    return {"steps": out}


def definitions(endpoint: str, *, map_items: int, map_concurrency: int) -> dict[str, Any]:
    """Every measured definition, by variant. `chain-10ms` has as many 10 ms steps as
    the map has rounds (1,000 items / 50 in flight: 20)."""
    rounds = -(-map_items // map_concurrency)
    three = [("s1", "d0"), ("s2", "d0"), ("s3", "d0")]
    branches = [{"steps": [task(f"b{i}", "d100")]} for i in (1, 2, 3)]
    map_flow = {
        "steps": [
            {
                "id": "each",
                "type": "map",
                "items": "{% $input.items %}",
                "max_concurrency": map_concurrency,
                "steps": [task("call", "d10", input={"i": "{% $item %}"})],
            }
        ],
        "output": {"count": "{% $count($steps.each.output) %}"},
    }
    return {
        "seed": seed_definition("lang-seed", three, endpoint, FIELDS),
        "flow-plain": flow_definition(
            "lang-flow-plain", chain_flow(3, "d0", mapped=False), endpoint, FIELDS
        ),
        "flow-mapped": flow_definition(
            "lang-flow-mapped", chain_flow(3, "d0", mapped=True), endpoint, FIELDS
        ),
        "one-0ms": flow_definition("lang-one-0", {"steps": [task("one", "d0")]}, endpoint),
        "one-100ms": flow_definition("lang-one-100", {"steps": [task("one", "d100")]}, endpoint),
        "parallel-3x100ms": flow_definition(
            "lang-parallel",
            {"steps": [{"id": "par", "type": "parallel", "branches": branches}]},
            endpoint,
        ),
        "one-10ms": flow_definition("lang-one-10", {"steps": [task("one", "d10")]}, endpoint),
        "chain-10ms": flow_definition(
            "lang-chain-10", chain_flow(rounds, "d10", mapped=False), endpoint
        ),
        "map": flow_definition("lang-map", map_flow, endpoint),
    }


# ---------------------------------------------------------------------- runs


@dataclass
class Runner:
    client: Client
    pinned: dict[str, Any]
    task_queue: str = TASK_QUEUE
    ids: dict[str, list[str]] = field(default_factory=dict)

    async def execute(self, variant: str, data: dict[str, Any]) -> Any:
        definition: PinnedDefinition = self.pinned[variant]
        workflow_id = f"lang-{variant}-{uuid.uuid4().hex[:12]}"
        handle = await self.client.start_workflow(
            definition.name,
            args=[data, ExecutionOptions(definition=definition)],
            id=workflow_id,
            task_queue=self.task_queue,
            execution_timeout=timedelta(minutes=5),
        )
        result = await handle.result()
        self.ids.setdefault(variant, []).append(workflow_id)
        return result

    def call(self, variant: str, data: dict[str, Any] | None = None) -> Call:
        async def run() -> Any:
            return await self.execute(variant, dict(data or INPUT))

        return run

    async def histories(self, variant: str, last: int) -> list[list[Any]]:
        found = []
        for workflow_id in self.ids.get(variant, [])[-last:]:
            history = await self.client.get_workflow_handle(workflow_id).fetch_history()
            found.append(list(history.events))
        return found


async def wft_ms_per_execution(runner: Runner, variant: str, last: int = 30) -> float:
    """p50 over executions of the summed workflow-task run time (STARTED -> COMPLETED):
    the worker's processing of the execution, plus recording each answer."""
    sums = [
        sum(hops(events).get("wft_run", [])) for events in await runner.histories(variant, last)
    ]
    return percentile(sums, 50)


# ---------------------------------------------------------------------- expressions


def expression_figures(repeat: int) -> dict[str, float]:
    """µs per evaluation of a 3-field template over bindings like a flow's."""
    steps = {f"s{i}": {"output": {**INPUT, "n": i, "text": "lorem ipsum " * 8}} for i in (1, 2, 3)}
    bindings = {
        "input": {**INPUT, "document_url": "https://example.com/a.pdf"},
        "context": {"project_id": "456", "request_id": "req-123"},
        "steps": steps,
        "vars": {"characters": 90, "reason": None},
        "execution": {
            "id": "lang-bench",
            "workflow_name": "bench",
            "version": 3,
            "start_time": "2026-01-01T00:00:00+00:00",
        },
    }
    value = template("$steps.s2.output")
    clock: Callable[[], int] = lambda: 1_767_225_600_000  # noqa: E731
    rnd: Callable[[], float] = lambda: 0.5  # noqa: E731
    evaluator = Evaluator(bindings, now_millis=clock, random=rnd)
    assert evaluator.value(value) == {k: INPUT[k] for k in FIELDS}

    def per_call(function: Callable[[], Any], count: int) -> float:
        started = time.perf_counter()
        for _ in range(count):
            function()
        return (time.perf_counter() - started) / count * 1e6

    def cold() -> Any:
        compiled.cache_clear()
        return evaluator.value(value)

    def fresh() -> Any:
        # What the interpreter does for each value: a new Evaluator over new bindings.
        return Evaluator({**bindings, "steps": {**steps}}, now_millis=clock, random=rnd).value(
            value
        )

    per_call(lambda: evaluator.value(value), repeat // 10)  # warm
    figures = {
        "cached": min(per_call(lambda: evaluator.value(value), repeat) for _ in range(3)),
        "cached, new Evaluator": min(per_call(fresh, repeat) for _ in range(3)),
        "cold parse": min(per_call(cold, max(1, repeat // 10)) for _ in range(3)),
        "parse only": min(
            per_call(
                lambda: [compiled.__wrapped__(f"$steps.s2.output.{f}") for f in FIELDS],
                max(1, repeat // 10),
            )
            for _ in range(3)
        ),
    }
    sandboxed = _in_sandbox_builtins(lambda: per_call(lambda: evaluator.value(value), repeat))
    if sandboxed is not None:
        figures["cached, sandbox builtins"] = sandboxed
    compiled.cache_clear()
    return figures


def _in_sandbox_builtins(measure: Callable[[], float]) -> float | None:
    """`measure()` with the builtins the workflow sandbox installs while a workflow task
    runs (its isinstance and issubclass are Python wrappers, for every module, passed-
    through ones included). Uses the SDK's private importer; None if that has changed."""
    try:
        from temporalio.worker.workflow_sandbox._importer import Importer
        from temporalio.worker.workflow_sandbox._restrictions import RestrictionContext

        from worker.main import workflow_runner

        importer = Importer(workflow_runner().restrictions, RestrictionContext())
        with importer._builtins_restricted():
            return min(measure() for _ in range(3))
    except Exception as exc:  # noqa: BLE001 - a figure less, not a failed run
        log(f"expressions: no in-sandbox figure ({type(exc).__name__}: {exc})")
        return None


# ---------------------------------------------------------------------- phases


async def mapping_phase(runner: Runner, args: argparse.Namespace) -> dict[str, Any]:
    variants = ("seed", "flow-plain", "flow-mapped")
    log(f"mapping: {args.rounds} rounds of {', '.join(variants)}, interleaved")
    results = await interleaved(
        {v: runner.call(v) for v in variants}, rounds=args.rounds, warmup=args.warmup, rotate=True
    )
    wft = {v: await wft_ms_per_execution(runner, v, args.rounds) for v in variants}
    return {"latency": results, "wft": wft}


async def parallel_phase(runner: Runner, args: argparse.Namespace) -> dict[str, Any]:
    variants = ("one-0ms", "one-100ms", "parallel-3x100ms")
    log(f"parallel: {args.parallel_rounds} rounds of {', '.join(variants)}, interleaved")
    results = await interleaved(
        {v: runner.call(v) for v in variants},
        rounds=args.parallel_rounds,
        warmup=args.warmup,
        rotate=True,
    )
    wft = {v: await wft_ms_per_execution(runner, v, args.parallel_rounds) for v in variants}
    return {"latency": results, "wft": wft}


async def map_phase(
    runner: Runner, bench: Bench, worker: subprocess.Popen[bytes], args: argparse.Namespace
) -> dict[str, Any]:
    reference = ("one-10ms", "chain-10ms")
    log(f"map: reference, {args.reference_rounds} rounds of {', '.join(reference)}")
    ref = await interleaved(
        {v: runner.call(v) for v in reference},
        rounds=args.reference_rounds,
        warmup=2,
        rotate=True,
    )
    log("map: warm-up, 100 items")
    await runner.execute("map", {"items": list(range(100))})
    items = list(range(args.map_items))
    seconds: list[float] = []
    worker_cpu: list[float] = []
    server_cpu: list[float] = []
    for number in range(args.map_runs):
        wait_for_quiet(bench.pids(), threshold=args.quiet_cores, max_wait=args.quiet_wait)
        log(f"map: run {number + 1} of {args.map_runs}, {len(items)} items")
        worker_before = cpu_seconds(worker.pid)
        server_before = cpu_seconds(bench.server_pid())
        started = time.perf_counter()
        result = await runner.execute("map", {"items": items})
        seconds.append(time.perf_counter() - started)
        worker_cpu.append(cpu_seconds(worker.pid) - worker_before)
        server_cpu.append(cpu_seconds(bench.server_pid()) - server_before)
        if result != {"count": len(items)}:
            raise RuntimeError(f"the map answered {str(result)[:200]}")
    # The history of the last run: the map's own, and its batches' (child workflows).
    parent_id = runner.ids["map"][-1]
    parent = list((await runner.client.get_workflow_handle(parent_id).fetch_history()).events)
    children: list[list[Any]] = []
    for number in range((len(items) + 499) // 500):
        handle = runner.client.get_workflow_handle(f"{parent_id}/each/batch-{number}")
        try:
            children.append(list((await handle.fetch_history()).events))
        except Exception:  # noqa: BLE001 - fewer batches than expected: count what exists
            break
    child_hops: dict[str, list[float]] = {}
    for events in children:
        for name, values in hops(events).items():
            child_hops.setdefault(name, []).extend(values)
    return {
        "reference": ref,
        "seconds": seconds,
        "worker_cpu": worker_cpu,
        "server_cpu": server_cpu,
        "items": len(items),
        "events_parent": len(parent),
        "events_children": [len(e) for e in children],
        "child_hops": child_hops,
    }


# ---------------------------------------------------------------------- report


def met(ok: bool) -> str:
    return "yes" if ok else "no"


def render(figures: dict[str, Any], args: argparse.Namespace, *, markdown: bool) -> str:
    parts: list[str] = []
    expr = figures["expressions"]
    mapping = figures["mapping"]
    parallel = figures["parallel"]
    mapped = figures["map"]

    def h(title: str) -> None:
        parts.append(("\n### " if markdown else "\n== ") + title + ("" if markdown else " =="))
        if markdown:
            parts.append("")

    h("Latency of sequential executions (ms)")
    rows = []
    for phase in (mapping, parallel):
        for variant, one in phase["latency"].items():
            rows.append(
                [variant, one.p50, one.p95, phase["wft"][variant], len(one.values), one.errors]
            )
    for variant, ref_lat in mapped["reference"].items():
        rows.append([variant, ref_lat.p50, ref_lat.p95, None, len(ref_lat.values), ref_lat.errors])
    parts.append(
        table(
            ["execution", "p50", "p95", "worker WFT ms/exec p50", "n", "errors"],
            rows,
            markdown=markdown,
        )
    )

    lat: dict[str, Latencies] = mapping["latency"]
    seed, plain, tmpl = lat["seed"], lat["flow-plain"], lat["flow-mapped"]
    per_step_seed = (tmpl.p50 - seed.p50) / 3
    per_step_plain = (tmpl.p50 - plain.p50) / 3
    per_step_seed_p95 = (tmpl.p95 - seed.p95) / 3
    wft = mapping["wft"]

    plat: dict[str, Latencies] = parallel["latency"]
    par, one100, one0 = plat["parallel-3x100ms"], plat["one-100ms"], plat["one-0ms"]

    ref: dict[str, Latencies] = mapped["reference"]
    chain20 = ref["chain-10ms"].p50
    one10 = ref["one-10ms"].p50
    map_s = statistics.median(mapped["seconds"])
    items = mapped["items"]
    cpu_item = statistics.median(mapped["worker_cpu"]) / items
    server_item = statistics.median(mapped["server_cpu"]) / items
    events = mapped["events_parent"] + sum(mapped["events_children"])
    rounds = -(-items // args.map_concurrency)

    h("Figures and targets")
    wft_step = (wft["flow-mapped"] - wft["seed"]) / 3
    parallel_limit = 1.3 * one100.p50
    batches = " + ".join(str(n) for n in mapped["events_children"])
    rows = [
        ["expressions: 3-field template, cached", f"{expr['cached']:.1f} µs", "-", ""],
        [
            "expressions: the same, new Evaluator (as the interpreter)",
            f"{expr['cached, new Evaluator']:.1f} µs",
            "-",
            "",
        ],
        [
            "expressions: the same, with the sandbox's builtins",
            fmt(expr.get("cached, sandbox builtins")) + " µs",
            "-",
            "",
        ],
        ["expressions: 3-field template, cold parse", f"{expr['cold parse']:.1f} µs", "-", ""],
        ["expressions: parsing the 3 expressions alone", f"{expr['parse only']:.1f} µs", "-", ""],
        [
            "mapping: flow-mapped - seed, p50 per step",
            f"{per_step_seed:+.2f} ms",
            "<= 1 ms",
            met(per_step_seed <= 1.0),
        ],
        ["mapping: flow-mapped - seed, p95 per step", f"{per_step_seed_p95:+.2f} ms", "-", ""],
        [
            "mapping: flow-mapped - flow-plain, p50 per step",
            f"{per_step_plain:+.2f} ms",
            "<= 1 ms",
            met(per_step_plain <= 1.0),
        ],
        ["mapping: worker WFT time, flow-mapped - seed, per step", f"{wft_step:+.2f} ms", "-", ""],
        ["parallel: fixed cost of an execution (one-0ms p50)", f"{one0.p50:.1f} ms", "-", ""],
        [
            "parallel: 3x100ms p50 / one-100ms p50",
            f"{par.p50 / one100.p50:.2f} ({par.p50:.1f} / {one100.p50:.1f} ms)",
            "<= 1.30",
            met(par.p50 <= parallel_limit),
        ],
        ["parallel: one-100ms p50 / 3x100ms p50", f"{one100.p50 / par.p50:.2f}", "-", ""],
        ["parallel: 3x100ms p50 / longest branch (100 ms)", f"{par.p50 / 100:.2f}", "-", ""],
        [
            "parallel: 3x100ms p50, against 1.3 x 100 ms + fixed cost",
            f"{par.p50:.1f} ms",
            f"<= {130 + one0.p50:.1f} ms",
            met(par.p50 <= 130 + one0.p50),
        ],
        [
            f"map: {items} items, {args.map_concurrency} in flight (median of runs)",
            f"{map_s:.2f} s",
            "-",
            "",
        ],
        [f"map: chain of {rounds:.0f} x 10 ms steps p50", f"{chain20 / 1000:.3f} s", "-", ""],
        [
            "map / chain",
            f"{map_s * 1000 / chain20:.1f}",
            "<= 2.0",
            met(map_s * 1000 <= 2 * chain20),
        ],
        [
            f"map / ({rounds:.0f} x one-10ms execution p50)",
            f"{map_s * 1000 / (rounds * one10):.1f}",
            "-",
            "",
        ],
        ["map: items per second", f"{items / map_s:.0f}", "-", ""],
        ["map: worker CPU per item", f"{cpu_item * 1000:.2f} ms", "-", ""],
        ["map: dev server CPU per item", f"{server_item * 1000:.2f} ms", "-", ""],
        [
            "map: history events (parent + batches)",
            f"{events} ({mapped['events_parent']} + {batches})",
            "-",
            "",
        ],
    ]
    parts.append(table(["figure", "value", "target", "met"], rows, markdown=markdown))

    h("Map batches: per-hop times from their histories (ms)")
    hop_rows = []
    for name in ("wft_dispatch", "wft_run", "activity_dispatch", "activity_run"):
        values = mapped["child_hops"].get(name, [])
        hop_rows.append(
            [name, percentile(values, 50), percentile(values, 90), len(values) / max(1, items)]
        )
    parts.append(table(["hop", "p50", "p90", "per item"], hop_rows, markdown=markdown))
    runs = ", ".join(
        f"{s:.2f} s (worker {w:.1f} CPU s)"
        for s, w in zip(mapped["seconds"], mapped["worker_cpu"], strict=True)
    )
    parts.append(f"\nmap runs: {runs}")
    parts.append(f"other processes at the start: {figures['others']}")
    return "\n".join(parts)


# ---------------------------------------------------------------------- profile


@asynccontextmanager
async def profiled_worker(
    client: Client, bench: Bench, *, bytecode_cache: bool
) -> AsyncIterator[list[Any]]:
    """The project's worker in this process, every thread of it under cProfile."""
    from core.settings import Settings
    from registry.db import open_database, session_factory
    from worker.main import build_worker, outbound_http

    settings = Settings(
        temporal_address=bench.server.address,
        temporal_namespace="default",
        task_queue=PROFILE_TASK_QUEUE,
        database_url=f"sqlite+aiosqlite:///{bench.workdir / 'profile.db'}",
        data_dir=bench.workdir,
        allowed_hosts="127.0.0.1",
        worker_graceful_shutdown_seconds=2,
    )
    if bytecode_cache:
        sys.dont_write_bytecode = False
        sys.pycache_prefix = str(bench.workdir / "pycache")
    async with (
        open_database(settings.resolved_database_url) as engine,
        outbound_http() as http,
        build_worker(client, settings, sessions=session_factory(engine), http=http),
    ):
        with every_thread() as profiles:
            yield profiles


def summarize(
    profiles: list[Any], label: str, units: int, top: int, callers: str | None = None
) -> str:
    stats = merged(profiles)
    if stats is None:
        return f"{label}: no profile"
    return stats_summary(stats, label, units, top=top, callers=callers)


async def profile_phase(client: Client, bench: Bench, args: argparse.Namespace) -> str:
    runner = Runner(
        client,
        definitions(
            delay_endpoint(bench), map_items=args.map_items, map_concurrency=args.map_concurrency
        ),
        task_queue=PROFILE_TASK_QUEUE,
    )
    out: list[str] = []
    cache = not args.no_bytecode_cache
    async with profiled_worker(client, bench, bytecode_cache=cache) as profiles:
        log("profile: map, in-process worker under cProfile")
        cpu = cpu_seconds(os.getpid())
        started = time.perf_counter()
        await runner.execute("map", {"items": list(range(args.map_items))})
        seconds = time.perf_counter() - started
        cpu = cpu_seconds(os.getpid()) - cpu
    label = (
        f"map of {args.map_items} items under the profiler ({seconds:.1f} s, process "
        f"{cpu:.1f} CPU s; unit = one item)"
    )
    out.append(summarize(profiles, label, args.map_items, args.profile_top, args.profile_callers))
    count = 30
    for variant in ("seed", "flow-mapped"):
        async with profiled_worker(client, bench, bytecode_cache=cache) as profiles:
            log(f"profile: {count} {variant} executions")
            for _ in range(count):
                await runner.execute(variant, dict(INPUT))
        label = f"{count} {variant} executions (unit = one execution)"
        out.append(summarize(profiles, label, count, args.profile_top, args.profile_callers))
    return "\n\n".join(out)


# ---------------------------------------------------------------------- main


def delay_endpoint(bench: Bench) -> str:
    """The stub services' `delay` behaviour: `<it>/d10` answers after 10 ms."""
    return f"{bench.services_url}/delay/bench"


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    log("expressions: in-process Evaluator")
    figures: dict[str, Any] = {"expressions": expression_figures(args.expression_repeat)}
    with running_stack(
        prefix="bench-language-", bytecode_cache=not args.no_bytecode_cache, keep=args.keep
    ) as bench:
        worker = start_worker(bench)
        client = await connect(bench.server.address, "default")
        runner = Runner(
            client,
            definitions(
                delay_endpoint(bench),
                map_items=args.map_items,
                map_concurrency=args.map_concurrency,
            ),
        )
        others = wait_for_quiet(bench.pids(), threshold=args.quiet_cores, max_wait=args.quiet_wait)
        figures["others"] = f"{others:.2f} cores"
        figures["mapping"] = await mapping_phase(runner, args)
        figures["parallel"] = await parallel_phase(runner, args)
        figures["map"] = await map_phase(runner, bench, worker, args)
        figures["worker_rss"] = peak_rss_mb(worker.pid)
        if args.profile:
            figures["profile"] = await profile_phase(client, bench, args)
    return figures


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.language", description=(__doc__ or "").split("\n")[0]
    )
    parser.add_argument("--rounds", type=int, default=100, help="mapping: rounds per variant")
    parser.add_argument("--warmup", type=int, default=3, help="warm-up rounds, not counted")
    parser.add_argument("--parallel-rounds", type=int, default=20)
    parser.add_argument("--reference-rounds", type=int, default=5, help="map's references")
    parser.add_argument("--map-items", type=int, default=1000)
    parser.add_argument("--map-concurrency", type=int, default=50)
    parser.add_argument("--map-runs", type=int, default=3)
    parser.add_argument("--expression-repeat", type=int, default=2000)
    parser.add_argument("--quiet-cores", type=float, default=0.3)
    parser.add_argument("--quiet-wait", type=float, default=10.0)
    parser.add_argument("--markdown", action="store_true", help="also print Markdown tables")
    parser.add_argument(
        "--profile", action="store_true", help="then profile an in-process worker (cProfile)"
    )
    parser.add_argument("--profile-top", type=int, default=25)
    parser.add_argument(
        "--profile-callers", default=None, help="also print the callers of these functions (regex)"
    )
    parser.add_argument(
        "--no-bytecode-cache",
        action="store_true",
        help="run the worker as this environment does (PYTHONDONTWRITEBYTECODE kept)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the temp folder (logs)")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    figures = asyncio.run(main_async(args))
    info = machine()
    print(
        f"\nmachine: {info['cpu']}, {info['memory']}, kernel {info['kernel']}, "
        f"Python {info['python']}; run took {time.perf_counter() - started:.0f} s; "
        f"worker peak RSS {fmt(figures.get('worker_rss'))} MiB; worker bytecode cache "
        f"{'off' if args.no_bytecode_cache else 'on'}"
    )
    print(render(figures, args, markdown=False))
    if args.markdown:
        print("\n---- markdown ----")
        print(render(figures, args, markdown=True))
    if "profile" in figures:
        print("\n== Profile of the in-process worker ==")
        print(figures["profile"])


if __name__ == "__main__":
    main()
