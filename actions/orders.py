"""Orders and logistics: tracking, returns and replacement shipments."""

from __future__ import annotations

from typing import TypedDict

from actions.pending import not_yet_wired
from actions.registry import action


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


@action("orders.get_tracking")
def get_tracking(order_id: str) -> Tracking:
    """Where the parcel is: status, days late, carrier, shipping cost and order amount."""
    return not_yet_wired("orders.get_tracking")


@action("orders.create_return")
def create_return(order_id: str, reason: str) -> ReturnCreated:
    """Open a return and produce a prepaid return label."""
    return not_yet_wired("orders.create_return")


@action("orders.reship")
def reship(order_id: str, reason: str) -> Reshipped:
    """Send the same items again at no cost (lost or damaged parcel)."""
    return not_yet_wired("orders.reship")
