"""J008: a name may be read only where it is set on every path that reaches the reader.

A forward "definitely set" analysis: what is set when a node starts is the intersection, over
every edge into it, of what is set when that edge is taken. Edges differ: an action's
``output`` and ``set`` exist on its success edges, not on ``on_error``, ``on_failure`` nor ``on_denied``; a
``journey`` node adds what the sub-journey sets on every path to one of its ends (its
*exports*).

The analysis works on a :class:`FlowDigest`, a small plain-data digest of a journey, so that
the validator can cache it and solve it again when a sub-journey's exports change, without
parsing the YAML again.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from engine.definitions.checks.expressions import Use
from engine.definitions.findings import Finding, did_you_mean, finding
from engine.definitions.model import Journey, Loc


@dataclass(frozen=True)
class Interface:
    """What callers of a journey rely on: its required inputs and its exports."""

    required: frozenset[str]
    exports: frozenset[str]

    def to_json(self) -> list[list[str]]:
        return [sorted(self.required), sorted(self.exports)]

    @classmethod
    def from_json(cls, data: Sequence[Sequence[str]]) -> Interface:
        return cls(frozenset(data[0]), frozenset(data[1]))


@dataclass
class FlowNode:
    edges: list[tuple[str, list[str], str]] = field(default_factory=list)  # target, defs, via
    reads: list[tuple[str, str, str, int, int]] = field(
        default_factory=list
    )  # name, phase, where, line, col
    own: list[str] = field(default_factory=list)  # field/output, visible to "after" reads
    end_defs: list[str] = field(default_factory=list)  # an end's 'set': part of the exports
    call: str | None = None  # a journey node's target
    passed: list[str] = field(default_factory=list)  # input names given to the sub-journey
    line: int = 1
    column: int = 1
    kind: str = ""


@dataclass
class FlowDigest:
    file: str
    journey: str
    start: str
    inputs: list[str]
    required: list[str]
    nodes: dict[str, FlowNode]

    def to_json(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "journey": self.journey,
            "start": self.start,
            "inputs": self.inputs,
            "required": self.required,
            "nodes": {
                k: [n.edges, n.reads, n.own, n.end_defs, n.call, n.passed, n.line, n.column, n.kind]
                for k, n in self.nodes.items()
            },
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> FlowDigest:
        nodes = {
            k: FlowNode(
                [(e[0], e[1], e[2]) for e in v[0]],
                [(r[0], r[1], r[2], r[3], r[4]) for r in v[1]],
                v[2],
                v[3],
                v[4],
                v[5],
                v[6],
                v[7],
                v[8],
            )
            for k, v in data["nodes"].items()
        }
        return cls(
            data["file"], data["journey"], data["start"], data["inputs"], data["required"], nodes
        )

    @property
    def calls(self) -> set[str]:
        return {n.call for n in self.nodes.values() if n.call}


#: Names the engine gives every journey to read: ``identity``, who the customer is proven to
#: be (engine.sessions.identity.scope_value).
ENGINE_NAMES = frozenset({"identity"})

_FAILURE_DEFS = {
    "on_error": ["last_error"],
    "on_failure": ["last_error"],
    "on_denied": ["last_denial"],
}


def flow_problem(journey: Journey, uses: Sequence[Use]) -> FlowDigest:
    nodes: dict[str, FlowNode] = {}
    for node in journey.nodes.values():
        fn = FlowNode(line=node.loc.line, column=node.loc.column, kind=node.kind)
        own = [n for n in (node.field, node.output) if n]
        sets = list(node.set)
        for edge in node.edges():
            if edge.target not in journey.nodes:
                continue
            # On its error path an action stores neither its output nor its `set`, but the
            # runtime records the failure in `last_error`; on its denied path (the role's
            # authority limit is exceeded: the action does not run) the refusal in `last_denial`.
            defs = _FAILURE_DEFS.get(edge.via, own + sets)
            fn.edges.append((edge.target, defs, edge.via))
        fn.own = own
        if node.kind == "end":
            fn.end_defs = sets
        if node.kind == "journey" and node.journey:
            fn.call = node.journey
            fn.passed = list(node.input)
        nodes[node.id] = fn
    for use in uses:
        if use.node in nodes:
            for name in sorted(use.expression.names):
                nodes[use.node].reads.append(
                    (name, use.phase, use.where, use.loc.line, use.loc.column)
                )
    return FlowDigest(
        file=journey.loc.file,
        journey=journey.id,
        start=journey.start,
        inputs=sorted(journey.inputs),
        required=sorted(journey.required_inputs),
        nodes=nodes,
    )


def solve(problem: FlowDigest, callees: Mapping[str, Interface]) -> tuple[list[Finding], Interface]:
    """J008 findings and the journey's interface, given its sub-journeys' interfaces."""
    known = _definitely_set(problem, callees)
    found: list[Finding] = []
    everywhere = _all_set(problem, callees)
    for node_id in problem.nodes:
        if node_id not in known:  # unreachable: J004 says so, its reads prove nothing
            continue
        here = known[node_id]
        found += _unset_reads(problem, callees, node_id, here, everywhere)
        found += _engine_names_set(problem, node_id)
        found += _inputs_not_passed(problem, callees, node_id, here)
    ends = [
        known[n] | set(node.end_defs)
        for n, node in problem.nodes.items()
        if node.kind == "end" and n in known
    ]
    exports = frozenset.intersection(*ends) if ends else frozenset()
    return found, Interface(frozenset(problem.required), exports)


def _returned(node: FlowNode, callees: Mapping[str, Interface]) -> frozenset[str]:
    """What a journey node adds once its sub-journey has returned: the inputs it passed and
    the sub-journey's exports (when known)."""
    if not node.call:
        return frozenset()
    known = callees.get(node.call)
    return (known.exports if known else frozenset()) | set(node.passed)


def _definitely_set(
    problem: FlowDigest, callees: Mapping[str, Interface]
) -> dict[str, frozenset[str]]:
    """For each reachable node, the names set on every path to it when it starts."""
    nodes = problem.nodes
    known: dict[str, frozenset[str]] = {}
    if problem.start not in nodes:
        return known
    known[problem.start] = frozenset(problem.inputs) | ENGINE_NAMES
    queue = deque([problem.start])
    while queue:
        node_id = queue.popleft()
        node = nodes[node_id]
        here = known[node_id]
        returned = _returned(node, callees)
        for target, defs, _via in node.edges:
            out = here.union(defs, returned)
            before = known.get(target)
            after = out if before is None else before & out
            if after != before:
                known[target] = after
                queue.append(target)
    return known


def _unset_reads(
    problem: FlowDigest,
    callees: Mapping[str, Interface],
    node_id: str,
    here: frozenset[str],
    everywhere: set[str],
) -> list[Finding]:
    """A read of a name that may be unset, once per name and node. A read ``after`` the node
    (its ``set``, its after actions) also sees what the node itself sets."""
    node = problem.nodes[node_id]
    if not node.reads:
        return []
    # A journey node's `set` applies once the sub-journey has returned.
    visible_after = here.union(node.own, node.end_defs, _returned(node, callees))
    found = []
    reported: set[str] = set()
    for name, phase, where, line, col in node.reads:
        if name in (visible_after if phase == "after" else here) or name in reported:
            continue
        reported.add(name)
        message = f"node {node_id!r}, {where}: reads {name!r}, which " + _why(
            problem, callees, node_id, name, everywhere
        )
        found.append(
            finding("J008", Loc(problem.file, line, col), message, problem.journey or None, node_id)
        )
    return found


def _engine_names_set(problem: FlowDigest, node_id: str) -> list[Finding]:
    """A node that sets a name the engine gives every journey (``identity``)."""
    node = problem.nodes[node_id]
    defined = {*node.own, *(d for _t, defs, _v in node.edges for d in defs)}
    return [
        finding(
            "J008",
            Loc(problem.file, node.line, node.column),
            f"node {node_id!r} sets {name!r}, a name the engine gives every journey "
            "(who the customer is proven to be) and journeys only read: name it otherwise",
            problem.journey or None,
            node_id,
        )
        for name in sorted(ENGINE_NAMES & defined)
    ]


def _inputs_not_passed(
    problem: FlowDigest, callees: Mapping[str, Interface], node_id: str, here: frozenset[str]
) -> list[Finding]:
    """A sub-journey's required input that is neither passed nor set on every path here."""
    node = problem.nodes[node_id]
    if not node.call or node.call not in callees:
        return []
    return [
        finding(
            "J008",
            Loc(problem.file, node.line, node.column),
            f"node {node_id!r} runs the sub-journey {node.call!r}, which needs the input "
            f"{name!r}; it is not set on every path here: pass it under 'input' or "
            "collect it before",
            problem.journey or None,
            node_id,
        )
        for name in sorted(callees[node.call].required - set(node.passed) - here)
    ]


def _all_set(problem: FlowDigest, callees: Mapping[str, Interface]) -> set[str]:
    names = set(problem.inputs) | ENGINE_NAMES
    for node in problem.nodes.values():
        names.update(node.own)
        for _t, defs, _v in node.edges:
            names.update(defs)
        names.update(node.end_defs)
        if node.call and node.call in callees:
            names |= callees[node.call].exports
    return names


def _why(
    problem: FlowDigest,
    callees: Mapping[str, Interface],
    target: str,
    name: str,
    everywhere: set[str],
) -> str:
    """Why ``name`` may be unset at ``target``: never set at all, or a path that misses it."""
    if name not in everywhere:
        return (
            f"is never set in this journey{did_you_mean(name, everywhere)}; declare it under "
            "'inputs', or set it with an 'ask', a 'choose', an action 'output' or 'set'"
        )
    path = _path_without(problem, callees, target, name)
    if not path:
        return "may not be set on some path to this node"
    return f"may not be set here: on the path {path} it is never set"


def _path_without(
    problem: FlowDigest, callees: Mapping[str, Interface], target: str, name: str
) -> str:
    """The shortest path from the start to ``target`` along which ``name`` is never set."""
    if name in problem.inputs or problem.start not in problem.nodes:
        return ""
    previous: dict[str, tuple[str, str] | None] = {problem.start: None}
    queue = deque([problem.start])
    while queue:
        node_id = queue.popleft()
        if node_id == target:
            break
        node = problem.nodes[node_id]
        called: set[str] = set()
        if node.call and node.call in callees:
            called = set(callees[node.call].exports) | set(node.passed)
        for next_id, defs, via in node.edges:
            if name in defs or name in called or next_id in previous:
                continue
            previous[next_id] = (node_id, via)
            queue.append(next_id)
    if target not in previous:
        return ""
    steps = [target]
    step = previous[target]
    while step is not None:
        node_id, via = step
        steps.append(
            f"{node_id} ({via})"
            if via in ("on_error", "on_failure", "on_denied", "else")
            or via.startswith(("branch", "option"))
            else node_id
        )
        step = previous[node_id]
    return " → ".join(reversed(steps))
