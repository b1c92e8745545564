"""Mobile lines: SIM cards."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypedDict

from actions.registry import NotFound, action

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection, Row

#: Days for a replacement SIM to arrive by post.
SIM_ETA_DAYS = 2


class Suspended(TypedDict):
    line_id: str
    suspended: bool


class SimOrder(TypedDict):
    sim_order_id: str
    eta_days: int


def mobile_line(conn: Connection, customer_id: str) -> Row[Any]:
    from sqlalchemy import select

    from actions import backoffice as bo

    bo.customer_row(conn, customer_id)
    line = conn.execute(
        select(bo.lines)
        .where(bo.lines.c.customer_id == customer_id, bo.lines.c.kind == "mobile")
        .order_by(bo.lines.c.line_id)
    ).first()
    if line is None:
        raise NotFound(f"customer {customer_id!r} has no mobile line")
    return line


@action(
    "lines.suspend",
    errors={"refused": "the request cannot be granted as asked (the message says why)"},
)
def suspend(customer_id: str, reason: str) -> Suspended:
    """Suspend the mobile line at once (lost or stolen SIM or phone)."""
    from sqlalchemy import update

    from actions import backoffice as bo

    reason = bo.required_text("reason", reason)
    with bo.transaction() as conn:
        line = mobile_line(conn, customer_id)
        if line.status != "suspended":  # suspending twice changes nothing
            conn.execute(
                update(bo.lines)
                .where(bo.lines.c.line_id == line.line_id)
                .values(status="suspended", suspended_reason=reason)
            )
    return {"line_id": line.line_id, "suspended": True}


@action(
    "lines.order_sim",
    errors={
        "not_found": "the customer or what was asked for is not in the back office",
        "refused": "the request cannot be granted as asked (the message says why)",
    },
)
def order_sim(customer_id: str, reason: str) -> SimOrder:
    """Send a replacement SIM with the same number to the address on file."""
    from actions import backoffice as bo

    reason = bo.required_text("reason", reason)
    with bo.transaction() as conn:
        line = mobile_line(conn, customer_id)
        customer = bo.customer_row(conn, customer_id)
        sim_order_id = bo.add_with_code(
            conn,
            bo.sim_orders,
            "sim_order_id",
            "SIM",
            {
                "customer_id": customer_id,
                "line_id": line.line_id,
                "reason": reason,
                "address": bo.address_of(customer.street, customer.postcode, customer.city),
                "eta_days": SIM_ETA_DAYS,
            },
        )
    return {"sim_order_id": sim_order_id, "eta_days": SIM_ETA_DAYS}
