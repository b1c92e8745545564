"""Checks across files: J003 (journey references), J010 (catalogue), J011 (sub-journey
cycles), scenario files against their journey, and the warnings W001/W002.

They work on the per-file *summaries* (plain data, cached), never on YAML, so a warm run
checks a whole library again in milliseconds.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from engine.definitions.checks.actions import Catalogue
from engine.definitions.findings import Finding, did_you_mean, finding, one_of
from engine.definitions.model import Loc

Summary = Mapping[str, Any]


def _escalates(node: Any) -> bool:
    """A handoff, or an action without `on_denied`: above the role's authority limit, the
    session is handed to the supervisor queue (outcome escalated)."""
    return bool(node.kind == "handoff" or (node.kind == "action" and not node.on_denied))


def journey_summary(journey: Any, file: str) -> dict[str, Any]:
    """The facts about a journey that other files depend on."""
    return {
        "id": journey.id,
        "loc": [journey.at("journey").line, journey.at("journey").column],
        "motives": [
            [m, loc.line, loc.column]
            for m, loc in zip(journey.motives, journey.motive_locs, strict=False)
        ],
        "calls": [
            [n.id, n.journey, n.at("journey").line, n.at("journey").column]
            for n in journey.nodes.values()
            if n.kind == "journey" and n.journey
        ],
        "nodes": list(journey.nodes),
        "inputs": {name: name in journey.required_inputs for name in journey.inputs},
        "channels": list(journey.channels),
        "outcomes": sorted(
            {n.outcome for n in journey.nodes.values() if n.outcome}
            | ({"escalated"} if any(_escalates(n) for n in journey.nodes.values()) else set())
        ),
    }


def check_library(
    journeys: Mapping[str, Summary],  # file -> journey summary
    motives: tuple[str, Summary] | None,  # (file, {"motives": {id: {journey, ...}}, "triggers"})
    scenarios: Mapping[str, Summary],  # file -> scenario summary
    catalogue: Catalogue,
    unreadable: frozenset[str] = frozenset(),  # ids of journeys whose file could not be read
) -> list[Finding]:
    found: list[Finding] = []
    by_id: dict[str, list[str]] = {}
    for file, s in journeys.items():
        if s["id"]:
            by_id.setdefault(s["id"], []).append(file)
    found += _duplicates(journeys, by_id)
    found += _journey_references(journeys, by_id)
    found += _cycles(journeys, by_id)
    found += _catalogue(journeys, motives, by_id)
    found += _triggers(journeys, motives, by_id)
    found += _scenarios(journeys, scenarios, by_id, catalogue, unreadable)
    found += _warnings(journeys, scenarios, by_id)
    return found


def _loc(file: str, pos: list[int]) -> Loc:
    return Loc(file, pos[0], pos[1])


def _duplicates(
    journeys: Mapping[str, Summary], by_id: Mapping[str, list[str]]
) -> Iterator[Finding]:
    for jid, files in by_id.items():
        if len(files) > 1:
            for file in files:
                others = ", ".join(f for f in files if f != file)
                yield finding(
                    "J010",
                    _loc(file, journeys[file]["loc"]),
                    f"the journey id {jid!r} is declared in more than one file (also in {others}); "
                    "journey ids must be unique in the library",
                    jid,
                )


def _journey_references(
    journeys: Mapping[str, Summary], by_id: Mapping[str, list[str]]
) -> Iterator[Finding]:
    for file, s in journeys.items():
        for node_id, target, line, col in s["calls"]:
            if target not in by_id:
                yield finding(
                    "J003",
                    Loc(file, line, col),
                    f"node {node_id!r} runs the journey {target!r}, which is not in the library"
                    f"{did_you_mean(target, by_id)}",
                    s["id"] or None,
                    node_id,
                )


def _cycles(journeys: Mapping[str, Summary], by_id: Mapping[str, list[str]]) -> list[Finding]:
    calls = {
        s["id"]: {c[1] for c in s["calls"] if c[1] in by_id} for s in journeys.values() if s["id"]
    }
    cyclic = cyclic_groups(calls)
    if not cyclic:
        return []
    found = []
    for file, s in journeys.items():
        group = cyclic.get(s["id"])
        if group is None:
            continue
        for node_id, target, line, col in s["calls"]:
            if target in group:
                ring = (
                    " → ".join([s["id"], *sorted(group - {s["id"]}), s["id"]])
                    if len(group) > 1
                    else f"{s['id']} → {s['id']}"
                )
                found.append(
                    finding(
                        "J011",
                        Loc(file, line, col),
                        f"node {node_id!r} runs {target!r}, which leads back to {s['id']!r} "
                        f"({ring}): a sub-journey may not call itself, directly or through others",
                        s["id"],
                        node_id,
                    )
                )
    return found


def cyclic_groups(calls: Mapping[str, set[str]]) -> dict[str, frozenset[str]]:
    """Journey id -> the set of journeys on the same call cycle (only for journeys on one)."""
    if not _has_cycle(calls):
        return {}
    import networkx as nx  # only when a cycle exists

    graph = nx.DiGraph()
    for source, targets in calls.items():
        graph.add_node(source)
        graph.add_edges_from((source, t) for t in targets)
    groups: dict[str, frozenset[str]] = {}
    for component in nx.strongly_connected_components(graph):
        members = frozenset(component)
        if len(members) > 1 or any(m in calls.get(m, ()) for m in members):
            for m in members:
                groups[m] = members
    return groups


def _has_cycle(calls: Mapping[str, set[str]]) -> bool:
    state: dict[str, int] = {}  # 1 = on the stack, 2 = done
    for root in calls:
        if root in state:
            continue
        stack = [(root, iter(calls.get(root, ())))]
        state[root] = 1
        while stack:
            node, children = stack[-1]
            child = next(children, None)
            if child is None:
                state[node] = 2
                stack.pop()
            elif state.get(child) == 1:
                return True
            elif child not in state:
                state[child] = 1
                stack.append((child, iter(calls.get(child, ()))))
    return False


def call_order(calls: Mapping[str, set[str]]) -> list[str]:
    """Journey ids, each after the journeys it calls (cycles broken arbitrarily)."""
    order: list[str] = []
    seen: set[str] = set()
    for root in sorted(calls):
        if root in seen:
            continue
        seen.add(root)
        stack = [(root, iter(sorted(calls.get(root, ()))))]
        while stack:
            node, children = stack[-1]
            child = next(children, None)
            if child is None:
                order.append(node)
                stack.pop()
            elif child not in seen and child in calls:
                seen.add(child)
                stack.append((child, iter(sorted(calls.get(child, ())))))
    return order


def _catalogue(
    journeys: Mapping[str, Summary],
    motives: tuple[str, Summary] | None,
    by_id: Mapping[str, list[str]],
) -> Iterator[Finding]:
    table: Summary = motives[1]["motives"] if motives else {}
    for file, s in journeys.items():
        for motive, line, col in s["motives"]:
            if motive not in table:
                where = (
                    "motives.yaml" if motives else "the catalogue (the library has no motives.yaml)"
                )
                yield finding(
                    "J010",
                    Loc(file, line, col),
                    f"the motive {motive!r} is not in {where}{did_you_mean(motive, table)}; "
                    "add it to the catalogue or fix the id",
                    s["id"] or None,
                )
    if motives is None:
        return
    file = motives[0]
    for motive, entry in table.items():
        target = entry["journey"]
        if target and target not in by_id:
            yield finding(
                "J010",
                Loc(file, entry["jline"], entry["jcol"]),
                f"motive {motive!r} names the journey {target!r}, which is not in the library"
                f"{did_you_mean(target, by_id)}",
            )
        elif target:
            declared = {m for f in by_id[target] for m, _l, _c in journeys[f]["motives"]}
            if motive not in declared:
                yield finding(
                    "J010",
                    Loc(file, entry["jline"], entry["jcol"]),
                    f"motive {motive!r} names the journey {target!r}, but that journey does not "
                    f"list {motive!r} under its 'motives'; add it there",
                )


def _triggers(
    journeys: Mapping[str, Summary],
    motives: tuple[str, Summary] | None,
    by_id: Mapping[str, list[str]],
) -> Iterator[Finding]:
    """The triggers of motives.yaml against the journeys they start and the catalogue."""
    if motives is None:
        return
    file, summary = motives
    for trigger in summary["triggers"]:
        yield from _trigger(file, trigger, summary["motives"], journeys, by_id)


def _trigger(
    file: str,
    t: Summary,
    table: Summary,
    journeys: Mapping[str, Summary],
    by_id: Mapping[str, list[str]],
) -> Iterator[Finding]:
    """One trigger: its motive in the catalogue, then the journey it starts."""
    label = f"the trigger of {t['event']!r}"
    jid, motive = t["journey"], t["motive"]
    if motive and motive not in table:
        yield finding(
            "J010",
            _loc(file, t["motive_loc"]),
            f"{label} counts its sessions for the motive {motive!r}, which is not in the "
            f"catalogue{did_you_mean(motive, table)}; add it under 'motives' or fix the id",
            jid or None,
        )
    if not jid:
        return
    if jid not in by_id:
        yield finding(
            "J003",
            _loc(file, t["journey_loc"]),
            f"{label} starts the journey {jid!r}, which is not in the library"
            f"{did_you_mean(jid, by_id)}",
            jid,
        )
        return
    journey = journeys[by_id[jid][0]]
    yield from _trigger_motive_and_channel(file, t, label, table, journey)
    yield from _trigger_inputs(file, t, label, journey)


def _trigger_motive_and_channel(
    file: str, t: Summary, label: str, table: Summary, journey: Summary
) -> Iterator[Finding]:
    """The trigger's motive is one the journey lists, its channel one the journey runs on."""
    jid, motive, channel = t["journey"], t["motive"], t["channel"]
    declared = [m for m, _l, _c in journey["motives"]]
    if motive and motive in table and motive not in declared:
        yield finding(
            "J010",
            _loc(file, t["motive_loc"]),
            f"{label} counts its sessions for the motive {motive!r}, but the journey {jid!r} "
            f"does not list it under its 'motives' ({', '.join(declared) or 'none'}); "
            "add it there or name one of those",
            jid,
        )
    if channel and journey["channels"] and channel not in journey["channels"]:
        yield finding(
            "J010",
            _loc(file, t["channel_loc"]),
            f"{label} runs {jid!r} on the channel {channel!r}, which is not one of its "
            f"channels ({', '.join(journey['channels'])}); add it to the journey's "
            "'channels' or choose one of them",
            jid,
        )


def _trigger_inputs(file: str, t: Summary, label: str, journey: Summary) -> Iterator[Finding]:
    """The inputs the trigger gives are the journey's, and it gives every required one."""
    jid = t["journey"]
    inputs: Mapping[str, bool] = journey["inputs"]
    given = {name for name, _l, _c in t["inputs"]}
    for name, line, col in t["inputs"]:
        if name not in inputs:
            yield finding(
                "J003",
                Loc(file, line, col),
                f"{label} gives the input {name!r}, which is not an input of {jid!r}"
                f"{did_you_mean(name, inputs)}; its inputs are {one_of(inputs) or 'none'}",
                jid,
            )
    for name, required in inputs.items():
        if required and name not in given:
            yield finding(
                "J008",
                _loc(file, t["inputs_loc"]),
                f"{label} starts {jid!r}, which needs the input {name!r}; give it under "
                f"'inputs' (for example {name}: ={name}, from the event's data)",
                jid,
            )


def _scenarios(
    journeys: Mapping[str, Summary],
    scenarios: Mapping[str, Summary],
    by_id: Mapping[str, list[str]],
    catalogue: Catalogue,
    unreadable: frozenset[str],
) -> Iterator[Finding]:
    summaries = {s["id"]: s for s in journeys.values() if s["id"]}
    for file, s in scenarios.items():
        jid = s["journey"]
        if jid not in by_id:
            yield finding(
                "J003",
                _loc(file, s["loc"]),
                f"the scenarios test the journey {jid!r}, which is not in the library"
                f"{did_you_mean(jid, by_id)}",
                jid or None,
            )
            continue
        nodes = _ScenarioNodes.of(jid, summaries, unreadable)
        for scenario in s["scenarios"]:
            yield from _scenario(file, jid, scenario, nodes, summaries[jid]["outcomes"], catalogue)


@dataclass(frozen=True)
class _ScenarioNodes:
    """The nodes a scenario of a journey may name: the journey's own, by qualified name
    (``identify/ask_id``) or, for an answer, by the short one (``ask_id``)."""

    names: set[str]
    short: set[str]
    #: Qualified prefixes of sub-journeys that could not be read: their nodes are not known,
    #: so a name under them is not reported.
    opaque: tuple[str, ...]

    @classmethod
    def of(
        cls, jid: str, summaries: Mapping[str, Summary], unreadable: frozenset[str]
    ) -> _ScenarioNodes:
        names = node_names(jid, summaries)
        short = {n.rsplit("/", 1)[-1] for n in names}
        opaque = tuple(f"{n}/" for n in _calls_into(jid, summaries, unreadable))
        return cls(names, short, opaque)

    def unknown(self, node: str) -> bool:
        return node not in self.names and not (self.opaque and node.startswith(self.opaque))

    def unknown_answer(self, node: str) -> bool:
        return self.unknown(node) and node not in self.short and not self.opaque


def _scenario(
    file: str,
    jid: str,
    sc: Summary,
    nodes: _ScenarioNodes,
    outcomes: list[str],
    catalogue: Catalogue,
) -> Iterator[Finding]:
    """One scenario: the nodes it answers and passes, the actions it stubs, its outcome."""
    label = f"scenario {sc['name']!r}"
    for node, line, col in sc["answers"]:
        if nodes.unknown_answer(node):
            yield _not_a_node(Loc(file, line, col), jid, node, nodes, f"{label}: answers")
    for node, line, col in sc["path"]:
        if nodes.unknown(node):
            yield _not_a_node(
                Loc(file, line, col), jid, node, nodes, f"{label}: the expected path passes"
            )
    for action, line, col in sc["actions"]:
        if action not in catalogue:
            yield finding(
                "J009",
                Loc(file, line, col),
                f"{label}: stubs {action!r}, which is not a back-office action of the "
                f"catalogue{did_you_mean(action, catalogue)}",
                jid,
            )
    if sc["outcome"] and sc["outcome"][0] not in outcomes:
        outcome, line, col = sc["outcome"]
        yield finding(
            "J003",
            Loc(file, line, col),
            f"{label}: expects the outcome {outcome!r}, but no end of {jid!r} has it "
            f"(its outcomes: {', '.join(outcomes) or 'none'})",
            jid,
        )


def _not_a_node(loc: Loc, jid: str, node: str, nodes: _ScenarioNodes, what: str) -> Finding:
    return finding(
        "J003",
        loc,
        f"{what} {node!r}, which is not a node of {jid!r}{did_you_mean(node, nodes.names)}",
        jid,
        node,
    )


def _calls_into(
    jid: str, summaries: Mapping[str, Summary], unreadable: frozenset[str], depth: int = 0
) -> set[str]:
    """The qualified names of a journey's nodes that run an unreadable journey."""
    found: set[str] = set()
    s = summaries.get(jid)
    if s is None or depth > 8 or not unreadable:
        return found
    for node_id, target, _l, _c in s["calls"]:
        if target in unreadable:
            found.add(node_id)
        else:
            found |= {
                f"{node_id}/{n}" for n in _calls_into(target, summaries, unreadable, depth + 1)
            }
    return found


def node_names(jid: str, summaries: Mapping[str, Summary], depth: int = 0) -> set[str]:
    """A journey's node ids, with its sub-journeys' nodes as ``CALLING_NODE/NODE``."""
    s = summaries.get(jid)
    if s is None or depth > 8:
        return set()
    names = set(s["nodes"])
    for node_id, target, _l, _c in s["calls"]:
        names |= {f"{node_id}/{n}" for n in node_names(target, summaries, depth + 1)}
    return names


def _warnings(
    journeys: Mapping[str, Summary],
    scenarios: Mapping[str, Summary],
    by_id: Mapping[str, list[str]],
) -> Iterator[Finding]:
    tested = {s["journey"] for s in scenarios.values()}
    called = {c[1] for s in journeys.values() for c in s["calls"]}
    for file, s in journeys.items():
        if not s["id"]:
            continue
        if s["id"] not in tested:
            yield finding(
                "W001",
                _loc(file, s["loc"]),
                f"the journey {s['id']!r} has no scenario test; add a .test.yaml file with a "
                "scenario for each outcome",
                s["id"],
            )
        if not s["motives"] and s["id"] not in called:
            yield finding(
                "W002",
                _loc(file, s["loc"]),
                f"the journey {s['id']!r} resolves no motive and no journey runs it, so nobody "
                "can reach it; list its motives or call it from another journey",
                s["id"],
            )
