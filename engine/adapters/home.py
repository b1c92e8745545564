"""Where journeys keeps its data: the journeys home, one absolute folder for every process.

``JOURNEYS_HOME`` if set, else ``.journeys`` in the folder the command is run from, made
absolute here once: the session database, the demo back office, the embedded Prefect server's
data and the records of the background processes all live in it. Background processes (the
Prefect server, the action host, Prefect workers) run from other folders, so they are handed
the absolute home and back-office URL (``child_environment``): every executor then writes
the same back office, the one ``journeys backoffice show`` reads in the user's folder.

Standard library only: the demo back office (actions/backoffice.py) imports it without
importing the engine's frameworks.
"""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_HOME = ".journeys"
#: A back office nobody used for this long stops by itself (JOURNEYS_BACKOFFICE_IDLE_SECONDS).
DEFAULT_IDLE_SECONDS = 300.0


def journeys_home(base: str | os.PathLike[str] | None = None) -> Path:
    """The journeys home, absolute: ``base``, else ``JOURNEYS_HOME``, else ``./.journeys``."""
    chosen = base or os.environ.get("JOURNEYS_HOME") or DEFAULT_HOME
    return Path(chosen).expanduser().absolute()


def _absolute_sqlite(url: str) -> str:
    """A SQLite URL whose file is relative, made absolute: ``sqlite:///x.db`` names a file
    of the folder the command runs in, not of the background process's."""
    prefix = "sqlite:///"
    path = url[len(prefix) :] if url.startswith(prefix) else ""
    if not path or path.startswith("/") or path.startswith(":memory:"):
        return url
    file, sep, query = path.partition("?")
    return f"{prefix}{Path(file).absolute()}{sep}{query}"


def backoffice_url() -> str:
    """``JOURNEYS_BACKOFFICE_DB`` (a relative SQLite file made absolute), else the SQLite
    file ``backoffice.db`` in the journeys home."""
    configured = os.environ.get("JOURNEYS_BACKOFFICE_DB")
    if configured:
        return _absolute_sqlite(configured)
    return f"sqlite:///{journeys_home() / 'backoffice.db'}"


def sessions_url(base: str | None = None) -> str:
    """The default session database: ``sessions.db`` in the journeys home."""
    return f"sqlite:///{journeys_home(base) / 'sessions.db'}"


def idle_seconds() -> float:
    """``JOURNEYS_BACKOFFICE_IDLE_SECONDS`` (0: never stop by itself), else five minutes."""
    text = os.environ.get("JOURNEYS_BACKOFFICE_IDLE_SECONDS", "").strip()
    if not text:
        return DEFAULT_IDLE_SECONDS
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value >= 0 or value == float("inf"):
        raise ValueError(
            f"JOURNEYS_BACKOFFICE_IDLE_SECONDS={text!r} is not a number of seconds "
            "(e.g. 300; 0 keeps the back office running until `journeys prefect stop`)"
        )
    return value


def child_environment(
    base: str | os.PathLike[str] | None = None, extra: dict[str, str] | None = None
) -> dict[str, str]:
    """The environment of a background process: this one's, with the home and the back
    office pinned to absolute places (the process runs from another folder)."""
    env = dict(os.environ)
    env["JOURNEYS_HOME"] = str(journeys_home(base))
    env["JOURNEYS_BACKOFFICE_DB"] = backoffice_url()
    env.update(extra or {})
    return env
