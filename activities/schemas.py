"""The worker's JSON Schema validation: definitions/json_schema.py, shared with the gateway
(a flow's input_schema, and the input_schema of the step the input goes to first, are
checked at start) and the workflow: the same validators, formats asserted, regexes on RE2."""

from definitions.json_schema import pattern_problems, validator, violations

__all__ = ["pattern_problems", "validator", "violations"]
