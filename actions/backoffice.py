"""The demo back office: an embedded database that the shipped actions really read and change.

A SQLite file by default (``backoffice.db`` in the journeys home, an absolute folder: see
engine/adapters/home.py), or any SQLAlchemy URL in ``JOURNEYS_BACKOFFICE_DB`` (``postgresql+psycopg://...``). The tables are created and
filled with deterministic seed data the first time the database is used (see
``actions/seed.py`` and docs/backoffice.md): customers C001...C050, their orders, lines,
subscriptions, invoices, accounts and appointments, a few refunds and a known outage. Every
action then writes what it does (refunds, vouchers, returns, tickets, messages, callbacks, the
contact log, ...) so that ``journeys backoffice show TABLE`` shows its effect.

Dates in the seed are relative to the day the database was seeded ("7 days late" is true on
that day and one more each day after): delete the file to start again from the seed. The
back office's "today" is the real date, or ``JOURNEYS_BACKOFFICE_TODAY`` (an ISO date) to pin
it for a demo or a test.

This module needs SQLAlchemy only: never Prefect, never the engine (but for the few lines of
the standard library that say where the journeys home is). The domain modules
import it (and SQLAlchemy) inside their action bodies, so that reading the catalogue, as
``journeys validate`` does, imports neither.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import threading
from calendar import monthrange
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Table,
    create_engine,
    event,
    insert,
    make_url,
    select,
    update,
)
from sqlalchemy.engine import Connection, Engine, Row
from sqlalchemy.exc import (
    ArgumentError,
    DBAPIError,
    IntegrityError,
    NoSuchModuleError,
    OperationalError,
)
from sqlalchemy.pool import NullPool, StaticPool

# The tables, re-exported: the actions read ``bo.customers`` beside ``bo.transaction()``.
from actions.backoffice_tables import *  # noqa: F403
from actions.backoffice_tables import (
    TABLES,
    customers,
    delay_alerts,
    idempotency,
    messages,
    meta,
    metadata,
    orders,
)
from actions.registry import NotFound, Refused

# ------------------------------------------------------------------------ the database


def database_url() -> str:
    """``JOURNEYS_BACKOFFICE_DB``, else the SQLite file ``backoffice.db`` in the journeys home:
    absolute, so that every process (this one, the action host, a worker) opens the same."""
    from engine.adapters.home import backoffice_url

    return backoffice_url()


_lock = threading.Lock()
_engines: dict[str, Engine] = {}
_seeded: set[str] = set()


def engine_for(url: str | None = None) -> Engine:
    """The engine of a back-office URL (default: ``database_url()``), made once per process."""
    url = url or database_url()
    with _lock:
        engine = _engines.get(url)
        if engine is None:
            engine = _engines[url] = _make_engine(url)
        return engine


class BackofficeUnavailable(RuntimeError):
    """The back-office database cannot be opened: which one, and why."""


def _make_engine(url: str) -> Engine:
    try:
        parsed = make_url(url)
        sqlite = parsed.drivername.startswith("sqlite")
        memory = sqlite and parsed.database in (None, "", ":memory:")
        if memory:  # one connection for the process, or each would see an empty database
            engine = create_engine(
                url, poolclass=StaticPool, connect_args={"check_same_thread": False}
            )
        else:
            if sqlite and parsed.database:
                Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
            engine = create_engine(url, poolclass=NullPool if sqlite else None)
    except (ArgumentError, NoSuchModuleError, OSError) as err:
        raise BackofficeUnavailable(
            f"the back-office database URL {_safe(url)!r} is not usable ({err}); write it like "
            "sqlite:///path/backoffice.db or postgresql+psycopg://user@host/dbname"
        ) from None
    if engine.dialect.name == "sqlite":
        # Every transaction takes the write lock at BEGIN (waiting up to 30 s for it): a
        # read-then-write of two processes cannot interleave, and seeding happens once.
        event.listen(engine, "connect", _sqlite_connect)
        event.listen(engine, "begin", _sqlite_begin)
    return engine


def _sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.isolation_level = None  # SQLAlchemy emits BEGIN itself (below)
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _sqlite_begin(conn: Connection) -> None:
    conn.exec_driver_sql("BEGIN IMMEDIATE")


def ensure_seeded(engine: Engine) -> None:
    """Create the tables and insert the seed data, once: idempotent, and safe when several
    processes do it at the same moment (one seeds, the others find it done)."""
    from actions.seed import seed

    for attempt in range(3):
        try:
            metadata.create_all(engine)
            break
        except DBAPIError:
            # Another process created the same tables at the same moment (PostgreSQL):
            # look again, they are there now.
            if attempt == 2:
                raise
    with contextlib.suppress(IntegrityError), engine.begin() as conn:
        if conn.execute(select(meta.c.value).where(meta.c.key == "seeded_on")).first():
            return
        day = today()
        # Written first: of two processes seeding at once, the second waits here, then fails
        # on the duplicate key and leaves the seed to the first.
        conn.execute(insert(meta).values(key="seeded_on", value=day.isoformat()))
        seed(conn, day)


def _safe(url: str) -> str:
    """The URL without its password, for messages."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return url


def get_engine() -> Engine:
    """The engine of ``database_url()``, its tables created and seeded."""
    url = database_url()
    engine = engine_for(url)
    if url not in _seeded:
        try:
            ensure_seeded(engine)
        except OperationalError as err:
            raise BackofficeUnavailable(
                f"cannot open the back-office database {_safe(url)!r}: {err.orig}"
            ) from None
        with _lock:
            _seeded.add(url)
    return engine


@contextmanager
def transaction() -> Iterator[Connection]:
    """A connection in a transaction on the back office: committed at the end of the block,
    rolled back if it raises. Inside ``once()``, the action's writes join its transaction."""
    ambient = _ambient.get()
    if ambient is not None:
        yield ambient
        return
    with get_engine().begin() as conn:
        yield conn


_ambient: ContextVar[Connection | None] = ContextVar("backoffice_connection", default=None)


def once(
    key: str, action: str, run: Callable[[], Mapping[str, Any]]
) -> tuple[dict[str, Any], bool]:
    """Run an action at most once per idempotency key: (its result, whether it had already run).

    The key and the action's writes commit together: either both are there or neither is.
    A failed run leaves no key, so it may be tried again.
    """
    for attempt in range(2):
        try:
            with get_engine().begin() as conn:
                row = conn.execute(
                    select(idempotency.c.result).where(idempotency.c.key == key)
                ).first()
                if row is not None:
                    return dict(json.loads(row.result)), True
                token = _ambient.set(conn)
                try:
                    result = dict(run())
                finally:
                    _ambient.reset(token)
                conn.execute(
                    insert(idempotency).values(
                        key=key,
                        action=action,
                        result=json.dumps(result, default=str),
                        created_at=now(),
                    )
                )
                return result, False
        except IntegrityError:
            # The same key committed by another process in the meantime (PostgreSQL): this
            # run was rolled back whole; the next look finds the first result.
            if attempt == 1:
                raise
    raise AssertionError("unreachable")


def show(table: str, limit: int = 50) -> tuple[list[str], list[tuple[Any, ...]]]:
    """The column names and rows of a back-office table. Reference tables (customers,
    orders, ...) show their first ``limit`` rows; the tables that actions append to
    (refunds, messages, contact_log, ...) their last ``limit`` rows, oldest first."""
    found = TABLES.get(table)
    if found is None:
        raise ValueError(
            f"unknown back-office table {table!r}; the tables are: {', '.join(sorted(TABLES))}"
        )
    if limit < 1:
        raise ValueError(f"the limit must be at least 1, not {limit}")
    columns = [c.name for c in found.columns]
    key = list(found.primary_key.columns)
    with transaction() as conn:
        if "id" in found.c:  # appended to: the latest rows
            latest = conn.execute(select(found).order_by(found.c.id.desc()).limit(limit)).all()
            rows = list(reversed(latest))
        else:
            rows = list(conn.execute(select(found).order_by(*key).limit(limit)).all())
    return columns, [tuple(row) for row in rows]


# ------------------------------------------------------------------- helpers for actions


def today() -> date:
    """The back office's date: ``JOURNEYS_BACKOFFICE_TODAY`` (ISO) if set, else today."""
    pinned = os.environ.get("JOURNEYS_BACKOFFICE_TODAY")
    if pinned:
        try:
            return date.fromisoformat(pinned)
        except ValueError:
            raise ValueError(
                f"JOURNEYS_BACKOFFICE_TODAY={pinned!r} is not a date like 2025-06-10"
            ) from None
    return date.today()


def now() -> datetime:
    return datetime.now(UTC)


def add_months(day: date, months: int) -> date:
    """The same day ``months`` later (or earlier), on the month's last day if it is shorter."""
    index = day.year * 12 + day.month - 1 + months
    year, month = divmod(index, 12)
    return date(year, month + 1, min(day.day, monthrange(year, month + 1)[1]))


def months_between(start: date, end: date) -> int:
    """Whole months from ``start`` to ``end`` (0 if ``end`` is before ``start``)."""
    months = (end.year - start.year) * 12 + end.month - start.month
    if end.day < start.day and end.day != monthrange(end.year, end.month)[1]:
        months -= 1
    return max(0, months)


def money(value: float) -> float:
    """An amount in euros, rounded to the cent (never NaN or infinite)."""
    amount = float(value)
    if not math.isfinite(amount):
        raise Refused(f"{value!r} is not an amount")
    return round(amount, 2)


def add_message(
    conn: Connection, customer_id: str, channel: str, recipient: str, template: str
) -> str:
    """A message sent to a customer, on their record (``M000042``)."""
    return add_with_code(
        conn,
        messages,
        "message_id",
        "M",
        {
            "customer_id": customer_id,
            "channel": channel,
            "recipient": recipient,
            "template": template,
            "status": "sent",
        },
    )


def add_with_code(
    conn: Connection, table: Table, code_column: str, prefix: str, values: Mapping[str, Any]
) -> str:
    """Insert a row and give it its reference from its row id: ``R000042``."""
    row = dict(values)
    if "created_at" in table.c and "created_at" not in row:
        row["created_at"] = now()
    result = conn.execute(insert(table).values(**row))
    key = result.inserted_primary_key
    if key is None:
        raise RuntimeError(f"no row id for the new row of {table.name}")
    row_id = int(key[0])
    code = f"{prefix}{row_id:06d}"
    conn.execute(update(table).where(table.c.id == row_id).values({code_column: code}))
    return code


def customer_row(conn: Connection, customer_id: str) -> Row[Any]:
    row = conn.execute(select(customers).where(customers.c.customer_id == customer_id)).first()
    if row is None:
        raise NotFound(f"no customer {customer_id!r} in the back office")
    return row


def order_row(
    conn: Connection, order_id: str, customer_id: str | None = None, *, for_update: bool = False
) -> Row[Any]:
    """The order; with ``customer_id``, only if it is that customer's: another customer's
    order is answered as one that does not exist, so that order numbers cannot be probed."""
    query = select(orders).where(orders.c.order_id == order_id)
    if for_update:
        query = query.with_for_update()
    row = conn.execute(query).first()
    if row is None:
        raise NotFound(f"no order {order_id!r} in the back office")
    if customer_id is not None and row.customer_id != customer_id:
        raise NotFound(f"customer {customer_id!r} has no order {order_id!r}")
    return row


def address_of(street: str, postcode: str, city: str) -> str:
    return f"{street}, {postcode} {city}"


def required_text(name: str, value: str) -> str:
    """A text input that must not be blank, stripped."""
    text = (value or "").strip()
    if not text:
        raise Refused(f"{name} must not be empty")
    return text


# ---------------------------------------------------------------- proactive detection

#: The event raised for an order that is late, with ``customer_id``, ``order_id``, ``days_late``.
DELAYED_EVENT = "order.delayed"
#: Orders in these states can still arrive late (lost and returned parcels are not "late").
_ON_THE_WAY = ("ordered", "in_transit")


def delayed_orders(min_days: int) -> list[dict[str, Any]]:
    """The orders still on their way ``min_days`` or more past their expected date, for which
    no delay alert has been recorded yet: the data of an ``order.delayed`` event each."""
    if min_days < 1:
        raise ValueError(f"an order is late by 1 day or more, not {min_days}")
    day = today()
    with transaction() as conn:
        rows = conn.execute(
            select(orders.c.order_id, orders.c.customer_id, orders.c.expected_on)
            .where(
                orders.c.status.in_(_ON_THE_WAY),
                orders.c.order_id.not_in(select(delay_alerts.c.order_id)),
            )
            .order_by(orders.c.order_id)
        ).all()
    found = []
    for row in rows:
        late = (day - row.expected_on).days
        if late >= min_days:
            found.append(
                {"customer_id": row.customer_id, "order_id": row.order_id, "days_late": late}
            )
    return found


def record_delay_alert(
    order_id: str, customer_id: str, days_late: int, sessions: list[str]
) -> None:
    """Remember that the customer was contacted about this late order (never twice)."""
    with contextlib.suppress(IntegrityError), transaction() as conn:
        conn.execute(
            insert(delay_alerts).values(
                order_id=order_id,
                customer_id=customer_id,
                days_late=days_late,
                sessions=" ".join(sessions),
                created_at=now(),
            )
        )
