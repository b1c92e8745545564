"""The grant ledger in the session database: what each customer was granted, per action and
parameter, and when (table ``authority_grants``, migration 0006), for the authority limits per
customer over a period.

A reservation reads the customer's totals and records the grant in one transaction that no
other reservation of the same totals can interleave with: on SQLite the database's one write
lock, taken before the first read (``BEGIN IMMEDIATE``), and on PostgreSQL a transaction
advisory lock per (customer, action, parameter), taken before the read and released at commit.
A row lock would need a row to exist before the customer's first grant; a serializable
transaction would make the loser retry. The lock serialises exactly the reservations that
compete, and nothing else waits for it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from engine import clock
from engine.sessions.authority import customer_breach
from engine.sessions.runtime import Reserve

if TYPE_CHECKING:
    from engine.adapters.sql.store import SqlStore

_COLUMNS = (
    "key",
    "customer_id",
    "action",
    "param",
    "amount",
    "before",
    "role",
    "session_id",
    "node",
    "granted_ms",
)


def lock_key(customer_id: str, action: str, param: str) -> int:
    """The 64-bit advisory lock of one customer's totals of one parameter (PostgreSQL)."""
    digest = hashlib.blake2b(f"{customer_id}\0{action}\0{param}".encode(), digest_size=8)
    return int.from_bytes(digest.digest(), "big", signed=True)


def reserve(store: SqlStore, request: Reserve) -> dict[str, float]:
    """See :meth:`engine.sessions.service.GrantLedger.reserve`."""
    mark = "?" if store._sqlite else "%s"
    try:
        with _locked(store, request) as cursor:
            cursor.execute(
                f"SELECT param, before FROM authority_grants WHERE key = {mark}", [request.key]
            )
            done = cursor.fetchall()
            if done:  # this very step was granted already (and then not saved): same answer
                return {param: before for param, before in done if before is not None}
            now_ms = clock.now_ms()
            totals: dict[str, float] = {}
            for claim in request.claims:
                if claim.max is None:
                    continue
                cursor.execute(
                    "SELECT COALESCE(SUM(amount), 0) FROM authority_grants WHERE customer_id = "
                    f"{mark} AND action = {mark} AND param = {mark} AND granted_ms > {mark} "
                    "AND released_ms IS NULL",
                    [
                        request.customer_id,
                        request.action,
                        claim.param,
                        now_ms - (claim.over_s or 0) * 1000,
                    ],
                )
                totals[claim.param] = round(float(cursor.fetchone()[0]), 9)
            if customer_breach(request.claims, totals) is None:
                rows = [
                    [
                        request.key,
                        request.customer_id,
                        request.action,
                        claim.param,
                        claim.amount,
                        totals.get(claim.param),
                        request.role,
                        request.session_id,
                        request.node,
                        now_ms,
                    ]
                    for claim in request.claims
                ]
                cursor.executemany(
                    f"INSERT INTO authority_grants ({', '.join(_COLUMNS)}) "
                    f"VALUES ({', '.join([mark] * len(_COLUMNS))})",
                    rows,
                )
            return totals
    except store._operational_error as err:
        raise store._unavailable(err, "nothing was granted: try again") from None


def release(store: SqlStore, key: str) -> None:
    """See :meth:`engine.sessions.service.GrantLedger.release`."""
    mark = "?" if store._sqlite else "%s"
    try:
        with store._raw() as cursor:
            cursor.execute(
                f"UPDATE authority_grants SET released_ms = {mark} "
                f"WHERE key = {mark} AND released_ms IS NULL",
                [clock.now_ms(), key],
            )
    except store._operational_error as err:
        raise store._unavailable(err, "the refused grant still counts: try again") from None


@contextmanager
def _locked(store: SqlStore, request: Reserve) -> Iterator[Any]:
    """A cursor in a transaction that holds the lock of the request's totals."""
    if store._in_batch():  # a bulk writer (journeys simulate): its transaction, its lock
        with store._raw() as cursor:
            yield cursor
        return
    conn = store._connection()
    if store._sqlite:
        with store._writer:  # this process's threads take turns here, others at the lock
            cursor = conn.cursor()
            # The write lock from the first read: a reservation of another process waits
            # (busy timeout) until this one has committed, then reads its grant.
            cursor.execute("BEGIN IMMEDIATE")
            try:
                yield cursor
                conn.commit()
            except BaseException:
                conn.rollback()
                raise
        return
    pg = conn.driver_connection
    with pg.transaction():
        cursor = pg.cursor()
        # In one order (sorted), so that two requests over the same totals cannot deadlock.
        for key in sorted(
            {lock_key(request.customer_id, request.action, c.param) for c in request.claims}
        ):
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [key])
        yield cursor
