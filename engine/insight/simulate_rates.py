"""How often what happens in the simulated contact centre (``journeys simulate``): the
behaviours of customers, the motives' prevalence, the channel mix, the hours and days of
contacts, the survey scores after each outcome. The figures and their sources:
docs/insight.md."""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True)
class Rates:
    """How often each behaviour happens (probabilities per contact)."""

    abandon: float = 0.05  # stops answering mid-way (twice as often in self-care)
    channel_change: float = 0.07  # goes on with the same session on another channel
    survey: float = 0.45  # answers the survey an end offers
    skip: float = 0.2  # says no to it (the others leave it unanswered)
    failure: float = 0.05  # one back-office action of the contact fails
    repeat_resolved: float = 0.06  # comes back on the same motive after a resolved contact
    repeat_unresolved: float = 0.4  # ... after an escalated, unresolved or abandoned one
    frequent: float = 0.1  # share of contacts made by the 2% of customers who call often


DEFAULT_RATES = Rates()


#: Relative frequency of the shipped motives (any other motive: 3): a few make most contacts.
PREVALENCE = {
    "delivery.late": 24,
    "delivery.missing": 15,
    "network.outage": 14,
    "account.password_reset": 10,
    "payment.refund_status": 9,
    "billing.dispute": 7,
    "order.damaged": 6,
    "subscription.plan_change": 5,
    "appointment.reschedule": 4,
    "subscription.cancel": 4,
    "account.address_change": 3,
    "line.lost_sim": 2,
    "delivery.proactive": 2,
}
#: The channel mix (restricted to the channels a journey allows).
CHANNELS = {"phone": 40, "chat": 24, "selfcare": 22, "email": 8, "social": 3, "store": 2, "sms": 1}
#: Contacts by hour of the day (UTC), Monday to Friday; nights are self-care and e-mail.
HOURS = (1, 1, 1, 1, 1, 2, 4, 9, 16, 20, 21, 19, 13, 15, 19, 19, 17, 14, 10, 7, 5, 4, 3, 2)
#: Contacts by day of the week, Monday first.
WEEKDAYS = (1.0, 0.95, 0.9, 0.9, 0.85, 0.5, 0.15)
#: Mean CES and NPS answered after each outcome (others: 2.8 and 3.5).
SURVEY_MEANS = {"resolved": (6.0, 8.6), "callback": (4.5, 6.5), "escalated": (4.2, 6.0)}
#: Agents answering the assisted channels (agent-01...); none in self-care and SMS.
AGENTS = 24
#: What a failing back-office action answers.
ERRORS = ("timeout after 30 s", "service unavailable (503)", "connection reset by peer")
#: Scenario weights by expected outcome: scenario files test every branch, traffic is mostly
#: the happy path.
OUTCOME_WEIGHTS = {"resolved": 6.0, "escalated": 1.0, "callback": 1.0, "unresolved": 1.0}


def survey_scores(rng: random.Random, outcome: str | None, effort: float) -> tuple[int, int]:
    """CES (1-7) and NPS (0-10) around the means of the outcome, less ``effort`` points."""
    ces, nps = SURVEY_MEANS.get(outcome or "", (2.8, 3.5))
    ces, nps = ces - effort, nps - effort
    return (
        max(1, min(7, round(rng.gauss(ces, 0.9)))),
        max(0, min(10, round(rng.gauss(nps, 1.5)))),
    )
