"""Run back-office actions as Prefect task runs: retries, timeouts, observability.

Each action is a task run named after the action and its idempotency key (``payments.refund
<session>:<node>:<visit>``), inside a long-lived
dispatcher flow run (engine/adapters/execution/prefect_dispatch.py): about 5 ms of Prefect per action
instead of a flow run's 100-300 ms. The node's ``retries`` and ``timeout`` become the task's;
each attempt is in the task run's history. Inside the task the action goes through the back
office's idempotency ledger under the run's key, so a repeated run never repeats an effect,
and its result is checked against the action's declared output.

A business error (:class:`actions.registry.BusinessError`) completes the task run with the
error as data: never retried, it takes the journey's ``on_error``. Any other exception fails
the attempt: retried, then a technical failure (an incident).

``wait: true`` waits for the task run; ``wait: false`` and post-contact actions are submitted
the same way and the session goes on at once.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from concurrent.futures import Future
from typing import Any

from actions.registry import ActionSpec, BusinessError, Ledger, catalogue
from engine.adapters.execution.base import BaseExecutor, Call, done
from engine.adapters.execution.local_actions import checked, describe
from engine.adapters.execution.prefect_dispatch import Dispatcher, Job
from engine.adapters.execution.prefect_server import ensure_api
from engine.sessions.service import ActionOutcome

# What a task run returns: the action's result, or the business error it answered.
RESULT, BUSINESS = "result", "business_error"


class PrefectExecutor(BaseExecutor):
    """Each call handed to the dispatcher flow run, whose task runner runs it."""

    drain_timeout = 60.0

    def __init__(self, *, ledger: Ledger, actions: Mapping[str, ActionSpec] | None = None) -> None:
        super().__init__()
        self.api = ensure_api()
        self.actions = actions if actions is not None else catalogue()
        self.ledger = ledger
        self.dispatcher = Dispatcher(self.api)
        self._tasks: dict[tuple[str, int, float | None], Any] = {}
        self._attempts: dict[str, int] = {}  # task run id -> attempts so far
        self._tasks_lock = threading.Lock()

    def _task(self, spec: ActionSpec, retries: int, timeout: float | None) -> Any:
        from prefect import task
        from prefect.cache_policies import NO_CACHE
        from prefect.context import TaskRunContext

        key = (spec.name, retries, timeout)
        with self._tasks_lock:
            if key not in self._tasks:
                ledger, attempts = self.ledger, self._attempts

                def body(key: str, inputs: dict[str, Any]) -> dict[str, Any]:
                    context = TaskRunContext.get()
                    if context is not None:
                        attempts[str(context.task_run.id)] = context.task_run.run_count
                    try:
                        result, _repeated = ledger(
                            key, spec.name, lambda: checked(spec, spec.function(**inputs))
                        )
                    except BusinessError as err:
                        # The back office's answer: the run completes (never retried) and
                        # carries the error for the journey's on_error path.
                        return {BUSINESS: {"code": err.code, "message": err.message}}
                    return {RESULT: result}

                # No cache (the ledger is the idempotency), no result storage (the result
                # comes back in memory): each would cost a round trip per action.
                self._tasks[key] = task(
                    name=spec.name,
                    task_run_name=spec.name.replace("{", "{{").replace("}", "}}") + " {key}",
                    description=spec.summary,
                    retries=retries,
                    retry_delay_seconds=0,
                    timeout_seconds=timeout,
                    cache_policy=NO_CACHE,
                    persist_result=False,
                    log_prints=False,
                )(body)
            return self._tasks[key]

    def _outcome(self, state: Any, run_id: str) -> ActionOutcome:
        attempts = self._attempts.pop(run_id, 1)
        if state.is_completed():
            data = state.result()
            if BUSINESS in data:
                answer = data[BUSINESS]
                return ActionOutcome(
                    error=answer["message"], code=answer["code"], attempts=attempts, run_id=run_id
                )
            return ActionOutcome(result=dict(data[RESULT]), attempts=attempts, run_id=run_id)
        return ActionOutcome(failure=_reason(state), attempts=attempts, run_id=run_id)

    def call(self, call: Call) -> ActionOutcome:
        return self.submit(call).result()

    def submit(self, call: Call) -> Future[ActionOutcome]:
        spec = self.actions.get(call.action)
        if spec is None:
            return done(
                ActionOutcome(
                    failure=f"{call.action!r} is not a back-office action of the catalogue"
                )
            )
        # No tags: Prefect looks up the concurrency limits of a task run's tags on the server
        # (a round trip, every 5 s per set of tags, and a thread per set for ever: 200 ms to
        # 2.4 s an action with a tag per session, see bench/actions.py). The run's name holds
        # the action and its key (session, node, visit) instead, to find it by.
        labels: list[str] = []
        try:
            job = Job(
                self._task(spec, call.retries, call.timeout),
                {"key": call.key, "inputs": dict(call.inputs)},
                labels,
                self._outcome,
            )
            running = self.dispatcher.submit(job)
        except Exception as err:  # Prefect unreachable: the dispatcher flow run did not open
            return done(self._unreachable(err))
        answer: Future[ActionOutcome] = Future()

        def settle(future: Future[ActionOutcome]) -> None:
            error = future.exception()
            answer.set_result(self._unreachable(error) if error else future.result())

        running.add_done_callback(settle)
        return answer

    def _unreachable(self, err: BaseException) -> ActionOutcome:
        return ActionOutcome(
            failure=f"the action could not be run through Prefect at {self.api}: {describe(err)}"
        )

    def release(self) -> None:
        """Let the running actions finish and complete the dispatcher flow run."""
        self.dispatcher.close()


def _reason(state: Any) -> str:
    message = str(state.message or state.type)
    for prefix in ("Task run encountered an exception ", "Task run encountered an exception: "):
        message = message.replace(prefix, "")
    return message
