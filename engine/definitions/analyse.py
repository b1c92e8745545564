"""Analyse one file of a library on its own: everything that depends only on its content.

The result is plain data (findings, a summary for the checks across files, and the dataflow
digest of a journey) so that it can be cached by content and computed in worker processes.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from engine.definitions import build
from engine.definitions.checks.actions import Catalogue, check_actions
from engine.definitions.checks.dataflow import flow_problem
from engine.definitions.checks.expressions import (
    check_expressions,
    check_locales,
    check_trigger_expressions,
)
from engine.definitions.checks.graph import check_graph, looped_actions, looped_calls
from engine.definitions.checks.library import journey_summary
from engine.definitions.checks.policies import POLICY_FILES, check_policy, per_call_only
from engine.definitions.checks.schema import check_document, check_embedded_schema
from engine.definitions.findings import Finding, finding
from engine.definitions.model import Journey, Loc, Trigger
from engine.definitions.yamlsafe import YamlError, YamlList, YamlMap, decode, parse

JOURNEY, MOTIVES, SCENARIOS = "journey", "motives", "scenarios"
POLICIES = "policies"
_ID_GUESS = re.compile(r"^journey:\s*['\"]?([a-z0-9-]+)", re.M)
_EMPTY = {
    JOURNEY: "the file is empty; a journey needs at least 'journey', 'version', 'title', 'start' and 'nodes'",
    MOTIVES: "the file is empty; the catalogue starts with 'motives:'",
    SCENARIOS: "the file is empty; a scenario file needs 'journey' and 'scenarios'",
    POLICIES: "the file is empty; the authority limits start with 'roles:'",
}


def role_of(rel: str) -> str:
    name = rel.rsplit("/", 1)[-1]
    if name.endswith((".test.yaml", ".test.yml")):
        return SCENARIOS
    if rel in ("motives.yaml", "motives.yml"):
        return MOTIVES
    if rel in POLICY_FILES:
        return POLICIES
    return JOURNEY


def analyse(data: bytes, rel: str, catalogue: Catalogue) -> dict[str, Any]:
    """Local findings, summary and (for a journey) the dataflow digest of one file."""
    role = role_of(rel)
    try:
        document = parse(decode(data))
    except YamlError as problem:
        return _unreadable(role, rel, data, problem)
    if document is None:
        return _result(role, [finding("J002", Loc(rel), _EMPTY[role])], _unknown(rel, data))
    if not isinstance(document, YamlMap):
        what = "a list" if isinstance(document, YamlList) else "a single value"
        message = (
            f"the file holds {what}; expected a mapping of keys ({_EMPTY[role].split('; ')[1]})"
        )
        return _result(role, [finding("J002", Loc(rel), message)], _unknown(rel, data))
    schema_name = {
        JOURNEY: "journey",
        MOTIVES: "motives",
        SCENARIOS: "scenario",
        POLICIES: "policies",
    }[role]
    found = check_document(schema_name, document, rel)
    if role == POLICIES:
        policy = build.build_policy(document, rel)
        found += check_policy(policy, catalogue)
        return _result(role, found, per_call_only(policy))
    if role == JOURNEY:
        return _journey(document, rel, catalogue, found)
    if role == MOTIVES:
        triggers = build.build_triggers(document, rel)
        found += check_trigger_expressions(triggers)
        return _result(role, found, _motives_summary(document, rel, triggers))
    return _result(role, found, _scenarios_summary(document, rel))


def _result(
    role: str, findings: list[Finding], summary: Any, problem: Any = None
) -> dict[str, Any]:
    return {
        "role": role,
        "findings": [f.to_dict() for f in findings],
        "summary": summary,
        "problem": problem,
    }


def _unreadable(role: str, rel: str, data: bytes, problem: YamlError) -> dict[str, Any]:
    f = finding("J001", Loc(rel, problem.line, problem.column), problem.message)
    return _result(role, [f], _unknown(rel, data))


def _unknown(rel: str, data: bytes) -> dict[str, Any]:
    """The summary of a file that could not be read: its id as best guessed, so that no
    other file gets a finding only because this one is unreadable."""
    guess = _ID_GUESS.search(data[:20000].decode("utf-8", "replace"))
    stem = Path(rel).name.split(".")[0]
    return {"unreadable": True, "id": guess.group(1) if guess else stem, "journey": stem}


def _journey(
    document: YamlMap, rel: str, catalogue: Catalogue, found: list[Finding]
) -> dict[str, Any]:
    journey = build.build_journey(document, rel)
    schema_clean = not found
    found += _embedded_schemas(journey)
    expression_findings, uses = check_expressions(journey)
    found += expression_findings
    found += check_locales(journey)
    found += check_actions(journey, uses, catalogue)
    problem = None
    if schema_clean:
        # The graph and dataflow checks need a well-formed journey: on a schema error they
        # would only repeat it in other words.
        found += check_graph(journey)
        # Kept as JSON text: the cache loads it as one string and parses it only on the rare
        # run that must solve this journey's dataflow again.
        problem = json.dumps(flow_problem(journey, uses).to_json(), separators=(",", ":"))
    summary = journey_summary(journey, rel)
    summary["schema_clean"] = schema_clean
    # Action nodes on a loop, for the authority limits that apply per call (W003).
    summary["loops"] = looped_actions(journey) if schema_clean else []
    summary["looped_calls"] = looped_calls(journey) if schema_clean else []
    summary["actions"] = sorted({n.action for n in journey.nodes.values() if n.action})
    return _result(JOURNEY, found, summary, problem)


def _embedded_schemas(journey: Journey) -> list[Finding]:
    found = []
    for name, schema in journey.inputs.items():
        if isinstance(schema, dict):
            found += check_embedded_schema(
                schema, journey.at("inputs"), f"input {name!r}", journey.id, None
            )
    for node in journey.nodes.values():
        if node.schema is not None:
            found += check_embedded_schema(
                node.schema,
                node.at("schema"),
                f"node {node.id!r}: the answer schema",
                journey.id,
                node.id,
            )
    return found


def _motives_summary(document: YamlMap, rel: str, triggers: tuple[Trigger, ...]) -> dict[str, Any]:
    motives = build.build_motives(document, rel)

    def at(trigger: Trigger, key: str) -> list[int]:
        loc = trigger.at(key)
        return [loc.line, loc.column]

    return {
        "motives": {
            m.id: {
                "journey": m.journey,
                "jline": m.journey_loc.line,
                "jcol": m.journey_loc.column,
                "category": m.category,
            }
            for m in motives.values()
        },
        "triggers": [
            {
                "event": t.event,
                "journey": t.journey,
                "motive": t.motive,
                "channel": t.channel,
                "loc": at(t, "event"),
                "journey_loc": at(t, "journey"),
                "motive_loc": at(t, "motive"),
                "channel_loc": at(t, "channel"),
                "inputs_loc": at(t, "inputs") if "inputs" in t.key_locs else at(t, "journey"),
                "inputs": [[name, loc.line, loc.column] for name, loc in t.input_names.items()],
            }
            for t in triggers
        ],
    }


def _scenarios_summary(document: YamlMap, rel: str) -> dict[str, Any]:
    sf = build.build_scenarios(document, rel)
    scenarios = []
    for sc in sf.scenarios:
        outcome_loc = sc.outcome_loc or sc.loc
        scenarios.append(
            {
                "name": sc.name,
                "answers": [
                    [k, loc.line, loc.column] for k, loc in sc.answer_locs.items() if k != "survey"
                ],
                "path": [
                    [n, loc.line, loc.column]
                    for n, loc in zip(sc.path or (), sc.path_locs, strict=False)
                ],
                "actions": [[k, loc.line, loc.column] for k, loc in sc.action_locs.items()],
                "outcome": [sc.outcome, outcome_loc.line, outcome_loc.column]
                if sc.outcome
                else None,
            }
        )
    return {
        "journey": sf.journey,
        "loc": [sf.journey_loc.line, sf.journey_loc.column],
        "scenarios": scenarios,
    }
