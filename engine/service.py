"""Sessions as a service: the pure ``step`` wired to a store and an action executor.

Each event becomes one step and one record in the session's event log, saved together with the
session in one transaction (the store's job), refused if another step got there first. Actions
that the journey waits for are run by the executor between two steps. The service knows no SQL,
no HTTP and no Prefect: those are the store's and the executor's business.
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, Protocol

from engine import clock
from engine.authority import customer_breach, default_role
from engine.errors import Conflict, InvalidAnswer, JourneyHasErrors, UnknownRun, UnknownSession
from engine.identity import CUSTOMER, UNVERIFIED, IdentityGate
from engine.library import Bundle, Library
from engine.model import ROLES, Journey, Node
from engine.runtime import (
    INCIDENT,
    ActionDone,
    Answer,
    Effect,
    Event,
    HandOff,
    Reserve,
    Reserved,
    Retry,
    RunAction,
    RunAfter,
    Session,
    SkipSurvey,
    Start,
    SurveyAnswer,
    new_session,
    node_names,
    step,
)

# ------------------------------------------------------------------------------ ports

#: The events of one call, each with the session's sequence number after it.
Records = Sequence[tuple[int, Mapping[str, Any]]]
#: The action runs of one call (session, node, action, key, mode, status, attempts, run id...).
Runs = Sequence[Mapping[str, Any]]


class GrantLedger(Protocol):
    """What each customer was granted, per action and parameter, and when: the totals that
    ``per_customer`` limits bound."""

    def reserve(self, request: Reserve) -> dict[str, float]:
        """Atomically, against every other session of any process: the customer's totals
        (param -> sum granted over each bounded claim's period, counted back from now), and,
        when ``authority.customer_breach`` finds them within every limit, the claims recorded
        as granted now. A request whose key was recorded already returns the totals it was
        granted on, and records nothing more (a step done again after a crash)."""

    def release(self, key: str) -> None:
        """The back office refused the action of the reservation ``key`` (a business error):
        its amounts no longer count in the customer's totals (they stay on record)."""


class SessionStore(GrantLedger, Protocol):
    def save_bundle(self, bundle: Bundle) -> None: ...
    def load_bundle(self, digest: str) -> Bundle: ...
    def create(self, session: Session, records: Records, runs: Runs = ()) -> None: ...
    def append(
        self,
        session: Session,
        records: Records,
        expected_seq: int,
        runs: Runs = (),
        visited_from: int | None = None,
    ) -> None:
        """Save the session and its new event at once; Conflict if its seq moved on.
        ``visited_from``: the length of its path before the step (the rest was visited now)."""

    def load(self, session_id: str) -> Session: ...
    def events(self, session_id: str) -> list[dict[str, Any]]: ...
    def open_sessions(self, customer_id: str, journey: str) -> list[Session]: ...
    def contact_sessions(self, contact_id: str) -> list[Session]:
        """The sessions of a contact, the newest first."""

    def waiting_at(self, channel: str, nodes: Sequence[str], limit: int) -> list[dict[str, Any]]:
        """The sessions of ``channel`` waiting at one of ``nodes``, the longest waiting first:
        ``id, journey, definition, node, contact_id, customer_id, waiting_since`` (ISO text)."""

    def due(self, now_ms: int, limit: int) -> list[str]:
        """The ids of the sessions due to go on by themselves (an incident's next retry)."""

    def record_run(self, run: Mapping[str, Any]) -> None: ...
    def runs(self, session_id: str) -> list[dict[str, Any]]: ...
    def failed_runs(self, session_id: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        """The background runs whose last run failed, the newest first, each with its ``id``
        and ``at`` (ISO text)."""

    def run(self, run_id: int) -> dict[str, Any] | None:
        """One action run by its id, with ``id`` and ``at``."""


@dataclass(frozen=True)
class ActionOutcome:
    """What an action run came to: a result, a business error (``error`` with its ``code``:
    the back office's answer), or a technical ``failure`` (down, timed out, crashed)."""

    result: Mapping[str, Any] | None = None
    error: str | None = None
    code: str | None = None
    failure: str | None = None
    attempts: int = 1
    run_id: str | None = None
    #: A run still going on in the background (wait: false, post-contact): it resolves to
    #: the final ActionOutcome.
    pending: Future[ActionOutcome] | None = None


class ActionExecutor(Protocol):
    def run(self, effect: RunAction, session: Session) -> ActionOutcome: ...
    def run_after(self, effect: RunAfter, session: Session) -> ActionOutcome: ...
    def drain(self) -> list[ActionOutcome]:
        """Wait for the runs still going on in the background; their final outcomes."""


# ----------------------------------------------------------------------- event records


def record_of(event: Event, actor: str | None = None, channel: str | None = None) -> dict[str, Any]:
    """An event as it is logged: plain data, enough to replay the session."""
    data: dict[str, Any]
    if isinstance(event, Start):
        data = {
            "type": "start",
            "inputs": dict(event.inputs),
            "as_text": event.as_text,
            "role": event.role,
        }
        if event.identity:
            data["identity"] = dict(event.identity)
    elif isinstance(event, Answer):
        data = {
            "type": "answer",
            "node": event.node,
            "value": event.value,
            "as_text": event.as_text,
            "role": event.role,
        }
    elif isinstance(event, ActionDone):
        data = {
            "type": "action",
            "node": event.node,
            "result": event.result,
            "error": event.error,
            "attempts": event.attempts,
            "run_id": event.run_id,
        }
        if event.code is not None:
            data["code"] = event.code
        if event.failure is not None:
            data["failure"] = event.failure
            data["failed_at"] = event.at
        if event.verified is not None:
            data["verified"] = event.verified
    elif isinstance(event, Reserved):
        data = {"type": "authority", "node": event.node, "totals": dict(event.totals)}
    elif isinstance(event, Retry):
        data = {"type": "retry", "node": event.node}
    elif isinstance(event, HandOff):
        data = {"type": "handoff", "queue": event.queue, "reason": event.reason}
    elif isinstance(event, SurveyAnswer):
        data = {"type": "survey", "ces": event.ces, "nps": event.nps}
    else:
        data = {"type": "skip_survey"}
    data["actor"] = actor
    data["channel"] = channel
    data["at"] = clock.now().isoformat()
    return data


def event_of(record: Mapping[str, Any]) -> Event | None:
    """The runtime event a log record replays (None for records that only annotate)."""
    kind = record["type"]
    if kind == "start":
        return Start(
            record["inputs"],
            record.get("as_text", False),
            record.get("role"),
            record.get("actor"),
            record.get("identity"),
        )
    if kind == "answer":
        return Answer(
            record["node"],
            record["value"],
            None,
            record.get("as_text", False),
            record.get("role"),
            record.get("actor"),
        )
    if kind == "action":
        return ActionDone(
            record["node"],
            record.get("result"),
            record.get("error"),
            record.get("attempts", 1),
            record.get("run_id"),
            record.get("code"),
            record.get("failure"),
            record.get("failed_at"),
            record.get("verified"),
        )
    if kind == "authority":
        return Reserved(record["node"], record.get("totals") or {})
    if kind == "retry":
        return Retry(record.get("node"))
    if kind == "handoff":
        return HandOff(record.get("queue") or HandOff.queue, record.get("reason"))
    if kind == "survey":
        return SurveyAnswer(record.get("ces"), record.get("nps"))
    if kind == "skip_survey":
        return SkipSurvey()
    return None


def replay(
    bundle: Bundle,
    header: Mapping[str, Any],
    records: list[dict[str, Any]],
    effects: list[Effect] | None = None,
) -> Session:
    """Rebuild a session from its event log alone; ``effects``, when given, receives what
    each step asked for (the actions run, with the inputs they were given then)."""
    details = {
        k: header.get(k)
        for k in ("locale", "channel", "contact_id", "customer_id", "agent", "motive")
    }
    session = new_session(header["id"], bundle.root, bundle.hash, **details)
    for record in records:
        if record["type"] == "resume":
            session.channel = record.get("channel")
            if "role" in record:
                session.role, session.actor = record["role"], record.get("actor")
            session.seq += 1
            continue
        event = event_of(record)
        if event is not None:
            session, more = step(bundle.definitions, session, event, policy=bundle.policy)
            if effects is not None:
                effects += more
    return session


# ---------------------------------------------------------------------------- service


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
        self.executor = executor
        # Who may act on which customer's account in self-care (engine.identity); a server
        # always has one, built from the action catalogue. None: no customer is held (a
        # scenario, a simulation, a terminal run by the operator).
        self.gate = gate
        # Journeys that may not start, with the reason: a server fills it from the validator
        # (engine.library.journey_errors), so that no entry point starts a journey with errors.
        self.refused: Mapping[str, str] = refused or {}
        self._recording: list[threading.Event] = []

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
        customer already proven ({customer_id, by}: see engine.identity), whose number then
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
        # The first record holds all that replay needs to rebuild the session from its events.
        header = {
            "id": session.id,
            "journey": session.journey,
            "version": session.version,
            "definition": bundle.hash,
            "locale": session.locale,
            "contact_id": session.contact_id,
            "customer_id": session.customer_id,
            "agent": agent,
            "motive": session.motive,
        }
        # The role is written down even when it is the channel's default: the log says who decided.
        begin = Start(given, as_text, role, actor, identity)
        started, effects = step(bundle.definitions, session, begin, policy=bundle.policy)
        first = (started.seq, {**header, **record_of(begin, actor, channel)})
        final, more, runs = self._follow(bundle, started, effects, actor)
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

    def rerun(self, run_id: int) -> tuple[dict[str, Any], bool]:
        """Run a failed background action (``wait: false``, ``after``) again, with the inputs
        it had then and the same idempotency key: a refund that did go through the first time
        is not made twice. (The run record afterwards, whether it was run now.) A run that has
        succeeded since is not run again."""
        run = self.store.run(run_id)
        if run is None:
            raise UnknownRun(
                f"there is no action run {run_id}; `journeys runs --failed` lists them"
            )
        if run["status"] == "succeeded":
            return run, False
        if run["mode"] not in ("background", "after"):
            raise Conflict(
                f"run {run_id} ({run['action']}) is a step the session waited for: retry its "
                f"session instead (journeys run --session {run['session_id']}, or Retry in the "
                "console)"
            )
        if run["status"] != "failed":
            raise Conflict(
                f"run {run_id} ({run['action']}) was refused by the back office "
                f"({run.get('error')}): a business answer, which running it again would not change"
            )
        effect = self._effect_of(run["session_id"], run["key"])
        session = self.store.load(run["session_id"])
        if isinstance(effect, RunAction):
            outcome = self.executor.run(replace(effect, wait=True), session)
        else:
            outcome = self.executor.run_after(effect, session)
        if outcome.pending is not None:  # an executor that always runs these in the background
            outcome = outcome.pending.result()
        self.store.record_run(
            _run(run["session_id"], run["node"], run["action"], run["key"], run["mode"], outcome)
        )
        return self.store.run(run_id) or run, True

    def _effect_of(self, session_id: str, key: str) -> RunAction | RunAfter:
        """The action a step of the session asked for under ``key``, from its event log: the
        same inputs as then, whatever the context holds now."""
        records = self.store.events(session_id)
        if not records:
            raise UnknownSession(f"no session {session_id!r}")
        bundle = self.store.load_bundle(self.store.load(session_id).definition)
        effects: list[Effect] = []
        replay(bundle, records[0], records, effects)
        for effect in effects:
            if isinstance(effect, RunAction | RunAfter) and effect.key == key:
                return effect
        raise Conflict(
            f"the session {session_id!r} never asked for the action run {key!r} (its log and "
            "its runs disagree); nothing was run"
        )

    def apply(self, session_id: str, event: Event, actor: str | None = None) -> Session:
        session = self.store.load(session_id)  # ours alone: stepped in place
        expected, channel, visited = session.seq, session.channel, len(session.path)
        bundle = self.store.load_bundle(session.definition)
        after, effects = step(
            bundle.definitions, session, event, in_place=True, policy=bundle.policy
        )
        first = (after.seq, record_of(event, actor, channel))  # before _follow steps on
        final, more, runs = self._follow(bundle, after, effects, actor)
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
        final, more, runs = self._follow(bundle, moved, [], actor)
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

    def agent_queue(self, channel: str = "selfcare", limit: int = 100) -> list[dict[str, Any]]:
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

    def _follow(
        self, bundle: Bundle, session: Session, effects: list[Effect], actor: str | None
    ) -> tuple[Session, list[tuple[int, dict[str, Any]]], list[dict[str, Any]]]:
        """Run what the step asked for (the actions the session waits for, then post-contact
        ones) and return the session with the events and action runs to save with it, in one
        transaction.

        Saving the answer and the results of the actions it ran together is safe because
        each action carries an idempotency key: if this process dies before the save, the
        answer is given again and the back office recognises the repeated action. Runs in
        the background are recorded when they finish.
        """
        pending = list(effects)
        records: list[tuple[int, dict[str, Any]]] = []
        runs: list[dict[str, Any]] = []
        while pending:
            effect = pending.pop(0)
            if isinstance(effect, RunAction):
                outcome = self._run(effect, session)
                mode = "wait" if effect.wait else "background"
                if not effect.wait:
                    self._record_later(
                        session.id, effect.node, effect.action, effect.key, mode, outcome, runs
                    )
                    continue
                if outcome.error is not None and outcome.failure is None:
                    self._release(bundle, effect)
                tries = int((session.incident or {}).get("tries", 0))
                record_key = effect.key if not tries else f"{effect.key}~{tries + 1}"
                runs.append(_run(session.id, effect.node, effect.action, record_key, mode, outcome))
                event = ActionDone(
                    effect.node,
                    outcome.result,
                    outcome.error,
                    outcome.attempts,
                    outcome.run_id,
                    outcome.code,
                    outcome.failure,
                    clock.now().isoformat() if outcome.failure is not None else None,
                    self._proven(effect, outcome),
                )
                session, more = step(
                    bundle.definitions, session, event, in_place=True, policy=bundle.policy
                )
                records.append((session.seq, record_of(event, "system", session.channel)))
                pending += more
            elif isinstance(effect, Reserve):
                # Before the action runs: of two sessions of one customer at once, the one
                # the store serves second sees the first one's grant.
                reserved = Reserved(effect.node, self.store.reserve(effect))
                session, more = step(
                    bundle.definitions, session, reserved, in_place=True, policy=bundle.policy
                )
                records.append((session.seq, record_of(reserved, "system", session.channel)))
                pending += more
            elif isinstance(effect, RunAfter):
                refusal = self._held(effect.action, effect.input, session)
                outcome = (
                    ActionOutcome(error=refusal, code=UNVERIFIED)
                    if refusal
                    else self.executor.run_after(effect, session)
                )
                self._record_later(
                    session.id, "after", effect.action, effect.key, "after", outcome, runs
                )
        return session, records, runs

    def _run(self, effect: RunAction, session: Session) -> ActionOutcome:
        """Run an action, unless it would act on an account the customer has not proven is
        theirs: then the back office is not reached and the journey gets the business error
        ``unverified`` (its on_error path), recorded like any refusal."""
        refusal = self._held(effect.action, effect.input, session)
        if refusal:
            return ActionOutcome(error=refusal, code=UNVERIFIED)
        return self.executor.run(effect, session)

    def _held(self, action: str, inputs: Mapping[str, Any], session: Session) -> str | None:
        if self.gate is None:
            return None
        return self.gate.refusal(session.role, session.identity, action, inputs)

    def _proven(self, effect: RunAction, outcome: ActionOutcome) -> str | None:
        if self.gate is None or outcome.error is not None or outcome.failure is not None:
            return None
        return self.gate.proven(effect.action, effect.input, outcome.result)

    def _release(self, bundle: Bundle, effect: RunAction) -> None:
        """A refused action gave nothing: what it reserved of its customer's totals goes back
        (a technical failure keeps it: the action may have been done, and is retried)."""
        policy = bundle.policy
        if policy is not None and policy.counted_per_customer(effect.action):
            self.store.release(effect.key)

    def _record_later(
        self,
        session_id: str,
        node: str,
        action: str,
        key: str,
        mode: str,
        outcome: ActionOutcome,
        runs: list[dict[str, Any]],
    ) -> None:
        """A background run is recorded when it ends; one that already ended, with the step."""
        future = outcome.pending
        if future is None:
            runs.append(_run(session_id, node, action, key, mode, outcome))
            return
        store = self.store
        recorded = threading.Event()
        self._recording.append(recorded)

        def done(f: Future[ActionOutcome]) -> None:
            try:
                error = f.exception()
                final = f.result() if error is None else ActionOutcome(failure=str(error))
                store.record_run(_run(session_id, node, action, key, mode, final))
            finally:
                recorded.set()

        future.add_done_callback(done)

    def drain(self, timeout: float = 300.0) -> list[ActionOutcome]:
        """Wait for the background runs and their records (a command does before it exits)."""
        outcomes = self.executor.drain()
        for recorded in self._recording:
            recorded.wait(timeout)
        self._recording.clear()
        return outcomes


#: What an action run came to, as recorded: succeeded, refused (a business error: the back
#: office's answer) or failed (a technical failure: an incident, or a background run to redo).
RUN_STATUSES = ("succeeded", "refused", "failed")


def run_status(outcome: ActionOutcome) -> str:
    if outcome.failure is not None:
        return "failed"
    return "refused" if outcome.error is not None else "succeeded"


def _run(
    session_id: str, node: str, action: str, key: str, mode: str, outcome: ActionOutcome
) -> dict[str, Any]:
    return {
        "session_id": session_id,
        "node": node,
        "action": action,
        "key": key,
        "mode": mode,
        "status": run_status(outcome),
        "attempts": outcome.attempts,
        "run_id": outcome.run_id,
        "error": outcome.failure or outcome.error,
        "result": dict(outcome.result) if outcome.result is not None else None,
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
    return node is not None and node.kind in ("ask", "choose") and "customer" not in node.roles


# ---------------------------------------------------------------------- memory store


class MemoryStore:
    """Sessions in a dict: for scenario tests, the in-memory benchmark and tests."""

    def __init__(self) -> None:
        self.bundles: dict[str, Bundle] = {}
        self.sessions: dict[str, dict[str, Any]] = {}
        self.logs: dict[str, list[dict[str, Any]]] = {}
        self.action_runs: list[dict[str, Any]] = []
        #: The grant ledger: {key, customer_id, action, param, amount, before, role,
        #: session_id, node, at}.
        self._granted: list[dict[str, Any]] = []
        self._ledger_lock = threading.Lock()
        self._run_ids = 0

    def _stamped(self, runs: Runs) -> list[dict[str, Any]]:
        stamped = []
        for run in runs:
            self._run_ids += 1
            stamped.append({**run, "id": self._run_ids, "at": clock.now().isoformat()})
        return stamped

    def save_bundle(self, bundle: Bundle) -> None:
        self.bundles.setdefault(bundle.hash, bundle)

    def granted(self, customer_id: str) -> list[dict[str, Any]]:
        """The grant ledger's rows of one customer, the oldest first."""
        return [dict(r) for r in self._granted if r["customer_id"] == customer_id]

    def release(self, key: str) -> None:
        with self._ledger_lock:
            for row in self._granted:
                if row["key"] == key and row["released"] is None:
                    row["released"] = clock.now()

    def reserve(self, request: Reserve) -> dict[str, float]:
        with self._ledger_lock:  # threads of one process: the one place totals are read
            done = [r for r in self._granted if r["key"] == request.key]
            if done:
                return {r["param"]: r["before"] for r in done if r["before"] is not None}
            now = clock.now()
            totals = {
                c.param: round(
                    sum(
                        r["amount"]
                        for r in self._granted
                        if (r["customer_id"], r["action"], r["param"])
                        == (request.customer_id, request.action, c.param)
                        and r["at"] > now - timedelta(seconds=c.over_s or 0)
                        and r["released"] is None
                    ),
                    9,
                )
                for c in request.claims
                if c.max is not None
            }
            if customer_breach(request.claims, totals) is None:
                self._granted += [
                    {
                        "key": request.key,
                        "customer_id": request.customer_id,
                        "action": request.action,
                        "param": c.param,
                        "amount": c.amount,
                        "before": totals.get(c.param),
                        "role": request.role,
                        "session_id": request.session_id,
                        "node": request.node,
                        "at": now,
                        "released": None,
                    }
                    for c in request.claims
                ]
            return totals

    def load_bundle(self, digest: str) -> Bundle:
        return self.bundles[digest]

    def create(self, session: Session, records: Records, runs: Runs = ()) -> None:
        self.action_runs += self._stamped(runs)
        self.sessions[session.id] = session.to_dict()
        self.logs[session.id] = [dict(r) for _seq, r in records]

    def append(
        self,
        session: Session,
        records: Records,
        expected_seq: int,
        runs: Runs = (),
        visited_from: int | None = None,
    ) -> None:
        current = self.sessions.get(session.id)
        if current is None:
            raise UnknownSession(f"no session {session.id!r}")
        if current["seq"] != expected_seq:
            raise Conflict(
                f"session {session.id!r} moved on (step {current['seq']}, not {expected_seq}); reload it"
            )
        self.sessions[session.id] = session.to_dict()
        self.logs[session.id] += [dict(r) for _seq, r in records]
        self.action_runs += self._stamped(runs)

    def record_run(self, run: Mapping[str, Any]) -> None:
        """A repeated key updates the same run (its id stays), as in the SQL store."""
        for kept in self.action_runs:
            if kept["key"] == run["key"]:
                kept.update({**run, "id": kept["id"], "at": clock.now().isoformat()})
                return
        self.action_runs += self._stamped([run])

    def runs(self, session_id: str) -> list[dict[str, Any]]:
        return [
            {k: v for k, v in r.items() if k not in ("id", "at")}
            for r in self.action_runs
            if r["session_id"] == session_id
        ]

    def failed_runs(self, session_id: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        found = [
            dict(r)
            for r in reversed(self.action_runs)
            if r["status"] == "failed"
            and r["mode"] in ("background", "after")
            and session_id in (None, r["session_id"])
        ]
        return found[:limit]

    def run(self, run_id: int) -> dict[str, Any] | None:
        return next((dict(r) for r in self.action_runs if r["id"] == run_id), None)

    def load(self, session_id: str) -> Session:
        if session_id not in self.sessions:
            raise UnknownSession(f"no session {session_id!r}")
        return Session.from_dict(self.sessions[session_id])

    def events(self, session_id: str) -> list[dict[str, Any]]:
        return list(self.logs.get(session_id, []))

    def contact_sessions(self, contact_id: str) -> list[Session]:
        found = [
            Session.from_dict(s) for s in self.sessions.values() if s["contact_id"] == contact_id
        ]
        return list(reversed(found))

    def open_sessions(self, customer_id: str, journey: str) -> list[Session]:
        return [
            Session.from_dict(s)
            for s in self.sessions.values()
            if s["customer_id"] == customer_id
            and s["journey"] == journey
            and s["status"] not in ("ended", "survey")
        ]

    def due(self, now_ms: int, limit: int) -> list[str]:
        due = []
        for session_id in self.sessions:
            s = self.load(session_id)
            at = (s.incident or {}).get("retry_at") if s.status == INCIDENT else None
            if at and clock.to_ms(datetime.fromisoformat(at)) <= now_ms:
                due.append((at, session_id))
        return [session_id for _at, session_id in sorted(due)[:limit]]

    def waiting_at(self, channel: str, nodes: Sequence[str], limit: int) -> list[dict[str, Any]]:
        found = [
            {
                "id": s["id"],
                "journey": s["journey"],
                "definition": s["definition"],
                "node": s["node"],
                "contact_id": s["contact_id"],
                "customer_id": s["customer_id"],
                "waiting_since": self.logs[s["id"]][-1].get("at"),  # the step that got there
            }
            for s in self.sessions.values()
            if s["status"] == "waiting" and s["channel"] == channel and s["node"] in nodes
        ]
        return sorted(found, key=lambda row: row["waiting_since"] or "")[:limit]

    def __iter__(self) -> Iterator[str]:
        return iter(self.sessions)
