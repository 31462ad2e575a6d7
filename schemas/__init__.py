"""JSON Schema for the gateway, the worker and the workflow: validation (validation.py)
with every regex on RE2 in linear time and formats asserted (rules.py).

Free of I/O and of temporalio: the registry imports it, and the workflow sandbox passes
it through (worker/main.py PASSTHROUGH_MODULES).
"""
