"""Billing: invoices, credits and disputes."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypedDict

from actions.registry import NotFound, Refused, action

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection, Row


class Invoice(TypedDict):
    invoice_id: str
    amount: float
    previous_amount: float
    period: str


class Credit(TypedDict):
    credit_id: str
    amount: float


class Dispute(TypedDict):
    dispute_id: str


def _invoices(conn: Connection, customer_id: str) -> list[Row[Any]]:
    """The customer's invoices, latest first."""
    from sqlalchemy import select

    from actions import backoffice as bo

    bo.customer_row(conn, customer_id)
    i = bo.invoices
    return list(
        conn.execute(
            select(i)
            .where(i.c.customer_id == customer_id)
            .order_by(i.c.issued_on.desc(), i.c.invoice_id.desc())
        ).all()
    )


@action(
    "billing.get_last_invoice",
    errors={
        "not_found": "the customer or what was asked for is not in the back office",
        "refused": "the request cannot be granted as asked (the message says why)",
    },
)
def get_last_invoice(customer_id: str) -> Invoice:
    """The customer's latest invoice, with the previous amount for comparison."""
    from actions import backoffice as bo

    with bo.transaction() as conn:
        found = _invoices(conn, customer_id)
    if not found:
        raise NotFound(f"customer {customer_id!r} has no invoice yet")
    latest = found[0]
    # A first invoice has nothing to compare with: its previous amount is 0.
    previous = bo.money(found[1].amount) if len(found) > 1 else 0.0
    return {
        "invoice_id": latest.invoice_id,
        "amount": bo.money(latest.amount),
        "previous_amount": previous,
        "period": latest.period,
    }


@action(
    "billing.credit",
    errors={
        "not_found": "the customer or what was asked for is not in the back office",
        "refused": "the request cannot be granted as asked (the message says why)",
    },
)
def credit(customer_id: str, amount: float, reason: str) -> Credit:
    """Credit an amount on the next invoice."""
    from actions import backoffice as bo

    amount = bo.money(amount)
    if amount <= 0:
        raise Refused(f"a credit must be more than 0 EUR, not {amount}")
    reason = bo.required_text("reason", reason)
    with bo.transaction() as conn:
        found = _invoices(conn, customer_id)
        ceiling = bo.money(found[0].amount) if found else 0.0
        if amount > ceiling:
            raise Refused(
                f"a credit of {amount} EUR is more than the latest invoice ({ceiling} EUR): "
                "it needs the billing team"
            )
        credit_id = bo.add_with_code(
            conn,
            bo.credits,
            "credit_id",
            "CR",
            {"customer_id": customer_id, "amount": amount, "reason": reason},
        )
    return {"credit_id": credit_id, "amount": amount}


@action(
    "billing.open_dispute",
    errors={
        "not_found": "the customer or what was asked for is not in the back office",
        "refused": "the request cannot be granted as asked (the message says why)",
    },
)
def open_dispute(customer_id: str, invoice_id: str, reason: str) -> Dispute:
    """Put an invoice in dispute: collection is paused until billing decides."""
    from sqlalchemy import select, update

    from actions import backoffice as bo

    reason = bo.required_text("reason", reason)
    i, d = bo.invoices, bo.disputes
    with bo.transaction() as conn:
        bo.customer_row(conn, customer_id)
        invoice = conn.execute(select(i).where(i.c.invoice_id == invoice_id)).first()
        if invoice is None or invoice.customer_id != customer_id:
            raise NotFound(f"no invoice {invoice_id!r} for customer {customer_id!r}")
        already = conn.execute(
            select(d.c.dispute_id).where(d.c.invoice_id == invoice_id, d.c.status == "open")
        ).first()
        if already is not None:
            raise Refused(f"invoice {invoice_id!r} is already in dispute ({already[0]})")
        dispute_id = bo.add_with_code(
            conn,
            d,
            "dispute_id",
            "D",
            {
                "customer_id": customer_id,
                "invoice_id": invoice_id,
                "reason": reason,
                "status": "open",
            },
        )
        conn.execute(update(i).where(i.c.invoice_id == invoice_id).values(status="disputed"))
    return {"dispute_id": dispute_id}
