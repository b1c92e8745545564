"""Tickets: work for a back-office team, tracked until closed."""

from __future__ import annotations

from typing import TypedDict

from actions.pending import not_yet_wired
from actions.registry import action


class Ticket(TypedDict):
    ticket_id: str


@action("tickets.create")
def create(queue: str, summary: str, customer_id: str | None = None) -> Ticket:
    """Open a ticket in a back-office queue (logistics, billing, network, ...)."""
    return not_yet_wired("tickets.create")
