"""The sandboxed expression language of conditions, ``=expressions`` and ``{{ }}`` templates.

Python-like syntax, parsed with :mod:`ast` and accepted only if every construct is on the
allow-list below. Nothing is ever passed to ``eval``: :func:`evaluate` walks the checked tree
itself, so the sandbox is what this module implements, not what Python forbids.
"""

from __future__ import annotations

import ast
import math
import operator
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from engine.definitions import bounds
from engine.errors import DefinitionError, SessionError

#: The documented helpers, the only calls an expression may make.
HELPERS: Mapping[str, Callable[..., Any]] = {
    "len": len,
    "lower": lambda s: bounds.check_text(bounds.as_text(s).lower()),
    "upper": lambda s: bounds.check_text(bounds.as_text(s).upper()),
    "round": lambda x, *digits: round(x, *bounds.round_digits(digits)),
    "abs": abs,
    "min": min,
    "max": max,
    "int": int,
    "float": lambda x: bounds.check_number(float(x)),
    "str": bounds.as_text,
}
CONSTANTS: Mapping[str, Any] = {
    "true": True,
    "false": False,
    "null": None,
    "True": True,
    "False": False,
    "None": None,
}
#: Words that cannot name a context value.
RESERVED = (
    frozenset(CONSTANTS) | frozenset(HELPERS) | {"and", "or", "not", "in", "if", "else", "is"}
)


def _modulo(a: Any, b: Any) -> Any:
    if isinstance(a, str):  # '%999999999d' % 1 formats text: not arithmetic, not allowed
        raise EvaluationError("'%' is the remainder of a division; it does not format text")
    return operator.mod(a, b)


_BINARY: Mapping[type, Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,  # bounded by the evaluator, which knows the sizes (engine/definitions/bounds.py)
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: _modulo,
}
_COMPARE: Mapping[type, Callable[[Any, Any], Any]] = {
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
    ast.In: lambda a, b: a in b,
    ast.NotIn: lambda a, b: a not in b,
}
_UNARY: Mapping[type, Callable[[Any], Any]] = {
    ast.Not: operator.not_,
    ast.USub: operator.neg,
    ast.UAdd: operator.pos,
}
_OPERATOR_WORDS = {
    ast.Pow: "'**' (power)",
    ast.BitAnd: "'&' (use 'and')",
    ast.BitOr: "'|' (use 'or')",
    ast.BitXor: "'^'",
    ast.LShift: "'<<'",
    ast.RShift: "'>>'",
    ast.MatMult: "'@'",
    ast.Invert: "'~' (use 'not')",
    ast.Is: "'is' (use '==')",
    ast.IsNot: "'is not' (use '!=')",
}
_TEMPLATE = re.compile(r"\{\{(.*?)\}\}", re.S)
_MAX_LENGTH = 2000
#: Evaluation recurses once per level: far below Python's recursion limit, far above real use.
_MAX_NESTING = 100


class ExpressionError(DefinitionError, ValueError):
    """An expression that does not parse or that the sandbox does not allow."""

    def __init__(self, message: str, column: int = 0) -> None:
        super().__init__(message)
        self.message = message
        self.column = column  # 0-based offset in the expression text, for locations


class EvaluationError(SessionError, ValueError):
    """An allowed expression that failed on the session's values (a missing key, a type)."""


@dataclass(frozen=True)
class Expression:
    source: str
    tree: ast.expr
    names: frozenset[str]  # context names read (the root of each dotted access)
    #: (name, key) of each ``name.key`` or ``name["key"]`` read, for checks of action results
    keys: frozenset[tuple[str, str]] = frozenset()

    def evaluate(self, context: Mapping[str, Any]) -> Any:
        return _Evaluator(context).eval(self.tree)


@lru_cache(maxsize=65536)
def compile_expression(source: str) -> Expression:
    """Parse and check an expression, or raise :class:`ExpressionError` saying why."""
    text = source.strip()
    if not text:
        raise ExpressionError("the expression is empty")
    if len(text) > _MAX_LENGTH:
        raise ExpressionError(f"the expression is longer than {_MAX_LENGTH} characters")
    try:
        tree = ast.parse(text, mode="eval").body
    except SyntaxError as err:
        offset = max((err.offset or 1) - 1, 0)
        raise ExpressionError(f"does not parse: {err.msg}", offset) from None
    _check_nesting(tree)
    names: set[str] = set()
    _check(tree, names)
    return Expression(source, tree, frozenset(names), frozenset(_keys(tree)))


def _keys(tree: ast.expr) -> Iterator[tuple[str, str]]:
    for n in ast.walk(tree):
        if isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name):
            yield n.value.id, n.attr
        elif (
            isinstance(n, ast.Subscript)
            and isinstance(n.value, ast.Name)
            and isinstance(n.slice, ast.Constant)
            and isinstance(n.slice.value, str)
        ):
            yield n.value.id, n.slice.value


def _check_nesting(tree: ast.AST) -> None:
    """Refuse trees nested so deep that evaluating them would exhaust Python's stack."""
    stack = [(tree, 1)]
    while stack:
        n, depth = stack.pop()
        if depth > _MAX_NESTING:
            raise ExpressionError(
                f"the expression is nested more than {_MAX_NESTING} levels deep; split it with 'set'",
                getattr(n, "col_offset", 0),
            )
        stack.extend((child, depth + 1) for child in ast.iter_child_nodes(n))


def _check(node: ast.AST, names: set[str]) -> None:
    """Walk the tree, refusing anything not on the allow-list; collect the names read."""
    stack = [node]
    while stack:
        n = stack.pop()
        check = _ALLOWED.get(type(n))
        if check is None:
            raise ExpressionError(
                f"{_describe(n)} is not allowed in an expression", getattr(n, "col_offset", 0)
            )
        stack.extend(check(n, names))


# Each allowed construct: refuse what it may not hold, give the children to check next.


def _check_name(n: ast.Name, names: set[str]) -> Sequence[ast.AST]:
    if n.id.startswith("_"):
        raise ExpressionError(
            f"the name {n.id!r} is not allowed (names may not start with '_')", n.col_offset
        )
    if n.id not in CONSTANTS:
        names.add(n.id)
    return ()


def _check_constant(n: ast.Constant, names: set[str]) -> Sequence[ast.AST]:
    if not isinstance(n.value, str | int | float | bool | type(None)):
        raise ExpressionError(f"the literal {n.value!r} is not allowed", n.col_offset)
    return ()


def _check_attribute(n: ast.Attribute, names: set[str]) -> Sequence[ast.AST]:
    if n.attr.startswith("_"):
        raise ExpressionError(
            f"'.{n.attr}' is not allowed: keys starting with '_' are never readable", n.col_offset
        )
    return (n.value,)


def _check_subscript(n: ast.Subscript, names: set[str]) -> Sequence[ast.AST]:
    if isinstance(n.slice, ast.Slice):
        raise ExpressionError("slices ('a[1:2]') are not allowed; index one item", n.col_offset)
    if (
        isinstance(n.slice, ast.Constant)
        and isinstance(n.slice.value, str)
        and n.slice.value.startswith("_")
    ):
        raise ExpressionError(f"the key {n.slice.value!r} is not allowed", n.col_offset)
    return (n.value, n.slice)


def _check_call(n: ast.Call, names: set[str]) -> Sequence[ast.AST]:
    if not isinstance(n.func, ast.Name) or n.func.id not in HELPERS:
        what = ast.unparse(n.func)
        raise ExpressionError(
            f"calling {what!r} is not allowed; the helpers are {', '.join(HELPERS)}",
            n.col_offset,
        )
    if n.keywords:
        raise ExpressionError(f"{n.func.id}() takes no named arguments", n.col_offset)
    if any(isinstance(a, ast.Starred) for a in n.args):
        raise ExpressionError("'*' arguments are not allowed", n.col_offset)
    return n.args


def _check_operator(op: ast.AST, allowed: Mapping[type, Any], col: int) -> None:
    if type(op) not in allowed:
        raise ExpressionError(
            f"the operator {_OPERATOR_WORDS.get(type(op), type(op).__name__)} is not allowed",
            col,
        )


def _check_binop(n: ast.BinOp, names: set[str]) -> Sequence[ast.AST]:
    _check_operator(n.op, _BINARY, n.col_offset)
    return (n.left, n.right)


def _check_unaryop(n: ast.UnaryOp, names: set[str]) -> Sequence[ast.AST]:
    _check_operator(n.op, _UNARY, n.col_offset)
    return (n.operand,)


def _check_compare(n: ast.Compare, names: set[str]) -> Sequence[ast.AST]:
    for op in n.ops:
        _check_operator(op, _COMPARE, n.col_offset)
    return (n.left, *n.comparators)


_ALLOWED: Mapping[type, Callable[[Any, set[str]], Sequence[ast.AST]]] = {
    ast.Name: _check_name,
    ast.Constant: _check_constant,
    ast.Attribute: _check_attribute,
    ast.Subscript: _check_subscript,
    ast.Call: _check_call,
    ast.BoolOp: lambda n, names: n.values,
    ast.BinOp: _check_binop,
    ast.UnaryOp: _check_unaryop,
    ast.Compare: _check_compare,
    ast.List: lambda n, names: n.elts,
    ast.Tuple: lambda n, names: n.elts,
    ast.IfExp: lambda n, names: (n.test, n.body, n.orelse),
}


def _describe(node: ast.AST) -> str:
    words = {
        ast.Lambda: "a lambda",
        ast.ListComp: "a list comprehension",
        ast.GeneratorExp: "a generator",
        ast.DictComp: "a dict comprehension",
        ast.SetComp: "a set comprehension",
        ast.Dict: "a mapping literal",
        ast.Set: "a set literal",
        ast.NamedExpr: "':=' (assignment)",
        ast.JoinedStr: "an f-string",
        ast.Await: "'await'",
        ast.Yield: "'yield'",
        ast.Starred: "'*'",
    }
    return words.get(type(node), f"'{type(node).__name__}'")


class _Evaluator:
    def __init__(self, context: Mapping[str, Any]) -> None:
        self.context = context
        self.sizes = bounds.Sizes()

    def eval(self, n: ast.AST) -> Any:
        try:
            return self._eval(n)
        except EvaluationError:
            raise
        except (TypeError, ValueError, ZeroDivisionError, OverflowError) as err:
            raise EvaluationError(f"{ast.unparse(n)}: {err}") from None

    def _eval(self, n: ast.AST) -> Any:
        if isinstance(n, ast.Constant):
            return n.value
        if isinstance(n, ast.Name):
            if n.id in CONSTANTS:
                return CONSTANTS[n.id]
            if n.id not in self.context:
                raise EvaluationError(f"{n.id!r} is not set in the session")
            return self.context[n.id]
        if isinstance(n, ast.Attribute):
            return _item(self._eval(n.value), n.attr, ast.unparse(n.value))
        if isinstance(n, ast.Subscript):
            return _item(self._eval(n.value), self._eval(n.slice), ast.unparse(n.value))
        if isinstance(n, ast.BoolOp):
            if isinstance(n.op, ast.And):
                result: Any = True
                for v in n.values:
                    result = self._eval(v)
                    if not result:
                        return result
                return result
            result = False
            for v in n.values:
                result = self._eval(v)
                if result:
                    return result
            return result
        if isinstance(n, ast.BinOp):
            return self._binary(n.op, self._eval(n.left), self._eval(n.right))
        if isinstance(n, ast.UnaryOp):
            return _UNARY[type(n.op)](self._eval(n.operand))
        if isinstance(n, ast.Compare):
            left = self._eval(n.left)
            for op, right_node in zip(n.ops, n.comparators, strict=True):
                right = self._eval(right_node)
                if not _COMPARE[type(op)](left, right):
                    return False
                left = right
            return True
        if isinstance(n, ast.List | ast.Tuple):
            items = [self._eval(e) for e in n.elts]
            size = 2 + sum(self.sizes.of(i) + 1 for i in items)
            if size > bounds.MAX_VALUE_BYTES:
                raise bounds.refuse(size)
            self.sizes.built(items, size)
            return items
        if isinstance(n, ast.IfExp):
            return self._eval(n.body) if self._eval(n.test) else self._eval(n.orelse)
        if isinstance(n, ast.Call) and isinstance(n.func, ast.Name):
            args = [self._eval(a) for a in n.args]
            if n.func.id == "str" and len(args) == 1:
                return bounds.as_text(args[0], self.sizes)
            return HELPERS[n.func.id](*args)
        raise EvaluationError(f"{_describe(n)} is not allowed")  # unreachable after _check

    def _binary(self, op: ast.operator, a: Any, b: Any) -> Any:
        """An operator, bounded: a text or list that would be over the limit, or a number
        with too many digits, is refused before it is built (engine/definitions/bounds.py)."""
        size = None
        if isinstance(op, ast.Mult):
            size = self.sizes.product(a, b)
            bounds.check_product(a, b)
        elif isinstance(op, ast.Add):
            size = self.sizes.total(a, b)
        if size is not None and size > bounds.MAX_VALUE_BYTES:
            raise bounds.refuse(size)
        result = _BINARY[type(op)](a, b)
        if size is not None:
            self.sizes.built(result, size)
            return result
        return bounds.check_number(result)


def _item(container: Any, key: Any, shown: str) -> Any:
    """Dotted access and indexing, into plain mappings and lists only."""
    if isinstance(container, Mapping):
        if key not in container:
            raise EvaluationError(f"{shown} has no {key!r}")
        return container[key]
    if (
        isinstance(container, list | tuple | str)
        and isinstance(key, int)
        and not isinstance(key, bool)
    ):
        if -len(container) <= key < len(container):
            return container[key]
        raise EvaluationError(f"{shown} has no item {key}")
    raise EvaluationError(f"{shown} is {type(container).__name__}, it has no {key!r}")


# ---------------------------------------------------------------------------- templates


@dataclass(frozen=True)
class Placeholder:
    expression: Expression
    offset: int  # where the placeholder starts in the text


def template_placeholders(text: str) -> Iterator[tuple[int, str]]:
    """(offset, source) of each ``{{ }}`` placeholder; raise on an unclosed one."""
    end = 0
    for match in _TEMPLATE.finditer(text):
        if "{{" in text[end : match.start()]:
            break
        yield match.start(), match.group(1)
        end = match.end()
    rest = text.find("{{", end)
    if rest >= 0:
        raise ExpressionError("'{{' is not closed by '}}'", rest)


@lru_cache(maxsize=65536)
def compile_template(text: str) -> tuple[Placeholder, ...]:
    placeholders = []
    for offset, source in template_placeholders(text):
        try:
            placeholders.append(Placeholder(compile_expression(source), offset))
        except ExpressionError as err:
            raise ExpressionError(f"in '{{{{{source}}}}}': {err.message}", offset) from None
    return tuple(placeholders)


def render(text: str, context: Mapping[str, Any]) -> str:
    """Fill a template's placeholders from the context; the text is bounded like a value
    (engine/definitions/bounds.py), counted before each placeholder's text is added."""
    out, end, size = [], 0, 0
    for match in _TEMPLATE.finditer(text):
        out.append(text[end : match.start()])
        value = compile_expression(match.group(1)).evaluate(context)
        try:
            shown = _show(value)
        except bounds.TooLarge as err:
            raise EvaluationError(f"{{{{{match.group(1)}}}}}: {err}") from None
        size += bounds.text_bytes(out[-1]) + bounds.text_bytes(shown)
        if size > bounds.MAX_VALUE_BYTES:
            raise EvaluationError(f"the text with {{{{{match.group(1)}}}}}: {bounds.refuse(size)}")
        out.append(shown)
        end = match.end()
    out.append(text[end:])
    return "".join(out)


def _show(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float) and math.isfinite(value) and value == int(value):
        return str(int(value)) if abs(value) < 1e15 else str(value)
    if isinstance(value, float):
        return f"{value:.2f}"
    return bounds.as_text(value)


def is_expression(value: Any) -> bool:
    """In ``input`` and ``set``, text starting with one ``=`` is an expression."""
    return isinstance(value, str) and value.startswith("=") and not value.startswith("==")


def literal(value: Any) -> Any:
    """The literal meant by a non-expression value (``==5`` is the text ``=5``)."""
    if isinstance(value, str) and value.startswith("=="):
        return value[1:]
    return value
