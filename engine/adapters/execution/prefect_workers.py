"""Scale-out: actions run by Prefect task workers, on this machine or others.

``journeys worker`` serves one Prefect task, ``journeys.action``, that runs any action of the
catalogue (through the idempotency ledger, its output checked). With ``--executor workers`` the
engine hands each action to the workers (``task.delay()``) instead of running it itself, and
waits for the result by polling the task run. Start as many workers as the back office needs;
results are persisted by Prefect so the engine can read them (on several machines, point
Prefect's result storage at shared storage).

A worker writes the back office of its own environment (``JOURNEYS_BACKOFFICE_DB``, else
``backoffice.db`` in its journeys home): each call carries a hash of the back office the
engine expects, and a worker that would write another one refuses the action (a technical
failure naming both), rather than splitting refunds and tickets between two databases.
"""

from __future__ import annotations

import hashlib
import time
from typing import Any
from uuid import UUID

from prefect import task

from engine.adapters.execution.action_host import prefect_api
from engine.adapters.execution.base import BaseExecutor, Call, answered_outcome
from engine.adapters.home import backoffice_url
from engine.sessions.service import ActionOutcome

POLL_SECONDS = 0.05
DEFAULT_TIMEOUT = 300.0


def backoffice_digest() -> str:
    """Which back office this process writes, hashed (a URL may hold a password)."""
    return hashlib.sha256(backoffice_url().encode()).hexdigest()[:16]


@task(name="journeys.action", persist_result=True, log_prints=False)
def run_action(
    action: str, key: str, inputs: dict[str, Any], retries: int = 0, backoffice: str | None = None
) -> dict[str, Any]:
    """Run one action in the worker: tried 1 + retries times; errors come back as data."""
    from actions.registry import catalogue, ledger
    from engine.adapters.execution.local_actions import LocalExecutor

    if backoffice and backoffice != backoffice_digest():
        return {
            "result": None,
            "error": None,
            "code": None,
            "failure": "this worker writes another back office than the engine's: start "
            "`journeys worker` with the engine's JOURNEYS_HOME or JOURNEYS_BACKOFFICE_DB",
            "attempts": 0,
        }
    # A worker runs the catalogue's actions under the ledger of the back office they write.
    outcome = LocalExecutor(ledger=ledger(), actions=catalogue()).call(
        Call(action, key, inputs, retries)
    )
    return {
        "result": outcome.result,
        "error": outcome.error,
        "code": outcome.code,
        "failure": outcome.failure,
        "attempts": outcome.attempts,
    }


def serve_forever() -> None:
    """`journeys worker`: serve the action task until interrupted."""
    from prefect.task_worker import serve

    prefect_api()  # the embedded server, kept running while this worker lives
    serve(run_action)


class WorkerExecutor(BaseExecutor):
    """Each call handed to the task workers (``task.delay()``), its task run polled."""

    thread_name = "journeys-dispatch"
    drain_timeout = 120.0

    def __init__(self) -> None:
        super().__init__()
        self.api = prefect_api()
        self.backoffice = backoffice_digest()

    def call(self, call: Call) -> ActionOutcome:
        from prefect import tags
        from prefect.client.orchestration import get_client

        limit = call.timeout or DEFAULT_TIMEOUT
        try:
            with tags(*_labels(call)):
                future = run_action.delay(
                    call.action, call.key, call.inputs, call.retries, self.backoffice
                )
            run_id = str(future.task_run_id)
            deadline = time.monotonic() + limit
            with get_client(sync_client=True) as client:
                while True:
                    run = client.read_task_run(UUID(run_id))
                    if run.state is not None and run.state.is_final():
                        break
                    if time.monotonic() > deadline:
                        return ActionOutcome(
                            failure=f"no worker finished {call.action} within {limit:.0f} s "
                            "(is `journeys worker` running?)",
                            run_id=run_id,
                        )
                    time.sleep(POLL_SECONDS)
                if not run.state.is_completed():
                    return ActionOutcome(
                        failure=str(run.state.message or run.state.type), run_id=run_id
                    )
                data = run.state.result()
        except Exception as err:  # the Prefect API unreachable, or the result unreadable
            return ActionOutcome(
                failure=f"the action could not be run through Prefect workers at {self.api}: {err}"
            )
        return answered_outcome(data, run_id)


def _labels(call: Call) -> list[str]:
    return [f"session:{call.session}", f"node:{call.node}", f"action:{call.action}"] + (
        [f"motive:{call.motive}"] if call.motive else []
    )
