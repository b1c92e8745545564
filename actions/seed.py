"""The seed of the demo back office: deterministic data, dated from the day it is inserted.

Customers C001...C050 with their orders, fibre and mobile lines, internet subscriptions,
invoices and online accounts. C001...C016 are the cases that lead the shipped journeys down
their different branches (docs/backoffice.md lists them); C017...C050 are ordinary customers
made by rule. Nothing here is random: the same day gives the same database.
"""

from __future__ import annotations

import unicodedata
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import insert
from sqlalchemy.engine import Connection

from actions import backoffice as bo

CUSTOMER_COUNT = 50

#: The special customers: number -> (name, tier, street, postcode, city).
SPECIAL_CUSTOMERS: dict[int, tuple[str, str, str, str, str]] = {
    1: ("Ada Martin", "standard", "12 rue Oberkampf", "75011", "Paris"),
    2: ("Bruno Petit", "premium", "48 rue Paul Bert", "69003", "Lyon"),
    3: ("Camille Durand", "standard", "7 allée Jean Jaurès", "31000", "Toulouse"),
    4: ("David Leroy", "standard", "21 rue Paradis", "13001", "Marseille"),
    5: ("Emma Moreau", "standard", "3 rue Nationale", "59000", "Lille"),
    6: ("Farid Benali", "standard", "14 cours de l'Intendance", "33000", "Bordeaux"),
    7: ("Gaëlle Simon", "standard", "9 rue Crébillon", "44000", "Nantes"),
    8: ("Hugo Laurent", "premium", "2 quai des Bateliers", "67000", "Strasbourg"),
    9: ("Inès Lefèvre", "standard", "30 rue de Saint-Malo", "35000", "Rennes"),
    10: ("Julien Michel", "standard", "11 rue de la Loge", "34000", "Montpellier"),
    11: ("Karima Garcia", "standard", "6 avenue Jean Médecin", "06000", "Nice"),
    12: ("Louis David", "standard", "17 rue Sainte-Catherine", "33000", "Bordeaux"),
    13: ("Manon Bertrand", "standard", "40 rue de la République", "69003", "Lyon"),
    14: ("Nathan Roux", "premium", "8 place du Capitole", "31000", "Toulouse"),
    15: ("Océane Vincent", "standard", "25 boulevard Voltaire", "75011", "Paris"),
    16: ("Paul Fournier", "standard", "4 rue des Carmes", "44000", "Nantes"),
}

FIRST_NAMES = [
    "Alice", "Bastien", "Claire", "Damien", "Elise", "Florian", "Hélène", "Ismaël", "Jeanne",
    "Karim", "Léa", "Mathis", "Nora", "Olivier", "Pauline", "Quentin", "Rose", "Samuel",
    "Théo", "Ursula", "Valentin", "Yasmine", "Zoé",
]  # fmt: skip
LAST_NAMES = [
    "Dubois", "Lambert", "Bonnet", "François", "Mercier", "Girard", "André", "Lefebvre",
    "Faure", "Rousseau", "Blanc", "Guérin", "Muller", "Henry", "Roussel", "Nicolas", "Perrin",
    "Morin", "Mathieu", "Clément", "Gauthier",
]  # fmt: skip
STREETS = [
    "rue de la République", "avenue Victor Hugo", "rue Pasteur", "boulevard Gambetta",
    "rue du Moulin", "place de la Mairie", "rue des Écoles", "chemin des Vignes",
]  # fmt: skip
#: Where ordinary customers live (never 59000: that area has the known outage of C005).
CITIES = [
    ("75011", "Paris"), ("69003", "Lyon"), ("31000", "Toulouse"), ("13001", "Marseille"),
    ("33000", "Bordeaux"), ("44000", "Nantes"), ("67000", "Strasbourg"), ("35000", "Rennes"),
    ("34000", "Montpellier"), ("06000", "Nice"),
]  # fmt: skip
CARRIERS = ["Colissimo", "Chronopost", "DPD", "UPS"]

#: plan -> (name, monthly price, sync rate of a healthy line in Mbps, rank in the range)
PLANS: dict[str, tuple[str, float, float, int]] = {
    "fibre_essential": ("Fibre Essential 300 Mbps", 24.99, 300.0, 1),
    "fibre_plus": ("Fibre Plus 1 Gbps", 34.99, 940.0, 2),
    "fibre_max": ("Fibre Max 2 Gbps", 49.99, 1880.0, 3),
    "fibre_max_tv": ("Fibre Max + TV", 59.99, 1880.0, 4),
}

#: Special subscriptions: customer -> (plan, tenure in months, commitment in months).
#: C016 has no internet subscription (mobile only).
SPECIAL_SUBSCRIPTIONS: dict[int, tuple[str, int, int] | None] = {
    1: ("fibre_plus", 30, 12),  # loyal, commitment over: both retention offers, no fee
    2: ("fibre_max", 14, 24),  # 10 months left: 20 % offer, cancellation fee
    3: ("fibre_essential", 3, 12),  # new customer: no retention offer, 9 months to pay
    4: ("fibre_plus", 8, 12),  # 4 months left
    5: ("fibre_max_tv", 40, 24),  # top of the range: no free upgrade possible
    16: None,
}

#: Special fibre lines: customer -> (status, sync rate, fault); the others test ok.
SPECIAL_FIBRE: dict[int, tuple[str, float, str | None]] = {
    5: ("down", 0.0, None),  # the area outage of 59000 Lille
    6: ("degraded", 12.5, "box_profile"),  # a remote reset fixes it
    7: ("degraded", 3.2, "copper"),  # a remote reset fails: repair ticket and callback
    8: ("down", 0.0, "fibre_cut"),  # down, technician appointment booked
}  # C016 has no fibre line: no internet subscription
NO_MOBILE = {15}  # fibre only: lost-sim cannot suspend a mobile line

#: Special invoices: customer -> (previous amount, latest amount).
SPECIAL_INVOICES: dict[int, tuple[float, float]] = {
    1: (34.99, 42.49),  # +7.50: goodwill credit (standard limit 10)
    2: (49.99, 67.49),  # +17.50: goodwill credit (premium limit 20)
    3: (24.99, 24.99),  # no increase
    4: (34.99, 66.99),  # +32.00: formal dispute
    5: (59.99, 149.99),  # +90.00: dispute and a billing specialist
}


def seed(conn: Connection, day: date) -> None:
    """Insert the whole seed, dated from ``day`` (inside the caller's transaction)."""
    created = datetime.combine(day, datetime.min.time(), UTC)
    people = [_customer(i) for i in range(1, CUSTOMER_COUNT + 1)]
    conn.execute(insert(bo.customers), people)
    conn.execute(
        insert(bo.plans),
        [
            {"plan": p, "name": n, "monthly_price": price, "speed_mbps": speed, "rank": rank}
            for p, (n, price, speed, rank) in PLANS.items()
        ],
    )
    _orders(conn, day, people)
    _telecom(conn, day, people, created)
    _refunds(conn, day, created)


def customer_id(i: int) -> str:
    return f"C{i:03d}"


def _customer(i: int) -> dict[str, Any]:
    if i in SPECIAL_CUSTOMERS:
        name, tier, street, postcode, city = SPECIAL_CUSTOMERS[i]
    else:
        name = f"{FIRST_NAMES[i % len(FIRST_NAMES)]} {LAST_NAMES[(i * 7) % len(LAST_NAMES)]}"
        tier = "premium" if i % 5 == 0 else "standard"
        street = f"{(i * 7) % 60 + 1} {STREETS[i % len(STREETS)]}"
        postcode, city = CITIES[i % len(CITIES)]
    return {
        "customer_id": customer_id(i),
        "name": name,
        "tier": tier,
        "phone": f"+336{i:08d}",
        # ordinary customers may share a name: their number keeps the address unique
        "email": f"{_slug(name)}@example.com"
        if i in SPECIAL_CUSTOMERS
        else f"{_slug(name)}.{i:03d}@example.com",
        "street": street,
        "postcode": postcode,
        "city": city,
    }


def _slug(name: str) -> str:
    """ "Gaëlle Simon" -> "gaelle.simon"."""
    plain = "".join(c for c in unicodedata.normalize("NFKD", name) if not unicodedata.combining(c))
    return plain.lower().replace("'", "").replace(" ", ".")


MONTHS = [
    "January", "February", "March", "April", "May", "June", "July", "August", "September",
    "October", "November", "December",
]  # fmt: skip


def month_label(day: date) -> str:
    return f"{MONTHS[day.month - 1]} {day.year}"


def _orders(conn: Connection, day: date, people: list[dict[str, Any]]) -> None:
    def d(offset: int) -> date:
        return day + timedelta(days=offset)

    # order, customer, status, carrier, shipping, amount, ordered, expected, delivered
    special: list[tuple[str, int, str, str, float, float, date, date, date | None]] = [
        ("10000001", 1, "in_transit", "Colissimo", 4.90, 59.90, d(-12), d(-7), None),
        ("10000002", 2, "delivered", "Chronopost", 0.0, 129.00, d(-6), d(-3), d(-3)),
        ("10000003", 3, "in_transit", "Colissimo", 3.90, 24.50, d(-5), d(-1), None),
        ("10000004", 4, "lost", "DPD", 5.90, 89.00, d(-20), d(-14), None),
        ("10000005", 2, "in_transit", "Chronopost", 0.0, 45.00, d(-6), d(-3), None),
        ("10000006", 6, "delivered", "Colissimo", 3.90, 34.90, d(-5), d(-2), d(-2)),
        ("10000007", 7, "returned", "DPD", 4.90, 75.00, d(-15), d(-9), None),
        ("10000008", 1, "ordered", "Colissimo", 4.90, 32.00, d(-1), d(4), None),
        ("10000009", 11, "delivered", "UPS", 4.90, 45.00, d(-20), d(-16), d(-16)),
        ("10000010", 12, "delivered", "Colissimo", 3.90, 35.00, d(-14), d(-10), d(-10)),
        ("10000011", 13, "delivered", "DPD", 5.90, 89.00, d(-30), d(-25), d(-24)),
        ("10000012", 14, "delivered", "Chronopost", 0.0, 249.00, d(-25), d(-21), d(-21)),
    ]
    address = {
        p["customer_id"]: bo.address_of(p["street"], p["postcode"], p["city"]) for p in people
    }
    rows = [
        {
            "order_id": oid,
            "customer_id": customer_id(c),
            "status": status,
            "carrier": carrier,
            "shipping_cost": shipping,
            "amount": amount,
            "ordered_on": ordered,
            "expected_on": expected,
            "delivered_on": delivered,
            "delivery_address": address[customer_id(c)],
        }
        for oid, c, status, carrier, shipping, amount, ordered, expected, delivered in special
    ]
    with_orders = {c for _, c, *_ in special}
    number = 10000000 + len(special)
    for person in people:
        i = int(person["customer_id"][1:])
        if i in with_orders:
            continue
        number += 1
        delivered = d(-(i % 20 + 3))
        rows.append(
            {
                "order_id": str(number),
                "customer_id": person["customer_id"],
                "status": "delivered",
                "carrier": CARRIERS[i % len(CARRIERS)],
                "shipping_cost": 0.0 if person["tier"] == "premium" else 4.90,
                "amount": bo.money(19.90 + (i * 13) % 150),
                "ordered_on": delivered - timedelta(days=4),
                "expected_on": delivered,
                "delivered_on": delivered,
                "delivery_address": address[person["customer_id"]],
            }
        )
    conn.execute(insert(bo.orders), rows)


#: The account locks of the seed: customer -> (reason, failed attempts so far).
LOCKED_ACCOUNTS: dict[int, tuple[str, int]] = {
    9: ("too_many_attempts", 5),
    10: ("security_review", 0),
}


def _telecom(conn: Connection, day: date, people: list[dict[str, Any]], created: datetime) -> None:
    """Subscriptions with their fibre lines, mobile lines, invoices, online accounts, the
    known outages and two technician appointments."""
    plans = [(person, _plan(person)) for person in people]
    subscribed = [(person, plan) for person, plan in plans if plan[0] is not None]
    fibre = [_line(p, "fibre", PLANS[str(plan[0])][2]) for p, plan in subscribed]
    mobile = [_line(p, "mobile") for p in people if _number(p) not in NO_MOBILE]
    conn.execute(insert(bo.subscriptions), [_subscription(p, plan, day) for p, plan in subscribed])
    conn.execute(insert(bo.lines), fibre + mobile)
    conn.execute(insert(bo.invoices), [b for p, plan in plans for b in _invoices(p, plan[0], day)])
    conn.execute(insert(bo.accounts), [_account(p) for p in people])
    conn.execute(insert(bo.outages), _outages(created))
    for row in _appointments(day, created):
        bo.add_with_code(conn, bo.appointments, "appointment_id", "AP", row)


def _number(person: dict[str, Any]) -> int:
    return int(person["customer_id"][1:])


def _plan(person: dict[str, Any]) -> tuple[str | None, int, int]:
    """The customer's internet plan (None: mobile only), tenure and commitment in months."""
    i = _number(person)
    if i in SPECIAL_SUBSCRIPTIONS:
        return SPECIAL_SUBSCRIPTIONS[i] or (None, 0, 0)
    commitment = 24 if person["tier"] == "premium" else 12
    return list(PLANS)[i % len(PLANS)], 1 + (i * 7) % 47, commitment


def _subscription(
    person: dict[str, Any], plan: tuple[str | None, int, int], day: date
) -> dict[str, Any]:
    code, tenure, commitment = plan
    return {
        "customer_id": person["customer_id"],
        "plan": code,
        "monthly_price": PLANS[str(code)][1],
        "started_on": bo.add_months(day, -tenure),
        "commitment_months": commitment,
        "status": "active",
    }


def _line(person: dict[str, Any], kind: str, healthy_rate: float = 0.0) -> dict[str, Any]:
    """A fibre line (with an internet subscription: its sync rate, or a special fault) or
    the customer's mobile line (its phone number)."""
    i = _number(person)
    status, rate, fault = ("active", 0.0, None)
    if kind == "fibre":
        status, rate, fault = SPECIAL_FIBRE.get(i) or ("ok", healthy_rate, None)
    return {
        "line_id": f"L-{person['postcode']}-{i:03d}" if kind == "fibre" else person["phone"],
        "customer_id": person["customer_id"],
        "kind": kind,
        "status": status,
        "area": person["postcode"],
        "sync_rate_mbps": rate,
        "fault": fault,
        "suspended_reason": None,
    }


def _invoices(person: dict[str, Any], plan: str | None, day: date) -> list[dict[str, Any]]:
    """The last two monthly invoices: the previous one paid, the latest one due."""
    i = _number(person)
    usual = PLANS[plan][1] if plan else 9.99
    previous, latest = SPECIAL_INVOICES.get(i, (usual, usual))
    this_month = day.replace(day=1)
    return [
        {
            "invoice_id": f"INV-{period:%y%m}-{i:03d}",
            "customer_id": person["customer_id"],
            "period": month_label(period),
            "issued_on": bo.add_months(period, 1),
            "amount": amount,
            "status": status,
        }
        for period, amount, status in (
            (bo.add_months(this_month, -2), previous, "paid"),
            (bo.add_months(this_month, -1), latest, "due"),
        )
    ]


def _account(person: dict[str, Any]) -> dict[str, Any]:
    lock = LOCKED_ACCOUNTS.get(_number(person))
    return {
        "customer_id": person["customer_id"],
        "login": person["email"],
        "locked": lock is not None,
        "lock_reason": lock[0] if lock else None,
        "failed_attempts": lock[1] if lock else 0,
        "reset_requested_at": None,
    }


def _outages(created: datetime) -> list[dict[str, Any]]:
    return [
        {
            "area": "59000",
            "description": "Fibre cable cut between Lille-Centre and Lille-Fives",
            "started_at": datetime.now(UTC) - timedelta(hours=2),
            "eta_hours": 4,
            "active": True,
        },
        {
            "area": "69003",
            "description": "Optical node maintenance (over)",
            "started_at": created - timedelta(days=20),
            "eta_hours": 0,
            "active": False,
        },
    ]


def _appointments(day: date, created: datetime) -> list[dict[str, Any]]:
    visit = day + timedelta(days=4)
    if visit.weekday() == 6:  # no visits on Sundays
        visit += timedelta(days=1)
    return [
        {
            "customer_id": cid,
            "day": on,
            "period": half,
            "purpose": purpose,
            "status": status,
            "created_at": created,
        }
        for cid, on, half, purpose, status in (
            ("C008", visit, "morning", "fibre repair (line down)", "booked"),
            ("C006", day - timedelta(days=10), "afternoon", "box installation", "done"),
        )
    ]


def _refunds(conn: Connection, day: date, created: datetime) -> None:
    # order, amount, status, requested days ago, decided days ago, reason
    for order_id, amount, status, asked, decided, reason in (
        ("10000009", 45.00, "paid", 6, 2, "item returned"),
        ("10000010", 35.00, "pending", 4, None, "item returned"),
        ("10000011", 89.00, "pending", 15, None, "item returned"),
        ("10000012", 249.00, "rejected", 8, 3, "return not received at the warehouse"),
    ):
        bo.add_with_code(
            conn,
            bo.refunds,
            "refund_id",
            "R",
            {
                "order_id": order_id,
                "amount": amount,
                "reason": reason,
                "status": status,
                "requested_on": day - timedelta(days=asked),
                "decided_on": None if decided is None else day - timedelta(days=decided),
                "created_at": created - timedelta(days=asked),
            },
        )
