"""Which executor runs the real actions: Prefect flows run by the action host (the default;
see engine/adapters/execution/action_host.py), Prefect task workers (``workers``: scale-out), or plain
calls in this process (``local``).

``JOURNEYS_EXECUTOR=local`` (or ``--executor local``) calls the action functions in this
process, without Prefect: for a quick try or a machine without Prefect. The executor is made
on first use, so a session whose actions are all stubbed never starts a Prefect server.

Whoever makes one passes the idempotency ledger the actions run under (the command line and
`journeys serve` pass the back office's, ``actions.registry.ledger()``): the ``local``
executor runs them under it in this process; the action host and the task workers run them
in their own processes, under the ledger of the catalogue they run.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from actions.registry import Ledger
from engine.sessions.runtime import RunAction, RunAfter, Session
from engine.sessions.service import ActionExecutor, ActionOutcome

KINDS = ("prefect", "workers", "local")


def default_kind() -> str:
    kind = os.environ.get("JOURNEYS_EXECUTOR", "prefect")
    return kind if kind in KINDS else "prefect"


def build(kind: str, ledger: Ledger) -> ActionExecutor:
    if kind == "local":
        from engine.adapters.execution.local_actions import LocalExecutor

        return LocalExecutor(ledger=ledger)
    if kind == "prefect":
        from engine.adapters.execution.action_host import HostExecutor

        return HostExecutor()
    if kind == "workers":
        from engine.adapters.execution.prefect_workers import WorkerExecutor

        return WorkerExecutor()
    raise ValueError(f"unknown executor {kind!r}; use one of {', '.join(KINDS)}")


class LazyExecutor:
    """The executor of ``kind``, made when a real action first runs."""

    def __init__(
        self,
        kind: str | None = None,
        *,
        ledger: Ledger,
        factory: Callable[[str, Ledger], ActionExecutor] = build,
    ) -> None:
        self.kind = kind or default_kind()
        self.ledger = ledger
        self._factory = factory
        self._executor: ActionExecutor | None = None

    @property
    def executor(self) -> ActionExecutor:
        if self._executor is None:
            self._executor = self._factory(self.kind, self.ledger)
        return self._executor

    def run(self, effect: RunAction, session: Session) -> ActionOutcome:
        return self.executor.run(effect, session)

    def run_after(self, effect: RunAfter, session: Session) -> ActionOutcome:
        return self.executor.run_after(effect, session)

    def drain(self) -> list[ActionOutcome]:
        """Wait for background runs (post-contact, wait: false) before the command exits;
        none if no real action ran (the executor was never made)."""
        return self._executor.drain() if self._executor is not None else []
