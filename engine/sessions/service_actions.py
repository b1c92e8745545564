"""Running what a step asked for: the actions a session waits for (their results stepped in
at once), its customer's totals read for the authority limits, the background and
post-contact actions (recorded when they end), and a failed background run run again.

Saving an answer and the results of the actions it ran together is safe because each action
carries an idempotency key: if the process dies before the save, the answer is given again
and the back office recognises the repeated action.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from concurrent.futures import Future
from dataclasses import replace
from typing import Any

from engine import clock
from engine.definitions.library import Bundle
from engine.errors import Conflict, UnknownRun, UnknownSession
from engine.sessions.event_log import record_of, replay
from engine.sessions.identity import UNVERIFIED, IdentityGate
from engine.sessions.rows import RecordedRun
from engine.sessions.runtime import (
    ActionDone,
    Effect,
    Reserve,
    Reserved,
    RunAction,
    RunAfter,
    Session,
    step,
)
from engine.sessions.service_ports import ActionExecutor, ActionOutcome, SessionStore

#: What one call saves with its session: the events, each with the seq after it, and the runs.
Logged = list[tuple[int, dict[str, Any]]]
RunRows = list[dict[str, Any]]


class ActionRunner:
    """The actions of a service's steps, on its store and executor; ``gate`` (engine.sessions.identity)
    holds back, in self-care, the actions on an account the customer has not proven theirs."""

    def __init__(
        self, store: SessionStore, executor: ActionExecutor, gate: IdentityGate | None = None
    ) -> None:
        self.store = store
        self.executor = executor
        self.gate = gate
        self._recording: list[threading.Event] = []

    def follow(
        self, bundle: Bundle, session: Session, effects: list[Effect]
    ) -> tuple[Session, Logged, RunRows]:
        """Run what the step asked for (the actions the session waits for, then post-contact
        ones) and return the session with the events and action runs to save with it, in one
        transaction. Runs in the background are recorded when they finish."""
        pending = list(effects)
        records: Logged = []
        runs: RunRows = []
        while pending:
            effect = pending.pop(0)
            if isinstance(effect, RunAction):
                session = self._run_action(bundle, session, effect, pending, records, runs)
            elif isinstance(effect, Reserve):
                # Before the action runs: of two sessions of one customer at once, the one
                # the store serves second sees the first one's grant.
                reserved = Reserved(effect.node, self.store.reserve(effect))
                session = self._step(bundle, session, reserved, pending, records)
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

    def _run_action(
        self,
        bundle: Bundle,
        session: Session,
        effect: RunAction,
        pending: list[Effect],
        records: Logged,
        runs: RunRows,
    ) -> Session:
        """Run an action; one the session waits for gives its outcome to the session at once."""
        outcome = self._run(effect, session)
        mode = "wait" if effect.wait else "background"
        if not effect.wait:
            self._record_later(
                session.id, effect.node, effect.action, effect.key, mode, outcome, runs
            )
            return session
        if outcome.error is not None and outcome.failure is None:
            self._release(bundle, effect)
        tries = int((session.incident or {}).get("tries", 0))
        record_key = effect.key if not tries else f"{effect.key}~{tries + 1}"
        runs.append(run_record(session.id, effect.node, effect.action, record_key, mode, outcome))
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
        return self._step(bundle, session, event, pending, records)

    def _step(
        self,
        bundle: Bundle,
        session: Session,
        event: ActionDone | Reserved,
        pending: list[Effect],
        records: Logged,
    ) -> Session:
        """Step the session with what the back office answered; its effects are run next."""
        session, more = step(
            bundle.definitions, session, event, in_place=True, policy=bundle.policy
        )
        records.append((session.seq, record_of(event, "system", session.channel)))
        pending += more
        return session

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
        runs: RunRows,
    ) -> None:
        """A background run is recorded when it ends; one that already ended, with the step."""
        future = outcome.pending
        if future is None:
            runs.append(run_record(session_id, node, action, key, mode, outcome))
            return
        store = self.store
        recorded = threading.Event()
        self._recording.append(recorded)

        def done(f: Future[ActionOutcome]) -> None:
            try:
                error = f.exception()
                final = f.result() if error is None else ActionOutcome(failure=str(error))
                store.record_run(run_record(session_id, node, action, key, mode, final))
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

    def rerun(self, run_id: int) -> tuple[RecordedRun, bool]:
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
            run_record(
                run["session_id"], run["node"], run["action"], run["key"], run["mode"], outcome
            )
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


#: What an action run came to, as recorded: succeeded, refused (a business error: the back
#: office's answer) or failed (a technical failure: an incident, or a background run to redo).
RUN_STATUSES = ("succeeded", "refused", "failed")


def run_status(outcome: ActionOutcome) -> str:
    if outcome.failure is not None:
        return "failed"
    return "refused" if outcome.error is not None else "succeeded"


def run_record(
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
