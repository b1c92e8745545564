"""Plain YAML data into the frozen model: the only module that knows the YAML keys.

The builder is tolerant: a value of the wrong type is left out rather than raising, because
the schema check (J002) reports it with a better message. The key sets below are what the
loader accepts; a test proves the JSON Schemas accept exactly the same ones.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from engine.definitions.model import (
    DEFAULT_ROLES,
    ROLES,
    ActionCall,
    Branch,
    Journey,
    Limit,
    Loc,
    Motive,
    Node,
    Option,
    Policy,
    Scenario,
    ScenarioFile,
    Text,
    Trigger,
)
from engine.definitions.yamlsafe import YamlList, YamlMap

JOURNEY_KEYS = frozenset(
    {
        "journey",
        "version",
        "title",
        "description",
        "motives",
        "channels",
        "locales",
        "inputs",
        "start",
        "nodes",
    }
)
_COMMON = {"kind", "say", "roles", "set", "next", "description"}
NODE_KEYS: Mapping[str, frozenset[str]] = {
    "say": frozenset(_COMMON),
    "ask": frozenset(_COMMON | {"field", "schema", "confirm"}),
    "choose": frozenset(_COMMON | {"field", "options"}),
    "decide": frozenset(_COMMON - {"next"} | {"branches", "else"}),
    "action": frozenset(
        _COMMON
        | {
            "action",
            "input",
            "output",
            "wait",
            "retries",
            "timeout",
            "on_error",
            "on_denied",
            "on_failure",
        }
    ),
    "journey": frozenset(_COMMON | {"journey", "input"}),
    "handoff": frozenset(_COMMON - {"next", "set"} | {"queue", "reason"}),
    "end": frozenset(_COMMON - {"next"} | {"outcome", "survey", "after"}),
}
OPTION_KEYS = frozenset({"value", "label", "next"})
BRANCH_KEYS = frozenset({"if", "next"})
AFTER_KEYS = frozenset({"action", "input", "retries", "description"})
MOTIVES_FILE_KEYS = frozenset({"motives", "triggers"})
TRIGGER_KEYS = frozenset({"event", "journey", "motive", "channel", "inputs", "when", "description"})
MOTIVE_KEYS = frozenset({"title", "category", "journey", "keywords", "sources", "description"})
SCENARIO_FILE_KEYS = frozenset({"journey", "scenarios"})
SCENARIO_KEYS = frozenset(
    {"name", "description", "inputs", "locale", "channel", "role", "actions", "answers", "expect"}
)
EXPECT_KEYS = frozenset({"outcome", "status", "node", "path", "context"})
POLICIES_FILE_KEYS = frozenset({"roles"})
LIMIT_KEYS = frozenset({"max", "min", "in", "per_session", "per_customer", "description"})
PER_CUSTOMER_KEYS = frozenset({"max", "over", "description"})


def _loc(file: str, pos: tuple[int, int] | None) -> Loc:
    return Loc(file, *pos) if pos else Loc(file)


def _key_locs(file: str, data: YamlMap) -> dict[str, Loc]:
    return {k: _loc(file, p) for k, p in data.val_pos.items()}


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _text(value: Any) -> Text | None:
    if isinstance(value, str):
        return value
    if isinstance(value, Mapping) and all(isinstance(v, str) for v in value.values()):
        return dict(value)
    return None


def _strs(value: Any) -> tuple[str, ...]:
    if isinstance(value, list):
        return tuple(v for v in value if isinstance(v, str))
    return ()


def _map(value: Any) -> dict[str, Any]:
    return dict(value) if isinstance(value, Mapping) else {}


def _int(value: Any, default: int) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else default


def build_journey(data: YamlMap, file: str) -> Journey:
    nodes_data = data.get("nodes")
    nodes: dict[str, Node] = {}
    if isinstance(nodes_data, YamlMap):
        for node_id, node_data in nodes_data.items():
            if isinstance(node_data, YamlMap):
                # A node is "at" its id: the line an expert looks for.
                nodes[node_id] = build_node(node_id, node_data, file, nodes_data.key_pos[node_id])
    motives = data.get("motives")
    motive_locs: tuple[Loc, ...] = ()
    if isinstance(motives, YamlList):
        motive_locs = tuple(_loc(file, p) for p in motives.item_pos)
    inputs = data.get("inputs")
    return Journey(
        id=_str(data.get("journey")) or "",
        version=_int(data.get("version"), 0),
        title=_str(data.get("title")) or "",
        start=_str(data.get("start")) or "",
        nodes=nodes,
        loc=_loc(file, data.pos),
        key_locs=_key_locs(file, data),
        motives=_strs(motives),
        motive_locs=motive_locs,
        channels=_strs(data.get("channels")),
        locales=_strs(data.get("locales")),
        inputs={k: v for k, v in inputs.items()} if isinstance(inputs, Mapping) else {},
    )


def build_node(node_id: str, data: YamlMap, file: str, pos: tuple[int, int] | None = None) -> Node:
    kind = _str(data.get("kind")) or ""
    keys = NODE_KEYS.get(kind, frozenset({"kind"}))

    def get(key: str) -> Any:
        return data.get(key) if key in keys else None

    set_data = get("set")
    input_data = get("input")
    roles = _strs(get("roles"))
    timeout = get("timeout")
    return Node(
        id=node_id,
        kind=kind,
        loc=_loc(file, pos or data.pos),
        key_locs=_key_locs(file, data),
        say=_text(get("say")),
        roles=roles or DEFAULT_ROLES,
        set=_map(set_data),
        set_locs=_key_locs(file, set_data) if isinstance(set_data, YamlMap) else {},
        next=_str(get("next")),
        field=_str(get("field")),
        schema=_map(get("schema")) if isinstance(get("schema"), Mapping) else None,
        confirm=get("confirm") is True,
        options=_options(get("options"), file),
        branches=_branches(get("branches"), file),
        otherwise=_str(get("else")),
        action=_str(get("action")),
        input=_map(input_data),
        input_locs=_key_locs(file, input_data) if isinstance(input_data, YamlMap) else {},
        output=_str(get("output")),
        wait=get("wait") is not False,
        retries=_int(get("retries"), 0),
        timeout=float(timeout)
        if isinstance(timeout, int | float) and not isinstance(timeout, bool)
        else None,
        on_error=_str(get("on_error")),
        on_denied=_str(get("on_denied")),
        on_failure=_str(get("on_failure")),
        journey=_str(get("journey")),
        queue=_str(get("queue")),
        reason=_str(get("reason")),
        outcome=_str(get("outcome")),
        survey=_strs(get("survey")),
        after=_after(get("after"), file),
    )


def _options(data: Any, file: str) -> tuple[Option, ...]:
    if not isinstance(data, YamlList):
        return ()
    options = []
    for item in data:
        if isinstance(item, YamlMap):
            options.append(
                Option(
                    value=item.get("value"),
                    label=_text(item.get("label")),
                    next=_str(item.get("next")),
                    loc=_loc(file, item.pos),
                    next_loc=_loc(file, item.val_pos.get("next")) if "next" in item else None,
                )
            )
    return tuple(options)


def _branches(data: Any, file: str) -> tuple[Branch, ...]:
    if not isinstance(data, YamlList):
        return ()
    branches = []
    for item in data:
        if isinstance(item, YamlMap):
            condition = item.get("if")
            branches.append(
                Branch(
                    # A bare `if: true` is a boolean in YAML; the expression is its text.
                    condition=condition if isinstance(condition, str) else str(condition).lower(),
                    next=_str(item.get("next")),
                    loc=_loc(file, item.pos),
                    condition_loc=_loc(file, item.val_pos.get("if", item.pos)),
                    next_loc=_loc(file, item.val_pos.get("next")) if "next" in item else None,
                )
            )
    return tuple(branches)


def _after(data: Any, file: str) -> tuple[ActionCall, ...]:
    if not isinstance(data, YamlList):
        return ()
    calls = []
    for item in data:
        if isinstance(item, YamlMap) and isinstance(item.get("action"), str):
            input_data = item.get("input")
            calls.append(
                ActionCall(
                    action=item["action"],
                    input=_map(input_data),
                    loc=_loc(file, item.pos),
                    action_loc=_loc(file, item.val_pos["action"]),
                    input_locs=_key_locs(file, input_data)
                    if isinstance(input_data, YamlMap)
                    else {},
                    retries=_int(item.get("retries"), 0),
                )
            )
    return tuple(calls)


def build_motives(data: YamlMap, file: str) -> dict[str, Motive]:
    motives: dict[str, Motive] = {}
    table = data.get("motives")
    if not isinstance(table, YamlMap):
        return motives
    for motive_id, entry in table.items():
        if not isinstance(entry, YamlMap):
            continue
        motives[motive_id] = Motive(
            id=motive_id,
            title=_text(entry.get("title")) or motive_id,
            category=_str(entry.get("category")) or "",
            journey=_str(entry.get("journey")) or "",
            loc=_loc(file, table.key_pos[motive_id]),
            journey_loc=_loc(file, entry.val_pos.get("journey", entry.pos)),
            keywords=_strs(entry.get("keywords")),
            sources=_strs(entry.get("sources")),
        )
    return motives


def build_triggers(data: YamlMap, file: str) -> tuple[Trigger, ...]:
    """The ``triggers`` of the motive catalogue: events that start outbound sessions."""
    items = data.get("triggers")
    if not isinstance(items, YamlList):
        return ()
    triggers = []
    for item in items:
        if not isinstance(item, YamlMap):
            continue
        inputs = item.get("inputs")
        when = item.get("when")
        triggers.append(
            Trigger(
                event=_str(item.get("event")) or "",
                journey=_str(item.get("journey")) or "",
                channel=_str(item.get("channel")),
                loc=_loc(file, item.pos),
                key_locs=_key_locs(file, item),
                motive=_str(item.get("motive")),
                inputs=_map(inputs),
                input_locs=_key_locs(file, inputs) if isinstance(inputs, YamlMap) else {},
                input_names={k: _loc(file, p) for k, p in inputs.key_pos.items()}
                if isinstance(inputs, YamlMap)
                else {},
                # A bare `when: true` is a boolean in YAML; the condition is its text.
                when=None if when is None else when if isinstance(when, str) else str(when).lower(),
            )
        )
    return tuple(triggers)


def build_scenarios(data: YamlMap, file: str) -> ScenarioFile:
    scenarios = []
    items = data.get("scenarios")
    for item in items if isinstance(items, YamlList) else ():
        if isinstance(item, YamlMap):
            scenarios.append(_scenario(item, file))
    return ScenarioFile(
        journey=_str(data.get("journey")) or "",
        journey_loc=_loc(file, data.val_pos.get("journey", data.pos)),
        scenarios=tuple(scenarios),
        loc=_loc(file, data.pos),
    )


def _scenario(item: YamlMap, file: str) -> Scenario:
    answers = item.get("answers")
    actions = item.get("actions")
    expect = item.get("expect")
    expect = expect if isinstance(expect, YamlMap) else YamlMap(item.pos)
    path = expect.get("path")
    answer_map = _map(answers)
    survey = answer_map.pop("survey", None)
    return Scenario(
        name=_str(item.get("name")) or "",
        loc=_loc(file, item.pos),
        inputs=_map(item.get("inputs")),
        actions=_map(actions),
        action_locs=_key_locs(file, actions) if isinstance(actions, YamlMap) else {},
        answers=answer_map,
        answer_locs={k: _loc(file, p) for k, p in answers.key_pos.items()}
        if isinstance(answers, YamlMap)
        else {},
        outcome=_str(expect.get("outcome")),
        status=_str(expect.get("status")),
        node=_str(expect.get("node")),
        locale=_str(item.get("locale")),
        channel=_str(item.get("channel")),
        role=_str(item.get("role")),
        outcome_loc=_loc(file, expect.val_pos.get("outcome", expect.pos)),
        path=_strs(path) if isinstance(path, YamlList) else None,
        path_locs=tuple(_loc(file, p) for p in path.item_pos) if isinstance(path, YamlList) else (),
        context=_map(expect.get("context")),
        survey=_map(survey),
    )


def _number(value: Any) -> float | None:
    return value if isinstance(value, int | float) and not isinstance(value, bool) else None


def build_policy(data: YamlMap, file: str) -> Policy:
    """``policies.yaml``: per role, per action, per parameter, how far the role may go."""
    limits: list[Limit] = []
    actions: dict[tuple[str, str], Loc] = {}
    roles = data.get("roles")
    if not isinstance(roles, YamlMap):
        return Policy()
    for role, table in roles.items():
        if role not in ROLES or not isinstance(table, YamlMap):
            continue
        for action, params in table.items():
            actions[(role, action)] = _loc(file, table.key_pos[action])
            if not isinstance(params, YamlMap):
                continue
            for param, rule in params.items():
                if not isinstance(rule, YamlMap):
                    continue
                allowed = rule.get("in")
                customer = rule.get("per_customer")
                customer = customer if isinstance(customer, YamlMap) else None
                limits.append(
                    Limit(
                        role=role,
                        action=action,
                        param=param,
                        loc=_loc(file, params.key_pos[param]),
                        max=_number(rule.get("max")),
                        min=_number(rule.get("min")),
                        allowed=tuple(allowed) if isinstance(allowed, list) else None,
                        key_locs=_key_locs(file, rule),
                        per_session=_number(rule.get("per_session")),
                        per_customer=_number(customer.get("max")) if customer else None,
                        over_s=period_seconds(customer.get("over")) if customer else None,
                        over=_str(customer.get("over")) if customer else None,
                    )
                )
    return Policy(tuple(limits), actions)


_PERIOD = re.compile(
    r"^(?:([1-9][0-9]{0,5})([smhd])|P([1-9][0-9]{0,5})D|PT([1-9][0-9]{0,6})([HMS]))$"
)
_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def period_seconds(value: Any) -> int | None:
    """``30d``, ``12h``, ``90m``, ``45s`` or ISO 8601 ``P30D``/``PT12H``, in seconds (None if
    it is none of these: the schema says so, J002)."""
    found = _PERIOD.match(value) if isinstance(value, str) else None
    if found is None:
        return None
    short, unit, days, iso, iso_unit = found.groups()
    if days:
        return int(days) * 86400
    if iso:
        return int(iso) * _SECONDS[iso_unit.lower()]
    return int(short) * _SECONDS[unit]
