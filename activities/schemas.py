"""The worker's JSON Schema validation: definitions/json_schema.py, shared with the gateway
(a flow's input_schema is checked at start) and the workflow."""

from definitions.json_schema import pattern_problems, validator, violations

__all__ = ["pattern_problems", "validator", "violations"]
