"""Regexes in JSON Schemas, run in linear time with RE2.

JSON Schema's `pattern`, `patternProperties` and `format: "regex"` are ECMA-262 regexes,
unanchored (a match anywhere in the string is enough). Python's `re` backtracks, so a
pattern such as `^(a|a)*$` against forty `a` and a `!` takes hours; RE2 (google-re2) runs
every pattern in time linear in the input, and in exchange has no lookaround and no
backreferences. This module translates an ECMA-262 pattern to RE2 syntax, compiles it
(cached), matches with search semantics, and finds the patterns of a schema that RE2
cannot run (`pattern_problems`), so that the registry can refuse them.

Translation follows ECMA-262 where RE2 reads the same text differently:
`.` matches anything but a line terminator (\\n, \\r, U+2028, U+2029); `\\s` is ECMA's
whitespace (Unicode spaces and U+FEFF included); `\\d`, `\\w` and `\\b` are ASCII, as in
ECMA; `$` matches only at the very end (Python's `$` also matched before a final newline);
`[]` matches nothing and `[^]` any character; `[` inside a class is a literal;
`\\uXXXX` (surrogate pairs too), `\\u{X...}`, `\\xXX`, `\\cX` and `\\0` are characters;
`(?<name>...)` is a named group; `\\p{...}` takes RE2's property names (with or without
`Script=` / `General_Category=`). Approximation: `\\S` inside a character class is RE2's
(not space, tab, newline, CR or FF). Escapes of letters that ECMA does not define
(`\\A`, `\\Z`, `\\e`...) are refused rather than guessed.

Free of I/O and of temporalio: the registry can import it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from functools import lru_cache
from typing import Any

import re2

Location = list[str | int]

_RUNS_IN_RE2 = "which this service does not run (it runs patterns in linear time with RE2)"
_NO_LOOKAROUND = "rewrite it without lookaround or backreferences"

_LINE_TERMINATORS = r"\n\r\x{2028}\x{2029}"
_DOT = "[^" + _LINE_TERMINATORS + "]"
# ECMA-262 WhiteSpace and LineTerminator: tab, VT, FF, the Zs spaces, U+FEFF, LF, CR, LS, PS.
_SPACE = (
    r"\t\n\x{0b}\f\r\x{20}\x{a0}\x{1680}\x{2000}-\x{200a}\x{2028}\x{2029}"
    r"\x{202f}\x{205f}\x{3000}\x{feff}"
)
_ANY = r"[\x{0}-\x{10ffff}]"
_NOTHING = r"[^\x{0}-\x{10ffff}]"
_MAX_REPEAT = 1000
_QUANTIFIER = re.compile(r"\{(\d+)(?:,(\d*))?\}")
_HEX2 = re.compile(r"[0-9A-Fa-f]{2}")
_HEX4 = re.compile(r"[0-9A-Fa-f]{4}")
_BRACED_HEX = re.compile(r"\{([0-9A-Fa-f]{1,6})\}")
_PROPERTY = re.compile(r"\{([A-Za-z_]+(?:=[A-Za-z_]+)?)\}")
_GROUP_NAME = re.compile(r"[A-Za-z_$][A-Za-z0-9_$]*>")
_PROPERTY_PREFIXES = ("General_Category=", "gc=", "Script=", "sc=")
_SIMPLE_ESCAPES = {"f": 0x0C, "n": 0x0A, "r": 0x0D, "t": 0x09, "v": 0x0B}


class UnsupportedPattern(ValueError):
    """A regex this service cannot run: `problem` says why, `fix` what to do instead.

    str() reads on after the pattern: f"pattern {p!r} {exc}".
    """

    def __init__(self, problem: str, fix: str) -> None:
        super().__init__(f"{problem}; {fix}")
        self.problem = problem
        self.fix = fix


def _lookaround(kind: str) -> UnsupportedPattern:
    return UnsupportedPattern(f"uses a {kind}, {_RUNS_IN_RE2}", _NO_LOOKAROUND)


def _invalid(detail: str) -> UnsupportedPattern:
    return UnsupportedPattern(
        f"is not a regex this service can run ({detail})",
        "write it in the ECMA-262 syntax that RE2 shares (no lookaround or backreferences)",
    )


def _char(code: int) -> str:
    """One character, escaped so that it reads literally in and out of a character class."""
    if chr(code).isascii() and chr(code).isalnum():
        return chr(code)
    return f"\\x{{{code:x}}}"


class _Translator:
    """One pass over an ECMA-262 pattern, writing the RE2 pattern that means the same."""

    def __init__(self, pattern: str) -> None:
        self.p = pattern
        self.i = 0
        self.out: list[str] = []

    def run(self) -> str:
        p = self.p
        while self.i < len(p):
            c = p[self.i]
            if c == "\\":
                kind, value = self.escape(in_class=False)
                self.out.append(_char(value) if kind == "char" else value)
            elif c == "[":
                self.out.append(self.char_class())
            elif c == "(":
                self.out.append(self.group())
            elif c == ".":
                self.i += 1
                self.out.append(_DOT)
            elif c == "{":
                self.out.append(self.braces())
            elif c in "]}":
                self.i += 1
                self.out.append("\\" + c)
            else:
                self.i += 1
                self.out.append(c)
        return "".join(self.out)

    def braces(self) -> str:
        found = _QUANTIFIER.match(self.p, self.i)
        if found is None:  # Annex B: a brace that starts no quantifier is a literal
            self.i += 1
            return "\\{"
        self.i = found.end()
        for bound in found.groups():
            if bound and int(bound) > _MAX_REPEAT:
                raise UnsupportedPattern(
                    f"repeats {found.group(0)}, more than the {_MAX_REPEAT} repetitions RE2 allows",
                    "use a bound of at most 1000, or * / + with minLength / maxLength",
                )
        return found.group(0)

    def group(self) -> str:
        p, i = self.p, self.i
        if p.startswith(("(?=", "(?!"), i):
            raise _lookaround("lookahead")
        if p.startswith(("(?<=", "(?<!"), i):
            raise _lookaround("lookbehind")
        if p.startswith("(?<", i):
            name = _GROUP_NAME.match(p, i + 3)
            if name is None:
                raise _invalid("a named group needs a name made of letters, digits and _")
            self.i = name.end()
            return "(?P<" + name.group(0)
        self.i += 1
        return "("

    def char_class(self) -> str:
        p = self.p
        self.i += 1
        negate = self.i < len(p) and p[self.i] == "^"
        if negate:
            self.i += 1
        atoms: list[tuple[str, Any]] = []
        while True:
            if self.i >= len(p):
                raise _invalid("a character class is not closed with ]")
            c = p[self.i]
            if c == "]":
                self.i += 1
                break
            if c == "\\":
                atoms.append(self.escape(in_class=True))
            else:
                self.i += 1
                atoms.append(("dash", ord(c)) if c == "-" else ("char", ord(c)))
        if not atoms:
            return _ANY if negate else _NOTHING
        parts: list[str] = []
        k = 0
        while k < len(atoms):
            kind, value = atoms[k]
            if (
                kind == "char"
                and k + 2 < len(atoms)
                and atoms[k + 1][0] == "dash"
                and atoms[k + 2][0] == "char"
            ):
                end = atoms[k + 2][1]
                if end < value:
                    raise _invalid(f"the range {chr(value)}-{chr(end)} is out of order")
                parts.append(f"{_char(value)}-{_char(end)}")
                k += 3
                continue
            parts.append(value if kind == "set" else _char(value))
            k += 1
        return ("[^" if negate else "[") + "".join(parts) + "]"

    def escape(self, *, in_class: bool) -> tuple[str, Any]:
        """The escape at self.i: ("char", code point) or ("set"/"raw", RE2 text)."""
        p = self.p
        if self.i + 1 >= len(p):
            raise _invalid("it ends with a lone backslash")
        c = p[self.i + 1]
        self.i += 2
        if c in "dDwW":
            return "set", "\\" + c
        if c == "s":
            return "set", _SPACE if in_class else "[" + _SPACE + "]"
        if c == "S":
            return "set", "\\S" if in_class else "[^" + _SPACE + "]"
        if c == "b":
            return ("char", 0x08) if in_class else ("raw", "\\b")
        if c == "B" and not in_class:
            return "raw", "\\B"
        if c in _SIMPLE_ESCAPES:
            return "char", _SIMPLE_ESCAPES[c]
        if c == "0" and not (self.i < len(p) and p[self.i].isdigit()):
            return "char", 0
        if c.isdigit():
            if in_class:
                raise UnsupportedPattern(
                    f"uses the legacy octal escape \\{c}", "write the character as \\xHH"
                )
            raise UnsupportedPattern(
                f"uses a backreference (\\{c}), {_RUNS_IN_RE2}", _NO_LOOKAROUND
            )
        if c == "k" and p.startswith("<", self.i):
            raise UnsupportedPattern(
                f"uses a backreference (\\k<...>), {_RUNS_IN_RE2}", _NO_LOOKAROUND
            )
        if c == "x":
            hex2 = _HEX2.match(p, self.i)
            if hex2 is None:
                return "char", ord("x")
            self.i = hex2.end()
            return "char", int(hex2.group(0), 16)
        if c == "u":
            return "char", self.unicode_escape()
        if c == "c" and self.i < len(p) and p[self.i].isascii() and p[self.i].isalpha():
            self.i += 1
            return "char", ord(p[self.i - 1]) % 32
        if c in "pP":
            prop = _PROPERTY.match(p, self.i)
            if prop is None:
                raise _invalid(f"\\{c} must be followed by a property name in braces")
            self.i = prop.end()
            name = prop.group(1)
            for prefix in _PROPERTY_PREFIXES:
                name = name.removeprefix(prefix)
            return "set", f"\\{c}{{{name}}}"
        if not (c.isascii() and c.isalnum()):
            return "char", ord(c)  # an escaped punctuation or non-ASCII character is itself
        raise UnsupportedPattern(
            f"uses the escape \\{c}, which ECMA-262 regexes do not define",
            f"write '{c}' without the backslash (and ^ and $ for the start and end)",
        )

    def unicode_escape(self) -> int:
        p = self.p
        braced = _BRACED_HEX.match(p, self.i)
        if braced is not None:
            self.i = braced.end()
            code = int(braced.group(1), 16)
            if code > 0x10FFFF:
                raise _invalid(f"\\u{{{braced.group(1)}}} is beyond U+10FFFF")
            return code
        hex4 = _HEX4.match(p, self.i)
        if hex4 is None:
            return ord("u")
        self.i = hex4.end()
        code = int(hex4.group(0), 16)
        if 0xD800 <= code <= 0xDBFF and p.startswith("\\u", self.i):
            low = _HEX4.match(p, self.i + 2)
            if low is not None and 0xDC00 <= int(low.group(0), 16) <= 0xDFFF:
                self.i = low.end()
                return 0x10000 + ((code - 0xD800) << 10) + (int(low.group(0), 16) - 0xDC00)
        if 0xD800 <= code <= 0xDFFF:
            raise UnsupportedPattern(
                f"uses the lone surrogate \\u{hex4.group(0)}, which no text can contain here",
                "write the whole character (a surrogate pair, or \\u{...})",
            )
        return code


def translate(pattern: str) -> str:
    """The RE2 pattern that means what the ECMA-262 `pattern` means.

    Raises:
        UnsupportedPattern: lookaround, backreferences, or syntax RE2 cannot run.
    """
    return _Translator(pattern).run()


_OPTIONS = re2.Options()
_OPTIONS.log_errors = False


@lru_cache(maxsize=1024)
def _compiled_or_problem(pattern: str) -> Any:
    try:
        return re2.compile(translate(pattern), options=_OPTIONS)
    except UnsupportedPattern as exc:
        return exc
    except re2.error as exc:
        detail = exc.args[0] if exc.args else ""
        if isinstance(detail, bytes):
            detail = detail.decode("utf-8", "replace")
        if "pattern too large" in str(detail):
            return UnsupportedPattern(
                "is too large for RE2 once compiled (nested repetitions multiply)",
                "simplify it or use smaller repetition bounds",
            )
        return _invalid(str(detail) or "RE2 refuses it")


def compile_pattern(pattern: str) -> Any:
    """The compiled RE2 regex for an ECMA-262 pattern (cached).

    Raises:
        UnsupportedPattern: the pattern cannot run on RE2; the message says what to fix.
    """
    if not isinstance(pattern, str):
        raise UnsupportedPattern("is not a string", "write the pattern as a string")
    found = _compiled_or_problem(pattern)
    if isinstance(found, UnsupportedPattern):
        raise found
    return found


def search(regex: Any, text: str) -> bool:
    """Whether `regex` (from compile_pattern) matches anywhere in `text`, in linear time."""
    try:
        return regex.search(text) is not None
    except UnicodeEncodeError:  # lone surrogates (JSON allows them): match them as U+FFFD
        clean = text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
        return regex.search(clean) is not None


def pattern_matches(pattern: str, text: str) -> bool:
    """Whether ECMA-262 `pattern` matches anywhere in `text` (UnsupportedPattern if unrunnable)."""
    return search(compile_pattern(pattern), text)


# --- finding the patterns of a schema ---------------------------------------------------

_SUBSCHEMA = {
    "additionalItems",
    "additionalProperties",
    "contains",
    "contentSchema",
    "else",
    "extends",
    "if",
    "items",
    "not",
    "propertyNames",
    "then",
    "unevaluatedItems",
    "unevaluatedProperties",
}
_SUBSCHEMA_LIST = {"allOf", "anyOf", "extends", "items", "oneOf", "prefixItems"}
_SUBSCHEMA_MAP = {
    "$defs",
    "definitions",
    "dependencies",
    "dependentSchemas",
    "patternProperties",
    "properties",
}


def _subschemas(schema: dict[str, Any], loc: Location) -> Iterator[tuple[Any, Location]]:
    for key, value in schema.items():
        if key in _SUBSCHEMA and isinstance(value, dict):
            yield value, [*loc, key]
        elif key in _SUBSCHEMA_LIST and isinstance(value, list):
            for index, item in enumerate(value):
                yield item, [*loc, key, index]
        elif key in _SUBSCHEMA_MAP and isinstance(value, dict):
            for name, item in value.items():
                yield item, [*loc, key, name]


def _problem(what: str, pattern: str) -> str | None:
    try:
        compile_pattern(pattern)
    except UnsupportedPattern as exc:
        return f"{what} '{pattern}' {exc}"
    return None


def pattern_problems(schema: Any) -> list[tuple[Location, str]]:
    """Every regex of `schema` that RE2 cannot run: (location in the schema, what to fix).

    Looks at `pattern` values and `patternProperties` keys in the schema and all its
    subschemas (properties, items, $defs, allOf... at any depth), never in data such as
    `enum`, `const`, `default` or `examples`. A location is the path of keys and indices
    from the schema's root, e.g. ["properties", "code", "pattern"] or
    ["patternProperties", "^(?=x)"]. Empty for a schema whose regexes all run.
    """
    problems: list[tuple[Location, str]] = []
    pending: list[tuple[Any, Location]] = [(schema, [])]
    while pending:
        node, loc = pending.pop()
        if not isinstance(node, dict):
            continue
        pattern = node.get("pattern")
        if isinstance(pattern, str) and (message := _problem("pattern", pattern)):
            problems.append(([*loc, "pattern"], message))
        keyed = node.get("patternProperties")
        if isinstance(keyed, dict):
            for key in keyed:
                if message := _problem("patternProperties key", key):
                    problems.append(([*loc, "patternProperties", key], message))
        pending.extend(reversed(list(_subschemas(node, loc))))
    return problems
