"""JSON Schema validators (on RE2), compiled once per distinct schema and reused for every call.

Every regex the validator runs (`pattern`, `patternProperties` keys, and through them
`additionalProperties` and `unevaluatedProperties`, and `format: "regex"`) runs on RE2 in
time linear in the input (schemas/rules.py): with Python's backtracking `re`,
`^(a|a)*$` against forty `a` and a `!` froze the worker's event loop for hours. A pattern
RE2 cannot run (lookaround, backreferences) is reported as a violation, never run.

`format` is asserted, not only annotated: every format JSON Schema defines (date-time,
date, time, duration, email, idn-email, hostname, idn-hostname, ipv4, ipv6, uri,
uri-reference, iri, iri-reference, uuid, uri-template, json-pointer,
relative-json-pointer, regex) is checked in linear time (rules.FORMATS: RE2 and
stdlib parsers); a format it does not define is an annotation and passes.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from functools import lru_cache
from typing import Any

import attrs
from jsonschema import (
    Draft3Validator,
    Draft4Validator,
    Draft6Validator,
    Draft7Validator,
    Draft201909Validator,
    Draft202012Validator,
    FormatChecker,
)
from jsonschema.exceptions import ValidationError
from jsonschema.protocols import Validator
from jsonschema.validators import extend, validator_for
from referencing.jsonschema import lookup_recursive_ref

from schemas.rules import (
    FORMATS,
    UnsupportedPattern,
    compile_pattern,
    pattern_problems,
    search,
)

__all__ = ["pattern_problems", "validator", "violations"]

# --- regex keywords on RE2 --------------------------------------------------------------


def _regex(pattern: Any) -> Any | None:
    """The compiled pattern, or None when RE2 cannot run it (the keyword reports that)."""
    try:
        return compile_pattern(pattern)
    except UnsupportedPattern:
        return None


def _pattern(validator: Any, patrn: Any, instance: Any, schema: Any) -> Iterator[ValidationError]:
    if not validator.is_type(instance, "string"):
        return
    try:
        regex = compile_pattern(patrn)
    except UnsupportedPattern as exc:
        yield ValidationError(f"pattern {patrn!r} {exc}")
        return
    if not search(regex, instance):
        yield ValidationError(f"{instance!r} does not match {patrn!r}")


def _pattern_properties(
    validator: Any, pattern_properties: Any, instance: Any, schema: Any
) -> Iterator[ValidationError]:
    if not validator.is_type(instance, "object"):
        return
    for pattern, subschema in pattern_properties.items():
        try:
            regex = compile_pattern(pattern)
        except UnsupportedPattern as exc:
            yield ValidationError(f"patternProperties key {pattern!r} {exc}")
            continue
        for key, value in instance.items():
            if search(regex, key):
                yield from validator.descend(value, subschema, path=key, schema_path=pattern)


def _matched_by_patterns(schema: Any, instance: Any) -> Iterable[str]:
    regexes = [_regex(p) for p in schema.get("patternProperties", {})]
    return (key for key in instance if any(r is not None and search(r, key) for r in regexes))


def _additional_properties(
    validator: Any, aP: Any, instance: Any, schema: Any
) -> Iterator[ValidationError]:
    # jsonschema's additionalProperties, with the patternProperties keys matched on RE2.
    if not validator.is_type(instance, "object"):
        return
    properties = schema.get("properties", {})
    matched = set(_matched_by_patterns(schema, instance))
    extras = {key for key in instance if key not in properties and key not in matched}
    if validator.is_type(aP, "object"):
        for extra in extras:
            yield from validator.descend(instance[extra], aP, path=extra)
    elif not aP and extras:
        if "patternProperties" in schema:
            verb = "does" if len(extras) == 1 else "do"
            joined = ", ".join(repr(each) for each in sorted(extras))
            patterns = ", ".join(repr(each) for each in sorted(schema["patternProperties"]))
            yield ValidationError(f"{joined} {verb} not match any of the regexes: {patterns}")
        else:
            listed = ", ".join(repr(each) for each in sorted(extras, key=str))
            verb = "was" if len(extras) == 1 else "were"
            yield ValidationError(
                f"Additional properties are not allowed ({listed} {verb} unexpected)"
            )


def _is_valid(errors: Iterator[Any]) -> bool:
    return next(errors, None) is None


def _evaluated_keys(validator: Any, instance: Any, schema: Any, *, legacy: bool) -> list[Any]:
    """jsonschema's find_evaluated_property_keys_by_schema (2020-12, or 2019-09 when
    `legacy`), with the patternProperties keys matched on RE2."""
    if validator.is_type(schema, "boolean"):
        return []
    keys: list[Any] = []

    def via(resolved: Any) -> None:
        evolved = validator.evolve(schema=resolved.contents, _resolver=resolved.resolver)
        keys.extend(_evaluated_keys(evolved, instance, resolved.contents, legacy=legacy))

    if (ref := schema.get("$ref")) is not None:
        via(validator._resolver.lookup(ref))
    if legacy and "$recursiveRef" in schema:
        via(lookup_recursive_ref(validator._resolver))
    if not legacy and (dynamic_ref := schema.get("$dynamicRef")) is not None:
        via(validator._resolver.lookup(dynamic_ref))

    if legacy:
        for keyword in ["properties", "additionalProperties", "unevaluatedProperties"]:
            if keyword in schema:
                value = schema[keyword]
                if validator.is_type(value, "boolean") and value:
                    keys += instance.keys()
                elif validator.is_type(value, "object"):
                    keys += [p for p in value if p in instance]
    else:
        properties = schema.get("properties")
        if validator.is_type(properties, "object"):
            keys += properties.keys() & instance.keys()
        for keyword in ["additionalProperties", "unevaluatedProperties"]:
            if (subschema := schema.get(keyword)) is not None:
                keys += (
                    key
                    for key, value in instance.items()
                    if _is_valid(validator.descend(value, subschema))
                )

    if "patternProperties" in schema:
        keys += _matched_by_patterns(schema, instance)

    for prop, subschema in schema.get("dependentSchemas", {}).items():
        if prop in instance:
            keys += _evaluated_keys(validator, instance, subschema, legacy=legacy)

    for keyword in ["allOf", "oneOf", "anyOf"]:
        for subschema in schema.get(keyword, []):
            if _is_valid(validator.descend(instance, subschema)):
                keys += _evaluated_keys(validator, instance, subschema, legacy=legacy)

    if "if" in schema:
        if validator.evolve(schema=schema["if"]).is_valid(instance):
            keys += _evaluated_keys(validator, instance, schema["if"], legacy=legacy)
            if "then" in schema:
                keys += _evaluated_keys(validator, instance, schema["then"], legacy=legacy)
        elif "else" in schema:
            keys += _evaluated_keys(validator, instance, schema["else"], legacy=legacy)
    return keys


def _unevaluated_properties(*, legacy: bool) -> Any:
    def unevaluated_properties(
        validator: Any, uP: Any, instance: Any, schema: Any
    ) -> Iterator[ValidationError]:
        # jsonschema's unevaluatedProperties, with the evaluated keys found on RE2.
        if not validator.is_type(instance, "object"):
            return
        evaluated = _evaluated_keys(validator, instance, schema, legacy=legacy)
        unevaluated = []
        for prop in instance:
            if prop not in evaluated:
                for _ in validator.descend(instance[prop], uP, path=prop, schema_path=prop):
                    unevaluated.append(prop)
        if not unevaluated:
            return
        verb = "was" if len(unevaluated) == 1 else "were"
        if uP is False:
            listed = ", ".join(repr(each) for each in sorted(unevaluated, key=str))
            yield ValidationError(
                f"Unevaluated properties are not allowed ({listed} {verb} unexpected)"
            )
        else:
            listed = ", ".join(repr(each) for each in unevaluated)
            yield ValidationError(
                "Unevaluated properties are not valid under the given schema "
                f"({listed} {verb} unevaluated and invalid)"
            )

    return unevaluated_properties


_REGEX_KEYWORDS = {
    "pattern": _pattern,
    "patternProperties": _pattern_properties,
    "additionalProperties": _additional_properties,
}

_SAFE: dict[type, type] = {}
_INIT_FIELDS: dict[type, tuple[tuple[str, str], ...]] = {}


def _evolve(self: Any, **changes: Any) -> Any:
    # jsonschema's evolve picks the class again from the new schema's $schema (a $ref to
    # the root, say): keep it on RE2. Called for every subschema a value descends into,
    # so a schema without $schema keeps the class as it is (what validator_for would
    # answer), and the fields to copy are listed once per class.
    cls = type(self)
    schema = changes.setdefault("schema", self.schema)
    if isinstance(schema, dict) and "$schema" in schema:
        new_cls = _safe_class(validator_for(schema, default=cls))
    else:
        new_cls = cls
    fields = _INIT_FIELDS.get(cls)
    if fields is None:
        fields = _INIT_FIELDS[cls] = tuple((f.name, f.alias) for f in attrs.fields(cls) if f.init)
    for name, alias in fields:
        if alias not in changes:
            changes[alias] = getattr(self, name)
    return new_cls(**changes)


def _safe_class(cls: Any) -> Any:
    """`cls` with every regex keyword on RE2 (built once per draft)."""
    if cls in _SAFE.values():
        return cls
    safe = _SAFE.get(cls)
    if safe is None:
        keywords: dict[str, Any] = {k: v for k, v in _REGEX_KEYWORDS.items() if k in cls.VALIDATORS}
        if "unevaluatedProperties" in cls.VALIDATORS:
            legacy = cls is Draft201909Validator
            keywords["unevaluatedProperties"] = _unevaluated_properties(legacy=legacy)
        safe = extend(cls, keywords)
        safe.evolve = _evolve  # type: ignore[attr-defined]
        _SAFE[cls] = safe
    return safe


for _draft in (
    Draft3Validator,
    Draft4Validator,
    Draft6Validator,
    Draft7Validator,
    Draft201909Validator,
    Draft202012Validator,
):
    _safe_class(_draft)


def _is_regex(instance: object) -> bool:
    if isinstance(instance, str):
        compile_pattern(instance)
    return True


def _string_check(check: Callable[[str], bool]) -> Callable[[object], bool]:
    def checked(instance: object) -> bool:
        return not isinstance(instance, str) or check(instance)

    return checked


def _format_checker() -> FormatChecker:
    """The formats of rules.FORMATS, and "regex": a regex this service can run.
    None of jsonschema's own checks (some need packages not installed, some run `re`)."""
    checker = FormatChecker(formats=())
    for name, check in FORMATS.items():
        checker.checks(name)(_string_check(check))
    checker.checks("regex", raises=UnsupportedPattern)(_is_regex)
    return checker


_FORMAT_CHECKER = _format_checker()


# --- public -----------------------------------------------------------------------------


@lru_cache(maxsize=4096)
def _compiled(schema_json: str, formats: bool) -> Validator:
    schema = json.loads(schema_json)
    cls = _safe_class(validator_for(schema, default=Draft202012Validator))
    validator: Validator = cls(schema, format_checker=_FORMAT_CHECKER if formats else None)
    return validator


def validator(schema: dict[str, Any], *, formats: bool = True) -> Validator:
    """The validator of `schema`, compiled once (per distinct schema) and shared.

    Args:
        formats: assert `format` (the default); False leaves formats unchecked, as they
            were before formats were checked (for code that must replay as it ran).
    """
    return _compiled(json.dumps(schema, sort_keys=True, separators=(",", ":")), formats)


def violations(
    schema: dict[str, Any], instance: Any, *, limit: int = 5, formats: bool = True
) -> list[str]:
    """Up to `limit` messages, each naming the path of a value the schema refuses.

    Args:
        formats: as `validator`.
    """
    found = []
    for error in validator(schema, formats=formats).iter_errors(instance):
        path = "/".join(str(p) for p in error.absolute_path) or "(root)"
        found.append(f"{path}: {error.message}")
        if len(found) >= limit:
            break
    return found
