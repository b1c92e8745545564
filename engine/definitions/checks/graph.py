"""J003 (node references), J004 (unreachable), J005 (no way out), J006 (nowhere to go)."""

from __future__ import annotations

import difflib
from typing import Any

from engine.definitions.findings import Finding, did_you_mean, finding
from engine.definitions.model import NEEDS_NEXT, Journey, Node


def check_graph(journey: Journey) -> list[Finding]:
    jid = journey.id or None
    found = _missing_start(journey, jid)
    graph, broken, references = _reference_graph(journey, jid)
    found += references
    found += _unreachable(journey, graph, jid)
    found += _no_way_out(journey, graph, broken, jid)
    return found


def _missing_start(journey: Journey, jid: str | None) -> list[Finding]:
    if not journey.start or journey.start in journey.nodes:
        return []
    return [
        finding(
            "J003",
            journey.at("start"),
            f"'start' names {journey.start!r}, which is not a node of this journey"
            f"{did_you_mean(journey.start, journey.nodes)}",
            jid,
        )
    ]


def _reference_graph(journey: Journey, jid: str | None) -> tuple[Any, set[str], list[Finding]]:
    """The journey as a graph of its nodes; the nodes with a reference to a missing node;
    and, node by node, the J003 of each such reference and the J006 of the node."""
    import networkx as nx  # 0.25 s to import: only paid when a journey is really analysed

    ids = journey.nodes
    graph = nx.DiGraph()
    graph.add_nodes_from(ids)
    broken: set[str] = set()
    found: list[Finding] = []
    for node in ids.values():
        for edge in node.edges():
            if edge.target in ids:
                graph.add_edge(node.id, edge.target)
                continue
            # Assume the misspelt target meant its closest node, so that a typo is one
            # J003, not also a J004 for the node it meant.
            meant = difflib.get_close_matches(edge.target, list(ids), n=1, cutoff=0.6)
            if meant:
                graph.add_edge(node.id, meant[0])
            broken.add(node.id)
            found.append(
                finding(
                    "J003",
                    edge.loc,
                    f"node {node.id!r}: {edge.via} goes to {edge.target!r}, which is not a node "
                    f"of this journey{did_you_mean(edge.target, ids)}",
                    jid,
                    node.id,
                )
            )
        found.extend(_nowhere_to_go(node, jid))
    return graph, broken, found


def _unreachable(journey: Journey, graph: Any, jid: str | None) -> list[Finding]:
    """J004: the nodes no path from the start leads to."""
    import networkx as nx

    if journey.start not in journey.nodes:
        return []
    reachable = nx.descendants(graph, journey.start) | {journey.start}
    return [
        finding(
            "J004",
            node.loc,
            f"node {node_id!r} can never be reached from the start ({journey.start!r}): "
            "no node leads to it; link it with a 'next' or remove it",
            jid,
            node_id,
        )
        for node_id, node in journey.nodes.items()
        if node_id not in reachable
    ]


def _no_way_out(journey: Journey, graph: Any, broken: set[str], jid: str | None) -> list[Finding]:
    """J005: the nodes from which no path reaches an end or a handoff, then the nodes that
    lack the 'next' their kind needs."""
    import networkx as nx

    ids = journey.nodes
    # Nodes that can reach an end, a handoff, or a broken reference (already reported J003).
    exits = {n for n, node in ids.items() if node.terminal} | broken
    can_finish: set[str] = set(exits)
    for n in exits:
        can_finish |= nx.ancestors(graph, n)
    found = []
    for node_id, node in ids.items():
        if node_id in can_finish or _lacks_next(node):
            continue
        loop = _loop_of(graph, node_id, can_finish)
        found.append(
            finding(
                "J005",
                node.loc,
                f"from node {node_id!r} there is no way to an end or a handoff"
                + (f" (every way from it stays among {loop})" if loop else "")
                + "; add a way out to an 'end' or 'handoff' node",
                jid,
                node_id,
            )
        )
    found += [
        finding(
            "J005",
            node.loc,
            f"node {node.id!r} ({node.kind}) has no 'next': the journey would stop here "
            "without an end; add 'next:' with the node that follows",
            jid,
            node.id,
        )
        for node in ids.values()
        if _lacks_next(node)
    ]
    return found


def _lacks_next(node: Node) -> bool:
    return node.kind in NEEDS_NEXT and not node.next


def _nowhere_to_go(node: Node, jid: str | None) -> list[Finding]:
    found = []
    if node.kind == "decide" and not node.otherwise:
        found.append(
            finding(
                "J006",
                node.loc,
                f"decide node {node.id!r} has no 'else': when no branch is true the journey "
                "would be stuck; add 'else:' with the node to go to",
                jid,
                node.id,
            )
        )
    if node.kind == "choose" and not node.next:
        for option in node.options:
            if not option.next:
                found.append(
                    finding(
                        "J006",
                        option.loc,
                        f"choose node {node.id!r}: option {option.value!r} has nowhere to go; "
                        "give the option a 'next', or the node a 'next' for all options",
                        jid,
                        node.id,
                    )
                )
    return found


def _loop_of(graph: object, node_id: str, can_finish: set[str]) -> str:
    """The nodes the trap cycle from ``node_id`` turns round, for the message."""
    import networkx as nx

    trapped = [n for n in nx.descendants(graph, node_id) | {node_id} if n not in can_finish]
    if len(trapped) <= 1:
        return ""
    return ", ".join(repr(n) for n in sorted(trapped)[:6]) + (" ..." if len(trapped) > 6 else "")


def looped_actions(journey: Journey) -> list[list[object]]:
    """The action nodes the journey can come back to after they succeeded: a path from the
    node's ``next`` leads to it again. ``[node, action, line, column, [the loop's nodes]]``.
    A way back through ``on_denied``, ``on_error`` or ``on_failure`` only is not a loop here:
    the action was not granted, or did not run, on it."""
    return _looped(journey, "action")


def looped_calls(journey: Journey) -> list[list[object]]:
    """The sub-journey calls the journey can come back to after they returned:
    ``[node, sub-journey, line, column, [the loop's nodes]]`` (what the sub-journey grants,
    each turn grants again)."""
    return _looped(journey, "journey")


def _looped(journey: Journey, kind: str) -> list[list[object]]:
    import networkx as nx

    graph = nx.DiGraph()
    graph.add_nodes_from(journey.nodes)
    for node in journey.nodes.values():
        for edge in node.edges():
            if edge.target in journey.nodes:
                graph.add_edge(node.id, edge.target)
    found: list[list[object]] = []
    for node in journey.nodes.values():
        what = node.action if kind == "action" else node.journey
        if node.kind != kind or not what or node.next not in journey.nodes:
            continue
        try:
            back = nx.shortest_path(graph, node.next, node.id)
        except nx.NetworkXNoPath:
            continue
        found.append([node.id, what, node.loc.line, node.loc.column, [node.id, *back]])
    return found
