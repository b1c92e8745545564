"""Technician appointments."""

from __future__ import annotations

from datetime import date, timedelta
from typing import TypedDict

from actions.registry import NotFound, Refused, action

PERIODS = ("morning", "afternoon")
#: How far ahead a visit can be booked.
BOOKING_DAYS = 30


class Appointment(TypedDict):
    appointment_id: str
    when: str
    status: str  # booked, none


class Rescheduled(TypedDict):
    appointment_id: str
    when: str


def _when(day: date, period: str) -> str:
    return f"{day.isoformat()} {period}"


@action(
    "appointments.get_current",
    errors={"not_found": "the customer or what was asked for is not in the back office"},
)
def get_current(customer_id: str) -> Appointment:
    """The customer's next technician appointment, if any (status ``none`` otherwise)."""
    from sqlalchemy import select

    from actions import backoffice as bo

    a = bo.appointments
    with bo.transaction() as conn:
        bo.customer_row(conn, customer_id)
        row = conn.execute(
            select(a)
            .where(a.c.customer_id == customer_id, a.c.status == "booked", a.c.day >= bo.today())
            .order_by(a.c.day, a.c.period.desc(), a.c.id)  # "morning" before "afternoon"
        ).first()
    if row is None:
        return {"appointment_id": "", "when": "", "status": "none"}
    return {
        "appointment_id": row.appointment_id,
        "when": _when(row.day, row.period),
        "status": "booked",
    }


def parse_slot(slot: str) -> tuple[date, str]:
    """``2025-06-12 morning`` -> the day and the period, checked against the planning rules:
    Monday to Saturday, from tomorrow to 30 days ahead."""
    from actions import backoffice as bo

    parts = (slot or "").split()
    try:
        day = date.fromisoformat(parts[0])
    except (IndexError, ValueError):
        day = None
    if day is None or len(parts) != 2 or parts[1] not in PERIODS:
        raise Refused(
            f"slot {slot!r} is not a day and a period, like '2025-06-12 morning' or "
            "'2025-06-12 afternoon'"
        )
    first, last = bo.today() + timedelta(days=1), bo.today() + timedelta(days=BOOKING_DAYS)
    if not first <= day <= last:
        raise Refused(
            f"no technician slot on {day.isoformat()}: visits are booked from "
            f"{first.isoformat()} to {last.isoformat()}"
        )
    if day.weekday() == 6:
        raise Refused(f"no technician slot on {day.isoformat()}: it is a Sunday")
    return day, parts[1]


@action(
    "appointments.reschedule",
    errors={
        "not_found": "the customer or what was asked for is not in the back office",
        "refused": "the request cannot be granted as asked (the message says why)",
    },
)
def reschedule(appointment_id: str, slot: str, customer_id: str | None = None) -> Rescheduled:
    """Move an appointment to another slot (``morning``/``afternoon`` of a date); with
    ``customer_id``, only their own appointment."""
    from sqlalchemy import select, update

    from actions import backoffice as bo

    day, period = parse_slot(slot)
    a = bo.appointments
    with bo.transaction() as conn:
        row = conn.execute(select(a).where(a.c.appointment_id == appointment_id)).first()
        if row is None or (customer_id is not None and row.customer_id != customer_id):
            raise NotFound(f"no appointment {appointment_id!r} for this customer")
        if row.status != "booked":
            raise Refused(f"appointment {appointment_id!r} is {row.status}, it cannot be moved")
        conn.execute(
            update(a)
            .where(a.c.id == row.id)
            .values(day=day, period=period, previous_slot=_when(row.day, row.period))
        )
    return {"appointment_id": appointment_id, "when": _when(day, period)}
