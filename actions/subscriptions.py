"""Subscriptions: plans, retention offers and cancellations."""

from __future__ import annotations

from typing import TypedDict

from actions.pending import not_yet_wired
from actions.registry import action


class Subscription(TypedDict):
    plan: str
    monthly_price: float
    tenure_months: int
    months_left: int


class PlanChanged(TypedDict):
    plan: str
    monthly_price: float
    effective_date: str


class OfferApplied(TypedDict):
    offer: str
    monthly_discount: float
    months: int


class Cancelled(TypedDict):
    cancellation_id: str
    effective_date: str
    fee: float


@action("subscriptions.get")
def get(customer_id: str) -> Subscription:
    """The customer's plan, price, tenure and months left in the commitment."""
    return not_yet_wired("subscriptions.get")


@action("subscriptions.change_plan")
def change_plan(customer_id: str, plan: str) -> PlanChanged:
    """Move the customer to another plan from the next billing cycle."""
    return not_yet_wired("subscriptions.change_plan")


@action("subscriptions.apply_offer")
def apply_offer(customer_id: str, offer: str) -> OfferApplied:
    """Apply a retention offer (``discount_20``, ``free_upgrade``)."""
    return not_yet_wired("subscriptions.apply_offer")


@action("subscriptions.cancel")
def cancel(customer_id: str, reason: str) -> Cancelled:
    """Cancel the subscription at the end of the notice period; the fee is what is still due."""
    return not_yet_wired("subscriptions.cancel")
