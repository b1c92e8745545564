"""The action catalogue: back-office actions declared by dotted name, with typed parameters.

An action is a plain Python function decorated with ``@action("domain.verb")``. Its signature
is its declared input, its return annotation (a ``TypedDict``) its declared output. Reading
the catalogue imports only the domain modules, never Prefect: the validator (J009) needs the
names and types in milliseconds, and the Prefect flow wrapper is made by the dispatch adapter
when an action really runs.
"""

from __future__ import annotations

import importlib
import inspect
import os
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar, get_type_hints

#: The domain modules of the shipped back office, one per domain.
DOMAIN_MODULES = (
    "actions.accounts",
    "actions.appointments",
    "actions.billing",
    "actions.callbacks",
    "actions.crm",
    "actions.identity",
    "actions.lines",
    "actions.network",
    "actions.notify",
    "actions.orders",
    "actions.payments",
    "actions.subscriptions",
    "actions.tickets",
)

# JSON types of the journey language, from the Python annotations of action parameters.
_JSON_TYPES: dict[Any, str] = {
    str: "string",
    int: "integer",
    float: "number",
    bool: "boolean",
    dict: "object",
    list: "array",
}


@dataclass(frozen=True)
class Param:
    """One declared input of an action."""

    name: str
    type: str  # a JSON type: string, integer, number, boolean, object, array
    required: bool
    nullable: bool = False


@dataclass(frozen=True)
class ActionSpec:
    """A declared back-office action: what the validator and the runtime know of it."""

    name: str
    summary: str
    params: tuple[Param, ...]
    output: tuple[str, ...]
    function: Callable[..., Any]
    #: The business errors this action answers (code -> when), from ``@action(errors=...)``.
    errors: tuple[tuple[str, str], ...] = ()
    #: Its part in proving who a self-care customer is: ``challenge`` (sends a one-time
    #: code to the contact details on file) or ``proof`` (``{"verified": true}`` proves its
    #: ``customer_id``); None for the others (engine.sessions.identity).
    identity: str | None = None

    def param(self, name: str) -> Param | None:
        return next((p for p in self.params if p.name == name), None)


class BusinessError(Exception):
    """The back office's answer, not a failure: no such customer, order not refundable.

    An action raises it (or one of the kinds below) when the request itself cannot be granted.
    It is never retried, and the journey takes the node's ``on_error`` path with
    ``last_error.code``. Anything else an action raises is a technical failure (the system is
    down, timed out, returned nonsense): retried, then an incident, never a business path.
    """

    code = "refused"

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code


class NotFound(BusinessError, LookupError):
    """What was asked for does not exist in the back office (customer, order, invoice)."""

    code = "not_found"


class Refused(BusinessError, ValueError):
    """The request exists but cannot be granted as asked (over a cap, wrong state, bad value)."""

    code = "refused"


class Forbidden(BusinessError, PermissionError):
    """The back office refuses the request for this customer (a lock, a security review)."""

    code = "forbidden"


#: Business error codes every action may answer, with what they mean.
BUSINESS_CODES = {
    NotFound.code: "what was asked for does not exist",
    Refused.code: "the request cannot be granted as asked",
    Forbidden.code: "the back office refuses it for this customer",
}
#: The code the engine answers, without running the action, when a self-care customer has
#: not yet proven that the account is theirs (engine.sessions.identity.UNVERIFIED).
UNVERIFIED = "unverified"
#: The parts an action may take in proving who a self-care customer is.
IDENTITY_PARTS = ("challenge", "proof")


_REGISTRY: dict[str, ActionSpec] = {}
F = TypeVar("F", bound=Callable[..., Any])


def _json_type(annotation: Any) -> tuple[str, bool]:
    """The JSON type of an annotation and whether it admits None (``str | None``)."""
    nullable = False
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        nullable = len(args) != len(typing.get_args(annotation))
        if len(args) != 1:
            raise TypeError(f"unsupported parameter type {annotation!r}")
        annotation = args[0]
        origin = typing.get_origin(annotation)
    base = origin or annotation
    if base not in _JSON_TYPES:
        raise TypeError(f"unsupported parameter type {annotation!r}")
    return _JSON_TYPES[base], nullable


def action(
    name: str, errors: dict[str, str] | None = None, identity: str | None = None
) -> Callable[[F], F]:
    """Declare a function as the back-office action ``name`` (``domain.verb``); ``errors``
    names the business errors it answers (code -> when), e.g. ``{"not_found": "no such
    customer"}``: the catalogue a process expert reads to plan the ``on_error`` path;
    ``identity`` its part in proving a self-care customer (``challenge`` or ``proof``)."""
    if identity is not None and identity not in IDENTITY_PARTS:
        raise ValueError(
            f"action {name!r}: identity={identity!r} is not one of {', '.join(IDENTITY_PARTS)}"
        )
    declared = tuple(sorted((errors or {}).items()))
    unknown = [code for code, _ in declared if code not in BUSINESS_CODES]
    if unknown:
        raise ValueError(
            f"action {name!r} declares unknown business error codes {unknown}; "
            f"use {', '.join(BUSINESS_CODES)}"
        )

    def register(function: F) -> F:
        hints = get_type_hints(function)
        params = []
        for p in inspect.signature(function).parameters.values():
            json_type, nullable = _json_type(hints[p.name])
            params.append(Param(p.name, json_type, p.default is inspect.Parameter.empty, nullable))
        output = tuple(getattr(hints.get("return"), "__annotations__", {}))
        summary = (inspect.getdoc(function) or "").split("\n\n")[0].replace("\n", " ")
        if name in _REGISTRY and _REGISTRY[name].function is not function:
            raise ValueError(f"action {name!r} is declared twice")
        _REGISTRY[name] = ActionSpec(
            name, summary, tuple(params), output, function, declared, identity
        )
        return function

    return register


def account_actions(specs: dict[str, ActionSpec]) -> dict[str, frozenset[str]]:
    """What the identity gate needs of a catalogue: the actions taking a ``customer_id``
    (they act on that customer's account), the challenges and the proofs."""
    return {
        "accounts": frozenset(n for n, s in specs.items() if s.param("customer_id")),
        "challenges": frozenset(n for n, s in specs.items() if s.identity == "challenge"),
        "proofs": frozenset(n for n, s in specs.items() if s.identity == "proof"),
    }


def catalogue() -> dict[str, ActionSpec]:
    """Every declared action by name (imports the domain modules, not Prefect).

    A company adds its own actions in modules named in ``JOURNEYS_ACTION_MODULES``
    (comma-separated, importable), declared with ``@action`` like the shipped ones.
    """
    extra = [
        m.strip() for m in os.environ.get("JOURNEYS_ACTION_MODULES", "").split(",") if m.strip()
    ]
    for module in (*DOMAIN_MODULES, *extra):
        importlib.import_module(module)
    return dict(sorted(_REGISTRY.items()))


# ------------------------------------------------------------ the back office they write

#: An idempotency ledger: ``ledger(key, action, run)`` runs ``run`` at most once per key and
#: answers (its result, whether it had already run). An executor runs every action through
#: the one it is given, so that a step repeated after a crash never refunds twice.
Ledger = Callable[[str, str, Callable[[], Mapping[str, Any]]], tuple[dict[str, Any], bool]]


def ledger() -> Ledger:
    """The ledger of the back office the catalogue's actions write (the demo's: its key
    commits with the action's own writes). The command line, `journeys serve`, the action
    host and the task workers pass it to their executors; the engine never imports the back
    office itself."""
    return _backoffice_once


def _backoffice_once(
    key: str, action: str, run: Callable[[], Mapping[str, Any]]
) -> tuple[dict[str, Any], bool]:
    # Imported at the first action: a command whose actions run elsewhere (the action host)
    # never loads the back office.
    from actions.backoffice import once

    return once(key, action, run)


def open_backoffice() -> None:
    """Open (and on first use create and seed) the back office's database now: the action
    host's warm-up, so that the first action pays no start-up cost."""
    from actions.backoffice import get_engine

    get_engine()
