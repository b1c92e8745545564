"""Orders and logistics: tracking, returns and replacement shipments."""

from __future__ import annotations

from datetime import date
from typing import TYPE_CHECKING, Any, TypedDict

from actions.registry import Refused, action

if TYPE_CHECKING:
    from sqlalchemy.engine import Row

#: Where prepaid return labels are downloaded from.
LABEL_URL = "https://returns.example.com/labels/{return_id}.pdf"
#: Days for a replacement parcel to arrive.
RESHIP_ETA_DAYS = 3


class Tracking(TypedDict):
    order_id: str
    status: str  # ordered, in_transit, delivered, lost, returned
    days_late: int
    carrier: str
    shipping_cost: float
    amount: float


class ReturnCreated(TypedDict):
    return_id: str
    label_url: str


class Reshipped(TypedDict):
    shipment_id: str
    eta_days: int


def days_late(order: Row[Any]) -> int:
    """Days past the expected date: until delivery, or until today when not delivered."""
    from actions import backoffice as bo

    end: date = order.delivered_on or bo.today()
    expected: date = order.expected_on
    return max(0, (end - expected).days)


@action(
    "orders.get_tracking",
    errors={
        "not_found": "the customer or what was asked for is not in the back office",
        "refused": "the request cannot be granted as asked (the message says why)",
    },
)
def get_tracking(order_id: str, customer_id: str | None = None) -> Tracking:
    """Where the parcel is: status, days late, carrier, shipping cost and order amount (with
    ``customer_id``, only if the order is theirs)."""
    from actions import backoffice as bo

    with bo.transaction() as conn:
        order = bo.order_row(conn, order_id, customer_id)
    return {
        "order_id": order.order_id,
        "status": order.status,
        "days_late": days_late(order),
        "carrier": order.carrier,
        "shipping_cost": bo.money(order.shipping_cost),
        "amount": bo.money(order.amount),
    }


@action(
    "orders.create_return",
    errors={
        "not_found": "the customer or what was asked for is not in the back office",
        "refused": "the request cannot be granted as asked (the message says why)",
    },
)
def create_return(order_id: str, reason: str, customer_id: str | None = None) -> ReturnCreated:
    """Open a return and produce a prepaid return label (with ``customer_id``, only on
    their own order)."""
    from sqlalchemy import select

    from actions import backoffice as bo

    reason = bo.required_text("reason", reason)
    r = bo.returns
    with bo.transaction() as conn:
        order = bo.order_row(conn, order_id, customer_id)
        if order.status != "delivered":
            raise Refused(
                f"order {order_id!r} is {order.status.replace('_', ' ')}, not delivered: "
                "there is nothing to send back yet"
            )
        open_return = conn.execute(
            select(r.c.return_id, r.c.label_url).where(
                r.c.order_id == order_id, r.c.status == "open"
            )
        ).first()
        if open_return is not None:  # one open return per order: the same label again
            return {"return_id": open_return.return_id, "label_url": open_return.label_url}
        return_id = bo.add_with_code(
            conn,
            r,
            "return_id",
            "RT",
            {"order_id": order_id, "reason": reason, "label_url": "", "status": "open"},
        )
        label_url = LABEL_URL.format(return_id=return_id)
        conn.execute(r.update().where(r.c.return_id == return_id).values(label_url=label_url))
    return {"return_id": return_id, "label_url": label_url}


@action(
    "orders.reship",
    errors={
        "not_found": "the customer or what was asked for is not in the back office",
        "refused": "the request cannot be granted as asked (the message says why)",
    },
)
def reship(order_id: str, reason: str, customer_id: str | None = None) -> Reshipped:
    """Send the same items again at no cost (lost or damaged parcel); with ``customer_id``,
    only their own order."""
    from actions import backoffice as bo

    reason = bo.required_text("reason", reason)
    with bo.transaction() as conn:
        order = bo.order_row(conn, order_id, customer_id)
        if order.status == "ordered":
            raise Refused(f"order {order_id!r} has not been shipped yet: nothing to send again")
        shipment_id = bo.add_with_code(
            conn,
            bo.shipments,
            "shipment_id",
            "S",
            {"order_id": order_id, "reason": reason, "eta_days": RESHIP_ETA_DAYS},
        )
    return {"shipment_id": shipment_id, "eta_days": RESHIP_ETA_DAYS}
