"""The safe YAML loader: YAML 1.2 scalars, positions, and refusals with the right line."""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from engine.definitions.yamlsafe import (
    MAX_ALIAS_EXPANSION,
    MAX_DEPTH,
    YamlError,
    YamlList,
    YamlMap,
    decode,
    load,
    parse,
    read_text,
)


def problem(text: str) -> YamlError:
    with pytest.raises(YamlError) as info:
        parse(text)
    return info.value


# ---------------------------------------------------------------------------- scalars


@pytest.mark.parametrize(
    ("written", "expected"),
    [
        # YAML 1.1 booleans stay text under YAML 1.2 rules
        ("yes", "yes"),
        ("no", "no"),
        ("on", "on"),
        ("off", "off"),
        ("y", "y"),
        ("n", "n"),
        ("Yes", "Yes"),
        ("NO", "NO"),
        # only true/false are booleans
        ("true", True),
        ("True", True),
        ("TRUE", True),
        ("false", False),
        ("False", False),
        # null, ~ and empty are None
        ("null", None),
        ("Null", None),
        ("~", None),
        ("", None),
        # integers
        ("0", 0),
        ("42", 42),
        ("-7", -7),
        ("+3", 3),
        ("010", 10),  # not octal 8 as in YAML 1.1
        ("0x1F", 31),
        ("0o17", 15),
        # YAML 1.1 number forms that are text in 1.2
        ("1_000", "1_000"),
        ("0b101", "0b101"),
        ("12:30", "12:30"),  # not the sexagesimal 750
        # floats
        ("3.14", 3.14),
        ("-0.5", -0.5),
        (".5", 0.5),
        ("2.", 2.0),
        ("1e3", 1000.0),
        ("1.5E-2", 0.015),
        ("1.0e3", 1000.0),
        (".inf", math.inf),
        (".Inf", math.inf),
        ("+.inf", math.inf),
        ("-.inf", -math.inf),
        # quoted numbers and words stay text
        ('"42"', "42"),
        ("'3.14'", "3.14"),
        ('"true"', "true"),
        ("'null'", "null"),
        ('""', ""),
        ("!!str 42", "42"),
        # dates, times and versions stay text
        ("2026-11-22", "2026-11-22"),
        ("2026-11-22T10:00:00Z", "2026-11-22T10:00:00Z"),
        ("1.0.0", "1.0.0"),
        ("hello world", "hello world"),
        ("=", "="),
        ("<<", "<<"),  # only as a key is it a merge
    ],
)
def test_scalar_resolution(written: str, expected: Any) -> None:
    value = parse(f"value: {written}\n")["value"]
    assert value == expected
    assert type(value) is type(expected)  # True == 1 and 1 == 1.0: the type must match too


def test_nan() -> None:
    value = parse("value: .nan\n")["value"]
    assert isinstance(value, float)
    assert math.isnan(value)


def test_option_values_yes_and_no_are_text_in_lists() -> None:
    assert parse("options: [yes, no, on, off]\n")["options"] == ["yes", "no", "on", "off"]


def test_keys_are_always_text() -> None:
    data = parse("1: a\ntrue: b\nnull: c\n1.5: d\n~: e\n0x10: f\nyes: g\n")
    assert list(data) == ["1", "true", "null", "1.5", "~", "0x10", "yes"]
    assert all(type(key) is str for key in data)


def test_key_1_and_quoted_key_1_are_the_same_key() -> None:
    err = problem("1: a\n'1': b\n")
    assert err.line == 2
    assert "duplicate key '1'" in err.message


def test_quoted_merge_key_is_an_ordinary_key() -> None:
    assert parse('"<<": 1\n') == {"<<": 1}


def test_empty_document_is_none() -> None:
    assert parse("") is None
    assert parse("# only a comment\n\n") is None


def test_document_markers_around_a_single_document_are_fine() -> None:
    assert parse("---\na: 1\n") == {"a": 1}
    assert parse("a: 1\n...\n") == {"a": 1}


# ---------------------------------------------------------------------------- positions

DOC = """\
journey: demo
nodes:
  - id: start
    say: "Hi"
  - id: done
    type: end
options: [a, b]
"""


def test_positions_of_mappings_keys_and_values() -> None:
    data = parse(DOC)
    assert isinstance(data, YamlMap)
    assert isinstance(data, dict)
    assert data.pos == (1, 1)
    assert data.key_pos == {"journey": (1, 1), "nodes": (2, 1), "options": (7, 1)}
    assert data.val_pos == {"journey": (1, 10), "nodes": (3, 3), "options": (7, 10)}

    first = data["nodes"][0]
    assert isinstance(first, YamlMap)
    assert first == {"id": "start", "say": "Hi"}
    assert first.pos == (3, 5)
    assert first.key_pos == {"id": (3, 5), "say": (4, 5)}
    assert first.val_pos == {"id": (3, 9), "say": (4, 10)}


def test_positions_of_lists_and_their_items() -> None:
    data = parse(DOC)
    nodes = data["nodes"]
    assert isinstance(nodes, YamlList)
    assert isinstance(nodes, list)
    assert nodes.pos == (3, 3)
    assert nodes.item_pos == [(3, 5), (5, 5)]
    assert nodes[1].pos == (5, 5)

    options = data["options"]
    assert options == ["a", "b"]
    assert options.pos == (7, 10)
    assert options.item_pos == [(7, 11), (7, 14)]


def test_plain_data_compares_equal_to_dicts_and_lists() -> None:
    assert parse(DOC) == {
        "journey": "demo",
        "nodes": [{"id": "start", "say": "Hi"}, {"id": "done", "type": "end"}],
        "options": ["a", "b"],
    }


# ---------------------------------------------------------------------------- refusals


@pytest.mark.parametrize(
    ("text", "line", "fragment"),
    [
        pytest.param(
            "journey: x\nname: a\nother: b\nname: c\n",
            4,
            "already set at line 2",
            id="duplicate-key",
        ),
        pytest.param(
            "a: 1\nb: !!python/object/apply:os.system ['echo hi']\n",
            2,
            "'!!python/object/apply:os.system' is not allowed",
            id="python-object-apply",
        ),
        pytest.param(
            "a: 1\nb: !!python/object:builtins.dict {}\n",
            2,
            "'!!python/object:builtins.dict' is not allowed",
            id="python-object",
        ),
        pytest.param(
            "a: 1\nb: !!python/name:os.system\n", 2, "'!!python/name:os.system'", id="python-name"
        ),
        pytest.param("a: 1\nb:\n  c: !custom x\n", 3, "'!custom' is not allowed", id="custom-tag"),
        pytest.param("a: 1\nb: !custom {x: 1}\n", 2, "'!custom'", id="custom-tag-on-mapping"),
        pytest.param("a: 1\n!custom k: v\n", 2, "'!custom'", id="custom-tag-on-key"),
        pytest.param("a: 1\nb: !!binary aGk=\n", 2, "'!!binary' is not allowed", id="binary-tag"),
        pytest.param("a: 1\nb: !!set {x, y}\n", 2, "'!!set' is not allowed", id="set-tag"),
        pytest.param(
            "base: &b\n  x: 1\nother:\n  <<: *b\n  y: 2\n", 4, "merge keys ('<<')", id="merge-key"
        ),
        pytest.param("a: 1\n? [1, 2]\n: 3\n", 2, "a key must be plain text", id="list-key"),
        pytest.param("a: 1\n{x: 1}: 2\n", 2, "a key must be plain text", id="mapping-key"),
        pytest.param("a: 1\n---\nb: 2\n", 2, "second YAML document", id="second-document"),
        pytest.param("a:\n\tb: 1\n", 2, "tab", id="tab-indent"),
        pytest.param("a:\n  b: 1\n\tc: 2\n", 3, "tab", id="tab-indent-later"),
        pytest.param("a: 1\nb: {x: 1,\n  y: 2\n", 2, "flow mapping", id="unclosed-flow-mapping"),
        pytest.param("a: 1\nb: {x: 1\n\n\n", 2, "flow mapping", id="unclosed-flow-mapping-at-end"),
        pytest.param("a: 1\nb: [1, 2\n", 2, "flow sequence", id="unclosed-flow-sequence"),
        pytest.param('a: 1\nb: "abc\nc: 2\n', 2, "quoted scalar", id="unclosed-quote"),
        pytest.param("a: 1\nb: *nowhere\n", 2, "undefined alias", id="undefined-alias"),
    ],
)
def test_refused_with_the_line_of_the_construct(text: str, line: int, fragment: str) -> None:
    err = problem(text)
    assert err.line == line
    assert fragment in err.message
    assert str(err).startswith(f"{line}:")


def test_problem_is_an_ordinary_exception() -> None:
    @contextmanager
    def step() -> Iterator[None]:
        yield

    with pytest.raises(YamlError) as info, step():  # contextlib sets __traceback__
        parse("a: 1\na: 2\n")
    info.value.add_note("in journeys/demo.yaml")
    assert info.value.__notes__ == ["in journeys/demo.yaml"]
    assert str(info.value).startswith("2:1: duplicate key")


def test_tab_message_says_to_indent_with_spaces() -> None:
    err = problem("a:\n\tb: 1\n")
    assert "tab character" in err.message
    assert "spaces" in err.message


def test_unclosed_flow_mapping_points_at_its_opening_brace() -> None:
    err = problem("a: 1\nb: {x: 1,\n  y: 2\n")
    assert (err.line, err.column) == (2, 4)


def test_tag_refusal_names_the_column() -> None:
    err = problem("a: 1\nbb: !custom x\n")
    assert (err.line, err.column) == (2, 5)


# ---------------------------------------------------------------------------- aliases


def billion_laughs(levels: int = 9, width: int = 9) -> str:
    lines = ["l0: &l0 [" + ", ".join(['"lol"'] * width) + "]"]
    for level in range(1, levels):
        refs = ", ".join([f"*l{level - 1}"] * width)
        lines.append(f"l{level}: &l{level} [{refs}]")
    return "\n".join(lines) + "\n"


def test_billion_laughs_is_refused() -> None:
    assert "alias" in problem(billion_laughs()).message


def test_small_anchors_and_aliases_are_accepted() -> None:
    data = parse(
        "defaults: &d {retries: 2, channel: sms}\n"
        "first: *d\n"
        "second: *d\n"
        "list: &l [1, 2]\n"
        "again: *l\n"
    )
    assert data["first"] == {"retries": 2, "channel": "sms"}
    assert data["second"] == data["first"]
    assert data["again"] == [1, 2]


def aliased(times: int) -> str:
    """An anchored list that expands to 100 values (itself and 99 items), aliased `times` times."""
    anchored = "base: &b [" + ", ".join(["x"] * 99) + "]\n"
    return anchored + "uses: [" + ", ".join(["*b"] * times) + "]\n"


def test_alias_expansion_up_to_the_limit_is_accepted() -> None:
    times = MAX_ALIAS_EXPANSION // 100
    data = parse(aliased(times))
    assert len(data["uses"]) == times
    assert data["uses"][-1] == ["x"] * 99


def test_alias_expansion_past_the_limit_is_refused() -> None:
    assert "alias" in problem(aliased(MAX_ALIAS_EXPANSION // 100 + 1)).message


def test_recursive_alias_is_refused() -> None:
    assert "nested" in problem("a: &a [*a]\n").message


# ---------------------------------------------------------------------------- nesting


def flow_lists(levels: int) -> str:
    return "deep: " + "[" * levels + "]" * levels + "\n"


# Enough flat brackets to make the loader scan the events for depth before composing.
MANY_BRACKETS = "padding: [" + "[], " * 2100 + "]\n"


@pytest.mark.parametrize("levels", [100, 10_000])
def test_deep_flow_lists_are_refused(levels: int) -> None:
    err = problem(flow_lists(levels))
    assert "nested" in err.message
    assert err.line == 1


@pytest.mark.parametrize("levels", [2_000, 10_000])
def test_far_too_deep_is_the_same_finding_as_just_too_deep(levels: int) -> None:
    # libyaml 0.2.6 (PyYAML 6.0.4) stops at 1,000 levels with its own error; the process
    # expert must see our message at the level that is one too many, whatever the version.
    just = problem(flow_lists(MAX_DEPTH))
    far = problem(flow_lists(levels))
    assert far.message == just.message
    assert (far.line, far.column) == (just.line, just.column)
    assert "exceeded" not in far.message


def test_deep_block_nesting_past_libyaml_limit_is_our_finding() -> None:
    err = problem(block_mappings(1_200))
    assert err.message == problem(block_mappings(MAX_DEPTH + 1)).message
    assert err.line == MAX_DEPTH + 1


@pytest.mark.parametrize("padding", ["", MANY_BRACKETS], ids=["small-file", "many-brackets"])
def test_nesting_limit_is_the_same_whatever_the_rest_of_the_file(padding: str) -> None:
    # The mapping is one level, so MAX_DEPTH - 1 lists make MAX_DEPTH levels: accepted.
    assert parse(padding + flow_lists(MAX_DEPTH - 1))["deep"] is not None
    err = problem(padding + flow_lists(MAX_DEPTH))
    assert "nested" in err.message
    assert err.line == padding.count("\n") + 1


def block_mappings(levels: int) -> str:
    return "".join(f"{'  ' * i}k{i}:\n" for i in range(levels - 1)) + f"{'  ' * (levels - 1)}k: v\n"


def test_deep_block_mappings_are_refused_past_the_limit() -> None:
    data = parse(block_mappings(MAX_DEPTH))
    for i in range(MAX_DEPTH - 1):
        data = data[f"k{i}"]
    assert data == {"k": "v"}
    err = problem(block_mappings(MAX_DEPTH + 1))
    assert "nested" in err.message
    assert err.line == MAX_DEPTH + 1


# ---------------------------------------------------------------------------- files and bytes


def test_read_text_refuses_a_file_over_the_limit_without_reading_it(tmp_path: Path) -> None:
    path = tmp_path / "huge.yaml"
    path.write_bytes(b"")
    # A sparse file of NUL bytes: read, it would be refused as binary instead.
    os.truncate(path, 2_500_000)
    with pytest.raises(YamlError) as info:
        read_text(path)
    message = info.value.message
    assert "2.5 MB" in message
    assert "1.0 MB limit" in message
    assert "--max-file-size" in message


def test_read_text_limit_can_be_changed(tmp_path: Path) -> None:
    path = tmp_path / "journey.yaml"
    path.write_text("a: " + "x" * 147 + "\n", encoding="utf-8")  # 151 bytes
    with pytest.raises(YamlError) as info:
        read_text(path, max_bytes=150)
    assert "151 bytes" in info.value.message
    assert "150 bytes limit" in info.value.message
    assert read_text(path, max_bytes=151).startswith("a: x")
    assert load(path, max_bytes=151) == {"a": "x" * 147}


def test_binary_file_is_refused_with_the_line_of_the_nul_byte(tmp_path: Path) -> None:
    path = tmp_path / "binary.yaml"
    path.write_bytes(b"a: 1\nb: 2\nc: \x00\x01\n")
    with pytest.raises(YamlError) as info:
        read_text(path)
    assert info.value.line == 3
    assert "binary" in info.value.message


def test_invalid_utf8_is_refused_with_its_line(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes("a: 1\nb: café\n".encode("latin-1"))
    with pytest.raises(YamlError) as info:
        load(path)
    assert info.value.line == 2
    assert "UTF-8" in info.value.message
    assert "0xe9" in info.value.message


def test_utf8_bom_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "bom.yaml"
    path.write_bytes(b"\xef\xbb\xbfname: caf\xc3\xa9\n")
    data = load(path)
    assert data == {"name": "café"}
    assert data.key_pos["name"] == (1, 1)


def test_decode_accepts_utf8_text() -> None:
    assert decode("a: été\n".encode()) == "a: été\n"
