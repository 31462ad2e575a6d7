"""JSON Schema validators, compiled once per distinct schema and reused for every call."""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any

from jsonschema import Draft202012Validator, FormatChecker
from jsonschema.protocols import Validator
from jsonschema.validators import validator_for


@lru_cache(maxsize=4096)
def _compiled(schema_json: str) -> Validator:
    schema = json.loads(schema_json)
    cls = validator_for(schema, default=Draft202012Validator)
    return cls(schema, format_checker=FormatChecker())


def validator(schema: dict[str, Any]) -> Validator:
    return _compiled(json.dumps(schema, sort_keys=True, separators=(",", ":")))


def violations(schema: dict[str, Any], instance: Any, *, limit: int = 5) -> list[str]:
    """Up to `limit` messages, each naming the path of a value the schema refuses."""
    found = []
    for error in validator(schema).iter_errors(instance):
        path = "/".join(str(p) for p in error.absolute_path) or "(root)"
        found.append(f"{path}: {error.message}")
        if len(found) >= limit:
            break
    return found
