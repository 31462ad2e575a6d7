"""The benchmarks: `python -m bench <scenario>` (bench/__main__.py lists them).

Every scenario that needs a stack starts the one the tests start (harness/stack.py,
harness/services.py) through bench/workload.py; none needs a hook in production code.
Figures and findings: docs/benchmarks.md, docs/profiling.md, docs/scaling.md.
"""
