"""Outgoing messages to customers (SMS, e-mail, push)."""

from __future__ import annotations

from typing import TypedDict

from actions.pending import not_yet_wired
from actions.registry import action


class Message(TypedDict):
    message_id: str


@action("notify.send")
def send(customer_id: str, channel: str, template: str) -> Message:
    """Send a templated message to the customer on a channel (sms, email, push)."""
    return not_yet_wired("notify.send")
