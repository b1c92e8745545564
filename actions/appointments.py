"""Technician appointments."""

from __future__ import annotations

from typing import TypedDict

from actions.pending import not_yet_wired
from actions.registry import action


class Appointment(TypedDict):
    appointment_id: str
    when: str
    status: str  # booked, none


class Rescheduled(TypedDict):
    appointment_id: str
    when: str


@action("appointments.get_current")
def get_current(customer_id: str) -> Appointment:
    """The customer's next technician appointment, if any (status ``none`` otherwise)."""
    return not_yet_wired("appointments.get_current")


@action("appointments.reschedule")
def reschedule(appointment_id: str, slot: str) -> Rescheduled:
    """Move an appointment to another slot (``morning``/``afternoon`` of a date)."""
    return not_yet_wired("appointments.reschedule")
