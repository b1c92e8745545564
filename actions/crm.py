"""Customer relationship management: who the customer is and what was done for them."""

from __future__ import annotations

from typing import TypedDict

from actions.registry import Refused, action

OUTCOMES = ("resolved", "unresolved", "escalated", "callback", "abandoned")


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


@action(
    "crm.get_customer",
    errors={"not_found": "the customer or what was asked for is not in the back office"},
)
def get_customer(customer_id: str) -> Customer:
    """Read the customer's record: name, tier (standard or premium), phone, email, postcode."""
    from actions import backoffice as bo

    with bo.transaction() as conn:
        row = bo.customer_row(conn, customer_id)
    return {
        "customer_id": row.customer_id,
        "name": row.name,
        "tier": row.tier,
        "phone": row.phone,
        "email": row.email,
        "postcode": row.postcode,
    }


@action(
    "crm.verify_identity",
    errors={"not_found": "the customer or what was asked for is not in the back office"},
)
def verify_identity(customer_id: str, postcode: str) -> Verification:
    """Check a security answer (the postcode on file) before account changes."""
    from actions import backoffice as bo

    with bo.transaction() as conn:
        row = bo.customer_row(conn, customer_id)
    return {"verified": _postcode(postcode) == _postcode(row.postcode)}


def _postcode(text: str) -> str:
    return "".join((text or "").split()).upper()


@action(
    "crm.log_contact",
    errors={
        "not_found": "the customer or what was asked for is not in the back office",
        "refused": "the request cannot be granted as asked (the message says why)",
    },
)
def log_contact(
    customer_id: str, motive: str, outcome: str, note: str | None = None
) -> ContactLogged:
    """Write the contact into the customer's history (usually in ``end.after``)."""
    from actions import backoffice as bo

    motive = bo.required_text("motive", motive)
    if outcome not in OUTCOMES:
        raise Refused(f"outcome {outcome!r} is not one of {', '.join(OUTCOMES)}")
    with bo.transaction() as conn:
        bo.customer_row(conn, customer_id)
        contact_id = bo.add_with_code(
            conn,
            bo.contact_log,
            "contact_id",
            "CT",
            {"customer_id": customer_id, "motive": motive, "outcome": outcome, "note": note},
        )
    return {"contact_id": contact_id}


@action(
    "crm.update_address",
    errors={
        "not_found": "the customer or what was asked for is not in the back office",
        "refused": "the request cannot be granted as asked (the message says why)",
    },
)
def update_address(customer_id: str, street: str, postcode: str, city: str) -> AddressChanged:
    """Replace the customer's postal address; open orders not yet shipped follow it."""
    from sqlalchemy import update

    from actions import backoffice as bo

    street = bo.required_text("street", street)
    postcode = bo.required_text("postcode", postcode).upper()
    city = bo.required_text("city", city)
    new = bo.address_of(street, postcode, city)
    with bo.transaction() as conn:
        row = bo.customer_row(conn, customer_id)
        old = bo.address_of(row.street, row.postcode, row.city)
        conn.execute(
            update(bo.customers)
            .where(bo.customers.c.customer_id == customer_id)
            .values(street=street, postcode=postcode, city=city)
        )
        moved = conn.execute(
            update(bo.orders)
            .where(bo.orders.c.customer_id == customer_id, bo.orders.c.status == "ordered")
            .values(delivery_address=new)
        ).rowcount
        conn.execute(
            bo.address_changes.insert().values(
                customer_id=customer_id,
                old_address=old,
                new_address=new,
                orders_moved=moved,
                created_at=bo.now(),
            )
        )
    return {"customer_id": customer_id, "address": new}
