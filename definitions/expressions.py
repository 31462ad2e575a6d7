"""JSONata expressions in definitions: parse once, evaluate deterministically, within limits.

A string `"{% <expr> %}"` in an expression field is evaluated against the bindings
`$input`, `$context`, `$steps`, `$vars`, `$execution` (and `$result`, `$error`, `$item`,
`$index` where they apply); any other value is a literal, and objects and lists are
evaluated member by member. Evaluation happens in workflow code, so `$now()`,
`$millis()` and `$random()` are bound to the workflow's deterministic clock and random,
and functions that would read anything else are refused at save time.

A stored definition is untrusted input, and a workflow task must finish well within the
SDK's deadlock timeout (2 s) without reading a clock. So:

- parsing refuses a body over MAX_EXPRESSION_BYTES, brackets nested deeper than
  MAX_NESTING, a path chain longer than MAX_PATH_STEPS, names starting with `$__`, and
  regular expressions RE2 cannot run (backreferences, lookaround); whatever else the
  parser raises becomes ExpressionError;
- each evaluation runs on a budget (ExpressionLimits): fuel charged per evaluation step
  and per size of what each step returns, a nesting depth, and the size of one string,
  array, object and whole value; functions that can allocate far beyond their inputs in
  one call check before they allocate. Nothing reads a clock, so a replay runs out at
  the same step as the original run;
- regex literals run on RE2 (linear time); `$eval` is refused; `$shuffle` is refused at
  save time and, if reached anyway, shuffles with the workflow's deterministic random.

Errors::

    ExpressionError             does not parse, or failed while evaluating
     └── ExpressionLimitError   refused by a limit; `.limit` names it
"""

from __future__ import annotations

import datetime
import inspect
import math
import re
import threading
import types
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping
from copy import copy
from dataclasses import dataclass
from typing import Any, NamedTuple, NoReturn, Self

import jsonata
import re2
from jsonata import datetimeutils, jexception, parser, utils
from jsonata.functions import Functions
from jsonata.regex_engine import RegexFlags

from definitions.language import expression_body, is_expression

MAX_EXPRESSION_BYTES = 8192
"""The longest expression body, in UTF-8 bytes. Parsing is slow (20-40 µs per token) and
a parsed expression holds 1-2 KB per character, so a longer one costs a worker too much."""

MAX_NESTING = 100
"""The deepest nesting of brackets: the parser recurses once per level."""

MAX_PATH_STEPS = 200
"""The most `.` steps in one path chain: the parser's work on a path grows with the
square of its steps (4000 steps take 1.5 s)."""

MAX_PICTURE_WIDTH = 64
"""The widest width modifier in a date picture (`[Y,4]`); the library pads to it and
computes 10**width."""

REFUSED_FUNCTIONS = ("shuffle",)
"""Functions whose result depends on more than the bindings and the workflow's own
deterministic clock and random: refused at save time, however they are referenced."""

_ADVICE = "move the work into a service action, or split it into steps"

# Fuel: one unit is about one simple evaluation step of the library (3-6 µs of CPU on the
# 2-core machine these were measured on); each rate below prices a kind of work at about
# that, so that spending the whole budget on any one kind takes about as long.
_STEP_COSTS = {"function": 2, "partial": 2, "unary": 2}
"""Fuel for a step of these kinds (any other step costs 1): a call, an array or object
constructor takes about twice a simple step."""
_CALL_COST = 2
"""Fuel added when a function's body starts: applying a function costs about two steps."""
_NATIVE_CALL_COSTS = {"string": 5}
"""Fuel of a call to these functions, where it is not _STEP_COSTS["function"]: $string
formats numbers through Decimal (about 30 µs)."""
_ITEMS_PER_FUEL = 4
"""Array items or object members a step returns (a native function checks each against
its signature), or a measurement walks, per unit."""
_CHARS_PER_FUEL = 4096
"""String characters a step returns, or a regular expression scans, per unit."""
_COPIED_ITEMS_PER_FUEL = 1024
"""Items the library's append copies (a C-level list copy) per unit."""
_MATCH_COST = 5
"""Fuel per regular-expression match (RE2's Python wrapper and the library's match
objects), plus one per _MATCH_TEXT_PER_FUEL characters of the text searched."""
_MATCH_TEXT_PER_FUEL = 1 << 18
_CHUNKS_PER_FUEL = 8
"""Pieces of pretty-printed JSON (made in Python, not C) per unit."""
_CHUNKS_PER_CHARGE = 1024

_STEP_REFERENCE = re.compile(r"\$steps\.(?:`([^`]+)`|([A-Za-z0-9_]+))")


@dataclass(frozen=True)
class ExpressionLimits:
    """What one evaluation of one expression may use. The defaults keep the worst case
    of any single expression well under a second of CPU; the worker may configure others
    (configure_limits).

    Attributes:
        fuel: units of work: one per evaluation step (two for a call or a constructor,
            two more to enter a function's body), one per 4 items and per 4096
            characters of what each step returns, five per regular-expression match.
        max_depth: how deeply evaluation may nest (function calls included), and how
            deeply a value the expression makes may nest.
        max_string_length: characters in one string.
        max_array_length: items in one array the expression makes.
        max_object_keys: keys in one object the expression makes.
        max_value_size: items plus characters of one value the expression makes, counted
            through its nesting (about its length as JSON, however much it shares).
    """

    fuel: int = 100_000
    max_depth: int = 200
    max_string_length: int = 1 << 20
    max_array_length: int = 100_000
    max_object_keys: int = 10_000
    max_value_size: int = 4_000_000


_limits = ExpressionLimits()


def configure_limits(limits: ExpressionLimits) -> None:
    """Use these limits for every evaluation from now on (the worker calls it at start)."""
    global _limits
    _limits = limits


def current_limits() -> ExpressionLimits:
    return _limits


class ExpressionError(ValueError):
    """An expression that does not parse, or that failed while evaluating."""

    def __init__(self, expression: str, message: str) -> None:
        super().__init__(f"expression {expression!r}: {message}")
        self.expression = expression
        self.reason = message


class ExpressionLimitError(ExpressionError):
    """An expression refused by a limit: too big or too nested to parse, or it wanted
    more work or memory than one evaluation may use. The same expression over the same
    data is refused again, so it is not worth retrying.

    Attributes:
        limit: which limit: a field of ExpressionLimits, or "max_expression_bytes",
            "max_nesting", "max_path_steps", "max_picture_width", or "eval".
    """

    def __init__(self, expression: str, limit: str, message: str) -> None:
        super().__init__(expression, message)
        self.limit = limit


class _Refused(jexception.JException):
    """Raised inside the library. A JException, because `and`/`or` turn any other
    exception into a bare "Unexpected"."""

    def __init__(self, message: str, limit: str | None = None) -> None:
        RuntimeError.__init__(self, message)
        self.error = "Refused"
        self.location = -1
        self.current = None
        self.expected = None
        self.extra = None
        self.type = None
        self.remaining = None
        self.limit = limit


def _limit_message(limits: ExpressionLimits, limit: str, detail: str) -> str:
    fixed = {
        "max_expression_bytes": MAX_EXPRESSION_BYTES,
        "max_nesting": MAX_NESTING,
        "max_path_steps": MAX_PATH_STEPS,
        "max_picture_width": MAX_PICTURE_WIDTH,
    }
    value = getattr(limits, limit, fixed.get(limit))
    bound = f"; the limit is {limit} = {value}" if value is not None else ""
    return f"{detail}{bound}: {_ADVICE}"


# ---------------------------------------------------------------------------- parsing


class _Parsed(NamedTuple):
    expression: Any  # jsonata.Jsonata
    variables: frozenset[str]
    """Every variable the expression reads or binds, without `$`."""
    costs: Mapping[int, int]
    """Fuel per step, by id of the AST node, where it is not 1."""
    selections: frozenset[int]
    """Ids of the paths that only select (`$input.items.name`): what they return is no
    bigger than what they read."""


def _prescan(body: str) -> tuple[str, str] | None:
    """(limit, why) when the body is too long or too nested to hand to the parser: one
    pass over the text, skipping strings, quoted names and comments."""
    size = len(body.encode("utf-8"))
    if size > MAX_EXPRESSION_BYTES:
        return "max_expression_bytes", (
            f"the expression is {size} bytes; the limit is {MAX_EXPRESSION_BYTES}: move the "
            "logic into a service action or split it into steps"
        )
    depth = 0
    steps = [0]  # `.` steps in the current path chain, per bracket level
    i, n = 0, len(body)
    while i < n:
        c = body[i]
        if c in "\"'`":
            end = i + 1
            while end < n and body[end] != c:
                end += 2 if c != "`" and body[end] == "\\" else 1
            i = end + 1
            continue
        if c == "/" and body.startswith("/*", i):
            end = body.find("*/", i + 2)
            i = n if end < 0 else end + 2
            continue
        if c in "([{":
            depth += 1
            if depth > MAX_NESTING:
                return "max_nesting", (
                    f"the expression nests brackets more than {MAX_NESTING} deep: "
                    "split it into steps or variables"
                )
            steps.append(0)
        elif c in ")]}":
            if depth:
                depth -= 1
                steps.pop()
        elif c == ".":
            if body.startswith("..", i):
                i += 2
                continue
            if not (0 < i < n - 1 and body[i - 1].isdigit() and body[i + 1].isdigit()):
                steps[-1] += 1
                if steps[-1] > MAX_PATH_STEPS:
                    return "max_path_steps", (
                        f"a path in the expression has more than {MAX_PATH_STEPS} steps: "
                        "split it with variables"
                    )
        elif c in "+-&=<>!?:~|,;":
            steps[-1] = 0
        i += 1
    return None


def _parser_failure(exc: BaseException) -> str:
    """What went wrong, for the parser's exceptions other than JException (it raises
    these on some malformed input instead of a syntax error)."""
    if isinstance(exc, IndexError):
        return "it ends in the middle of something (an unclosed `/*` comment?)"
    if isinstance(exc, KeyError):
        return f"{exc.args[0]!r} is not an operator JSONata knows"
    if isinstance(exc, RuntimeError) and str(exc):
        return str(exc)
    return f"the parser failed ({type(exc).__name__}: {exc})"


def _parse(body: str) -> _Parsed:
    refused = _prescan(body)
    if refused is not None:
        raise ExpressionLimitError(body, *refused)
    try:
        expression = jsonata.Jsonata(body, _re2_engine)
    except _RegexRefused as exc:
        raise ExpressionError(body, str(exc)) from None
    except jexception.JException as exc:
        raise ExpressionError(body, _describe(exc)) from None
    except RecursionError:
        raise ExpressionLimitError(
            body, "max_nesting", "the expression nests too deeply to parse: split it into steps"
        ) from None
    except Exception as exc:  # noqa: BLE001 - the parser raises IndexError, KeyError, ...
        raise ExpressionError(body, _parser_failure(exc)) from None
    variables, costs, selections = _inspect(expression.ast)
    reserved = sorted(name for name in variables if name.startswith("__"))
    if reserved:
        raise ExpressionError(body, f"${reserved[0]}: names starting with $__ are reserved")
    for name, native in _STAND_INS.items():
        expression.environment.bind(name, native)
    return _Parsed(expression, variables, costs, selections)


def _step_cost(node: Any) -> int:
    called: Any = getattr(node, "procedure", None) if node.type == "function" else None
    if getattr(called, "type", None) == "variable" and called.value in _NATIVE_CALL_COSTS:
        return _NATIVE_CALL_COSTS[called.value]
    return _STEP_COSTS.get(node.type, 1)


def _inspect(ast: Any) -> tuple[frozenset[str], dict[int, int], frozenset[int]]:
    """Every variable an AST reads or binds (`$x`, parameters, `@$x`, `#$i`), the fuel of
    its steps that do not cost 1, and its paths that only select (_Parsed)."""
    names: set[str] = set()
    costs: dict[int, int] = {}
    selections: set[int] = set()
    seen: set[int] = set()
    stack = [ast]
    while stack:
        node = stack.pop()
        if isinstance(node, list | tuple):
            stack.extend(node)
            continue
        if not isinstance(node, parser.Parser.Symbol) or id(node) in seen:
            continue
        seen.add(id(node))
        costs[id(node)] = costs.get(id(node), 0) + _step_cost(node)
        body = getattr(node, "body", None) if node.type == "lambda" else None
        if body is not None:
            costs[id(body)] = costs.get(id(body), 0) + _CALL_COST
        if node.type == "variable":
            names.add(str(node.value))
        if node.type == "path" and _selects(node):
            selections.add(id(node))
        for bound in (getattr(node, "focus", None), getattr(node, "index", None)):
            if isinstance(bound, str):
                names.add(bound)
        for key, member in vars(node).items():
            if key != "_outer_instance" and isinstance(member, parser.Parser.Symbol | list | tuple):
                stack.append(member)
    costs = {key: cost for key, cost in costs.items() if cost != 1}
    return frozenset(names), costs, frozenset(selections)


def _selects(path: Any) -> bool:
    """A path of names after a first variable or name, filtered at most: `$x.a[b > 1].c`.
    (A variable further on, `$input.items.$big`, would repeat $big once per item.)"""
    steps = path.steps or []
    return (
        bool(steps)
        and getattr(path, "group", None) is None
        and steps[0].type in ("variable", "name")
        and all(step.type == "name" for step in steps[1:])
        and all(step.focus is None and step.index is None for step in steps)
    )


class _ParseCache:
    """Parsed expressions, the least recently used dropped first, bounded by count and by
    the total length of their text. A parsed expression holds 1-2 KB per character of
    text (measured: 7-13 MB for 8 KiB of `1+1+...`), so 128 Ki characters bound it to
    about 250 MB, while 1024 typical expressions (20-200 characters) stay under it."""

    def __init__(self, parse: Callable[[str], _Parsed], *, max_entries: int, max_text: int) -> None:
        self.__wrapped__ = parse
        self._max_entries = max_entries
        self._max_text = max_text
        self._entries: OrderedDict[str, _Parsed] = OrderedDict()
        self._text = 0
        self._lock = threading.Lock()

    def __call__(self, body: str) -> Any:
        """The parsed expression (cached: a definition's expressions parse once per worker).

        Raises:
            ExpressionError: it does not parse, or names a reserved variable.
            ExpressionLimitError: it is too long or too nested to parse.
        """
        return self.parsed(body).expression

    def parsed(self, body: str) -> _Parsed:
        with self._lock:
            entry = self._entries.get(body)
            if entry is not None:
                self._entries.move_to_end(body)
                return entry
        entry = self.__wrapped__(body)
        with self._lock:
            if body not in self._entries:
                self._entries[body] = entry
                self._text += len(body)
                while len(self._entries) > self._max_entries or self._text > self._max_text:
                    dropped, _ = self._entries.popitem(last=False)
                    self._text -= len(dropped)
        return entry

    def cache_clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._text = 0


compiled = _ParseCache(_parse, max_entries=1024, max_text=128 * 1024)


def _describe(exc: BaseException) -> str:
    message = getattr(exc, "message", None) or str(exc) or type(exc).__name__
    return str(message)


def check(value: str) -> str | None:
    """Why an expression string cannot be used, or None: it must parse within the
    limits, and reference neither `$eval` nor a refused function, in any form (a call,
    `~> $f`, or `$g := $f`)."""
    body = expression_body(value)
    if not body:
        return "the expression is empty"
    try:
        parsed = compiled.parsed(body)
    except ExpressionLimitError as exc:
        return exc.reason
    except ExpressionError as exc:
        return f"does not parse: {exc.reason}"
    if "eval" in parsed.variables:
        return "$eval turns data into code, so a workflow cannot use it (in any form)"
    for name in REFUSED_FUNCTIONS:
        if name in parsed.variables:
            return f"${name}() is not deterministic, so a workflow cannot use it"
    return None


def step_references(value: str) -> set[str]:
    """The step ids an expression reads through `$steps.<id>` (or $steps.`<id>`)."""
    return {quoted or plain for quoted, plain in _STEP_REFERENCE.findall(value)}


def expressions_in(value: Any) -> list[str]:
    """Every `{% %}` string inside a value (an object's members, a list's items)."""
    if is_expression(value):
        return [value]
    if isinstance(value, dict):
        return [e for member in value.values() for e in expressions_in(member)]
    if isinstance(value, list):
        return [e for item in value for e in expressions_in(item)]
    return []


# --------------------------------------------------------------------- regular expressions


class _RegexRefused(Exception):
    """A regex literal RE2 cannot compile (raised inside the parser)."""


_WORD = r"\p{L}\p{N}_"
_SPACE = r"\s\x0b\x1c-\x1f\x85\p{Z}"
_OUTSIDE_CLASS = {
    "d": r"\p{Nd}",
    "D": r"\P{Nd}",
    "w": f"[{_WORD}]",
    "W": f"[^{_WORD}]",
    "s": f"[{_SPACE}]",
    "S": f"[^{_SPACE}]",
    "Z": r"\z",
}
_INSIDE_CLASS = {"d": r"\p{Nd}", "D": r"\P{Nd}", "w": _WORD, "s": _SPACE}


def _as_re2(pattern: str) -> str:
    """The pattern with Python's meaning of \\d, \\w, \\s (Unicode; RE2's are ASCII-only)
    and \\Z (RE2 spells it \\z), so literals match what they matched on Python's re.
    \\b stays RE2's ASCII word boundary."""
    out: list[str] = []
    i, n = 0, len(pattern)
    in_class = False
    while i < n:
        c = pattern[i]
        if c == "\\" and i + 1 < n:
            escaped = pattern[i + 1]
            table = _INSIDE_CLASS if in_class else _OUTSIDE_CLASS
            out.append(table.get(escaped, c + escaped))
            i += 2
            continue
        out.append(c)
        i += 1
        if in_class:
            in_class = c != "]"
        elif c == "[":
            in_class = True
            if i < n and pattern[i] == "^":
                out.append("^")
                i += 1
            if i < n and pattern[i] == "]":  # a leading `]` is a literal
                out.append("]")
                i += 1
    return "".join(out)


def _re2_engine(pattern: str, flags: RegexFlags) -> _Re2Pattern:
    """The regex_engine for jsonata.Jsonata: regex literals compile on RE2."""
    modifiers = ("i" if flags.case_insensitive else "") + ("m" if flags.multiline else "")
    options = re2.Options()
    options.log_errors = False
    source = _as_re2(pattern)
    try:
        regexp = re2.compile(f"(?{modifiers}){source}" if modifiers else source, options)
    except re2.error as exc:
        reason = exc.args[0].decode(errors="replace") if exc.args else "refused"
        raise _RegexRefused(
            f"the regular expression /{pattern}/ cannot run on RE2 ({reason}): regular "
            "expressions must match in linear time, so backreferences and lookaround "
            "are not supported"
        ) from None
    return _Re2Pattern(regexp)


class _Re2Pattern:
    """A regex literal on RE2, with what the library calls (search, finditer, sub, split:
    jsonata/regex_engine.py). Its matches are RE2's, which have the methods of re.Match
    the library uses (group, groups, groupdict, start, end). Scanning and each match are
    charged to the running evaluation; sub and split stop at its size limits."""

    __slots__ = ("_regexp",)

    def __init__(self, regexp: Any) -> None:
        self._regexp = regexp

    @property
    def pattern(self) -> str:
        return str(self._regexp.pattern)

    def search(self, string: str) -> Any:
        _charge_text(len(string))
        return self._regexp.search(string)

    def finditer(self, string: str) -> Iterator[Any]:
        budget = _running()
        per_match = _MATCH_COST + len(string) // _MATCH_TEXT_PER_FUEL
        if budget is not None:
            budget.charge(len(string) // _CHARS_PER_FUEL)
        for match in self._regexp.finditer(string):
            if budget is not None:
                budget.charge(per_match)
            yield match

    def sub(self, repl: Any, string: str, count: int = 0) -> str:
        template = None if callable(repl) else _template(repl, self._regexp)
        most = _limits.max_string_length
        pieces: list[str] = []
        length = end = done = 0
        for match in self.finditer(string):
            piece = repl(match) if template is None else _expand(template, match)
            start = match.start()
            pieces.append(string[end:start])
            pieces.append(piece)
            length += start - end + len(piece)
            if length > most:
                _refuse("max_string_length", "$replace would make a longer string")
            end = match.end()
            done += 1
            if count and done >= count:
                break
        pieces.append(string[end:])
        return "".join(pieces)

    def split(self, string: str, maxsplit: int = 0) -> list[str | None]:
        most = _limits.max_array_length
        pieces: list[str | None] = []
        end = done = 0
        for match in self.finditer(string):
            pieces.append(string[end : match.start()])
            pieces.extend(match.groups())
            if len(pieces) > most:
                _refuse("max_array_length", "$split would make a longer array")
            end = match.end()
            done += 1
            if maxsplit and done >= maxsplit:
                break
        pieces.append(string[end:])
        return pieces


_TEMPLATE_ESCAPES = {
    "a": "\a",
    "b": "\b",
    "f": "\f",
    "n": "\n",
    "r": "\r",
    "t": "\t",
    "v": "\v",
    "\\": "\\",
}
_OCTAL = "01234567"
_DECIMAL = "0123456789"


def _template(template: str, regexp: Any) -> list[str | int]:
    """A replacement template read as Python's re.sub reads it, as literal text and group
    numbers, so `$replace` gives what it gave on Python's re. A reference to a group the
    pattern lacks raises re.error "invalid group reference N at position P", which the
    library's $replace catches to drop the reference."""
    groups: int = regexp.groups
    parts: list[str | int] = []
    literal: list[str] = []

    def group(index: int, position: int) -> None:
        if index > groups:
            raise re.error(f"invalid group reference {index} at position {position}")
        if literal:
            parts.append("".join(literal))
            literal.clear()
        parts.append(index)

    i, n = 0, len(template)
    while i < n:
        backslash = template.find("\\", i)
        if backslash < 0:
            literal.append(template[i:])
            break
        literal.append(template[i:backslash])
        i = backslash
        if i + 1 >= n:
            raise re.error("bad escape (end of pattern)")
        c = template[i + 1]
        if c == "g":
            if i + 2 >= n or template[i + 2] != "<":
                raise re.error("missing <")
            close = template.find(">", i + 3)
            if close < 0:
                raise re.error("missing >, unterminated name")
            name = template[i + 3 : close]
            if not name:
                raise re.error("missing group name")
            if name.isidentifier():
                named = regexp.groupindex
                if name not in named:
                    raise IndexError(f"unknown group name {name!r}")
                index = int(named[name])
            else:
                try:
                    index = int(name)
                    if index < 0:
                        raise ValueError(name)
                except ValueError:
                    raise re.error(f"bad character in group name {name!r}") from None
            group(index, i + 3)
            i = close + 1
        elif c == "0":
            end = i + 2
            while end < n and end < i + 4 and template[end] in _OCTAL:
                end += 1
            literal.append(chr(int(template[i + 1 : end], 8) & 0xFF))
            i = end
        elif c in _DECIMAL:
            end = i + 2
            if end < n and template[end] in _DECIMAL:
                if c in _OCTAL and template[end] in _OCTAL and end + 1 < n:
                    if template[end + 1] in _OCTAL:
                        value = int(template[i + 1 : end + 2], 8)
                        if value > 0o377:
                            raise re.error(f"octal escape value \\{value:o} outside of range")
                        literal.append(chr(value))
                        i = end + 2
                        continue
                end += 1
            group(int(template[i + 1 : end]), i + 1)
            i = end
        elif c in _TEMPLATE_ESCAPES:
            literal.append(_TEMPLATE_ESCAPES[c])
            i += 2
        elif c.isascii() and c.isalpha():
            raise re.error(f"bad escape \\{c} at position {i}")
        else:
            literal.append("\\" + c)
            i += 2
    if literal:
        parts.append("".join(literal))
    return parts


def _expand(template: list[str | int], match: Any) -> str:
    return "".join(part if isinstance(part, str) else match.group(part) or "" for part in template)


# ---------------------------------------------------------------------------- budget


_local = threading.local()
_CONTAINERS = frozenset({utils.Utils.JList, utils.Utils.RangeList, list, dict})
_SCALARS = frozenset({int, float, bool})


def _running() -> _Budget | None:
    """The budget of the evaluation running on this thread, if any."""
    budget: _Budget | None = getattr(_local, "budget", None)
    return budget


def _refuse(limit: str, detail: str) -> NoReturn:
    budget = _running()
    if budget is not None:
        budget.trip(limit, detail)
    raise _Refused(_limit_message(_limits, limit, detail), limit)


def _charge_text(characters: int) -> None:
    budget = _running()
    if budget is not None:
        budget.charge(characters // _CHARS_PER_FUEL)


class _Budget:
    """One evaluation's allowance (ExpressionLimits), charged by the library's per-step
    callbacks and by the stand-in functions.

    Values of the bindings (and what a path selects from them) are the workflow's own
    data: charged when passed along, but not held to the limits on what an expression
    makes. Every other array or object is measured once (memoised by identity, so a value
    that shares its parts many times counts every time it holds them)."""

    __slots__ = (
        "limits",
        "fuel",
        "depth",
        "tripped",
        "random",
        "_max_depth",
        "now_millis",
        "_bindings",
        "_costs",
        "_selections",
        "_exempt",
        "_sizes",
        "_walked",
    )

    def __init__(
        self,
        limits: ExpressionLimits,
        *,
        bindings: Mapping[str, Any],
        costs: Mapping[int, int],
        selections: frozenset[int] = frozenset(),
        random: Callable[[], float] | None,
        now_millis: Callable[[], int] | None,
    ) -> None:
        self.limits = limits
        self.fuel = limits.fuel
        self.depth = 0
        self._max_depth = limits.max_depth
        self.tripped: tuple[str, str] | None = None
        self.random = random
        self.now_millis = now_millis
        self._bindings = bindings
        self._exempt: dict[int, Any] = {}
        self._sizes: dict[int, tuple[Any, int, int]] = {}
        self._costs = costs
        self._selections = selections
        self._walked = 0

    # The library calls these two around every step (Frame "__evaluate_entry"/"_exit").

    def enter(self, expr: Any, input: Any, environment: Any) -> None:
        self.fuel -= self._costs.get(id(expr), 1)
        self.depth += 1
        if self.fuel < 0 or self.depth > self._max_depth:
            self._exhausted()

    def leave(self, expr: Any, input: Any, environment: Any, result: Any) -> None:
        self.depth -= 1
        kind = result.__class__
        if kind in _CONTAINERS:
            self._container(expr, input, result)
        elif kind is str:
            length = len(result)
            if length >= _CHARS_PER_FUEL:
                self.fuel -= length // _CHARS_PER_FUEL
                if length > self.limits.max_string_length and not self._is_data(
                    expr, input, result
                ):
                    self.trip("max_string_length", f"it made a string of {length} characters")
                if self.fuel < 0:
                    self._exhausted()
        elif result is None or kind in _SCALARS:
            return
        elif isinstance(result, list | dict):
            self._container(expr, input, result)
        elif isinstance(result, jsonata.Jsonata.JFunction) and expr.type == "transform":
            result.function = _ForgetSizesAfter(result.function, self)

    def trip(self, limit: str, detail: str) -> NoReturn:
        if self.tripped is None:
            self.tripped = (limit, _limit_message(self.limits, limit, detail))
        self.fuel = -1  # every later step refuses too, should the library catch this
        raise _Refused(self.tripped[1], self.tripped[0])

    def charge(self, units: int) -> None:
        self.fuel -= units
        if self.fuel < 0:
            self._exhausted()

    def charge_string(self, length: int) -> None:
        if length > self.limits.max_string_length:
            self.trip("max_string_length", f"it made a string of {length} characters")
        self.charge(length // _CHARS_PER_FUEL)

    def charge_copy(self, items: int) -> None:
        if items > self.limits.max_array_length:
            self.trip("max_array_length", f"it made an array of {items} items")
        self.charge(items // _COPIED_ITEMS_PER_FUEL)

    def measure(self, value: Any) -> int:
        """Items plus characters of a value, counted through its nesting."""
        size, _ = self._measure(value, 0)
        self._charge_walk()
        return size

    def forget_sizes(self) -> None:
        self._sizes.clear()

    def _exhausted(self) -> NoReturn:
        if self.tripped is not None:
            raise _Refused(self.tripped[1], self.tripped[0])
        if self.fuel < 0:
            self.trip(
                "fuel",
                "it did more work than one expression may (fuel counts each evaluation "
                f"step, and each {_ITEMS_PER_FUEL} items or {_CHARS_PER_FUEL} characters "
                "of what a step returns)",
            )
        self.trip(
            "max_depth",
            f"its evaluation nests deeper than {self.limits.max_depth} levels "
            "(a function that calls itself without end?)",
        )

    def _container(self, expr: Any, input: Any, value: Any) -> None:
        count = len(value)
        self.fuel -= count // _ITEMS_PER_FUEL
        if id(value) not in self._exempt:
            if self._is_data(expr, input, value):
                self._exempt_with_items(value)
            else:
                if isinstance(value, dict):
                    if count > self.limits.max_object_keys:
                        self.trip("max_object_keys", f"it made an object with {count} keys")
                elif count > self.limits.max_array_length:
                    self.trip("max_array_length", f"it made an array of {count} items")
                self._measure(value, 0)
                if self._walked:
                    self._charge_walk()
        if self.fuel < 0:
            self._exhausted()

    def _is_data(self, expr: Any, input: Any, value: Any) -> bool:
        """Whether a step returned the workflow's own data: a binding, or what a name or
        a selecting path reads of it."""
        kind = expr.type
        if kind == "variable":
            return self._bindings.get(expr.value) is value
        if kind == "name":
            return id(input) in self._exempt
        if kind == "path" and id(expr) in self._selections:
            return all(
                item.__class__ not in _CONTAINERS or id(item) in self._exempt
                for item in (value if isinstance(value, list) else (value,))
            )
        return False

    def _exempt_with_items(self, value: Any) -> None:
        """Mark the workflow's data (a binding, or what a path selects of it), and the
        items of an array of it, which functions like $map pass on one by one."""
        exempt = self._exempt
        exempt[id(value)] = value
        if isinstance(value, list) and not isinstance(value, utils.Utils.RangeList):
            for item in value:
                if item.__class__ in _CONTAINERS:
                    exempt[id(item)] = item

    def _charge_walk(self) -> None:
        self.fuel -= self._walked // _ITEMS_PER_FUEL
        self._walked = 0
        if self.fuel < 0:
            self._exhausted()

    def _measure(self, value: Any, level: int) -> tuple[int, int]:
        """(items plus characters, nesting depth) of a list or dict, memoised."""
        known = self._sizes.get(id(value))
        if known is not None and known[0] is value:
            return known[1], known[2]
        limits = self.limits
        if level >= limits.max_depth:
            self._too_deep()
        size = len(value)
        deepest = 0
        if level:
            self._walked += size + 1
        if not isinstance(value, utils.Utils.RangeList):  # a range holds only numbers
            members = value
            if isinstance(value, dict):
                size += sum(len(key) for key in value if isinstance(key, str))
                members = value.values()
            for member in members:
                if member.__class__ is str:
                    size += len(member)
                elif isinstance(member, list | dict):
                    inner, depth = self._measure(member, level + 1)
                    size += inner
                    deepest = max(deepest, depth)
                else:
                    continue
                if size > limits.max_value_size:
                    break
        if size > limits.max_value_size:
            self.trip("max_value_size", f"it made a value of size {size} or more")
        if deepest >= limits.max_depth:
            self._too_deep()
        self._sizes[id(value)] = (value, size, deepest + 1)
        return size, deepest + 1

    def _too_deep(self) -> NoReturn:
        self.trip("max_depth", f"it made a value nested deeper than {self.limits.max_depth} levels")


class _ForgetSizesAfter:
    """Wraps what a transform (`~> |pattern|update|`) returns: it edits its copy of the
    input in place after parts of it were measured, so measurements are dropped after."""

    def __init__(self, function: Any, budget: _Budget) -> None:
        self._function = function
        self._budget = budget

    def call(self, input: Any, args: Any) -> Any:
        try:
            return self._function.call(input, args)
        finally:
            self._budget.forget_sizes()


_library_append = Functions.append


def _charged_append(arg1: Any, arg2: Any) -> Any:
    """Functions.append copies its first argument whole, and the array constructor, `*`,
    grouping and $spread call it once per item: n items cost n²/2 copies. The copies
    are charged to the running evaluation."""
    budget = _running()
    if budget is not None and arg1 is not None and arg2 is not None:
        budget.charge_copy(
            (len(arg1) if isinstance(arg1, list) else 1)
            + (len(arg2) if isinstance(arg2, list) else 1)
        )
    return _library_append(arg1, arg2)


# Process-wide: the library calls Functions.append by name from its evaluator; outside an
# evaluation (no budget on the thread) it behaves as before.
Functions.append = staticmethod(_charged_append)


# ----------------------------------------------------------------------- stand-ins


def _check_length(length: int, what: str) -> None:
    if length > _limits.max_string_length:
        _refuse("max_string_length", f"{what} would make a string of {length} characters")


def _check_items(count: int, what: str) -> None:
    if count > _limits.max_array_length:
        _refuse("max_array_length", f"{what} would make an array of {count} items")


_PICTURE_MARKER = re.compile(r"\[([^\[\]]*)\]")
_NUMBER = re.compile(r"\d+")


def _check_picture(picture: Any) -> None:
    """Refuse a date picture whose width modifier (`[Y,4]`, `[D,2-2]`) exceeds
    MAX_PICTURE_WIDTH: the library pads to it and computes 10**width."""
    if not isinstance(picture, str):
        return
    for marker in _PICTURE_MARKER.findall(picture):
        _, comma, widths = marker.rpartition(",")
        for digits in _NUMBER.findall(widths) if comma else ():
            if len(digits) > 4 or int(digits) > MAX_PICTURE_WIDTH:
                _refuse("max_picture_width", f"the date picture asks for a width of {digits}")


class _PictureRegex:
    """What the library's parse_datetime asks of `re`, on RE2: its pattern holds the
    picture's literal text unescaped, so on Python's re a picture could backtrack for
    ever (or `[f][f][f]` against a long run of digits, polynomially)."""

    IGNORECASE = re.IGNORECASE

    @staticmethod
    def compile(pattern: str, flags: int = 0) -> Any:
        options = re2.Options()
        options.log_errors = False
        try:
            return re2.compile(("(?i)" if flags & re.IGNORECASE else "") + pattern, options)
        except re2.error as exc:
            reason = exc.args[0].decode(errors="replace") if exc.args else "refused"
            raise _Refused(f"the date picture cannot be matched ({reason})") from None


class _WorkflowDatetime(datetime.datetime):
    """`datetime.datetime` for the library's parse_datetime, which fills the date parts a
    picture leaves out from utcnow(): here the workflow's clock, not the machine's."""

    @classmethod
    def utcnow(cls) -> Self:
        budget = _running()
        if budget is None or budget.now_millis is None:
            raise _Refused("$toMillis with a picture needs the workflow's clock")
        moment = cls.fromtimestamp(budget.now_millis() / 1000, datetime.UTC)
        return moment.replace(tzinfo=None)


_parse_datetime = types.FunctionType(
    datetimeutils.DateTimeUtils.parse_datetime.__code__,
    {
        **vars(datetimeutils),
        "re": _PictureRegex,
        "datetime": types.SimpleNamespace(
            datetime=_WorkflowDatetime,
            timedelta=datetime.timedelta,
            timezone=datetime.timezone,
        ),
    },
    "parse_datetime",
)
"""The library's DateTimeUtils.parse_datetime, reading `re` and `datetime` from above."""

_SINGLE_CHARACTER_OPTIONS = (
    "decimal-separator",
    "grouping-separator",
    "exponent-separator",
    "minus-sign",
    "percent",
    "per-mille",
    "zero-digit",
    "digit",
    "pattern-separator",
)


def _frozen(value: Any) -> Any:
    """A hashable stand-in equal (==) to another's exactly when the values are equal."""
    if isinstance(value, dict):
        return ("{", frozenset((key, _frozen(member)) for key, member in value.items()))
    if isinstance(value, list):
        return ("[", tuple(_frozen(item) for item in value))
    return value


def _text_replacement(replacement: str, pattern: str) -> str:
    """What the library's $replace makes of a replacement for a match of a string pattern
    (no groups): `$$` is `$`, `$0` is the match, any other `$` stays."""
    parts: list[str] = []
    position = 0
    while position < len(replacement):
        index = replacement.find("$", position)
        if index == -1:
            parts.append(replacement[position:])
            break
        parts.append(replacement[position:index])
        position = index + 1
        following = replacement[position : position + 1]
        if following == "$":
            parts.append("$")
            position += 1
        elif following == "0":
            parts.append(pattern)
            position += 1
        else:
            if following.isdigit():
                int(following)  # as the library does: it fails on digits int() refuses
            parts.append("$")
    return "".join(parts)


class _Stand:
    """Stand-ins for library functions: same names, signatures and results, but they
    check a limit before the one call that could allocate far beyond its inputs, do in
    one pass what the library does in quadratic time, or replace what is not
    deterministic. Bound into every parsed expression's environment."""

    @staticmethod
    def pad(string: Any, width: Any, char: Any) -> Any:
        if isinstance(width, int | float) and not isinstance(width, bool):
            try:
                wanted = abs(int(width))
            except (OverflowError, ValueError):
                wanted = 0
            _check_length(wanted, "$pad")
        return Functions.pad(string, width, char)

    @staticmethod
    def join(strs: Any, separator: Any) -> Any:
        if isinstance(strs, list):
            texts = sum(len(text) for text in strs if isinstance(text, str))
            gaps = max(len(strs) - 1, 0) * (len(separator) if isinstance(separator, str) else 0)
            _check_length(texts + gaps, "$join")
        return Functions.join(strs, separator)

    @staticmethod
    def replace(string: Any, pattern: Any, replacement: Any, limit: Any) -> Any:
        if not isinstance(string, str) or (limit is not None and limit < 0):
            return Functions.replace(string, pattern, replacement, limit)
        if isinstance(pattern, str):
            if not pattern or callable(replacement):
                return Functions.replace(string, pattern, replacement, limit)
            return _replace_text(string, pattern, replacement, limit)
        if limit is None:  # one pass of _Re2Pattern.sub, which checks as it goes
            return Functions.replace(string, pattern, replacement, limit)
        return _replace_first(string, pattern, replacement, limit)

    @staticmethod
    def split(string: Any, pattern: Any, limit: Any) -> Any:
        if isinstance(string, str) and isinstance(pattern, str):
            pieces = string.count(pattern) + 1 if pattern else len(string)
            if limit is not None and 0 <= limit < pieces:
                pieces = int(limit)
            _check_items(pieces, "$split")
        return Functions.split(string, pattern, limit)

    @staticmethod
    def string(arg: Any, prettify: Any) -> Any:
        value = arg
        if isinstance(value, utils.Utils.JList) and value.outer_wrapper:
            value = value[0]
        budget = _running()
        if isinstance(value, list | dict) and budget is not None:
            # At least one character per item and per character: a lower bound.
            _check_length(budget.measure(value), "$string")
            if prettify:
                return _pretty_json(value)
        return Functions.string(arg, prettify)

    @staticmethod
    def format_number(value: Any, picture: Any, decimal_format: Any) -> Any:
        # The library builds Python regular expressions from these options unescaped.
        if isinstance(decimal_format, Mapping):
            for option in _SINGLE_CHARACTER_OPTIONS:
                given = decimal_format.get(option)
                if given is not None and not (isinstance(given, str) and len(given) == 1):
                    raise _Refused(f"$formatNumber: the option {option!r} must be one character")
        return Functions.format_number(value, picture, decimal_format)

    @staticmethod
    def datetime_from_millis(millis: Any, picture: Any, timezone: Any) -> Any:
        _check_picture(picture)
        return Functions.datetime_from_millis(millis, picture, timezone)

    @staticmethod
    def datetime_to_millis(timestamp: Any, picture: Any) -> Any:
        if timestamp is None or picture is None:
            return Functions.datetime_to_millis(timestamp, picture)
        _check_picture(picture)
        return _parse_datetime(timestamp, picture)

    @staticmethod
    def distinct(arr: Any) -> Any:
        if not isinstance(arr, list) or len(arr) <= 1:
            return Functions.distinct(arr)
        # The library tests `el not in results` for each item: quadratic.
        results = utils.Utils.create_sequence() if isinstance(arr, utils.Utils.JList) else []
        seen: set[Any] = set()
        try:
            for item in arr:
                key = _frozen(item)
                if key not in seen:
                    seen.add(key)
                    results.append(item)
        except TypeError:  # an unhashable leaf: the library's way
            return Functions.distinct(arr)
        return results

    @staticmethod
    def spread(arg: Any) -> Any:
        if not isinstance(arg, list):
            return Functions.spread(arg)
        # The library appends each item's spread to a copy of all before it: quadratic.
        gathered: list[Any] | None = None
        for item in arg:
            part = _Stand.spread(item)
            if part is None:
                continue
            gathered = [] if gathered is None else gathered
            if isinstance(part, list):
                gathered.extend(part)
            else:
                gathered.append(part)
        if gathered is None:
            return utils.Utils.create_sequence()
        return utils.Utils.JList(gathered)

    @staticmethod
    def shuffle(arr: Any) -> Any:
        budget = _running()
        if budget is None or budget.random is None:
            raise _Refused("$shuffle needs the workflow's deterministic random")
        if arr is None or len(arr) <= 1:
            return arr
        result = list(arr)
        for i in range(len(result) - 1, 0, -1):  # Fisher-Yates, on the workflow's random
            j = int(budget.random() * (i + 1))
            result[i], result[j] = result[j], result[i]
        return result

    @staticmethod
    def function_eval(expr: Any, focus: Any) -> Any:
        _refuse("eval", "$eval turns data into code, which a workflow may not run")


def _replace_text(string: str, pattern: str, replacement: Any, limit: Any) -> str:
    """$replace with a string pattern, in one pass (the library slices the rest of the
    string at every match). Every match is the pattern, so its replacement is the same."""
    text = (
        _text_replacement(replacement, pattern)
        if isinstance(replacement, str)
        else str(replacement)
    )
    count = string.count(pattern)
    if limit is not None and limit < count:
        count = math.ceil(limit)
    _check_length(len(string) + count * (len(text) - len(pattern)), "$replace")
    return string.replace(pattern, text, count)


def _replace_first(string: str, pattern: Any, replacement: Any, limit: Any) -> Any:
    """$replace with a regex and a limit: as the library does (replace the first match,
    `limit` times over), stopping once a pass changes nothing, since every later pass
    would change nothing either."""
    result: Any = string
    count = 0
    while count < limit:
        _charge_text(len(result) if isinstance(result, str) else 0)
        following = Functions.safe_replace_first(result, pattern, str(replacement))
        count += 1
        if following == result:
            break
        result = following
    return result


def _pretty_json(value: Any) -> str:
    """json.dumps(value, cls=Functions.Encoder, indent="  "), as $string(value, true) makes
    it, stopped as soon as it outgrows max_string_length: indentation grows with depth,
    so the output can be far longer than the value."""
    most = _limits.max_string_length
    budget = _running()
    chunks: list[str] = []
    length = 0
    for chunk in Functions.Encoder(indent="  ").iterencode(value):
        length += len(chunk)
        if length > most:
            _refuse("max_string_length", "$string would make a longer string")
        chunks.append(chunk)
        if budget is not None and not len(chunks) % _CHUNKS_PER_CHARGE:
            budget.charge(_CHUNKS_PER_CHARGE // _CHUNKS_PER_FUEL)
    return "".join(chunks)


def _stand_in(name: str, implementation: Callable[..., Any]) -> Any:
    """The library's native function `name` (its signature included), calling
    `implementation` instead."""
    native = copy(jsonata.Jsonata.static_frame.lookup(name))
    native.method = implementation
    native.nargs = len(inspect.signature(implementation).parameters)
    return native


_STAND_INS = {
    "pad": _stand_in("pad", _Stand.pad),
    "join": _stand_in("join", _Stand.join),
    "replace": _stand_in("replace", _Stand.replace),
    "split": _stand_in("split", _Stand.split),
    "string": _stand_in("string", _Stand.string),
    "formatNumber": _stand_in("formatNumber", _Stand.format_number),
    "fromMillis": _stand_in("fromMillis", _Stand.datetime_from_millis),
    "toMillis": _stand_in("toMillis", _Stand.datetime_to_millis),
    "distinct": _stand_in("distinct", _Stand.distinct),
    "spread": _stand_in("spread", _Stand.spread),
    "shuffle": _stand_in("shuffle", _Stand.shuffle),
    "eval": _stand_in("eval", _Stand.function_eval),
}


# ------------------------------------------------------------------------- evaluation


class Evaluator:
    """Evaluates values against one set of bindings, with the workflow's clock and random.

    Args:
        bindings: variable name (without `$`) -> value.
        now_millis: the workflow's current time, in milliseconds since the epoch.
        random: the workflow's deterministic random number generator (0 <= n < 1).
    """

    def __init__(
        self,
        bindings: Mapping[str, Any],
        *,
        now_millis: Callable[[], int],
        random: Callable[[], float],
    ) -> None:
        self._bindings = dict(bindings)
        self._bindings["now"] = jsonata.Jsonata.JLambda(
            lambda picture=None, timezone=None: _format_millis(now_millis(), picture, timezone)
        )
        self._bindings["millis"] = jsonata.Jsonata.JLambda(lambda: now_millis())
        self._bindings["random"] = jsonata.Jsonata.JLambda(lambda: random())
        self._now_millis = now_millis
        self._random = random

    def with_bindings(self, **extra: Any) -> Evaluator:
        child = object.__new__(Evaluator)
        child._bindings = {**self._bindings, **extra}
        child._now_millis = self._now_millis
        child._random = self._random
        return child

    def value(self, value: Any) -> Any:
        """The value with every expression in it evaluated."""
        if is_expression(value):
            return self.expression(value)
        if isinstance(value, dict):
            return {key: self.value(member) for key, member in value.items()}
        if isinstance(value, list):
            return [self.value(item) for item in value]
        return value

    def expression(self, value: str) -> Any:
        """The value of one `{% %}` expression, on a budget of the current limits.

        Raises:
            ExpressionLimitError: a limit refused it (parsing or evaluating).
            ExpressionError: it does not parse, or failed while evaluating.
        """
        body = expression_body(value)
        parsed = compiled.parsed(body)  # outside the try below: it raises ExpressionError
        budget = _Budget(
            _limits,
            bindings=self._bindings,
            costs=parsed.costs,
            selections=parsed.selections,
            random=self._random,
            now_millis=self._now_millis,
        )
        bindings = {
            **self._bindings,
            # Per evaluation, not on the shared parsed expression: workflows evaluate the
            # same cached expression on several threads at once.
            "__evaluate_entry": budget.enter,
            "__evaluate_exit": budget.leave,
        }
        outer = _running()
        _local.budget = budget
        try:
            result = parsed.expression.evaluate(None, bindings)
        except Exception as exc:  # noqa: BLE001 - JSONata raises many types; name it
            if budget.tripped is not None:
                raise ExpressionLimitError(body, *budget.tripped) from None
            if isinstance(exc, _Refused) and exc.limit is not None:
                raise ExpressionLimitError(body, exc.limit, str(exc)) from None
            raise ExpressionError(body, _describe(exc)) from None
        finally:
            _local.budget = outer
        if budget.tripped is not None:  # refused, and the library carried on regardless
            raise ExpressionLimitError(body, *budget.tripped)
        return _plain(result)


def _format_millis(millis: int, picture: str | None, timezone: str | None) -> str | None:
    _check_picture(picture)
    return Functions.datetime_from_millis(millis, picture, timezone)


def _plain(value: Any) -> Any:
    """JSONata's sequences and lambdas as plain JSON values (sequences are lists)."""
    if isinstance(value, list):
        return [_plain(item) for item in value]
    if isinstance(value, dict):
        return {str(key): _plain(member) for key, member in value.items()}
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return value
    if callable(value):
        return None
    return value
