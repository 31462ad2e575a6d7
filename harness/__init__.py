"""One harness: the stack and the stub services that the tests and the benchmarks start.

- `harness.stack`: a Temporal dev server (core/devserver.py, the settings `./run stack`
  uses), and worker and gateway processes started as deployed (`python -m worker`,
  `python -m cli gateway`), each with its log in the stack's folder.
- `harness.services`: HTTP services on loopback, each behaviour under its own path; in a
  thread of the test process (`start_test_services`), or in a process of their own
  (`python -m harness.services PORT`, as the benchmarks run them).

Nothing here is part of the product (pyproject.toml does not install it).
"""
