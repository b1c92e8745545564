"""Network: line tests and remote resets for fixed-line internet."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypedDict

from actions.registry import NotFound, action

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection, Row

#: Faults that a remote reset of the line and box profile repairs.
RESETTABLE = ("box_profile",)


class LineTest(TypedDict):
    line_id: str
    status: str  # ok, degraded, down
    outage: bool
    outage_eta_hours: int
    sync_rate_mbps: float


class Reset(TypedDict):
    reset_id: str
    status: str  # ok, failed


def fibre_line(conn: Connection, customer_id: str) -> Row[Any]:
    from sqlalchemy import select

    from actions import backoffice as bo

    bo.customer_row(conn, customer_id)
    line = conn.execute(
        select(bo.lines)
        .where(bo.lines.c.customer_id == customer_id, bo.lines.c.kind == "fibre")
        .order_by(bo.lines.c.line_id)
    ).first()
    if line is None:
        raise NotFound(f"customer {customer_id!r} has no internet line")
    return line


def _outage(conn: Connection, area: str) -> Row[Any] | None:
    from sqlalchemy import select

    from actions import backoffice as bo

    o = bo.outages
    return conn.execute(
        select(o).where(o.c.area == area, o.c.active.is_(True)).order_by(o.c.id.desc())
    ).first()


@action("network.line_test")
def line_test(customer_id: str) -> LineTest:
    """Test the customer's line remotely and check for a known outage in the area."""
    from actions import backoffice as bo

    with bo.transaction() as conn:
        line = fibre_line(conn, customer_id)
        outage = _outage(conn, line.area)
        conn.execute(
            bo.line_tests.insert().values(
                line_id=line.line_id,
                status=line.status,
                outage=outage is not None,
                sync_rate_mbps=line.sync_rate_mbps,
                created_at=bo.now(),
            )
        )
    return {
        "line_id": line.line_id,
        "status": line.status,
        "outage": outage is not None,
        "outage_eta_hours": int(outage.eta_hours) if outage is not None else 0,
        "sync_rate_mbps": float(line.sync_rate_mbps),
    }


@action("network.remote_reset")
def remote_reset(customer_id: str) -> Reset:
    """Reset the customer's line and box profile from the network side."""
    from sqlalchemy import select, update

    from actions import backoffice as bo

    with bo.transaction() as conn:
        line = fibre_line(conn, customer_id)
        if _outage(conn, line.area) is not None or (line.fault and line.fault not in RESETTABLE):
            status = "failed"  # a cut cable or an area outage is not fixed from here
        else:
            status = "ok"
            speed = conn.execute(
                select(bo.plans.c.speed_mbps)
                .join(bo.subscriptions, bo.subscriptions.c.plan == bo.plans.c.plan)
                .where(bo.subscriptions.c.customer_id == customer_id)
            ).scalar()
            conn.execute(
                update(bo.lines)
                .where(bo.lines.c.line_id == line.line_id)
                .values(
                    status="ok",
                    fault=None,
                    sync_rate_mbps=float(speed) if speed is not None else line.sync_rate_mbps,
                )
            )
        reset_id = bo.add_with_code(
            conn, bo.resets, "reset_id", "RS", {"line_id": line.line_id, "status": status}
        )
    return {"reset_id": reset_id, "status": status}
