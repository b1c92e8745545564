"""Mobile lines: SIM cards."""

from __future__ import annotations

from typing import TypedDict

from actions.pending import not_yet_wired
from actions.registry import action


class Suspended(TypedDict):
    line_id: str
    suspended: bool


class SimOrder(TypedDict):
    sim_order_id: str
    eta_days: int


@action("lines.suspend")
def suspend(customer_id: str, reason: str) -> Suspended:
    """Suspend the mobile line at once (lost or stolen SIM or phone)."""
    return not_yet_wired("lines.suspend")


@action("lines.order_sim")
def order_sim(customer_id: str, reason: str) -> SimOrder:
    """Send a replacement SIM with the same number to the address on file."""
    return not_yet_wired("lines.order_sim")
