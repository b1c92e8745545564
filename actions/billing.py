"""Billing: invoices, credits and disputes."""

from __future__ import annotations

from typing import TypedDict

from actions.pending import not_yet_wired
from actions.registry import action


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


@action("billing.get_last_invoice")
def get_last_invoice(customer_id: str) -> Invoice:
    """The customer's latest invoice, with the previous amount for comparison."""
    return not_yet_wired("billing.get_last_invoice")


@action("billing.credit")
def credit(customer_id: str, amount: float, reason: str) -> Credit:
    """Credit an amount on the next invoice."""
    return not_yet_wired("billing.credit")


@action("billing.open_dispute")
def open_dispute(customer_id: str, invoice_id: str, reason: str) -> Dispute:
    """Put an invoice in dispute: collection is paused until billing decides."""
    return not_yet_wired("billing.open_dispute")
