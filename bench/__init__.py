"""The benchmark of issue 5: `python -m bench.run` (see docs/benchmarks.md)."""
