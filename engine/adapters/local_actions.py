"""Run back-office actions in this process: the plain Python functions of the catalogue.

Retries follow the node's ``retries``; a failure after the last attempt becomes the action's
error message, which sends the session to ``on_error``. (Running them as Prefect flows, with
workers and observability, is a drop-in replacement of this executor.)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from actions.registry import ActionSpec, catalogue
from engine.runtime import RunAction, RunAfter, Session
from engine.service import ActionOutcome


class LocalExecutor:
    def __init__(self, actions: Mapping[str, ActionSpec] | None = None) -> None:
        self.actions = actions if actions is not None else catalogue()

    def _call(self, name: str, inputs: Mapping[str, Any], attempts: int) -> ActionOutcome:
        spec = self.actions.get(name)
        if spec is None:
            return ActionOutcome(error=f"{name!r} is not a back-office action of the catalogue")
        error = ""
        for attempt in range(1, attempts + 1):
            try:
                result = spec.function(**inputs)
            except Exception as err:  # any failure of the back office is the action's error
                error = str(err) or type(err).__name__
                continue
            return ActionOutcome(result=dict(result or {}), attempts=attempt)
        return ActionOutcome(error=error, attempts=attempts)

    def run(self, effect: RunAction, session: Session) -> ActionOutcome:
        return self._call(effect.action, effect.input, effect.retries + 1)

    def run_after(self, effect: RunAfter, session: Session) -> ActionOutcome:
        return self._call(effect.action, effect.input, 1)
