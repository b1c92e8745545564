"""Callbacks: an agent calls the customer back at an agreed time."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TypedDict

from actions.registry import Refused, action

#: Named slots: name -> (days from today, hours).
SLOTS = {
    "today_morning": (0, "09:00-12:00"),
    "today_afternoon": (0, "14:00-17:00"),
    "today_evening": (0, "17:00-20:00"),
    "tomorrow_morning": (1, "09:00-12:00"),
    "tomorrow_afternoon": (1, "14:00-17:00"),
    "tomorrow_evening": (1, "17:00-20:00"),
}


class Callback(TypedDict):
    callback_id: str
    when: str


def resolve(when: str) -> str:
    """A slot name or an ISO date-time -> the agreed time, like ``2025-06-10 17:00-20:00``."""
    from actions import backoffice as bo

    today = bo.today()
    text = (when or "").strip()
    if text in SLOTS:
        days, hours = SLOTS[text]
        return f"{(today + timedelta(days=days)).isoformat()} {hours}"
    if text == "next_business_day":
        day = today + timedelta(days=1)
        while day.weekday() >= 5:
            day += timedelta(days=1)
        return f"{day.isoformat()} 09:00-18:00"
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise Refused(
            f"callback time {when!r} is neither a date-time (2025-06-10T17:30) nor one of "
            f"{', '.join([*SLOTS, 'next_business_day'])}"
        ) from None
    if moment.date() < today:
        raise Refused(f"callback time {when!r} is in the past")
    return moment.strftime("%Y-%m-%d %H:%M")


@action(
    "callbacks.schedule",
    errors={"not_found": "the customer or what was asked for is not in the back office"},
)
def schedule(customer_id: str, when: str) -> Callback:
    """Book a call back to the customer (``when``: an ISO date-time or a slot name)."""
    from actions import backoffice as bo

    slot = resolve(when)
    with bo.transaction() as conn:
        bo.customer_row(conn, customer_id)
        callback_id = bo.add_with_code(
            conn,
            bo.callbacks,
            "callback_id",
            "CB",
            {"customer_id": customer_id, "requested": when, "slot": slot, "status": "booked"},
        )
    return {"callback_id": callback_id, "when": slot}
