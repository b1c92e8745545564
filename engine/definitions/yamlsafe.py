"""Read a YAML file into plain data that remembers where every value came from.

The only module that touches PyYAML. It composes the document with libyaml (the C parser,
the fastest well-kept one that keeps line and column), then turns the node tree into plain
``dict``/``list``/scalars itself, so that it can:

- resolve scalars by YAML 1.2 rules: unquoted ``yes``/``no``/``on``/``off`` stay text, so an
  option value ``no`` is ``"no"`` and never ``False``;
- refuse what is not plain data (tags, merge keys, duplicate keys, non-text keys) with the
  line and column of the construct;
- bound alias expansion (the "billion laughs" bomb) and nesting depth;
- refuse huge, binary and non-UTF-8 files before parsing them.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from engine.errors import DefinitionError

MAX_FILE_BYTES = 1_000_000
MAX_ALIAS_EXPANSION = 10_000
MAX_DEPTH = 64

Pos = tuple[int, int]  # 1-based line and column

_TAG = "tag:yaml.org,2002:"
_ALLOWED_TAGS = {"journeys:plain"} | {
    _TAG + t for t in ("str", "int", "float", "bool", "null", "timestamp", "map", "seq")
}
_INT = re.compile(r"[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+")
_FLOAT = re.compile(r"[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?")
_INF = re.compile(r"[-+]?\.(inf|Inf|INF)")
_NAN = re.compile(r"\.(nan|NaN|NAN)")
_NULLS = {"", "~", "null", "Null", "NULL"}
_TRUE = {"true", "True", "TRUE"}
_FALSE = {"false", "False", "FALSE"}


class YamlMap(dict[str, Any]):
    """A mapping that knows the position of itself, of each key and of each value."""

    __slots__ = ("key_pos", "pos", "val_pos")

    def __init__(self, pos: Pos) -> None:
        super().__init__()
        self.pos = pos
        self.key_pos: dict[str, Pos] = {}
        self.val_pos: dict[str, Pos] = {}


class YamlList(list[Any]):
    """A sequence that knows the position of itself and of each item."""

    __slots__ = ("item_pos", "pos")

    def __init__(self, pos: Pos) -> None:
        super().__init__()
        self.pos = pos
        self.item_pos: list[Pos] = []


class YamlError(DefinitionError):
    """The file is not plain YAML data: what was wrong and where."""

    def __init__(self, message: str, line: int = 1, column: int = 1) -> None:
        super().__init__(message)
        self.message = message
        self.line = line
        self.column = column

    def __str__(self) -> str:
        return f"{self.line}:{self.column}: {self.message}"


def read_text(path: Path, max_bytes: int = MAX_FILE_BYTES) -> str:
    """The file's text, refusing huge files unread and binary or non-UTF-8 content."""
    size = path.stat().st_size
    if size > max_bytes:
        raise YamlError(
            f"file is {_human(size)}, over the {_human(max_bytes)} limit for a journey file; "
            "split it, or raise the limit with --max-file-size"
        )
    return decode(path.read_bytes())


def decode(data: bytes) -> str:
    """Bytes to text, with a clear problem for binary or non-UTF-8 content."""
    if b"\x00" in data:
        line = data.count(b"\n", 0, data.index(b"\x00")) + 1
        raise YamlError("this is a binary file (it holds a NUL byte), not YAML text", line)
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = data.count(b"\n", 0, err.start) + 1
        raise YamlError(
            f"the file is not UTF-8 text (byte 0x{data[err.start]:02x}); save it as UTF-8", line
        ) from None


def parse(text: str) -> Any:
    """Plain data (``YamlMap``, ``YamlList``, scalars) from one YAML document; None if empty."""
    try:
        if text.count("[") + text.count("{") > _FLOW_SCAN_THRESHOLD:
            _refuse_deep_flow(text)
        node = yaml.compose(text, Loader=_Loader)
    except yaml.MarkedYAMLError as err:
        if _LIBYAML_NESTING in (err.problem or ""):
            raise _deep_problem(text, err) from None
        raise _syntax_problem(err, text) from None
    except yaml.YAMLError as err:  # unmarked errors are rare: report at the top
        raise YamlError(f"YAML error: {err}") from None
    if node is None:
        return None
    return _Converter().convert(node, 0)


def load(path: Path, max_bytes: int = MAX_FILE_BYTES) -> Any:
    return parse(read_text(path, max_bytes))


_PLAIN = "journeys:plain"  # an untagged plain scalar, resolved by YAML 1.2 rules in _scalar


class _Loader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
    """libyaml's parser without PyYAML's YAML 1.1 resolver.

    The resolver ran a regex per scalar (a third of the parse time) only to be overruled:
    untagged scalars are marked here and resolved once, by YAML 1.2 rules, in ``_scalar``.
    Explicit tags are not passed here, so they stay visible to be refused.
    """

    def resolve(self, kind: type, value: Any, implicit: Any) -> str:
        if kind is yaml.ScalarNode:
            return _PLAIN if implicit[0] else _TAG + "str"
        return _TAG + ("seq" if kind is yaml.SequenceNode else "map")


# libyaml takes quadratic time on deeply nested flow collections ([[[[...): 0.4 s for 10,000
# levels, 1.8 s for 20,000. Below this many brackets the worst case is a few milliseconds, so
# only documents with more pay for a depth scan, which stops as soon as it is too deep.
_FLOW_SCAN_THRESHOLD = 2000


def _refuse_deep_flow(text: str) -> None:
    depth = 0
    for event in yaml.parse(text, Loader=_Loader):
        if isinstance(event, yaml.CollectionStartEvent):
            depth += 1
            if depth > MAX_DEPTH:
                raise _too_deep(_pos(event.start_mark))
        elif isinstance(event, yaml.CollectionEndEvent):
            depth -= 1


# libyaml 0.2.6 (bundled with PyYAML 6.0.4) refuses more than 1,000 levels with its own error,
# raised by its scanner, which reads ahead of the parser: a document far past our limit fails
# there before _refuse_deep_flow or _Converter sees level MAX_DEPTH + 1. Older libyaml has no
# such limit.
_LIBYAML_NESTING = "exceeded maximum nesting depth"


def _deep_problem(text: str, err: yaml.MarkedYAMLError) -> YamlError:
    """Our own finding for a document libyaml found too deep: the same message and position
    as with a libyaml without a limit, found by PyYAML's Python parser (no limit, lazy: it
    stops at level MAX_DEPTH + 1)."""
    depth = 0
    try:
        for event in yaml.parse(text, Loader=yaml.SafeLoader):
            if isinstance(event, yaml.CollectionStartEvent):
                depth += 1
                if depth > MAX_DEPTH:
                    return _too_deep(_pos(event.start_mark))
            elif isinstance(event, yaml.CollectionEndEvent):
                depth -= 1
    except yaml.YAMLError:
        pass
    return _too_deep(_pos(err.context_mark or err.problem_mark))


def _too_deep(pos: Pos) -> YamlError:
    return YamlError(
        f"the document is nested more than {MAX_DEPTH} levels deep; a journey never needs that many",
        *pos,
    )


def _human(size: int) -> str:
    if size >= 1_000_000:
        return f"{size / 1_000_000:.1f} MB"
    if size >= 1000:
        return f"{size / 1000:.0f} kB"
    return f"{size} bytes"


def _syntax_problem(err: yaml.MarkedYAMLError, text: str) -> YamlError:
    mark = err.problem_mark or err.context_mark
    if err.context_mark is not None and mark is not None and mark.index >= len(text.rstrip()):
        # Something left open ("{", "[", a quote) is found only at the end of the file:
        # point at where it was opened.
        mark = err.context_mark
    problem = err.problem or "syntax error"
    if mark is not None and 0 <= mark.index < len(text) and text[mark.index] == "\t":
        problem = "a tab character here; YAML indents with spaces only"
    if "expected a single document" in (err.context or ""):
        return YamlError(
            "a second YAML document starts here ('---'); put one journey per file",
            *_pos(mark),
        )
    if err.context and "tab character" not in problem:
        problem = f"{problem} ({err.context})"
    return YamlError(f"YAML syntax error: {problem}", *_pos(mark))


def _pos(mark: Any) -> Pos:
    if mark is None:
        return (1, 1)
    return (mark.line + 1, mark.column + 1)


_NUMBER_START = frozenset("-+.0123456789")


def _scalar(node: yaml.ScalarNode) -> Any:
    """YAML 1.2 core-schema resolution of a scalar; quoted scalars are always text."""
    value: str = node.value
    if node.style or node.tag == _TAG + "str":  # quoted, or an explicit !!str
        return value
    if not value or value[0] not in _NUMBER_START:  # most scalars: words, never numbers
        if value in _NULLS:
            return None
        if value in _TRUE:
            return True
        if value in _FALSE:
            return False
        return value
    if _INT.fullmatch(value):
        return int(value, 0) if value[:2] in ("0o", "0x") else int(value)
    if _FLOAT.fullmatch(value):
        return float(value)
    if _INF.fullmatch(value):
        return float("-inf") if value.startswith("-") else float("inf")
    if _NAN.fullmatch(value):
        return float("nan")
    return value


class _Converter:
    """Node tree to plain data, bounding alias expansion and depth."""

    def __init__(self) -> None:
        self.seen: dict[int, int] = {}  # id(node) -> size of its expanded subtree
        self.expanded = 0

    def convert(self, node: yaml.Node, depth: int, in_alias: bool = False) -> Any:
        # depth counts from 0, so the collection at depth MAX_DEPTH is level MAX_DEPTH + 1, as
        # in _refuse_deep_flow (scalars do not add a level).
        if depth >= MAX_DEPTH and not isinstance(node, yaml.ScalarNode):
            raise _too_deep(_pos(node.start_mark))
        if node.tag not in _ALLOWED_TAGS:
            raise YamlError(_tag_message(node.tag), *_pos(node.start_mark))
        key = id(node)
        if key in self.seen and not in_alias:  # an alias: count what it expands to, once
            in_alias = True
            self.expanded += self.seen[key]
            if self.expanded > MAX_ALIAS_EXPANSION:
                raise YamlError(
                    f"aliases expand to more than {MAX_ALIAS_EXPANSION} values "
                    "(a 'billion laughs' bomb?); write the values out instead",
                    *_pos(node.start_mark),
                )
        if isinstance(node, yaml.ScalarNode):
            self.seen[key] = 1
            return _scalar(node)
        if isinstance(node, yaml.SequenceNode):
            seq = YamlList(_pos(node.start_mark))
            size = 1
            for item in node.value:
                seq.append(self.convert(item, depth + 1, in_alias))
                seq.item_pos.append(_pos(item.start_mark))
                size += self.seen[id(item)]
            self.seen[key] = size
            return seq
        assert isinstance(node, yaml.MappingNode)  # the composer makes only these three
        mapping = YamlMap(_pos(node.start_mark))
        size = 1
        for key_node, value_node in node.value:
            name = self._key(key_node)
            if name in mapping:
                first = mapping.key_pos[name]
                raise YamlError(
                    f"duplicate key {name!r}: it is already set at line {first[0]}; "
                    "keep one of them",
                    *_pos(key_node.start_mark),
                )
            mapping[name] = self.convert(value_node, depth + 1, in_alias)
            mapping.key_pos[name] = _pos(key_node.start_mark)
            mapping.val_pos[name] = _pos(value_node.start_mark)
            size += 1 + self.seen[id(value_node)]
        self.seen[key] = size
        return mapping

    def _key(self, node: yaml.Node) -> str:
        if node.tag == _TAG + "merge" or (node.tag == _PLAIN and node.value == "<<"):
            raise YamlError(
                "merge keys ('<<') are not supported; write the keys out",
                *_pos(node.start_mark),
            )
        if not isinstance(node, yaml.ScalarNode):
            raise YamlError(
                "a key must be plain text, not a list or mapping", *_pos(node.start_mark)
            )
        if node.tag not in _ALLOWED_TAGS:
            raise YamlError(_tag_message(node.tag), *_pos(node.start_mark))
        value = _scalar(node)
        # Keys are names: 1 and true as keys mean the text "1" and "true".
        return node.value if not isinstance(value, str) else value


def _tag_message(tag: str) -> str:
    shown = "!!" + tag[len(_TAG) :] if tag.startswith(_TAG) else tag
    return (
        f"the tag {shown!r} is not allowed: journey files hold plain data only "
        "(text, numbers, true/false, lists and mappings)"
    )
