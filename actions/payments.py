"""Payments: refunds and vouchers."""

from __future__ import annotations

from datetime import timedelta
from typing import TypedDict

from actions.registry import Refused, action

#: The largest voucher an action may issue without a supervisor.
VOUCHER_MAX = 100.0
VOUCHER_VALID_DAYS = 365


class Refund(TypedDict):
    refund_id: str
    amount: float


class RefundStatus(TypedDict):
    status: str  # none, pending, paid, rejected
    refund_id: str
    amount: float
    days_since: int


class Voucher(TypedDict):
    voucher_code: str
    amount: float


@action(
    "payments.refund",
    errors={
        "not_found": "the customer or what was asked for is not in the back office",
        "refused": "the request cannot be granted as asked (the message says why)",
    },
)
def refund(order_id: str, amount: float, reason: str, customer_id: str | None = None) -> Refund:
    """Refund an amount on an order to the original means of payment (with ``customer_id``,
    only their own order)."""
    from sqlalchemy import func, select

    from actions import backoffice as bo

    amount = bo.money(amount)
    if amount <= 0:
        raise Refused(f"a refund must be more than 0 EUR, not {amount}")
    reason = bo.required_text("reason", reason)
    r = bo.refunds
    with bo.transaction() as conn:
        order = bo.order_row(conn, order_id, customer_id, for_update=True)
        already = conn.execute(
            select(func.coalesce(func.sum(r.c.amount), 0.0)).where(
                r.c.order_id == order_id, r.c.status.in_(("pending", "paid"))
            )
        ).scalar_one()
        left = bo.money(order.amount - float(already))
        if amount > left:
            raise Refused(
                f"a refund of {amount} EUR is more than what is left to refund on order "
                f"{order_id!r} ({left} EUR of {bo.money(order.amount)} EUR)"
            )
        refund_id = bo.add_with_code(
            conn,
            r,
            "refund_id",
            "R",
            {
                "order_id": order_id,
                "amount": amount,
                "reason": reason,
                "status": "pending",
                "requested_on": bo.today(),
            },
        )
    return {"refund_id": refund_id, "amount": amount}


@action(
    "payments.get_refund_status",
    errors={
        "not_found": "the customer or what was asked for is not in the back office",
        "refused": "the request cannot be granted as asked (the message says why)",
    },
)
def get_refund_status(order_id: str, customer_id: str | None = None) -> RefundStatus:
    """The latest refund on an order: none, pending, paid or rejected, and since when (with
    ``customer_id``, only their own order)."""
    from sqlalchemy import select

    from actions import backoffice as bo

    r = bo.refunds
    with bo.transaction() as conn:
        bo.order_row(conn, order_id, customer_id)
        latest = conn.execute(
            select(r).where(r.c.order_id == order_id).order_by(r.c.id.desc())
        ).first()
    if latest is None:
        return {"status": "none", "refund_id": "", "amount": 0.0, "days_since": 0}
    since = latest.requested_on if latest.status == "pending" else latest.decided_on
    return {
        "status": latest.status,
        "refund_id": latest.refund_id,
        "amount": bo.money(latest.amount),
        "days_since": max(0, (bo.today() - (since or latest.requested_on)).days),
    }


@action(
    "payments.issue_voucher",
    errors={
        "not_found": "the customer or what was asked for is not in the back office",
        "refused": "the request cannot be granted as asked (the message says why)",
    },
)
def issue_voucher(customer_id: str, amount: float) -> Voucher:
    """Issue a purchase voucher to the customer."""
    from actions import backoffice as bo

    amount = bo.money(amount)
    if not 0 < amount <= VOUCHER_MAX:
        raise Refused(f"a voucher is worth more than 0 and at most {VOUCHER_MAX} EUR, not {amount}")
    with bo.transaction() as conn:
        bo.customer_row(conn, customer_id)
        code = bo.add_with_code(
            conn,
            bo.vouchers,
            "voucher_code",
            "V",
            {
                "customer_id": customer_id,
                "amount": amount,
                "expires_on": bo.today() + timedelta(days=VOUCHER_VALID_DAYS),
            },
        )
    return {"voucher_code": code, "amount": amount}
