"""Customer relationship management: who the customer is and what was done for them."""

from __future__ import annotations

from typing import TypedDict

from actions.pending import not_yet_wired
from actions.registry import action


class Customer(TypedDict):
    customer_id: str
    name: str
    tier: str
    phone: str
    email: str
    postcode: str


class Verification(TypedDict):
    verified: bool


class ContactLogged(TypedDict):
    contact_id: str


class AddressChanged(TypedDict):
    customer_id: str
    address: str


@action("crm.get_customer")
def get_customer(customer_id: str) -> Customer:
    """Read the customer's record: name, tier (standard or premium), phone, email, postcode."""
    return not_yet_wired("crm.get_customer")


@action("crm.verify_identity")
def verify_identity(customer_id: str, postcode: str) -> Verification:
    """Check a security answer (the postcode on file) before account changes."""
    return not_yet_wired("crm.verify_identity")


@action("crm.log_contact")
def log_contact(
    customer_id: str, motive: str, outcome: str, note: str | None = None
) -> ContactLogged:
    """Write the contact into the customer's history (usually in ``end.after``)."""
    return not_yet_wired("crm.log_contact")


@action("crm.update_address")
def update_address(customer_id: str, street: str, postcode: str, city: str) -> AddressChanged:
    """Replace the customer's postal address; open orders not yet shipped follow it."""
    return not_yet_wired("crm.update_address")
