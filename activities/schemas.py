"""The worker's JSON Schema validation: schemas/validation.py, shared with the gateway
(a flow's input_schema, and the input_schema of the step the input goes to first, are
checked at start) and the workflow: the same validators, formats asserted, regexes on RE2."""

from schemas.validation import pattern_problems, validator, violations

__all__ = ["pattern_problems", "validator", "violations"]
