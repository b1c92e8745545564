"""Online accounts: password resets and unlocking."""

from __future__ import annotations

from typing import TypedDict

from actions.pending import not_yet_wired
from actions.registry import action


class ResetLink(TypedDict):
    message_id: str
    expires_minutes: int


class Unlocked(TypedDict):
    unlocked: bool


@action("accounts.send_reset_link")
def send_reset_link(customer_id: str, channel: str) -> ResetLink:
    """Send a one-time password reset link by ``sms`` or ``email``."""
    return not_yet_wired("accounts.send_reset_link")


@action("accounts.unlock")
def unlock(customer_id: str) -> Unlocked:
    """Unlock an account locked after too many failed sign-ins."""
    return not_yet_wired("accounts.unlock")
