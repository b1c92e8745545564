"""Payments: refunds and vouchers."""

from __future__ import annotations

from typing import TypedDict

from actions.pending import not_yet_wired
from actions.registry import action


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


@action("payments.refund")
def refund(order_id: str, amount: float, reason: str) -> Refund:
    """Refund an amount on an order to the original means of payment."""
    return not_yet_wired("payments.refund")


@action("payments.get_refund_status")
def get_refund_status(order_id: str) -> RefundStatus:
    """The latest refund on an order: none, pending, paid or rejected, and since when."""
    return not_yet_wired("payments.get_refund_status")


@action("payments.issue_voucher")
def issue_voucher(customer_id: str, amount: float) -> Voucher:
    """Issue a purchase voucher to the customer."""
    return not_yet_wired("payments.issue_voucher")
