"""Validate a library: every file on its own (cached by content, in parallel when many),
then the dataflow across sub-journeys, then the checks across files.

The cache works like a linter's: each file's local result is keyed by the file's content and
by an *environment* hash (the schemas, the action catalogue, the engine's own source, the
options). A journey's dataflow result is also keyed by the interfaces of the sub-journeys it
calls, so editing a sub-journey re-checks exactly the journeys that depend on it.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.definitions.analyse import JOURNEY, MOTIVES, POLICIES, SCENARIOS, analyse, role_of
from engine.definitions.checks.actions import Catalogue
from engine.definitions.checks.dataflow import FlowDigest, Interface, solve
from engine.definitions.checks.library import call_order, check_library
from engine.definitions.checks.policies import check_looped_limits
from engine.definitions.findings import ERROR, Finding, finding
from engine.definitions.libraryfiles import library_files, read_bytes
from engine.definitions.model import Loc
from engine.definitions.yamlsafe import MAX_FILE_BYTES, YamlError
from engine.errors import UsageError

CACHE_FORMAT = 1
CACHE_DIR_NAME = ".journeys_cache"
_PARALLEL_FROM = 48  # files to analyse before worker processes pay off


@dataclass
class Options:
    max_file_bytes: int = MAX_FILE_BYTES
    use_cache: bool = True
    cache_dir: Path | None = None  # default: default_cache_dir(library)
    jobs: int = 0  # 0: one per core
    progress: Callable[[int, int], None] | None = None


@dataclass
class Report:
    findings: list[Finding] = field(default_factory=list)
    files: int = 0
    analysed: int = 0  # files analysed afresh (not from the cache)

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == ERROR]

    @property
    def warnings(self) -> list[Finding]:
        return [f for f in self.findings if f.severity != ERROR]


def library_of(path: Path, default_library: Path) -> Path:
    """The library a file belongs to: the nearest folder above it with a motives.yaml."""
    defaults = {Path(os.path.abspath(default_library)), default_library.resolve()}
    for parent in path.parents:
        if (parent / "motives.yaml").is_file():
            return parent
        if parent in defaults:
            return parent
    return path.parent


def validate(
    paths: Sequence[Path], default_library: Path, catalogue: Catalogue, options: Options
) -> Report:
    """Validate folders (each a library) and files (within their library)."""
    libraries: dict[Path, set[Path] | None] = {}  # library -> files to report (None: all)
    for path in paths:
        if not os.path.lexists(path):
            raise UsageError(f"path {str(path)!r} does not exist")
        if path.is_dir():
            libraries[path.resolve()] = None
        else:  # a file is checked where it is written, not where a link points
            file = Path(os.path.abspath(path))
            library = library_of(file, default_library)
            chosen = libraries.setdefault(library, set())
            if chosen is not None:
                chosen.add(file)
    report = Report()
    for library, only in libraries.items():
        part = validate_library(library, catalogue, options)
        if only is not None:
            part.findings = [
                f for f in part.findings if Path(os.path.abspath(library / f.file)) in only
            ]
        report.findings += part.findings
        report.files += part.files
        report.analysed += part.analysed
    report.findings.sort(key=lambda f: (f.file, f.line, f.column, f.code, f.message))
    return report


def default_cache_dir(library: Path) -> Path:
    """``<library>/.journeys_cache``; for the library shipped with journeys, which lives in
    the install (or source) folder that a command never writes, the user's cache folder
    (``$XDG_CACHE_HOME``, else ``~/.cache``)."""
    from engine.definitions.shipped import SHIPPED_LIBRARY

    if library.resolve() != SHIPPED_LIBRARY:
        return library / CACHE_DIR_NAME
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    where = hashlib.blake2b(str(SHIPPED_LIBRARY).encode(), digest_size=6).hexdigest()
    return base / "journeys" / f"shipped-{where}"


def environment_key(catalogue: Catalogue, options: Options) -> str:
    """What every cached result depends on besides the file itself."""
    h = hashlib.blake2b(digest_size=16)
    h.update(f"{CACHE_FORMAT}:{options.max_file_bytes}".encode())
    engine_dir = Path(__file__).resolve().parents[1]  # all of engine/
    schema_dir = engine_dir.parent / "schemas"
    for source in sorted([*engine_dir.rglob("*.py"), *schema_dir.glob("*.json")]):
        h.update(source.name.encode())
        h.update(source.read_bytes())
    description = [
        [a.name, [[p.name, p.type, p.required, p.nullable] for p in a.params], list(a.output)]
        for a in catalogue.values()
    ]
    h.update(json.dumps(description, sort_keys=True).encode())
    return h.hexdigest()


def validate_library(library: Path, catalogue: Catalogue, options: Options) -> Report:
    files = library_files(library)
    env = environment_key(catalogue, options)
    cache_file = (options.cache_dir or default_cache_dir(library)) / "validate.json"
    cache = _load_cache(cache_file, env) if options.use_cache else {}
    entries, todo = _entries(library, files, cache, options.max_file_bytes)
    for rel, result in _analyse_all(todo, catalogue, options):
        entries[rel].update(result)

    findings = [Finding.from_dict(f) for e in entries.values() for f in e["findings"]]
    flow_findings, solved = _dataflow(entries)
    findings += flow_findings
    findings += _across_files(entries, catalogue)

    if options.use_cache and (todo or solved or set(cache) != set(entries)):
        _save_cache(cache_file, env, entries)
    return Report(findings=findings, files=len(files), analysed=len(todo))


def _entries(
    library: Path, files: Iterable[str], cache: Mapping[str, dict[str, Any]], max_bytes: int
) -> tuple[dict[str, dict[str, Any]], list[tuple[str, bytes]]]:
    """Each file's entry: from the cache when its content is unchanged, an early result
    when it cannot be read; and the files left to analyse, with their bytes."""
    entries: dict[str, dict[str, Any]] = {}
    todo: list[tuple[str, bytes]] = []
    for rel in files:
        data, digest, early = _read(library, rel, max_bytes)
        cached = cache.get(rel)
        if cached is not None and cached["hash"] == digest:
            entries[rel] = cached
        elif early is not None:
            entries[rel] = {"hash": digest, **early}
        else:
            todo.append((rel, data))
            entries[rel] = {"hash": digest}
    return entries, todo


def _across_files(entries: Mapping[str, dict[str, Any]], catalogue: Catalogue) -> list[Finding]:
    """The checks across files on the summaries of the files read, less the findings that
    are there only because another file could not be read."""
    journeys = {
        rel: e["summary"]
        for rel, e in entries.items()
        if e["role"] == JOURNEY and not e["summary"].get("unreadable")
    }
    unreadable = {
        e["summary"]["id"]
        for e in entries.values()
        if e["role"] == JOURNEY and e["summary"] and e["summary"].get("unreadable")
    }
    motive_entries = [(rel, e) for rel, e in entries.items() if e["role"] == MOTIVES]
    motives = None
    motives_unreadable = False
    if motive_entries:
        rel, e = motive_entries[0]
        motives_unreadable = bool(e["summary"] is None or e["summary"].get("unreadable"))
        motives = None if motives_unreadable else (rel, e["summary"])
    scenarios = {
        rel: e["summary"]
        for rel, e in entries.items()
        if e["role"] == SCENARIOS and e["summary"] and not e["summary"].get("unreadable")
    }
    untested_ok = {
        e["summary"]["id"]
        for e in entries.values()
        if e["role"] == SCENARIOS and e["summary"] and e["summary"].get("unreadable")
    }
    cross = check_library(journeys, motives, scenarios, catalogue, frozenset(unreadable))
    policy = next((e["summary"] for e in entries.values() if e["role"] == POLICIES), None)
    cross += check_looped_limits(journeys, policy)
    return [
        f
        for f in cross
        if not _caused_by_unreadable(f, unreadable, motives_unreadable, untested_ok)
    ]


def _caused_by_unreadable(
    f: Finding, unreadable: set[str], motives_unreadable: bool, untested_ok: set[str]
) -> bool:
    """A finding only there because another file could not be read (J001) is not reported."""
    if f.code in ("J003", "J010") and "not in the library" in f.message:
        return any(repr(jid) in f.message for jid in unreadable)
    if f.code == "J010" and motives_unreadable:
        return True
    return f.code == "W001" and f.journey in untested_ok


def _read(library: Path, rel: str, max_bytes: int) -> tuple[bytes, str, dict[str, Any] | None]:
    """The file's bytes and digest; an early result (one J001) when it is not read: too big,
    a link outside the library or a dangling one, not a file (engine/definitions/libraryfiles.py)."""
    try:
        data = read_bytes(library, rel, max_bytes)
    except YamlError as problem:
        early = {
            "role": role_of(rel),
            "findings": [finding("J001", Loc(rel), problem.message).to_dict()],
            "summary": {
                "unreadable": True,
                "id": Path(rel).name.split(".")[0],
                "journey": Path(rel).name.split(".")[0],
            },
            "problem": None,
        }
        digest = hashlib.blake2b(problem.message.encode(), digest_size=16).hexdigest()
        return b"", f"refused:{digest}", early
    return data, hashlib.blake2b(data, digest_size=16).hexdigest(), None


# ------------------------------------------------------------------------- analysis


_WORKER_CATALOGUE: Catalogue = {}


def _work(item: tuple[str, bytes]) -> tuple[str, dict[str, Any]]:
    rel, data = item
    return rel, analyse(data, rel, _WORKER_CATALOGUE)


def _analyse_all(
    todo: list[tuple[str, bytes]], catalogue: Catalogue, options: Options
) -> Iterable[tuple[str, dict[str, Any]]]:
    jobs = options.jobs or (os.cpu_count() or 1)
    total = len(todo)
    if jobs > 1 and total >= _PARALLEL_FROM and "fork" in _start_methods():
        import multiprocessing

        from engine.definitions.checks.schema import SCHEMA_NAMES, fast_validator

        global _WORKER_CATALOGUE
        _WORKER_CATALOGUE = catalogue  # inherited by the forked workers
        for name in SCHEMA_NAMES:
            fast_validator(name)  # compiled once here, inherited by the workers
        context = multiprocessing.get_context("fork")
        with context.Pool(jobs) as pool:
            for done, result in enumerate(pool.imap_unordered(_work, todo, chunksize=16), 1):
                _tick(options, done, total)
                yield result
        return
    for done, (rel, data) in enumerate(todo, 1):
        _tick(options, done, total)
        yield rel, analyse(data, rel, catalogue)


def _start_methods() -> list[str]:
    import multiprocessing

    return multiprocessing.get_all_start_methods()


def _tick(options: Options, done: int, total: int) -> None:
    if options.progress is not None and (done % 50 == 0 or done == total):
        options.progress(done, total)


def _dataflow(entries: dict[str, dict[str, Any]]) -> tuple[list[Finding], int]:
    """Solve each journey's dataflow after the sub-journeys it calls (J008)."""
    by_id: dict[str, str] = {}
    for rel, e in entries.items():
        summary = e.get("summary") or {}
        if e["role"] == JOURNEY and summary.get("id"):
            by_id.setdefault(summary["id"], rel)
    calls = {
        jid: {c[1] for c in entries[rel]["summary"].get("calls", [])} for jid, rel in by_id.items()
    }
    interfaces: dict[str, Interface] = {}
    found: list[Finding] = []
    solved = 0
    for jid in call_order(calls):
        entry = entries[by_id[jid]]
        if not entry.get("problem"):  # unreadable or not schema-clean: callers assume anything
            interfaces[jid] = _ANYTHING
            continue
        callees = {c: interfaces[c] for c in sorted(calls[jid]) if c in interfaces}
        key = hashlib.blake2b(
            json.dumps(
                {c: i.to_json() if i is not _ANYTHING else "*" for c, i in callees.items()}
            ).encode(),
            digest_size=12,
        ).hexdigest()
        flow = entry.get("flow")
        if flow is None or flow["key"] != key:
            problem = FlowDigest.from_json(json.loads(entry["problem"]))
            if any(i is _ANYTHING for i in callees.values()):
                everything = frozenset(r[0] for n in problem.nodes.values() for r in n.reads)
                callees = {
                    c: Interface(frozenset(), everything) if i is _ANYTHING else i
                    for c, i in callees.items()
                }
            flow_findings, interface = solve(problem, callees)
            flow = {
                "key": key,
                "findings": [f.to_dict() for f in flow_findings],
                "interface": interface.to_json(),
            }
            entry["flow"] = flow
            solved += 1
        interfaces[jid] = Interface.from_json(flow["interface"])
        found += [Finding.from_dict(f) for f in flow["findings"]]
    return found, solved


_ANYTHING = Interface(frozenset(), frozenset({"*"}))


# ---------------------------------------------------------------------------- cache


def _load_cache(path: Path, env: str) -> dict[str, dict[str, Any]]:
    try:
        with path.open(encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict) or data.get("env") != env:
        return {}
    files = data.get("files")
    return files if isinstance(files, dict) else {}


def _save_cache(path: Path, env: str, entries: Mapping[str, dict[str, Any]]) -> None:
    """Write the cache atomically; a read-only library simply goes without one."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        ignore = path.parent / ".gitignore"
        if not ignore.exists():
            ignore.write_text("# Written by journeys validate.\n*\n", encoding="utf-8")
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(
            json.dumps({"env": env, "files": entries}, separators=(",", ":")), encoding="utf-8"
        )
        tmp.replace(path)
    except OSError as err:
        print(f"journeys: cache not written ({err.strerror}): {path.parent}", file=sys.stderr)
