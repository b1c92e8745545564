"""Network: line tests and remote resets for fixed-line internet."""

from __future__ import annotations

from typing import TypedDict

from actions.pending import not_yet_wired
from actions.registry import action


class LineTest(TypedDict):
    line_id: str
    status: str  # ok, degraded, down
    outage: bool
    outage_eta_hours: int
    sync_rate_mbps: float


class Reset(TypedDict):
    reset_id: str
    status: str  # ok, failed


@action("network.line_test")
def line_test(customer_id: str) -> LineTest:
    """Test the customer's line remotely and check for a known outage in the area."""
    return not_yet_wired("network.line_test")


@action("network.remote_reset")
def remote_reset(customer_id: str) -> Reset:
    """Reset the customer's line and box profile from the network side."""
    return not_yet_wired("network.remote_reset")
