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

import ipaddress
import re
from collections.abc import Callable, Iterator
from functools import lru_cache
from typing import Any

import idna
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


# --- formats ----------------------------------------------------------------------------
#
# The formats JSON Schema defines (2020-12, section 7.3), checked in time linear in the
# text: each is an RE2 pattern written from the grammar of its RFC, and, where the
# grammar is not all (a day of the month, an IPv6 address, an A-label), a stdlib or
# idna parser. Nothing here runs Python's backtracking `re` on the instance.

_FORMAT_OPTIONS = re2.Options()
_FORMAT_OPTIONS.log_errors = False


def _re2(pattern: str) -> Any:
    return re2.compile(pattern, options=_FORMAT_OPTIONS)


def _full(regex: Any, text: str) -> Any:
    """`regex` matched against the whole of `text`; lone surrogates read as U+FFFD."""
    try:
        return regex.fullmatch(text)
    except UnicodeEncodeError:
        clean = text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
        return regex.fullmatch(clean)


_DATE = _re2(r"([0-9]{4})-([0-9]{2})-([0-9]{2})")
_TIME = _re2(r"([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\.[0-9]+)?(?:[Zz]|([+-])([0-9]{2}):([0-9]{2}))")
_DAYS = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


def is_date(text: str) -> bool:
    """RFC 3339 full-date: YYYY-MM-DD, a day that exists in that month."""
    found = _full(_DATE, text)
    if found is None:
        return False
    year, month, day = (int(part) for part in found.groups())
    if not 1 <= month <= 12:
        return False
    leap = year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)
    days = 28 if month == 2 and not leap else _DAYS[month - 1]
    return 1 <= day <= days


def is_time(text: str) -> bool:
    """RFC 3339 full-time: HH:MM:SS[.frac] and Z or an offset; second 60 only where the
    time is 23:59 UTC (a leap second)."""
    found = _full(_TIME, text)
    if found is None:
        return False
    hour, minute, second = (int(found.group(i)) for i in (1, 2, 3))
    sign = found.group(4)
    off_hour, off_minute = (int(found.group(i)) for i in (5, 6)) if sign else (0, 0)
    if hour > 23 or minute > 59 or second > 60 or off_hour > 23 or off_minute > 59:
        return False
    if second == 60:
        offset = (off_hour * 60 + off_minute) * (-1 if sign == "-" else 1)
        return (hour * 60 + minute - offset) % (24 * 60) == 23 * 60 + 59
    return True


def is_date_time(text: str) -> bool:
    """RFC 3339 date-time: full-date "T" full-time (t and z in either case)."""
    date, separator, time = text.partition("T") if "T" in text else text.partition("t")
    return bool(separator) and is_date(date) and is_time(time)


_DURATION_TIME = r"T(?:[0-9]+H(?:[0-9]+M(?:[0-9]+S)?)?|[0-9]+M(?:[0-9]+S)?|[0-9]+S)"
_DURATION = _re2(
    r"P(?:(?:[0-9]+D|[0-9]+M(?:[0-9]+D)?|[0-9]+Y(?:[0-9]+M(?:[0-9]+D)?)?)"
    f"(?:{_DURATION_TIME})?|{_DURATION_TIME}|[0-9]+W)"
)


def is_duration(text: str) -> bool:
    """RFC 3339 appendix A duration: P1Y2M3DT4H5M6S, P2W, PT1H..."""
    return _full(_DURATION, text) is not None


_UUID = _re2(r"[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}")


def is_uuid(text: str) -> bool:
    """RFC 4122 in its hyphenated form (8-4-4-4-12 hex digits), nothing around it."""
    return _full(_UUID, text) is not None


_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_IPV4 = _re2(rf"{_OCTET}(?:\.{_OCTET}){{3}}")


def is_ipv4(text: str) -> bool:
    """RFC 2673 dotted-quad: four decimal octets, no leading zeros."""
    return _full(_IPV4, text) is not None


def is_ipv6(text: str) -> bool:
    """RFC 4291 text form (no zone id), read by the stdlib parser."""
    if not text.isascii() or "%" in text:
        return False
    try:
        ipaddress.IPv6Address(text)
    except ValueError:
        return False
    return True


_LABEL = _re2(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?")


def is_hostname(text: str) -> bool:
    """RFC 1123 host name: dot-separated labels of letters, digits and inner hyphens, at
    most 63 characters each and 253 in all; a label with -- at its 3rd and 4th
    characters must be a valid A-label (xn--, RFC 5890)."""
    if not text or len(text) > 253:
        return False
    for label in text.split("."):
        if _full(_LABEL, label) is None:
            return False
        if label[2:4] == "--":
            if label[:4].lower() != "xn--":
                return False
            try:
                idna.decode(label)
            except (idna.IDNAError, UnicodeError):
                return False
    return True


def is_idn_hostname(text: str) -> bool:
    """RFC 5890 internationalized host name: its A-label form is a host name."""
    if not text or len(text) > 253:
        return False  # its A-label form is no shorter (and punycode is quadratic)
    try:
        ascii_form = idna.encode(text).decode("ascii")
    except (idna.IDNAError, UnicodeError, ValueError):
        return False
    return is_hostname(ascii_form)


_ATEXT = r"A-Za-z0-9!#$%&'*+/=?^_`{|}~-"
_UTF8_NON_ASCII = r"\x{80}-\x{10FFFF}"
_LOCAL_PART = _re2(
    rf"[{_ATEXT}]+(?:\.[{_ATEXT}]+)*"
    r'|"(?:[\x20\x21\x23-\x5B\x5D-\x7E]|\\[\x20-\x7E])*"'
)
_IDN_LOCAL_PART = _re2(
    rf"[{_ATEXT}{_UTF8_NON_ASCII}]+(?:\.[{_ATEXT}{_UTF8_NON_ASCII}]+)*"
    rf'|"(?:[\x20\x21\x23-\x5B\x5D-\x7E{_UTF8_NON_ASCII}]|\\[\x20-\x7E])*"'
)


def _mailbox(text: str, *, idn: bool) -> bool:
    local, at, domain = text.rpartition("@")
    if not at or _full(_IDN_LOCAL_PART if idn else _LOCAL_PART, local) is None:
        return False
    if domain.startswith("[") and domain.endswith("]"):
        literal = domain[1:-1]
        if literal[:5].lower() == "ipv6:":
            return is_ipv6(literal[5:])
        return is_ipv4(literal)
    return is_idn_hostname(domain) if idn else is_hostname(domain)


def is_email(text: str) -> bool:
    """RFC 5321 mailbox: a dot-atom or quoted local part, "@", and a host name or an
    address literal ([192.0.2.1], [IPv6:2001:db8::1])."""
    return _mailbox(text, idn=False)


def is_idn_email(text: str) -> bool:
    """RFC 6531 mailbox: as `email`, with UTF-8 in the local part and an IDN domain."""
    return _mailbox(text, idn=True)


# RFC 3986 appendix A, as RE2 patterns; RFC 3987 adds ucschar (and iprivate in queries).
_UCSCHAR = (
    r"\x{A0}-\x{D7FF}\x{F900}-\x{FDCF}\x{FDF0}-\x{FFEF}\x{10000}-\x{1FFFD}\x{20000}-\x{2FFFD}"
    r"\x{30000}-\x{3FFFD}\x{40000}-\x{4FFFD}\x{50000}-\x{5FFFD}\x{60000}-\x{6FFFD}"
    r"\x{70000}-\x{7FFFD}\x{80000}-\x{8FFFD}\x{90000}-\x{9FFFD}\x{A0000}-\x{AFFFD}"
    r"\x{B0000}-\x{BFFFD}\x{C0000}-\x{CFFFD}\x{D0000}-\x{DFFFD}\x{E1000}-\x{EFFFD}"
)
_IPRIVATE = r"\x{E000}-\x{F8FF}\x{F0000}-\x{FFFFD}\x{100000}-\x{10FFFD}"


def _uri_patterns(*, iri: bool) -> tuple[Any, Any]:
    """(absolute, reference) patterns of a URI (or, with `iri`, an IRI). The address
    of an IP-literal host ([...]) is left to the IPv6 parser (`_uri_like`): no capture
    group here, so RE2 matches with its DFA."""
    unreserved = r"A-Za-z0-9\-._~" + (_UCSCHAR if iri else "")
    sub_delims = r"!$&'()*+,;="
    pct = r"%[0-9A-Fa-f]{2}"
    pchar = rf"(?:[{unreserved}{sub_delims}:@]|{pct})"
    segment_nz_nc = rf"(?:[{unreserved}{sub_delims}@]|{pct})+"
    query = rf"(?:[{unreserved}{sub_delims}:@/?{_IPRIVATE if iri else ''}]|{pct})*"
    fragment = rf"(?:[{unreserved}{sub_delims}:@/?]|{pct})*"
    userinfo = rf"(?:[{unreserved}{sub_delims}:]|{pct})*"
    ip_literal = rf"\[(?:[0-9A-Fa-f:.]+|v[0-9A-Fa-f]+\.[A-Za-z0-9\-._~{sub_delims}:]+)\]"
    reg_name = rf"(?:[{unreserved}{sub_delims}]|{pct})*"
    authority = rf"(?:{userinfo}@)?(?:{ip_literal}|{reg_name})(?::[0-9]*)?"
    path_abempty = rf"(?:/{pchar}*)*"
    path_absolute = rf"/(?:{pchar}+(?:/{pchar}*)*)?"
    path_rootless = rf"{pchar}+(?:/{pchar}*)*"
    path_noscheme = rf"{segment_nz_nc}(?:/{pchar}*)*"
    tail = rf"(?:\?{query})?(?:#{fragment})?"
    hier = rf"(?://{authority}{path_abempty}|{path_absolute}|{path_rootless}|)"
    relative = rf"(?://{authority}{path_abempty}|{path_absolute}|{path_noscheme}|)"
    absolute = rf"[A-Za-z][A-Za-z0-9+\-.]*:{hier}{tail}"
    return _re2(absolute), _re2(rf"{absolute}|{relative}{tail}")


_URI, _URI_REFERENCE = _uri_patterns(iri=False)
_IRI, _IRI_REFERENCE = _uri_patterns(iri=True)


_AUTHORITY_LITERAL = _re2(r"(?:[A-Za-z][A-Za-z0-9+\-.]*:)?//(?:[^/?#\[\]@]*@)?\[([^\]]*)\]")


def _uri_like(regex: Any, text: str) -> bool:
    if _full(regex, text) is None:
        return False
    if "[" not in text:
        return True
    # The grammar let through an IP-literal host: an IPvFuture, or an IPv6 address.
    literal = _AUTHORITY_LITERAL.match(text)
    if literal is None:
        return True
    address = literal.group(1)
    return address.startswith("v") or is_ipv6(address)


def is_uri(text: str) -> bool:
    """RFC 3986 URI: a scheme, ":", and the rest (https://example.com/a.pdf, urn:x:y)."""
    return _uri_like(_URI, text)


def is_uri_reference(text: str) -> bool:
    """RFC 3986 URI-reference: a URI or a relative reference (/a/b, ../c, #frag, "")."""
    return _uri_like(_URI_REFERENCE, text)


def is_iri(text: str) -> bool:
    """RFC 3987 IRI: a URI that may hold non-ASCII characters."""
    return _uri_like(_IRI, text)


def is_iri_reference(text: str) -> bool:
    """RFC 3987 IRI-reference."""
    return _uri_like(_IRI_REFERENCE, text)


_VARCHAR = r"(?:[A-Za-z0-9_]|%[0-9A-Fa-f]{2})"
_VARSPEC = rf"{_VARCHAR}(?:\.?{_VARCHAR})*(?::[1-9][0-9]{{0,3}}|\*)?"
_URI_TEMPLATE = _re2(
    r"(?:[\x21\x23\x24\x26\x28-\x3B\x3D\x3F-\x5B\x5D\x5F\x61-\x7A\x7E"
    rf"{_UCSCHAR}{_IPRIVATE}]|%[0-9A-Fa-f]{{2}}"
    rf"|\{{[+#./;?&=,!@|]?{_VARSPEC}(?:,{_VARSPEC})*\}})*"
)


def is_uri_template(text: str) -> bool:
    """RFC 6570 URI Template: literals and {expressions} (/users/{id}{?q,page})."""
    return _full(_URI_TEMPLATE, text) is not None


_JSON_POINTER = r"(?:/(?:[^/~]|~[01])*)*"
_POINTER = _re2(_JSON_POINTER)
_RELATIVE_POINTER = _re2(rf"(?:0|[1-9][0-9]*)(?:#|{_JSON_POINTER})")


def is_json_pointer(text: str) -> bool:
    """RFC 6901 JSON Pointer: "" or /-separated tokens (~0 and ~1 the only escapes)."""
    return _full(_POINTER, text) is not None


def is_relative_json_pointer(text: str) -> bool:
    """Relative JSON Pointer: a non-negative integer, then "#" or a JSON Pointer."""
    return _full(_RELATIVE_POINTER, text) is not None


FORMATS: dict[str, Callable[[str], bool]] = {
    "date-time": is_date_time,
    "date": is_date,
    "time": is_time,
    "duration": is_duration,
    "email": is_email,
    "idn-email": is_idn_email,
    "hostname": is_hostname,
    "idn-hostname": is_idn_hostname,
    "ipv4": is_ipv4,
    "ipv6": is_ipv6,
    "uri": is_uri,
    "uri-reference": is_uri_reference,
    "iri": is_iri,
    "iri-reference": is_iri_reference,
    "uuid": is_uuid,
    "uri-template": is_uri_template,
    "json-pointer": is_json_pointer,
    "relative-json-pointer": is_relative_json_pointer,
    # Draft 3's names of the same formats.
    "ip-address": is_ipv4,
    "host-name": is_hostname,
}
"""Format name -> its check, for strings (other types pass every format). `regex` is
checked by validation.py with compile_pattern; a format not named here is not checked
(JSON Schema makes unknown formats annotations)."""
