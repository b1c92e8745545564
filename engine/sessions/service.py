"""Sessions as a service: the pure ``step`` wired to a store and an action executor.

Each event becomes one step and one record in the session's event log (:mod:`engine.sessions.event_log`),
saved together with the session in one transaction (the store's job), refused if another step
got there first. Actions that the journey waits for are run between two steps
(:mod:`engine.sessions.service_actions`). The service knows no SQL, no HTTP and no Prefect: those are
the store's and the executor's business (:mod:`engine.sessions.service_ports`).
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from typing import Any

from engine import clock
from engine.definitions.library import Bundle, Library
from engine.definitions.model import ROLES, Journey, Node
from engine.errors import Conflict, InvalidAnswer, JourneyHasErrors
from engine.sessions.authority import default_role
from engine.sessions.event_log import event_of, record_of, replay
from engine.sessions.identity import CUSTOMER, IdentityGate
from engine.sessions.memory_store import MemoryStore
from engine.sessions.rows import RecordedRun, WaitingSession
from engine.sessions.runtime import (
    Answer,
    Event,
    HandOff,
    Retry,
    Session,
    SkipSurvey,
    Start,
    SurveyAnswer,
    new_session,
    node_names,
    step,
)
from engine.sessions.service_actions import RUN_STATUSES, ActionRunner, run_record, run_status
from engine.sessions.service_ports import (
    ActionExecutor,
    ActionOutcome,
    GrantLedger,
    Records,
    Runs,
    SessionStore,
)
from engine.sessions.steps import takes_answers

# What the rest of the project imports from here (the ports, the log, the memory store).
__all__ = [
    "RUN_STATUSES",
    "ActionExecutor",
    "ActionOutcome",
    "GrantLedger",
    "MemoryStore",
    "Records",
    "Runs",
    "SessionStore",
    "Sessions",
    "event_of",
    "for_staff",
    "new_contact_code",
    "new_id",
    "node_at",
    "record_of",
    "replay",
    "run_record",
    "run_status",
]


class Sessions:
    def __init__(
        self,
        library: Library,
        store: SessionStore,
        executor: ActionExecutor,
        refused: Mapping[str, str] | None = None,
        gate: IdentityGate | None = None,
    ) -> None:
        self.library = library
        self.store = store
        # Runs the actions of the steps. Its gate says who may act on which customer's account
        # in self-care (engine.sessions.identity); a server always has one, built from the action
        # catalogue. None: no customer is held (a scenario, a simulation, a terminal run).
        self.actions = ActionRunner(store, executor, gate)
        # Journeys that may not start, with the reason: a server fills it from the validator
        # (engine.definitions.library.journey_errors), so that no entry point starts a journey with errors.
        self.refused: Mapping[str, str] = refused or {}

    @property
    def executor(self) -> ActionExecutor:
        return self.actions.executor

    @property
    def gate(self) -> IdentityGate | None:
        return self.actions.gate

    def start(
        self,
        journey: str,
        inputs: Mapping[str, Any] | None = None,
        *,
        channel: str | None = None,
        locale: str | None = None,
        contact_id: str | None = None,
        agent: str | None = None,
        actor: str | None = None,
        as_text: bool = False,
        session_id: str | None = None,
        motive: str | None = None,
        role: str | None = None,
        identity: Mapping[str, Any] | None = None,
    ) -> Session:
        """A new session of ``journey``; ``motive`` (default: the journey's first) is the
        motive it counts for, e.g. the one a proactive trigger names; ``identity`` the
        customer already proven ({customer_id, by}: see engine.sessions.identity), whose number then
        replaces any the inputs give."""
        definition = self.library.find(journey)
        if definition.id in self.refused:
            raise JourneyHasErrors(self.refused[definition.id])
        self.library.usable_policy()
        bundle = self.library.bundle(definition.id)
        self.store.save_bundle(bundle)
        given = dict(inputs or {})
        role = role or default_role(channel)
        customer = given.get("customer_id") if isinstance(given.get("customer_id"), str) else None
        if identity:
            customer = given["customer_id"] = str(identity["customer_id"])
        elif role == CUSTOMER:
            customer = None  # a number a self-care customer gives is theirs once proven
        session = new_session(
            session_id or new_id(),
            bundle.root,
            bundle.hash,
            locale=locale,
            channel=channel,
            contact_id=contact_id or new_contact_code(),
            customer_id=customer,
            agent=agent,
            motive=motive or self.library.motive_of(definition.id),
        )
        if locale and bundle.root.locales and locale not in bundle.root.locales:
            session.locale = bundle.root.locales[0]
        # The role is written down even when it is the channel's default: the log says who decided.
        begin = Start(given, as_text, role, actor, identity)
        started, effects = step(bundle.definitions, session, begin, policy=bundle.policy)
        first = (started.seq, {**_header(session, agent), **record_of(begin, actor, channel)})
        final, more, runs = self.actions.follow(bundle, started, effects)
        self.store.create(final, [first, *more], runs)
        return final

    def answer(
        self,
        session_id: str,
        node: str,
        value: Any,
        *,
        seq: int | None = None,
        actor: str | None = None,
        as_text: bool = False,
        role: str | None = None,
    ) -> Session:
        """Answer the waiting step; ``role`` and ``actor``, when given, say who performs it
        from now on (otherwise the session's role and actor go on)."""
        return self.apply(session_id, Answer(node, value, seq, as_text, role, actor), actor=actor)

    def survey(
        self,
        session_id: str,
        ces: int | None = None,
        nps: int | None = None,
        actor: str | None = None,
    ) -> Session:
        return self.apply(session_id, SurveyAnswer(ces, nps), actor=actor)

    def skip_survey(self, session_id: str, actor: str | None = None) -> Session:
        return self.apply(session_id, SkipSurvey(), actor=actor)

    def retry(self, session_id: str, actor: str | None = None) -> Session:
        """Run an incident's failed action again (same idempotency key): the session goes on
        where it was if it succeeds, or stays an incident with its next automatic retry."""
        return self.apply(session_id, Retry(), actor=actor)

    def hand_off(
        self, session_id: str, actor: str | None = None, queue: str | None = None
    ) -> Session:
        """Hand an incident's contact to a queue (default: the back office's) to finish."""
        event = HandOff(queue) if queue else HandOff()
        return self.apply(session_id, event, actor=actor)

    def retry_due(self, limit: int = 20) -> list[Session]:
        """Retry the incidents whose automatic retry is due (the server's loop calls this).
        A retry another process did first is skipped."""
        retried = []
        for session_id in self.store.due(clock.now_ms(), limit):
            try:
                retried.append(self.retry(session_id, actor="system"))
            except Conflict:
                continue  # another process retried it, or it moved on meanwhile
        return retried

    def rerun(self, run_id: int) -> tuple[RecordedRun, bool]:
        """Run a failed background action again (see :meth:`ActionRunner.rerun`)."""
        return self.actions.rerun(run_id)

    def apply(self, session_id: str, event: Event, actor: str | None = None) -> Session:
        session = self.store.load(session_id)  # ours alone: stepped in place
        expected, channel, visited = session.seq, session.channel, len(session.path)
        bundle = self.store.load_bundle(session.definition)
        after, effects = step(
            bundle.definitions, session, event, in_place=True, policy=bundle.policy
        )
        first = (after.seq, record_of(event, actor, channel))  # before _follow steps on
        final, more, runs = self.actions.follow(bundle, after, effects)
        self.store.append(final, [first, *more], expected, runs, visited)
        return final

    def resume(
        self,
        session_id: str,
        channel: str | None,
        actor: str | None = None,
        role: str | None = None,
    ) -> Session:
        """The same session, continued on another channel, with all its context; performed
        from now on by ``role`` (default: the channel's, customer in self-care, else agent)."""
        if role is not None and role not in ROLES:
            raise InvalidAnswer(f"{role!r} is not a role; the roles are {', '.join(ROLES)}")
        session = self.store.load(session_id)
        if session.finished:
            raise Conflict(
                f"session {session_id!r} has ended (outcome {session.outcome!r}); start a new one"
            )
        moved = Session.from_dict(session.to_dict())
        moved.channel = channel or session.channel
        moved.role = role or default_role(moved.channel)
        moved.actor = actor
        moved.seq += 1
        resumed = {
            "type": "resume",
            "channel": moved.channel,
            "from": session.channel,
            "role": moved.role,
            "actor": actor,
            "at": clock.now().isoformat(),
        }
        bundle = self.store.load_bundle(moved.definition)
        final, more, runs = self.actions.follow(bundle, moved, [])
        self.store.append(
            final, [(moved.seq, resumed), *more], session.seq, runs, len(session.path)
        )
        return final

    def get(self, session_id: str) -> Session:
        return self.store.load(session_id)

    def bundle_of(self, session: Session) -> Bundle:
        return self.store.load_bundle(session.definition)

    def open_for(self, customer_id: str, journey: str) -> list[Session]:
        """Unfinished sessions of this customer on this journey (to offer to resume)."""
        return self.store.open_sessions(customer_id, self.library.find(journey).id)

    def agent_queue(self, channel: str = "selfcare", limit: int = 100) -> list[WaitingSession]:
        """The sessions of ``channel`` waiting at a step the customer may not answer (its
        ``roles`` exclude ``customer``): handed to an agent, the longest waiting first.
        Candidates are the sessions at the library's agent-only steps, each then checked
        against the definitions it is pinned to."""
        definitions = self.library.journeys
        staff = sorted(
            {
                name
                for journey in definitions
                for name in node_names(definitions, journey)
                if for_staff(node_at(definitions, journey, name))
            }
        )
        if not staff:
            return []
        return [
            row
            for row in self.store.waiting_at(channel, staff, limit)
            if for_staff(
                node_at(
                    self.store.load_bundle(row["definition"]).definitions,
                    row["journey"],
                    row["node"],
                )
            )
        ]

    def drain(self, timeout: float = 300.0) -> list[ActionOutcome]:
        """Wait for the background runs and their records (a command does before it exits)."""
        return self.actions.drain(timeout)


def _header(session: Session, agent: str | None) -> dict[str, Any]:
    """What the first record holds beside the Start event: all that replay needs to rebuild
    the session from its events."""
    return {
        "id": session.id,
        "journey": session.journey,
        "version": session.version,
        "definition": session.definition,
        "locale": session.locale,
        "contact_id": session.contact_id,
        "customer_id": session.customer_id,
        "agent": agent,
        "motive": session.motive,
    }


_CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I: read out on the phone


def new_contact_code() -> str:
    """A short contact code a customer reads to an agent ("K7M2-Q9TX"): a lookup key for
    agents, not a credential (only agents may look contacts up)."""
    code = "".join(secrets.choice(_CODE_ALPHABET) for _ in range(8))
    return f"{code[:4]}-{code[4:]}"


def new_id(prefix: str = "s") -> str:
    """An unguessable id (it doubles as a bearer of the session for self-care)."""
    return f"{prefix}_{secrets.token_urlsafe(12)}"


def node_at(definitions: Mapping[str, Journey], journey: str, qualified: str) -> Node | None:
    """The node a qualified name (``identify/ask_id``) designates in ``journey``, if any."""
    *callers, local = qualified.split("/")
    current = definitions.get(journey)
    for name in callers:
        caller = current.nodes.get(name) if current else None
        if caller is None or caller.kind != "journey" or not caller.journey:
            return None
        current = definitions.get(caller.journey)
    return current.nodes.get(local) if current else None


def for_staff(node: Node | None) -> bool:
    """Whether ``node`` is a step the customer may not answer: it waits for an agent."""
    return node is not None and takes_answers(node) and "customer" not in node.roles
