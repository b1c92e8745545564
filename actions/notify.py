"""Outgoing messages to customers (SMS, e-mail, push)."""

from __future__ import annotations

from typing import TypedDict

from actions.registry import Refused, action

CHANNELS = ("sms", "email", "push")


class Message(TypedDict):
    message_id: str


@action(
    "notify.send",
    errors={
        "not_found": "the customer or what was asked for is not in the back office",
        "refused": "the request cannot be granted as asked (the message says why)",
    },
)
def send(customer_id: str, channel: str, template: str) -> Message:
    """Send a templated message to the customer on a channel (sms, email, push)."""
    from actions import backoffice as bo

    if channel not in CHANNELS:
        raise Refused(f"channel {channel!r} is not one of {', '.join(CHANNELS)}")
    template = bo.required_text("template", template)
    with bo.transaction() as conn:
        customer = bo.customer_row(conn, customer_id)
        recipient = {"sms": customer.phone, "email": customer.email}.get(channel, "app")
        message_id = bo.add_message(conn, customer_id, channel, recipient, template)
    return {"message_id": message_id}
