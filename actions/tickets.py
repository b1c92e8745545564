"""Tickets: work for a back-office team, tracked until closed."""

from __future__ import annotations

from typing import TypedDict

from actions.registry import action


class Ticket(TypedDict):
    ticket_id: str


@action(
    "tickets.create",
    errors={
        "not_found": "the customer or what was asked for is not in the back office",
        "refused": "the request cannot be granted as asked (the message says why)",
    },
)
def create(queue: str, summary: str, customer_id: str | None = None) -> Ticket:
    """Open a ticket in a back-office queue (logistics, billing, network, ...)."""
    from actions import backoffice as bo

    queue = bo.required_text("queue", queue)
    summary = bo.required_text("summary", summary)
    with bo.transaction() as conn:
        if customer_id is not None:
            bo.customer_row(conn, customer_id)
        ticket_id = bo.add_with_code(
            conn,
            bo.tickets,
            "ticket_id",
            "T",
            {"queue": queue, "summary": summary, "customer_id": customer_id, "status": "open"},
        )
    return {"ticket_id": ticket_id}
