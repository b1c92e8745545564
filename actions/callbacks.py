"""Callbacks: an agent calls the customer back at an agreed time."""

from __future__ import annotations

from typing import TypedDict

from actions.pending import not_yet_wired
from actions.registry import action


class Callback(TypedDict):
    callback_id: str
    when: str


@action("callbacks.schedule")
def schedule(customer_id: str, when: str) -> Callback:
    """Book a call back to the customer (``when``: an ISO date-time or a slot name)."""
    return not_yet_wired("callbacks.schedule")
