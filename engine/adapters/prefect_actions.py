"""Run back-office actions as Prefect flows: retries, timeouts, observability, scale-out.

Each action of the catalogue becomes a flow named after it; a run carries the session id, the
motive and the node as tags, so operators find it in the Prefect UI. The node's ``retries``
and ``timeout`` become the flow's. Inside the flow the action goes through the back office's
idempotency ledger under the run's key, so a repeated run never repeats an effect, and its
result is checked against the action's declared output.

``wait: true`` runs the flow and returns its result; ``wait: false`` hands it to a background
thread and the session goes on at once.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from uuid import UUID

from actions.registry import ActionSpec, BusinessError, catalogue
from engine.adapters.local_actions import Ledger, _backoffice_ledger, checked, describe
from engine.adapters.prefect_server import ensure_api
from engine.runtime import RunAction, RunAfter, Session
from engine.service import ActionOutcome

_background = ThreadPoolExecutor(max_workers=4, thread_name_prefix="journeys-action")
# What a flow run returns: the action's result, or the business error it answered.
RESULT, BUSINESS = "result", "business_error"


class PrefectExecutor:
    def __init__(
        self, actions: Mapping[str, ActionSpec] | None = None, ledger: Ledger | None = None
    ) -> None:
        self.api = ensure_api()
        self.actions = actions if actions is not None else catalogue()
        self.ledger = ledger or _backoffice_ledger()
        self._flows: dict[tuple[str, int, float | None], Any] = {}
        self._lock = threading.Lock()
        self.pending: list[Any] = []  # futures of wait: false runs

    def _flow(self, spec: ActionSpec, retries: int, timeout: float | None) -> Any:
        from prefect import flow

        key = (spec.name, retries, timeout)
        with self._lock:
            if key not in self._flows:
                ledger = self.ledger

                def body(key: str, inputs: dict[str, Any]) -> dict[str, Any]:
                    try:
                        result, _repeated = ledger(
                            key, spec.name, lambda: checked(spec, spec.function(**inputs))
                        )
                    except BusinessError as err:
                        # The back office's answer: the run completes (never retried) and
                        # carries the error for the journey's on_error path.
                        return {BUSINESS: {"code": err.code, "message": err.message}}
                    return {RESULT: result}

                self._flows[key] = flow(
                    name=spec.name,
                    retries=retries,
                    retry_delay_seconds=0,
                    timeout_seconds=timeout,
                    validate_parameters=False,
                    log_prints=False,
                    persist_result=False,
                    description=spec.summary,
                )(body)
            return self._flows[key]

    def _run(
        self,
        spec: ActionSpec,
        key: str,
        inputs: Mapping[str, Any],
        retries: int,
        timeout: float | None,
        labels: list[str],
    ) -> ActionOutcome:
        from prefect import tags
        from prefect.settings import (
            PREFECT_API_URL,
            PREFECT_FLOWS_HEARTBEAT_FREQUENCY,
            temporary_settings,
        )

        flow = self._flow(spec, retries, timeout)
        # The heartbeat thread costs a second per run to join; a context variable, so set here.
        settings = {PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None, PREFECT_API_URL: self.api}
        with temporary_settings(updates=settings), tags(*labels):
            state = flow(key=key, inputs=dict(inputs), return_state=True)
        run_id = str(state.state_details.flow_run_id) if state.state_details.flow_run_id else None
        attempts = self._attempts(run_id) if retries else 1
        if state.is_completed():
            data = state.result()
            if BUSINESS in data:
                answer = data[BUSINESS]
                return ActionOutcome(
                    error=answer["message"], code=answer["code"], attempts=attempts, run_id=run_id
                )
            return ActionOutcome(result=dict(data[RESULT]), attempts=attempts, run_id=run_id)
        return ActionOutcome(failure=_reason(state), attempts=attempts, run_id=run_id)

    def _attempts(self, run_id: str | None) -> int:
        if run_id is None:
            return 1
        from prefect.client.orchestration import get_client
        from prefect.settings import PREFECT_API_URL, temporary_settings

        with (
            temporary_settings(updates={PREFECT_API_URL: self.api}),
            get_client(sync_client=True) as client,
        ):
            return int(client.read_flow_run(UUID(run_id)).run_count or 1)

    def _call(
        self,
        name: str,
        key: str,
        inputs: Mapping[str, Any],
        retries: int,
        timeout: float | None,
        session: Session,
        node: str,
    ) -> ActionOutcome:
        spec = self.actions.get(name)
        if spec is None:
            return ActionOutcome(failure=f"{name!r} is not a back-office action of the catalogue")
        labels = [f"session:{session.id}", f"node:{node}"] + (
            [f"motive:{session.motive}"] if session.motive else []
        )
        try:
            return self._run(spec, key, inputs, retries, timeout, labels)
        except Exception as err:  # Prefect unreachable, or the run could not be created
            return ActionOutcome(
                failure=f"the action could not be run through Prefect at {self.api}: {describe(err)}"
            )

    def run(self, effect: RunAction, session: Session) -> ActionOutcome:
        call: Callable[[], ActionOutcome] = lambda: self._call(  # noqa: E731
            effect.action,
            effect.key,
            effect.input,
            effect.retries,
            effect.timeout,
            session,
            effect.node,
        )
        if effect.wait:
            return call()
        future = _background.submit(call)
        self.pending.append(future)
        return ActionOutcome(pending=future)

    def run_after(self, effect: RunAfter, session: Session) -> ActionOutcome:
        # Post-contact automation: in the background; its failure never changes the outcome.
        future = _background.submit(
            self._call,
            effect.action,
            effect.key,
            effect.input,
            effect.retries,
            None,
            session,
            "after",
        )
        self.pending.append(future)
        return ActionOutcome(pending=future)

    def drain(self, timeout: float = 60.0) -> list[ActionOutcome]:
        """Wait for the background runs (a command line waits before it exits)."""
        done = [f.result(timeout=timeout) for f in self.pending]
        self.pending.clear()
        return done


def _reason(state: Any) -> str:
    message = str(state.message or state.type)
    return message.replace("Flow run encountered an exception: ", "")
