"""Scenario tests (``*.test.yaml``): drive a journey with given answers and stubbed actions,
compare what happened with what was expected, and measure node and edge coverage."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.definitions import build, libraryfiles
from engine.definitions.library import Bundle, Library, LibraryError
from engine.definitions.model import Journey, Scenario
from engine.definitions.yamlsafe import YamlError, YamlMap
from engine.errors import SessionError
from engine.sessions.runtime import (
    INCIDENT,
    SURVEY,
    WAITING,
    RunAction,
    RunAfter,
    Session,
    node_names,
    unambiguous,
)
from engine.sessions.service import ActionExecutor, ActionOutcome, MemoryStore, Sessions


class StubExecutor:
    """Actions answered from stubs by action name; others by ``fallback`` or with ``{}``."""

    def __init__(self, stubs: Mapping[str, Any], fallback: ActionExecutor | None = None) -> None:
        self.stubs = stubs
        self.fallback = fallback
        self.calls: list[tuple[str, Mapping[str, Any]]] = []

    def _outcome(self, action: str, inputs: Mapping[str, Any]) -> ActionOutcome | None:
        self.calls.append((action, dict(inputs)))
        if action not in self.stubs:
            return None
        stub = self.stubs[action]
        if isinstance(stub, Mapping) and set(stub) == {"failure"}:
            # A technical failure (the system down): an incident, or the node's on_failure.
            return ActionOutcome(failure=str(stub["failure"]))
        if isinstance(stub, Mapping) and "error" in stub and set(stub) <= {"error", "code"}:
            # The back office's business answer: the node's on_error, with last_error.code.
            code = str(stub["code"]) if stub.get("code") is not None else "refused"
            return ActionOutcome(error=str(stub["error"]), code=code)
        return ActionOutcome(result=dict(stub) if isinstance(stub, Mapping) else {"value": stub})

    def run(self, effect: RunAction, session: Session) -> ActionOutcome:
        outcome = self._outcome(effect.action, effect.input)
        if outcome is not None:
            return outcome
        return self.fallback.run(effect, session) if self.fallback else ActionOutcome(result={})

    def run_after(self, effect: RunAfter, session: Session) -> ActionOutcome:
        outcome = self._outcome(effect.action, effect.input)
        if outcome is not None:
            return outcome
        return (
            self.fallback.run_after(effect, session) if self.fallback else ActionOutcome(result={})
        )

    def drain(self) -> list[ActionOutcome]:
        return self.fallback.drain() if self.fallback else []


class AnswerBook:
    """Answers by node, as in scenarios and ``journeys run --answers``: a node id (qualified
    or bare), ``{each: [...]}`` for a node visited several times, ``survey: {ces, nps}``."""

    def __init__(self, answers: Mapping[str, Any]) -> None:
        self.answers = {k: v for k, v in answers.items() if k != "survey"}
        self.survey = answers.get("survey") if isinstance(answers.get("survey"), Mapping) else None
        self.used: dict[str, int] = {}

    def next_for(self, node: str, names: list[str] | None = None) -> tuple[bool, Any]:
        """The answer for ``node``; its bare id counts only when no other node of the
        session (``names``, its qualified node names) has that id."""
        bare = node.rsplit("/", 1)[-1]
        by_bare = bare in self.answers and (names is None or unambiguous(names, node))
        key = node if node in self.answers else bare if by_bare else None
        if key is None:
            return False, None
        value = self.answers[key]
        if (
            isinstance(value, Mapping)
            and set(value) == {"each"}
            and isinstance(value["each"], list)
        ):
            i = self.used.get(key, 0)
            if i >= len(value["each"]):
                return False, None
            self.used[key] = i + 1
            return True, value["each"][i]
        return True, value


def drive(
    sessions: Sessions,
    journey: str,
    inputs: Mapping[str, Any],
    book: AnswerBook,
    *,
    as_text: bool = False,
    channel: str | None = None,
    locale: str | None = None,
    role: str | None = None,
) -> Session:
    """Start a session and answer it from the book until it ends or waits for an unknown answer."""
    session = sessions.start(
        journey, inputs, channel=channel, locale=locale, as_text=as_text, role=role
    )
    return answer_until_stuck(sessions, session, book, as_text=as_text)


def answer_until_stuck(
    sessions: Sessions,
    session: Session,
    book: AnswerBook,
    *,
    as_text: bool = False,
    role: str | None = None,
    actor: str | None = None,
) -> Session:
    """Answer from the book; ``role``/``actor``, when given, perform every answer."""
    names = node_names(sessions.bundle_of(session).definitions, session.journey)
    for _ in range(10_000):
        if session.status == WAITING and session.node:
            found, value = book.next_for(session.node, names)
            if not found:
                return session
            session = sessions.answer(
                session.id, session.node, value, as_text=as_text, role=role, actor=actor
            )
        elif session.status == SURVEY:
            if book.survey:
                session = sessions.survey(
                    session.id, book.survey.get("ces"), book.survey.get("nps")
                )
            else:
                session = sessions.skip_survey(session.id)
        else:
            return session
    return session


# ------------------------------------------------------------------------ scenarios


@dataclass
class ScenarioResult:
    file: str
    journey: str
    name: str
    passed: bool
    differences: list[str] = field(default_factory=list)
    outcome: str | None = None
    status: str | None = None
    path: list[str] = field(default_factory=list)
    context: dict[str, Any] = field(default_factory=dict)


@dataclass
class Coverage:
    journey: str
    nodes: set[str]
    edges: set[tuple[str, str]]
    covered_nodes: set[str] = field(default_factory=set)
    covered_edges: set[tuple[str, str]] = field(default_factory=set)

    @property
    def node_share(self) -> float:
        return (
            100.0 * len(self.covered_nodes & self.nodes) / len(self.nodes) if self.nodes else 100.0
        )

    @property
    def edge_share(self) -> float:
        return (
            100.0 * len(self.covered_edges & self.edges) / len(self.edges) if self.edges else 100.0
        )

    @property
    def uncovered(self) -> list[str]:
        nodes = sorted(self.nodes - self.covered_nodes)
        edges = sorted(self.edges - self.covered_edges)
        return [f"node {n}" for n in nodes] + [f"edge {a} → {b}" for a, b in edges]


def scenario_files(library: Library, paths: Iterable[Path] = ()) -> list[Path]:
    """The ``*.test.yaml`` files of the library, or of the folders and files named: found as
    `journeys validate` finds files (linked folders not entered), read by :func:`load_file`."""
    chosen = list(paths) or [library.root]
    files: list[Path] = []
    for path in chosen:
        if path.is_dir():
            files += [path / rel for rel in libraryfiles.library_files(path, (".test.yaml",))]
        else:
            files.append(path)
    return files


def load_file(library: Library, path: Path) -> Any:
    """A scenario file's data, read as a library file: a link out of the library (or out of
    the folder of a file named outside it) is refused unread."""
    rel = libraryfiles.relative(library.root, path)
    if rel is None:
        return libraryfiles.load(path.parent, path.name)
    return libraryfiles.load(library.root, rel)


def run_file(library: Library, path: Path, coverage: dict[str, Coverage]) -> list[ScenarioResult]:
    rel = str(path)
    try:
        data = load_file(library, path)
    except YamlError as err:
        return [ScenarioResult(rel, "?", "(file)", False, [f"the file cannot be read: {err}"])]
    if not isinstance(data, YamlMap):
        return [ScenarioResult(rel, "?", "(file)", False, ["the file is not a scenario file"])]
    spec = build.build_scenarios(data, rel)
    results = []
    for scenario in spec.scenarios:
        results.append(run_scenario(library, spec.journey, scenario, rel, coverage))
    return results


@dataclass
class ScenarioRun:
    """The results of the scenarios run, and the coverage of the journeys they test."""

    results: list[ScenarioResult]
    coverage: dict[str, Coverage]

    @property
    def failed(self) -> list[ScenarioResult]:
        return [r for r in self.results if not r.passed]

    def below(self, minimum: float | None) -> list[Coverage]:
        """The journeys whose node or edge coverage is under ``minimum`` (%), if given."""
        if minimum is None:
            return []
        return [c for c in self.coverage.values() if min(c.node_share, c.edge_share) < minimum]


def run_scenarios(library: Library, paths: Iterable[Path] = ()) -> ScenarioRun:
    """Every scenario of the files and folders named (default: the library's)."""
    coverage = coverage_of(library)
    results = [
        result
        for path in scenario_files(library, paths)
        for result in run_file(library, path, coverage)
    ]
    return ScenarioRun(results, tested_coverage(library, coverage, results))


def tested_coverage(
    library: Library, coverage: Mapping[str, Coverage], results: Iterable[ScenarioResult]
) -> dict[str, Coverage]:
    """The coverage of the journeys the results test and of the sub-journeys those run:
    a journey no scenario reaches is not reported (running one file says nothing of the
    others)."""
    tested = {r.journey for r in results}
    return {
        j: c
        for j, c in coverage.items()
        if j in tested
        or any(j in library.bundle(t).sources for t in tested if t in library.journeys)
    }


def run_scenario(
    library: Library, journey: str, scenario: Scenario, file: str, coverage: dict[str, Coverage]
) -> ScenarioResult:
    result = ScenarioResult(file, journey, scenario.name, True)
    stubs = StubExecutor(scenario.actions)
    sessions = Sessions(library, MemoryStore(), stubs)
    answers = dict(scenario.answers)
    if scenario.survey:
        answers["survey"] = scenario.survey
    try:
        session = drive(
            sessions,
            journey,
            scenario.inputs,
            AnswerBook(answers),
            channel=scenario.channel,
            locale=scenario.locale,
            role=scenario.role,
        )
    except (SessionError, LibraryError) as err:
        result.passed = False
        result.differences.append(f"the session stopped with an error: {err.message}")
        return result
    result.outcome, result.status = session.outcome, session.status
    result.path, result.context = list(session.path), dict(session.context)
    bundle = sessions.bundle_of(session)
    _cover(bundle, session.path, coverage)
    result.differences = _differences(scenario, bundle, session)
    result.passed = not result.differences
    return result


def _differences(scenario: Scenario, bundle: Bundle, session: Session) -> list[str]:
    """What the session did that the scenario does not expect, in the scenario's terms."""
    differences = []
    expected_status = scenario.status or ("ended" if scenario.outcome else None)
    actual_status = _status(session)
    if scenario.status and actual_status != scenario.status:
        differences.append(
            f"status: expected {scenario.status!r}, the session is {actual_status}{_where(session)}"
        )
    elif scenario.outcome and session.outcome != scenario.outcome:
        differences.append(
            f"outcome: expected {scenario.outcome!r}, got {session.outcome!r}"
            + (
                f" ({actual_status if actual_status == 'waiting' else 'held'}{_where(session)})"
                if actual_status != "ended"
                else ""
            )
        )
    elif expected_status == "ended" and actual_status != "ended":
        differences.append(
            f"status: expected the session to end, it is {actual_status}{_where(session)}"
        )
    if scenario.node is not None and not _same_node(bundle, session, scenario.node):
        differences.append(
            f"node: expected the session at {scenario.node!r}, it is {actual_status}"
            + (_where(session) if session.node else "")
        )
    if scenario.path is not None and list(scenario.path) != session.path:
        differences.append(_path_difference(list(scenario.path), session.path))
    for key, want in scenario.context.items():
        if key not in session.context:
            differences.append(f"context: {key!r} expected {want!r}, but it is not set")
        elif not _subset(want, session.context[key]):
            differences.append(f"context: {key!r} expected {want!r}, got {session.context[key]!r}")
    return differences


def _status(session: Session) -> str:
    """The status a scenario expects: ended (a survey offered counts), waiting, or incident."""
    if session.status in ("ended", SURVEY):
        return "ended"
    return "incident" if session.status == INCIDENT else "waiting"


def _where(session: Session) -> str:
    if session.status == INCIDENT:
        held = session.incident or {}
        return f" at {session.node!r}: {held.get('action')} failed: {held.get('message')}"
    if session.node is None or session.status in ("ended", SURVEY):
        return f" (outcome {session.outcome!r})"
    return f" at {session.node!r}"


def _same_node(bundle: Bundle, session: Session, expected: str) -> bool:
    """Whether the session is at ``expected``: its qualified name, or its bare id when no
    other node of the session has it."""
    if session.node is None:
        return False
    if expected == session.node:
        return True
    names = node_names(bundle.definitions, session.journey)
    return expected == session.node.rsplit("/", 1)[-1] and unambiguous(names, session.node)


def _subset(want: Any, got: Any) -> bool:
    """Expected values match when equal; an expected mapping may be part of the actual one."""
    if isinstance(want, Mapping) and isinstance(got, Mapping):
        return all(k in got and _subset(v, got[k]) for k, v in want.items())
    if isinstance(want, bool) or isinstance(got, bool):
        return want is got
    return bool(want == got)


def _path_difference(want: list[str], got: list[str]) -> str:
    for i, (a, b) in enumerate(zip(want, got, strict=False)):
        if a != b:
            return f"path: differs at step {i + 1}: expected {a!r}, got {b!r}\n  expected: {want}\n  actual:   {got}"
    if len(want) > len(got):
        return f"path: stops after {len(got)} steps; expected next {want[len(got)]!r}\n  expected: {want}\n  actual:   {got}"
    return f"path: goes on after {len(want)} steps with {got[len(want)]!r}\n  expected: {want}\n  actual:   {got}"


# ------------------------------------------------------------------------- coverage


def coverage_of(library: Library) -> dict[str, Coverage]:
    result = {}
    for jid, journey in library.journeys.items():
        edges = {
            (e.source, e.target)
            for n in journey.nodes.values()
            for e in n.edges()
            if e.target in journey.nodes
        }
        result[jid] = Coverage(jid, set(journey.nodes), edges)
    return result


def _frame_journeys(bundle: Bundle, path: list[str]) -> dict[str, Journey]:
    """Prefix ("" or "identify/") -> the journey whose nodes carry that prefix."""
    frames = {"": bundle.root}
    for entry in path:
        prefix, _, _local = entry.rpartition("/")
        if not prefix or prefix + "/" in frames:
            continue
        parent_prefix, _, caller = prefix.rpartition("/")
        parent = frames.get(parent_prefix + "/" if parent_prefix else "")
        node = parent.nodes.get(caller) if parent else None
        if node is not None and node.journey and node.journey in bundle.definitions:
            frames[prefix + "/"] = bundle.definitions[node.journey]
    return frames


def _cover(bundle: Bundle, path: list[str], coverage: dict[str, Coverage]) -> None:
    frames = _frame_journeys(bundle, path)
    last: dict[str, str] = {}
    for entry in path:
        prefix, _, local = entry.rpartition("/")
        prefix = prefix + "/" if prefix else ""
        journey = frames.get(prefix)
        if journey is None or journey.id not in coverage:
            continue
        cov = coverage[journey.id]
        cov.covered_nodes.add(local)
        before = last.get(prefix)
        if before is not None:
            for a, b in _route(journey, before, local):
                cov.covered_edges.add((a, b))
                cov.covered_nodes.add(b)
        last[prefix] = local
        for deeper in [p for p in last if p.startswith(prefix) and p != prefix]:
            del last[deeper]


def _route(journey: Journey, start: str, end: str, depth: int = 0) -> list[tuple[str, str]]:
    """The edges from ``start`` to ``end``: direct, or through asks skipped on the way."""
    node = journey.nodes.get(start)
    if node is None or depth > 20:
        return []
    targets = [e.target for e in node.edges()]
    if end in targets:
        return [(start, end)]
    for target in targets:  # a skipped ask is not in the path: follow it
        hop = journey.nodes.get(target)
        if hop is not None and hop.kind == "ask" and hop.next:
            rest = _route(journey, target, end, depth + 1) if hop.next != end else [(target, end)]
            if rest:
                return [(start, target), *rest]
    return []
