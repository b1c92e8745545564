"""A library as the runtime sees it: journeys by id, and pinned bundles of definitions.

A session is pinned to a *bundle*: the YAML sources of its journey and of every sub-journey it
can run, and the library's authority limits (``policies.yaml``), identified by the hash of their
content. The bundle is stored with the sessions, so editing or re-versioning a journey, or
changing a limit, never changes a session that is already running.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from engine.definitions import build
from engine.definitions.analyse import JOURNEY, MOTIVES, POLICIES, role_of
from engine.definitions.checks.actions import Catalogue
from engine.definitions.checks.schema import check_document
from engine.definitions.findings import Finding, did_you_mean, finding
from engine.definitions.libraryfiles import library_files, read_text
from engine.definitions.model import Journey, Loc, Motive, Policy, Trigger
from engine.definitions.validate import Options, validate
from engine.definitions.yamlsafe import YamlError, YamlMap, parse
from engine.definitions.yamlsafe import read_text as read_given_file
from engine.errors import DefinitionError


class LibraryError(DefinitionError):
    """A journey that cannot be found or used, with what would be right."""


@dataclass(frozen=True)
class Bundle:
    """A journey and its sub-journeys, pinned by the hash of their sources."""

    hash: str
    journey: str
    sources: Mapping[str, str]  # journey id -> YAML text; POLICY_SOURCE -> the limits' YAML

    @property
    def definitions(self) -> Mapping[str, Journey]:
        return _build(
            self.hash, tuple(sorted(i for i in self.sources.items() if i[0] != POLICY_SOURCE))
        )

    @property
    def policy(self) -> Policy | None:
        """The authority limits pinned with the bundle (None: the library had none)."""
        text = self.sources.get(POLICY_SOURCE)
        return None if text is None else _policy(text)

    @property
    def root(self) -> Journey:
        return self.definitions[self.journey]

    @classmethod
    def of(cls, journey: str, sources: Mapping[str, str]) -> Bundle:
        digest = hashlib.sha256(json.dumps(dict(sorted(sources.items()))).encode()).hexdigest()[:32]
        return cls(digest, journey, dict(sources))


#: The key of the policy file's text among a bundle's sources (never a journey id).
POLICY_SOURCE = "policies.yaml"


@lru_cache(maxsize=64)
def _policy(text: str) -> Policy:
    data = parse(text)
    if not isinstance(data, YamlMap):
        raise LibraryError("the stored authority limits (policies.yaml) are not a mapping")
    return build.build_policy(data, POLICY_SOURCE)


@lru_cache(maxsize=256)
def _build(_hash: str, sources: tuple[tuple[str, str], ...]) -> Mapping[str, Journey]:
    """Definitions from sources, built once per bundle per process."""
    found = {}
    for jid, text in sources:
        data = parse(text)
        if not isinstance(data, YamlMap):
            raise LibraryError(f"the stored definition of {jid!r} is not a journey")
        found[jid] = build.build_journey(data, f"{jid}.yaml")
    return found


class Library:
    """The journeys and motives of a library folder, read once."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.journeys: dict[str, Journey] = {}
        self.sources: dict[str, str] = {}
        self.files: dict[str, Path] = {}
        self.motives: dict[str, Motive] = {}
        self.triggers: tuple[Trigger, ...] = ()
        self.policy_file: Path | None = None
        self.policy_text: str | None = None  # pinned with every new session
        self.policy_problem: str | None = None  # why no session may start, if any
        # Bundles by journey: hashing the sources at every session start cost 4% of a step.
        self._bundles: dict[str, Bundle] = {}
        if not root.is_dir():
            raise LibraryError(f"the library folder {str(root)!r} does not exist")
        for rel in library_files(root):
            role = role_of(rel)
            path = root / rel
            if role == POLICIES:
                self._read_policy(path, rel)
                continue
            try:
                text = read_text(root, rel)
                data = parse(text)
            except YamlError:
                continue  # `journeys validate` reports it; the rest of the library still runs
            if not isinstance(data, YamlMap):
                continue
            if role == MOTIVES:
                self.motives = build.build_motives(data, rel)
                self.triggers = build.build_triggers(data, rel)
            elif role == JOURNEY:
                journey = build.build_journey(data, rel)
                if journey.id and journey.id not in self.journeys:
                    self.journeys[journey.id] = journey
                    self.sources[journey.id] = text
                    self.files[journey.id] = path

    def _read_policy(self, path: Path, rel: str) -> None:
        """The authority limits. A policy file that cannot be trusted stops new sessions
        rather than letting them run without limits (``journeys validate`` says why)."""
        if self.policy_file is not None:
            return  # policies.yaml before policies.yml
        self.policy_file = path
        try:
            text = read_text(self.root, rel)
            data = parse(text)
        except YamlError as err:
            self.policy_problem = f"{rel} cannot be read ({err.message})"
            return
        if not isinstance(data, YamlMap):
            self.policy_problem = f"{rel} holds no 'roles' mapping"
            return
        errors = check_document("policies", data, rel)
        if errors:
            self.policy_problem = f"{rel}:{errors[0].line}: {errors[0].message}"
            return
        self.policy_text = text

    def usable_policy(self) -> None:
        """Refuse (LibraryError) to start sessions under a policy file with errors."""
        if self.policy_problem is not None:
            raise LibraryError(
                f"the authority limits cannot be used: {self.policy_problem}; no session starts "
                "until it is fixed (run 'journeys validate')"
            )

    def find(self, name: str, paths: bool = False) -> Journey:
        """A journey by id, by motive id, or (with ``paths``: the command line, where the
        person names their own files) by the path of its file. Never a path from a request:
        that would read any YAML file of the server as a journey."""
        if name in self.journeys:
            return self.journeys[name]
        if name in self.motives and self.motives[name].journey in self.journeys:
            return self.journeys[self.motives[name].journey]
        path = Path(name)
        if paths and path.suffix in (".yaml", ".yml") and path.is_file():
            for jid, file in self.files.items():
                if file.resolve() == path.resolve():
                    return self.journeys[jid]
            return self.load_file(path)
        raise LibraryError(
            f"no journey or motive {name!r} in the library {str(self.root)!r}"
            f"{did_you_mean(name, [*self.journeys, *self.motives])}"
        )

    def load_file(self, path: Path) -> Journey:
        """A journey file named on the command line, maybe outside the library (its
        sub-journeys come from the library)."""
        try:
            text = read_given_file(path)
            data = parse(text)
        except YamlError as err:
            raise LibraryError(f"{path}: {err}") from None
        if not isinstance(data, YamlMap):
            raise LibraryError(f"{path} is not a journey file")
        journey = build.build_journey(data, str(path))
        self.journeys[journey.id] = journey
        self.sources[journey.id] = text
        self.files[journey.id] = path
        self._bundles.clear()  # a bundle may hold the journey it replaces
        return journey

    def bundle(self, journey_id: str) -> Bundle:
        """The journey, every sub-journey it can run and the authority limits, pinned
        together."""
        if journey_id not in self._bundles:
            self._bundles[journey_id] = self._make_bundle(journey_id)
        return self._bundles[journey_id]

    def _make_bundle(self, journey_id: str) -> Bundle:
        needed: dict[str, str] = {}
        todo = [journey_id]
        while todo:
            jid = todo.pop()
            if jid in needed:
                continue
            if jid not in self.journeys:
                raise LibraryError(f"the sub-journey {jid!r} is not in the library")
            needed[jid] = self.sources[jid]
            todo += [
                n.journey
                for n in self.journeys[jid].nodes.values()
                if n.kind == "journey" and n.journey
            ]
        if self.policy_text is not None:
            needed[POLICY_SOURCE] = self.policy_text
        return Bundle.of(journey_id, needed)

    def motive_of(self, journey_id: str) -> str | None:
        """The motive a session of the journey counts for: the journey's first, else the
        catalogue's first that points at it."""
        journey = self.journeys.get(journey_id)
        if journey and journey.motives:
            return journey.motives[0]
        return next((m.id for m in self.motives.values() if m.journey == journey_id), None)


def journey_errors(library: Library, catalogue: Catalogue) -> dict[str, list[Finding]]:
    """The journeys of ``library`` that must not start: for each, the errors `journeys
    validate` finds in the files it runs with (its own, its sub-journeys', the authority
    limits). A journey whose sub-journey is missing has that as its error."""
    report = validate([library.root], library.root, catalogue, Options())
    by_file: dict[Path, list[Finding]] = {}
    for f in report.errors:
        by_file.setdefault((library.root / f.file).resolve(), []).append(f)
    broken: dict[str, list[Finding]] = {}
    for journey_id, path in library.files.items():
        try:
            bundle = library.bundle(journey_id)
        except LibraryError as err:  # a sub-journey it calls is missing
            own = by_file.get(path.resolve())
            rel = str(path.relative_to(library.root) if path.is_relative_to(library.root) else path)
            broken[journey_id] = own or [finding("J003", Loc(rel, 1, 1), str(err), journey_id)]
            continue
        files = {library.files[j].resolve() for j in bundle.sources if j in library.files}
        if library.policy_file is not None:  # the authority limits the session runs under
            files.add(library.policy_file.resolve())
        errors = [f for file in sorted(files) for f in by_file.get(file, ())]
        if errors:
            broken[journey_id] = errors
    return broken


def refusals(library: Library, catalogue: Catalogue) -> dict[str, str]:
    """Why each journey with errors may not start, for a person: how many errors, and the
    first (file:line, code, message)."""
    reasons = {}
    for journey_id, errors in journey_errors(library, catalogue).items():
        first = errors[0]
        reasons[journey_id] = (
            f"the journey {journey_id!r} has {len(errors)} error(s), e.g. "
            f"{first.file}:{first.line}: {first.code} {first.message}; run 'journeys validate'"
        )
    return reasons
