"""How much an expression or a template may build: bounded in bytes, counted before building.

A count of items is no bound: ``[text] * 100000`` is a short list of a 60 kB answer, and its
``str()`` is 6 GB. So a value built by an expression (a text, a list, a number's digits) is
measured as the bytes it would take written out, and refused *before* it is built when over
:data:`MAX_VALUE_BYTES`. Sizes are counted once per value and kept for the values built from
it, so a chain of ``+`` never re-counts what it has already counted.
"""

from __future__ import annotations

import ast
import math
from collections.abc import Mapping
from typing import Any

from engine.errors import SessionError

#: The most a value built by an expression or a template may hold: 1 MB of text (UTF-8), or
#: a list that would take as much written out. Far above any real journey's need.
MAX_VALUE_BYTES = 1_000_000
#: The most digits of a whole number (Python cannot write a longer one as text, nor JSON save it).
MAX_DIGITS = 4_300
_MAX_BITS = int(MAX_DIGITS * math.log2(10))


class TooLarge(SessionError, ValueError):
    """The value would be over the limit: it is not built."""


def human(size: int) -> str:
    if size >= 1_000_000_000:
        return f"{size / 1_000_000_000:.1f} GB"
    if size >= 1_000_000:
        return f"{size / 1_000_000:.3g} MB"
    if size >= 1000:
        return f"{size / 1000:.0f} kB"
    return f"{size} bytes"


LIMIT = f"the limit of {human(MAX_VALUE_BYTES)} for a value an expression or a template builds"


def _over(size: int) -> str:
    """A size past the limit, in words that show it is past: 1,000,001 bytes, not 1 MB."""
    return human(size) if human(size) != human(MAX_VALUE_BYTES) else f"{size:,} bytes"


def refuse(size: int) -> TooLarge:
    return TooLarge(f"the result would be {_over(size)}, over {LIMIT}")


def text_bytes(text: str) -> int:
    return len(text) if text.isascii() else len(text.encode("utf-8", "surrogatepass"))


def _digits(number: int) -> int:
    return int(abs(number).bit_length() * 0.30103) + 1


class Sizes:
    """The written-out size of the values of one evaluation, each counted once.

    Holding the values keeps their ids from being reused while the evaluation runs."""

    def __init__(self) -> None:
        self._known: dict[int, tuple[Any, int]] = {}

    def of(self, value: Any) -> int:
        """Bytes of ``value`` written out (about: one per separator); counting stops past
        the limit, so the answer is exact up to it and 'over' beyond."""
        if isinstance(value, str):
            return text_bytes(value)
        if not isinstance(value, list | tuple | Mapping):
            return _scalar(value)
        known = self._known.get(id(value))
        if known is not None and known[0] is value:
            return known[1]
        total = 0
        stack = [value]
        while stack and total <= MAX_VALUE_BYTES:
            v = stack.pop()
            if isinstance(v, str):
                total += text_bytes(v) + 2  # its quotes
            elif isinstance(v, list | tuple):
                total += 2 + len(v)
                stack.extend(v)
            elif isinstance(v, Mapping):
                total += 2 + 2 * len(v)
                stack.extend(v.keys())
                stack.extend(v.values())
            else:
                total += _scalar(v)
        return self.built(value, total)

    def built(self, value: Any, size: int) -> int:
        """Remember the size of a value just built (or counted)."""
        if isinstance(value, list | tuple | Mapping):
            self._known[id(value)] = (value, size)
        return size

    def product(self, a: Any, b: Any) -> int | None:
        """The size ``a * b`` would have when it repeats a text or a list, else None."""
        for seq, times in ((a, b), (b, a)):
            if isinstance(seq, str | list | tuple) and isinstance(times, int):
                return self.of(seq) * max(times, 0)
        return None

    def total(self, a: Any, b: Any) -> int | None:
        """The size ``a + b`` would have when it joins texts or lists, else None."""
        if isinstance(a, str) and isinstance(b, str):
            return text_bytes(a) + text_bytes(b)
        if isinstance(a, list | tuple) and isinstance(b, list | tuple):
            return self.of(a) + self.of(b)
        return None


def _scalar(value: Any) -> int:
    if value is None or isinstance(value, bool):
        return 5
    if isinstance(value, int):
        return _digits(value)
    if isinstance(value, float):
        return 24
    return 16  # nothing else is in a context; counted as a short value


def check_product(a: Any, b: Any) -> None:
    """Refuse a product of whole numbers whose digits would be over :data:`MAX_DIGITS`."""
    if (
        isinstance(a, int)
        and isinstance(b, int)
        and abs(a).bit_length() + abs(b).bit_length() > _MAX_BITS
    ):
        raise TooLarge(
            f"the product would have more than {MAX_DIGITS:,} digits; no amount or count needs that"
        )


def check_number(value: Any) -> Any:
    """A number an expression computed, if it is one that can be kept and written out."""
    if isinstance(value, float) and not math.isfinite(value):
        raise TooLarge(f"the result is {value!r}, not a number that can be kept")
    if isinstance(value, int) and abs(value).bit_length() > _MAX_BITS:
        raise TooLarge(f"the result has more than {MAX_DIGITS:,} digits")
    return value


def as_text(value: Any, sizes: Sizes | None = None) -> str:
    """``str(value)``, refused before it is built when over the limit (and after, for the
    few values whose text is longer than counted: escapes in a list's texts)."""
    if isinstance(value, str):
        return value
    size = (sizes or Sizes()).of(value)
    if size > MAX_VALUE_BYTES:
        raise refuse(size)
    text = str(value)
    if len(text) > MAX_VALUE_BYTES:
        raise refuse(text_bytes(text))
    return text


def check_text(text: str) -> str:
    if len(text) > MAX_VALUE_BYTES // 4 and text_bytes(text) > MAX_VALUE_BYTES:
        raise refuse(text_bytes(text))
    return text


def round_digits(given: tuple[Any, ...]) -> tuple[Any, ...]:
    """The digits argument of round(), if any, when it is within bounds: round(5, -10**9)
    computes 10**(10**9)."""
    for digits in given[:1]:
        if isinstance(digits, int) and abs(digits) > MAX_DIGITS:
            raise TooLarge(f"round() takes at most {MAX_DIGITS:,} digits, not {digits:,}")
    return given


# ------------------------------------------------------------------ what validate can see


def static_problem(tree: ast.expr) -> str | None:
    """Why an expression can never be evaluated within the bounds, when its literals show it:
    a text or a list repeated by a literal count past the limit."""
    for n in ast.walk(tree):
        if not (isinstance(n, ast.BinOp) and isinstance(n.op, ast.Mult)):
            continue
        for seq, times in ((n.left, n.right), (n.right, n.left)):
            count = _literal_int(times)
            if count is None or count <= 0:
                continue
            least = _least_size(seq)
            if least is not None and least * count > MAX_VALUE_BYTES:
                return f"{ast.unparse(n)} would build {_over(least * count)}, over {LIMIT}"
        if isinstance(n.left, ast.Constant) and isinstance(n.right, ast.Constant):
            a, b = n.left.value, n.right.value
            if isinstance(a, int) and isinstance(b, int):
                try:
                    check_product(a, b)
                except TooLarge as err:
                    return str(err)
    return None


def _literal_int(n: ast.expr) -> int | None:
    if isinstance(n, ast.Constant) and type(n.value) is int:
        return n.value
    if isinstance(n, ast.BinOp) and isinstance(n.op, ast.Mult):
        a, b = _literal_int(n.left), _literal_int(n.right)
        if a is not None and b is not None and a.bit_length() + b.bit_length() <= _MAX_BITS:
            return a * b
    return None


def _least_size(n: ast.expr) -> int | None:
    """The fewest bytes a text or list expression can hold, when its shape shows one (a
    literal text, a list literal: each item is at least one byte); None when unknown."""
    if isinstance(n, ast.Constant) and isinstance(n.value, str):
        return text_bytes(n.value)
    if isinstance(n, ast.List | ast.Tuple):
        return 2 + 2 * len(n.elts) if n.elts else None
    return None
