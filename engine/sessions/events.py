"""What a session's step takes and gives: events (what happened to the session: it started,
an answer came, an action returned) and effects (what the outside world must do: run a
back-office action, read the customer's totals, run the post-contact actions).

Both are plain frozen records: :func:`engine.sessions.runtime.step` turns a session and an event into
a session and effects, and the service logs the events (:mod:`engine.sessions.event_log`) so that
replaying them rebuilds the session.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from engine.sessions.authority import Claim

#: Queue of a session handed off from an incident: the back office finishes it.
INCIDENT_QUEUE = "backoffice"

# ---------------------------------------------------------------------------- events


@dataclass(frozen=True)
class Start:
    inputs: Mapping[str, Any] = field(default_factory=dict)
    as_text: bool = False  # inputs typed on a command line or a query string
    role: str | None = None  # default: customer on the selfcare channel, agent otherwise
    actor: str | None = None
    #: The customer proven when the session starts ({customer_id, by}: a signed identity
    #: checked by the adapter, or the agent or event that started it for this customer).
    identity: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class Answer:
    node: str
    value: Any
    seq: int | None = None
    as_text: bool = False
    role: str | None = None  # None: the role (and actor) of the session so far
    actor: str | None = None


@dataclass(frozen=True)
class ActionDone:
    """An action's outcome: its result, a business ``error`` (with its ``code``) or a
    technical ``failure``; ``at`` (ISO date-time) dates an incident and its next retry."""

    node: str
    result: Mapping[str, Any] | None = None
    error: str | None = None
    attempts: int = 1
    run_id: str | None = None
    code: str | None = None
    failure: str | None = None
    at: str | None = None
    #: The customer this successful run proved (a one-time code checked), if any.
    verified: str | None = None


@dataclass(frozen=True)
class Reserved:
    """The customer's totals the store read, under its lock, for the ``Reserve`` of ``node``:
    param -> what the customer was granted over the period of that param's limit (the grant
    itself, when within the limits, is recorded by the store with them)."""

    node: str
    totals: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Retry:
    """Run the failed action of an incident again (an agent, or the retry loop)."""

    node: str | None = None


@dataclass(frozen=True)
class HandOff:
    """Give up on an incident for this contact: the session goes to a queue, escalated."""

    queue: str = INCIDENT_QUEUE
    reason: str | None = None


@dataclass(frozen=True)
class SurveyAnswer:
    ces: int | None = None
    nps: int | None = None


@dataclass(frozen=True)
class SkipSurvey:
    pass


@dataclass(frozen=True)
class Wake:
    """A session waiting at a node that goes on by itself (no answer: see ``Kind.wake`` in
    engine.sessions.steps) goes on: its time came (``data`` None), or what it waits for, with ``data``."""

    node: str
    data: Mapping[str, Any] | None = None


Event = Start | Answer | ActionDone | Reserved | Retry | HandOff | SurveyAnswer | SkipSurvey | Wake


# --------------------------------------------------------------------------- effects


@dataclass(frozen=True)
class RunAction:
    """Run a back-office action. With ``wait`` the session waits for an ActionDone."""

    node: str
    action: str
    input: Mapping[str, Any]
    wait: bool
    retries: int
    timeout: float | None
    key: str  # idempotency key: session, node, visit


@dataclass(frozen=True)
class Reserve:
    """Read the customer's totals for ``claims`` and record them as granted if they stay
    within their limits, atomically (``authority.customer_breach``); answer with Reserved.
    ``key`` (the action's idempotency key) makes a repeated reservation a no-op."""

    node: str
    action: str
    role: str
    customer_id: str
    session_id: str
    key: str
    claims: tuple[Claim, ...]


@dataclass(frozen=True)
class RunAfter:
    """A post-contact action, run in the background once the session has ended."""

    action: str
    input: Mapping[str, Any]
    key: str
    retries: int = 0  # tries again after a technical failure (the `after` entry's)


@dataclass(frozen=True)
class Ended:
    outcome: str


Effect = RunAction | Reserve | RunAfter | Ended
