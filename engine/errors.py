"""The runtime family of errors: what went wrong in a session, at which node and field.

Definition errors are findings (``engine.findings``); these are for a session that is running.
Each carries the HTTP-like status an adapter should use, so adapters map them without
knowing each class.
"""

from __future__ import annotations


class RuntimeProblem(Exception):
    """A runtime error of one session: what was wrong, at which node, and what would be right."""

    status = 422

    def __init__(self, message: str, node: str | None = None, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.node = node
        self.field = field


class InvalidAnswer(RuntimeProblem):
    """The answer does not fit the node; the session is unchanged."""


class MissingInput(RuntimeProblem):
    """Starting without a required input, with an unknown one, or one of the wrong type."""


class Conflict(RuntimeProblem):
    """The event does not apply to the session as it is now: another node is waiting, a stale
    sequence number, a finished session."""

    status = 409


class UnknownSession(RuntimeProblem):
    status = 404


class UnknownRun(RuntimeProblem):
    """No action run has this id."""

    status = 404


class JourneyHasErrors(RuntimeProblem):
    """The journey may not start: `journeys validate` finds errors in it (see
    ``engine.library.journey_errors``)."""

    status = 409


class StoreUnavailable(RuntimeProblem):
    """The session database cannot be reached or used just now (restarted, locked, full):
    try again. Says whether what was asked may have been saved."""

    status = 503


class NotReady(Exception):
    """A part the sessions need (the back office) is still starting: nothing was done or
    saved; the same request succeeds once it is ready. Not a failure of anything."""
