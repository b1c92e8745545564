"""The JSON Schemas: well-formed, documented, and in agreement with the loader."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from jsonschema import Draft202012Validator

from cli import main
from engine.definitions import build
from engine.definitions.checks.schema import (
    SCHEMA_NAMES,
    check_document,
    is_valid,
    load_schema,
    schema_path,
)
from engine.definitions.model import NODE_KINDS, ROLES
from engine.definitions.yamlsafe import YamlError, load
from tests.conftest import FIXTURES, ROOT, SHIPPED


@pytest.mark.parametrize("name", SCHEMA_NAMES)
def test_schema_is_valid_draft_2020_12_with_an_id(name: str) -> None:
    schema = load_schema(name)
    Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$id"].endswith(f"/{name}.schema.json")


def properties(schema: Any, where: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    if isinstance(schema, dict):
        for key, sub in schema.get("properties", {}).items():
            yield f"{where}/{key}", sub
        for key, sub in schema.items():
            if key != "if":  # a condition, not a declaration editors show
                yield from properties(sub, f"{where}/{key}")
    elif isinstance(schema, list):
        for i, sub in enumerate(schema):
            yield from properties(sub, f"{where}/{i}")


@pytest.mark.parametrize("name", SCHEMA_NAMES)
def test_every_property_has_a_title_and_a_description_for_editors(name: str) -> None:
    missing = [
        where
        for where, prop in properties(load_schema(name))
        if not (prop.get("title") and prop.get("description"))
    ]
    assert missing == []


def kind_properties(kind: str) -> set[str]:
    return set(load_schema("journey")["$defs"][kind]["properties"])


def test_schema_and_loader_accept_the_same_keys() -> None:
    journey = load_schema("journey")
    assert set(journey["properties"]) == build.JOURNEY_KEYS
    assert (
        set(NODE_KINDS)
        == set(build.NODE_KEYS)
        == set(journey["$defs"]["node"]["properties"]["kind"]["enum"])
    )
    for kind in NODE_KINDS:
        assert kind_properties(kind) == build.NODE_KEYS[kind], kind
        assert journey["$defs"][kind]["additionalProperties"] is False
    choose = journey["$defs"]["choose"]["properties"]["options"]["items"]
    assert set(choose["properties"]) == build.OPTION_KEYS
    decide = journey["$defs"]["decide"]["properties"]["branches"]["items"]
    assert set(decide["properties"]) == build.BRANCH_KEYS
    assert set(journey["$defs"]["after"]["properties"]) == build.AFTER_KEYS
    motives = load_schema("motives")
    assert set(motives["properties"]) == build.MOTIVES_FILE_KEYS
    assert (
        set(motives["properties"]["motives"]["additionalProperties"]["properties"])
        == build.MOTIVE_KEYS
    )
    trigger = motives["properties"]["triggers"]["items"]
    assert set(trigger["properties"]) == build.TRIGGER_KEYS
    assert trigger["additionalProperties"] is False
    scenario = load_schema("scenario")
    assert set(scenario["properties"]) == build.SCENARIO_FILE_KEYS
    item = scenario["properties"]["scenarios"]["items"]
    assert set(item["properties"]) == build.SCENARIO_KEYS
    assert set(item["properties"]["expect"]["properties"]) == build.EXPECT_KEYS
    assert item["properties"]["role"]["enum"] == sorted(ROLES)
    policies = load_schema("policies")
    assert set(policies["properties"]) == build.POLICIES_FILE_KEYS
    assert set(policies["properties"]["roles"]["properties"]) == set(ROLES)
    assert policies["properties"]["roles"]["additionalProperties"] is False
    assert set(policies["$defs"]["limit"]["properties"]) == build.LIMIT_KEYS
    assert policies["$defs"]["limit"]["additionalProperties"] is False
    per_customer = policies["$defs"]["limit"]["properties"]["per_customer"]
    assert set(per_customer["properties"]) == build.PER_CUSTOMER_KEYS
    assert per_customer["additionalProperties"] is False


def test_the_builder_reads_every_key_it_declares() -> None:
    """Every key of a fully written node reaches the model (no key silently dropped)."""
    text = (FIXTURES / "base" / "order-status.yaml").read_text()
    data = load(FIXTURES / "base" / "order-status.yaml")
    journey = build.build_journey(data, "order-status.yaml")
    track = journey.nodes["track"]
    assert (track.action, track.output, track.on_error, track.next) == (
        "orders.get_tracking",
        "tracking",
        "sorry",
        "route",
    )
    assert journey.nodes["voucher"].wait is False
    assert journey.nodes["route"].otherwise == "done"
    assert [o.value for o in journey.nodes["offer"].options] == ["voucher", "no"]
    assert "after:" in text and journey.nodes["done"].after[0].action == "crm.log_contact"


def documents() -> Iterator[tuple[str, Path]]:
    for path in sorted([*SHIPPED.rglob("*.yaml"), *FIXTURES.rglob("*.yaml")]):
        if path.name.endswith(".test.yaml"):
            yield "scenario", path
        elif path.name == "motives.yaml":
            yield "motives", path
        elif path.name == "policies.yaml":
            yield "policies", path
        else:
            yield "journey", path


def readable(path: Path) -> bool:
    try:
        load(path)
    except YamlError:
        return False  # J001: never reaches the schema
    return True


@pytest.mark.parametrize(
    ("name", "path"),
    [(n, p) for n, p in documents() if readable(p)],
    ids=lambda x: getattr(x, "name", x),
)
def test_fast_and_full_validators_agree(name: str, path: Path) -> None:
    """fastjsonschema (the yes/no fast path) and jsonschema give the same verdict."""
    data = load(path)
    full = list(Draft202012Validator(load_schema(name)).iter_errors(data))
    assert is_valid(name, data) == (not full)
    assert (check_document(name, data, path.name) == []) == (not full)


@pytest.mark.parametrize(
    "path", sorted(SHIPPED.rglob("*.yaml")), ids=lambda p: str(p.relative_to(SHIPPED))
)
def test_shipped_files_name_their_schema_for_editors(path: Path) -> None:
    first = path.read_text(encoding="utf-8").splitlines()[0]
    match = re.fullmatch(r"# yaml-language-server: \$schema=(\S+)", first)
    assert match, "the first line must be the yaml-language-server modeline"
    target = (path.parent / match.group(1)).resolve()
    assert target == schema_path(next(n for n, p in documents() if p == path)).resolve()


def test_schema_command_prints_and_writes(tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(main, ["schema", "scenario"])
    assert result.exit_code == 0
    assert json.loads(result.stdout)["title"] == "Scenario tests"
    result = runner.invoke(main, ["schema", "--write", str(tmp_path / "out")])
    assert result.exit_code == 0
    written = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert written == [
        "journey.schema.json",
        "motives.schema.json",
        "policies.schema.json",
        "scenario.schema.json",
    ]
    result = runner.invoke(main, ["schema", "policies"])
    assert result.exit_code == 0
    assert json.loads(result.stdout)["title"] == "Authority limits"
    assert (tmp_path / "out" / "journey.schema.json").read_bytes() == (
        ROOT / "schemas" / "journey.schema.json"
    ).read_bytes()
