"""Online accounts: password resets and unlocking."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypedDict

from actions.registry import Forbidden, NotFound, Refused, action

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection, Row

#: How long a reset link stays valid.
RESET_LINK_MINUTES = 30
#: Locks that an advisor may lift; a lock by the security team needs its review.
UNLOCKABLE = ("too_many_attempts",)


class ResetLink(TypedDict):
    message_id: str
    expires_minutes: int


class Unlocked(TypedDict):
    unlocked: bool


def _account(conn: Connection, customer_id: str) -> Row[Any]:
    from sqlalchemy import select

    from actions import backoffice as bo

    bo.customer_row(conn, customer_id)
    row = conn.execute(select(bo.accounts).where(bo.accounts.c.customer_id == customer_id)).first()
    if row is None:
        raise NotFound(f"customer {customer_id!r} has no online account")
    return row


@action(
    "accounts.send_reset_link",
    errors={
        "forbidden": "the back office refuses it for this customer",
        "not_found": "the customer or what was asked for is not in the back office",
        "refused": "the request cannot be granted as asked (the message says why)",
    },
)
def send_reset_link(customer_id: str, channel: str) -> ResetLink:
    """Send a one-time password reset link by ``sms`` or ``email``."""
    from sqlalchemy import update

    from actions import backoffice as bo

    if channel not in ("sms", "email"):
        raise Refused(f"a reset link goes by sms or email, not {channel!r}")
    with bo.transaction() as conn:
        account = _account(conn, customer_id)
        if account.locked and account.lock_reason not in UNLOCKABLE:
            raise Forbidden(
                f"the account of {customer_id!r} is locked for a security review: "
                "no reset link can be sent"
            )
        customer = bo.customer_row(conn, customer_id)
        message_id = bo.add_with_code(
            conn,
            bo.messages,
            "message_id",
            "M",
            {
                "customer_id": customer_id,
                "channel": channel,
                "recipient": customer.phone if channel == "sms" else customer.email,
                "template": "password_reset_link",
                "status": "sent",
            },
        )
        conn.execute(
            update(bo.accounts)
            .where(bo.accounts.c.customer_id == customer_id)
            .values(reset_requested_at=bo.now())
        )
    return {"message_id": message_id, "expires_minutes": RESET_LINK_MINUTES}


@action(
    "accounts.unlock",
    errors={"not_found": "the customer or what was asked for is not in the back office"},
)
def unlock(customer_id: str) -> Unlocked:
    """Unlock an account locked after too many failed sign-ins."""
    from sqlalchemy import update

    from actions import backoffice as bo

    with bo.transaction() as conn:
        account = _account(conn, customer_id)
        if account.locked and account.lock_reason not in UNLOCKABLE:
            return {"unlocked": False}  # the security team's lock stays
        conn.execute(
            update(bo.accounts)
            .where(bo.accounts.c.customer_id == customer_id)
            .values(locked=False, lock_reason=None, failed_attempts=0)
        )
    return {"unlocked": True}
