"""The one tree of errors: everything journeys raises for a user to read.

Two families under :class:`JourneysError`:

- :class:`DefinitionError`: the library, a journey, a file, an expression, a scenario or an
  option cannot be used as written. Fixed by editing; ``journeys validate`` reports most of
  them as findings (``engine.definitions.findings``) before anything runs.
- :class:`SessionError`: a running session (or what it needs: the store, the back office,
  identity, limits) cannot do what was asked just now.

Each class carries what the adapters need, so no adapter lists classes: ``title`` and
``http_status`` for an HTTP problem detail (RFC 9457), ``exit_code`` for the CLI, and
``message`` (what was wrong, where, what would be right) for everyone. Lookup is by class, so
a subclass inherits its family's mapping and overrides only what differs.

The back office's own answers (``actions.registry.BusinessError``: no such order, not
refundable) are not in this tree: they are business outcomes a journey takes a path on, not
errors.
"""

from __future__ import annotations

from typing import ClassVar


class JourneysError(Exception):
    """Root of every error journeys raises on purpose."""

    title: ClassVar[str] = "Error"
    http_status: ClassVar[int] = 500
    exit_code: ClassVar[int] = 1

    def __init__(self, message: str = "", *args: object) -> None:
        super().__init__(message, *args)
        self.message = message or self.title


class DefinitionError(JourneysError):
    """The library, a journey or an option is wrong as written: fix it and try again."""

    title = "Invalid definition"
    http_status = 422
    exit_code = 1


class UsageError(DefinitionError):
    """A path or option that cannot be used (exit status 2, as click uses for usage)."""

    title = "Cannot use this"
    http_status = 400
    exit_code = 2


class SessionError(JourneysError):
    """A session cannot do what was asked: what was wrong, at which node, and what would be right."""

    title = "Cannot do this"
    http_status = 422
    exit_code = 1

    def __init__(
        self, message: str = "", node: str | None = None, field: str | None = None
    ) -> None:
        super().__init__(message)
        self.node = node
        self.field = field


class InvalidAnswer(SessionError):
    """The answer does not fit the node; the session is unchanged."""

    title = "Cannot answer"


class MissingInput(SessionError):
    """Starting without a required input, with an unknown one, or one of the wrong type."""

    title = "Cannot start"


class Conflict(SessionError):
    """The event does not apply to the session as it is now: another node is waiting, a stale
    sequence number, a finished session."""

    title = "Conflict"
    http_status = 409


class UnknownSession(SessionError):
    title = "Not found"
    http_status = 404


class UnknownRun(SessionError):
    """No action run has this id."""

    title = "Not found"
    http_status = 404


class JourneyHasErrors(SessionError):
    """The journey may not start: `journeys validate` finds errors in it (see
    ``engine.definitions.library.journey_errors``)."""

    title = "Cannot start"
    http_status = 409


class Unavailable(SessionError):
    """A part the sessions need cannot be reached or used just now: an outage, shown as one.
    Try again; never a business answer."""

    title = "Service unavailable"
    http_status = 503
    exit_code = 1  # what the CLI has always answered for a store, Prefect or Graphviz down


class StoreUnavailable(Unavailable):
    """The session database cannot be reached or used just now (restarted, locked, full):
    try again. Says whether what was asked may have been saved."""


class NotReady(Unavailable):
    """A part the sessions need (the back office) is still starting: nothing was done or
    saved; the same request succeeds once it is ready. Not a failure of anything."""
