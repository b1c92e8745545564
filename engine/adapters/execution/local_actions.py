"""Run back-office actions in this process: the plain Python functions of the catalogue.

A business error (:class:`actions.registry.BusinessError`: no such customer, not refundable)
is the back office's answer: never retried, it sends the session to ``on_error``. Anything
else is a technical failure: retried per the node's ``retries``, then reported as a
``failure`` (the session becomes an incident, never a business path). Each run goes through the
idempotency ledger the executor is given (the back office's: ``actions.registry.ledger``) under
the effect's key (session, node, visit), so a step repeated after a crash never refunds twice.
(Running them as Prefect task runs is a drop-in replacement of this executor.)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from actions.registry import ActionSpec, BusinessError, Ledger, catalogue
from engine.adapters.execution.base import BaseExecutor, Call
from engine.errors import SessionError
from engine.sessions.service import ActionOutcome


class OutputMismatch(SessionError, RuntimeError):
    """An action returned data that does not match its declared output."""


def checked(spec: ActionSpec, result: Any) -> dict[str, Any]:
    """The action's result, refused when it lacks a declared output (a back office changed)."""
    if not isinstance(result, Mapping):
        raise OutputMismatch(
            f"{spec.name} returned {type(result).__name__}, not a mapping of its outputs"
        )
    missing = [k for k in spec.output if k not in result]
    if missing:
        raise OutputMismatch(
            f"{spec.name} returned no {', '.join(map(repr, missing))} (declared outputs)"
        )
    return dict(result)


def outcome_of(err: BaseException, attempts: int = 1, run_id: str | None = None) -> ActionOutcome:
    """An exception raised by an action, as its outcome: a business error or a failure."""
    if isinstance(err, BusinessError):
        return ActionOutcome(error=err.message, code=err.code, attempts=attempts, run_id=run_id)
    return ActionOutcome(failure=describe(err), attempts=attempts, run_id=run_id)


def describe(err: BaseException) -> str:
    """A technical failure in one line: its message, else its kind."""
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


class LocalExecutor(BaseExecutor):
    """Every call in the caller's thread, ``wait: false`` and post-contact ones too."""

    background = False

    def __init__(self, *, ledger: Ledger, actions: Mapping[str, ActionSpec] | None = None) -> None:
        super().__init__()
        self.actions = actions if actions is not None else catalogue()
        self.ledger = ledger

    def call(self, call: Call) -> ActionOutcome:
        spec = self.actions.get(call.action)
        if spec is None:
            return ActionOutcome(
                failure=f"{call.action!r} is not a back-office action of the catalogue"
            )
        inputs = call.inputs
        failure = ActionOutcome(failure="not run", attempts=0)
        for attempt in range(1, call.retries + 2):
            try:
                result, _repeated = self.ledger(
                    call.key, call.action, lambda: checked(spec, spec.function(**inputs))
                )
            except BusinessError as err:  # the back office's answer: never retried
                return outcome_of(err, attempt)
            except Exception as err:  # a technical failure: tried again, then reported
                failure = outcome_of(err, attempt)
                continue
            return ActionOutcome(result=result, attempts=attempt)
        return failure
