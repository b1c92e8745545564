"""Who the customer is, in self-care: proven before anything of theirs is shown or changed.

An agent identifies the caller as their company trains them to; a self-care customer is
anonymous until proven. A session performed by the ``customer`` role has an ``identity``
once proven, by one of:

- ``signed``: the company's site, where the customer is logged in, handed over a signed
  identity when the session started (checked by the HTTP adapter);
- ``code``: the customer typed their number and then the one-time code the back office sent
  to the contact details on file (a *proof* action succeeded, e.g. ``identity.check_code``);
- ``agent`` or ``event``: an agent, or the back office's event, started the session for a
  customer they know (a proactive message is sent to the customer's own phone).

Until then the :class:`IdentityGate` lets no action run on a customer's account: an action
that takes a ``customer_id`` runs in self-care only with the proven one, else it answers
the business error ``unverified`` without reaching the back office. Pure: the adapters build
the gate from the action catalogue and check signatures; the service applies it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

#: The business error code of an action refused because the customer is not proven yet.
UNVERIFIED = "unverified"
#: The ways an identity is proven (``identity.by``).
METHODS = ("signed", "code", "agent", "event")
#: The role whose sessions need a proven identity.
CUSTOMER = "customer"


@dataclass(frozen=True)
class IdentityGate:
    """Which actions act on a customer's account, and which take part in proving who the
    customer is (they run before the proof)."""

    #: Actions taking a ``customer_id``: they act on, or read, that customer's account.
    accounts: frozenset[str] = frozenset()
    #: Actions that send a challenge to the contact details on file (a one-time code).
    challenges: frozenset[str] = frozenset()
    #: Actions whose success, ``{"verified": true}``, proves their ``customer_id``.
    proofs: frozenset[str] = frozenset()

    def refusal(
        self, role: str | None, identity: Mapping[str, Any] | None, action: str, inputs: Any
    ) -> str | None:
        """Why ``action`` may not run now (None: it may). Only the customer role is held:
        agents identify their callers themselves."""
        if role != CUSTOMER or action not in self.accounts:
            return None
        if action in self.challenges or action in self.proofs:
            return None
        wanted = inputs.get("customer_id") if isinstance(inputs, Mapping) else None
        proven = (identity or {}).get("customer_id")
        if proven is not None and wanted == proven:
            return None
        if proven is None:
            return (
                f"{action} acts on a customer's account: in self-care the customer proves who "
                "they are first (a signed identity from the company's site, or the one-time "
                "code sent to the contact details on file)"
            )
        if wanted is None:
            return (
                f"{action} names no customer: in self-care it runs for the proven customer "
                "only (give it customer_id)"
            )
        return f"{action} is refused: this session is proven for another customer"

    def proven(self, action: str, inputs: Any, result: Mapping[str, Any] | None) -> str | None:
        """The customer a successful run of ``action`` proves, if it is a proof."""
        if action not in self.proofs or not result or result.get("verified") is not True:
            return None
        customer = inputs.get("customer_id") if isinstance(inputs, Mapping) else None
        return customer if isinstance(customer, str) and customer else None


def identity_of(customer_id: str, by: str, issuer: str | None = None) -> dict[str, Any]:
    """The plain record of a proven identity, as the session keeps it."""
    if by not in METHODS:
        raise ValueError(f"{by!r} is not a way to prove an identity: {', '.join(METHODS)}")
    record: dict[str, Any] = {"customer_id": customer_id, "by": by}
    if issuer:
        record["issuer"] = issuer
    return record


def scope_value(role: str | None, identity: Mapping[str, Any] | None) -> dict[str, Any]:
    """What a journey reads as ``identity`` (read-only): whether the customer still has to
    prove who they are (``proof_needed``: in self-care, until proven), and how it was."""
    proven = dict(identity or {})
    return {
        "verified": bool(proven),
        "customer_id": proven.get("customer_id"),
        "by": proven.get("by"),
        "proof_needed": role == CUSTOMER and not proven,
    }
