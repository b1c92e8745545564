"""Subscriptions: plans, retention offers and cancellations."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any, TypedDict

from actions.registry import NotFound, Refused, action

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection, Row

OFFERS = ("discount_20", "free_upgrade")
#: How long a retention offer lasts.
OFFER_MONTHS = 12


class Subscription(TypedDict):
    plan: str
    monthly_price: float
    tenure_months: int
    months_left: int


class PlanChanged(TypedDict):
    plan: str
    monthly_price: float
    effective_date: str


class OfferApplied(TypedDict):
    offer: str
    monthly_discount: float
    months: int


class Cancelled(TypedDict):
    cancellation_id: str
    effective_date: str
    fee: float


def _subscription(conn: Connection, customer_id: str, *, active: bool = False) -> Row[Any]:
    from sqlalchemy import select

    from actions import backoffice as bo

    bo.customer_row(conn, customer_id)
    s = bo.subscriptions
    row = conn.execute(select(s).where(s.c.customer_id == customer_id)).first()
    if row is None:
        raise NotFound(f"customer {customer_id!r} has no internet subscription")
    if active and row.status != "active":
        raise Refused(f"the subscription of {customer_id!r} is already {row.status}")
    return row


def _terms(row: Row[Any]) -> tuple[int, int]:
    """Tenure and months left in the commitment, today."""
    from actions import backoffice as bo

    tenure = bo.months_between(row.started_on, bo.today())
    return tenure, max(0, int(row.commitment_months) - tenure)


def _plan(conn: Connection, plan: str) -> Row[Any]:
    from sqlalchemy import select

    from actions import backoffice as bo

    row = conn.execute(select(bo.plans).where(bo.plans.c.plan == plan)).first()
    if row is None:
        known = conn.execute(select(bo.plans.c.plan).order_by(bo.plans.c.rank)).scalars().all()
        raise NotFound(f"no plan {plan!r}; the plans are: {', '.join(known)}")
    return row


def _next_cycle() -> str:
    """The first day of next month, when a plan change takes effect."""
    from actions import backoffice as bo

    return bo.add_months(bo.today().replace(day=1), 1).isoformat()


@action(
    "subscriptions.get",
    errors={
        "not_found": "the customer or what was asked for is not in the back office",
        "refused": "the request cannot be granted as asked (the message says why)",
    },
)
def get(customer_id: str) -> Subscription:
    """The customer's plan, price, tenure and months left in the commitment."""
    from actions import backoffice as bo

    with bo.transaction() as conn:
        row = _subscription(conn, customer_id)
    tenure, left = _terms(row)
    return {
        "plan": row.plan,
        "monthly_price": bo.money(row.monthly_price),
        "tenure_months": tenure,
        "months_left": left,
    }


@action(
    "subscriptions.change_plan",
    errors={
        "not_found": "the customer or what was asked for is not in the back office",
        "refused": "the request cannot be granted as asked (the message says why)",
    },
)
def change_plan(customer_id: str, plan: str) -> PlanChanged:
    """Move the customer to another plan from the next billing cycle."""
    from sqlalchemy import update

    from actions import backoffice as bo

    with bo.transaction() as conn:
        row = _subscription(conn, customer_id, active=True)
        target = _plan(conn, plan)
        if row.plan == plan:
            raise Refused(f"customer {customer_id!r} is already on {plan!r}")
        price, effective = bo.money(target.monthly_price), _next_cycle()
        conn.execute(
            update(bo.subscriptions)
            .where(bo.subscriptions.c.customer_id == customer_id)
            .values(plan=plan, monthly_price=price)
        )
        conn.execute(
            bo.plan_changes.insert().values(
                customer_id=customer_id,
                from_plan=row.plan,
                to_plan=plan,
                monthly_price=price,
                effective_date=bo.add_months(bo.today().replace(day=1), 1),
                created_at=bo.now(),
            )
        )
    return {"plan": plan, "monthly_price": price, "effective_date": effective}


@action(
    "subscriptions.apply_offer",
    errors={
        "not_found": "the customer or what was asked for is not in the back office",
        "refused": "the request cannot be granted as asked (the message says why)",
    },
)
def apply_offer(customer_id: str, offer: str) -> OfferApplied:
    """Apply a retention offer (``discount_20``, ``free_upgrade``)."""
    from sqlalchemy import select, update

    from actions import backoffice as bo

    if offer not in OFFERS:
        raise Refused(f"offer {offer!r} is not one of {', '.join(OFFERS)}")
    o = bo.offers
    with bo.transaction() as conn:
        row = _subscription(conn, customer_id, active=True)
        running = conn.execute(
            select(o.c.offer, o.c.ends_on).where(
                o.c.customer_id == customer_id, o.c.ends_on > bo.today()
            )
        ).first()
        if running is not None:
            raise Refused(
                f"customer {customer_id!r} already has the offer {running.offer!r} "
                f"until {running.ends_on.isoformat()}"
            )
        price = bo.money(row.monthly_price)
        if offer == "discount_20":
            discount = bo.money(price * 0.2)
        else:
            current = _plan(conn, row.plan)
            upper = conn.execute(
                select(bo.plans).where(bo.plans.c.rank > current.rank).order_by(bo.plans.c.rank)
            ).first()
            if upper is None:
                raise Refused(f"{row.plan!r} is the top of the range: no free upgrade")
            # The next plan at the current price: the discount is the difference.
            discount = bo.money(upper.monthly_price - price)
            conn.execute(
                update(bo.subscriptions)
                .where(bo.subscriptions.c.customer_id == customer_id)
                .values(plan=upper.plan)
            )
        conn.execute(
            o.insert().values(
                customer_id=customer_id,
                offer=offer,
                monthly_discount=discount,
                months=OFFER_MONTHS,
                ends_on=bo.add_months(bo.today(), OFFER_MONTHS),
                created_at=bo.now(),
            )
        )
    return {"offer": offer, "monthly_discount": discount, "months": OFFER_MONTHS}


@action(
    "subscriptions.cancel",
    errors={
        "not_found": "the customer or what was asked for is not in the back office",
        "refused": "the request cannot be granted as asked (the message says why)",
    },
)
def cancel(customer_id: str, reason: str) -> Cancelled:
    """Cancel the subscription at the end of the notice period; the fee is what is still due."""
    from sqlalchemy import update

    from actions import backoffice as bo

    reason = bo.required_text("reason", reason)
    with bo.transaction() as conn:
        row = _subscription(conn, customer_id, active=True)
        _tenure, left = _terms(row)
        fee = bo.money(left * row.monthly_price)
        # Notice: the subscription ends on the last day of next month.
        effective = bo.add_months(bo.today().replace(day=1), 2) - timedelta(days=1)
        cancellation_id = bo.add_with_code(
            conn,
            bo.cancellations,
            "cancellation_id",
            "X",
            {
                "customer_id": customer_id,
                "reason": reason,
                "effective_date": effective,
                "fee": fee,
            },
        )
        conn.execute(
            update(bo.subscriptions)
            .where(bo.subscriptions.c.customer_id == customer_id)
            .values(status="cancelled")
        )
    return {
        "cancellation_id": cancellation_id,
        "effective_date": effective.isoformat(),
        "fee": fee,
    }
