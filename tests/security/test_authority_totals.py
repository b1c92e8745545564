"""Authority limits that add up: per session and per customer over a period.

A per-call limit alone is a limit per click: a journey that loops back to its voucher node,
or a customer who calls twice, gets the limit as many times. ``per_session`` bounds the calls
of one session added up, ``per_customer: {max, over}`` the customer's total over a period, all
sessions counted, atomically: two sessions of one customer at once never both take the room
that is left (SQLite and PostgreSQL, with real threads and processes).
"""

from __future__ import annotations

import multiprocessing
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from engine import clock
from engine.adapters.sql import grants
from engine.adapters.sql.store import SqlStore
from engine.definitions.library import Library
from engine.insight.scenarios import StubExecutor
from engine.sessions.authority import customer_breach
from engine.sessions.runtime import RunAction, Session
from engine.sessions.service import ActionOutcome, MemoryStore, Sessions, replay
from tests.conftest import Check
from tests.test_policies import write
from tests.test_store import _pg_database, pg_server  # noqa: F401  (its fixture)

MOTIVES = """
motives:
  order.goodwill:
    title: {en: Goodwill, fr: Geste commercial}
    category: payments
    journey: goodwill
"""

# An agent may offer a voucher again and again: the loop an expert draws when the customer
# is still unhappy. The amount is chosen each time.
GOODWILL = """
journey: goodwill
version: 1
title: A goodwill voucher, offered until the customer is happy
motives: [order.goodwill]
inputs:
  customer_id: {type: string}
start: offer
nodes:
  offer:
    kind: choose
    field: next_step
    options:
      - {value: voucher, next: ask_amount}
      - {value: done, next: done}
  ask_amount:
    kind: ask
    field: amount
    schema: {type: number}
    confirm: true
    next: voucher
  voucher:
    kind: action
    action: payments.issue_voucher
    input: {customer_id: =customer_id, amount: =amount}
    output: voucher
    next: offer
  done:
    kind: end
    outcome: resolved
"""

POLICY = """
roles:
  agent:
    payments.issue_voucher:
      amount:
        max: 20
        per_session: 30
        per_customer: {max: 40, over: 30d}
  supervisor:
    payments.issue_voucher:
      amount: {max: 100, per_session: 100}
"""

FILES = {"motives.yaml": MOTIVES, "goodwill.yaml": GOODWILL, "policies.yaml": POLICY}


class Vouchers(StubExecutor):
    """Issues every voucher it is asked for, and counts them (the back office's view)."""

    def __init__(self) -> None:
        super().__init__({"payments.issue_voucher": {"voucher_code": "V1", "amount": 0}})
        self.issued: list[tuple[str, float]] = []
        self._lock = threading.Lock()

    def run(self, effect: RunAction, session: Session) -> ActionOutcome:
        with self._lock:
            self.issued.append((effect.input["customer_id"], effect.input["amount"]))
        return super().run(effect, session)


@pytest.fixture
def lib(tmp_path: Path) -> Path:
    return write(tmp_path / "lib", FILES)


def voucher(sessions: Sessions, session_id: str, amount: float, **who: Any) -> Session:
    sessions.answer(session_id, "offer", "voucher", **who)
    return sessions.answer(session_id, "ask_amount", amount)


# ------------------------------------------------------------------------ per session


def test_a_looping_journey_cannot_go_beyond_the_session_limit(lib: Path) -> None:
    executor = Vouchers()
    sessions = Sessions(Library(lib), MemoryStore(), executor)
    s = sessions.start("goodwill", {"customer_id": "C001"}, actor="ann")
    for amount in (15, 10, 5):  # 30 in all: each call and the total within the limits
        s = voucher(sessions, s.id, amount)
        assert (s.status, s.node) == ("waiting", "offer")
    s = voucher(sessions, s.id, 5)  # 35: above the 30 of one session, though 5 <= 20
    assert (s.status, s.outcome) == ("ended", "escalated")
    assert s.handoff == {
        "queue": "supervisor",
        "reason": "payments.issue_voucher amount 5 would bring this session's total to 35, "
        "above the agent's limit of 30 per session",
        "node": "voucher",
    }
    assert executor.issued == [("C001", 15), ("C001", 10), ("C001", 5)]
    assert s.context["last_denial"]["rule"] == "per_session"
    assert s.context["last_denial"]["total"] == 35
    # audited as every grant: who granted what, within which rule, and the total it made
    per_session = [g for g in s.grants if g["rule"] == "per_session"]
    assert [(g["value"], g["total"], g["limit"], g["actor"]) for g in per_session] == [
        (15, 15, 30, "ann"),
        (10, 25, 30, "ann"),
        (5, 30, 30, "ann"),
    ]
    # the per-call rule is recorded as before
    assert [g["rule"] for g in s.grants if g["value"] == 15] == [
        "max",
        "per_session",
        "per_customer",
    ]


def test_cents_add_up_to_the_limit_not_above_it(lib: Path) -> None:
    """0.10 + 16.10 + 13.80 is 30.00: within a limit of 30 (added as binary floats, it is
    30.000000000000004, above)."""
    sessions = Sessions(Library(lib), MemoryStore(), Vouchers())
    s = sessions.start("goodwill", {"customer_id": "C001"})
    for amount in (0.1, 16.1):
        voucher(sessions, s.id, amount)
    s = voucher(sessions, s.id, 13.8)
    assert (s.node, s.totals) == ("offer", {"payments.issue_voucher": {"amount": 30}})


def test_the_per_call_limit_still_applies_alone(lib: Path) -> None:
    sessions = Sessions(Library(lib), MemoryStore(), Vouchers())
    s = sessions.start("goodwill", {"customer_id": "C001"})
    s = voucher(sessions, s.id, 25)
    assert s.outcome == "escalated"
    assert s.handoff is not None
    assert (
        s.handoff["reason"] == "payments.issue_voucher amount 25 is above the agent's limit of 20"
    )


# ----------------------------------------------------------------------- per customer


def test_two_sessions_of_one_customer_share_the_customer_limit(lib: Path) -> None:
    executor = Vouchers()
    sessions = Sessions(Library(lib), MemoryStore(), executor)
    first = sessions.start("goodwill", {"customer_id": "C001"})
    voucher(sessions, first.id, 20)
    voucher(sessions, first.id, 10)  # 30 for C001
    second = sessions.start("goodwill", {"customer_id": "C001"}, channel="chat")
    s = voucher(sessions, second.id, 10)  # 40: the customer's limit, reached
    assert s.node == "offer"
    s = voucher(sessions, second.id, 1)  # 41
    assert s.outcome == "escalated"
    assert s.handoff is not None
    assert s.handoff["reason"] == (
        "payments.issue_voucher amount 1 would bring the total of customer C001 over the last "
        "30 days to 41, above the agent's limit of 40 per customer over 30 days"
    )
    denial = s.context["last_denial"]
    assert (denial["rule"], denial["customer"], denial["over"], denial["total"]) == (
        "per_customer",
        "C001",
        "30d",
        41,
    )
    # another customer has the whole room
    other = sessions.start("goodwill", {"customer_id": "C002"})
    assert voucher(sessions, other.id, 20).node == "offer"
    assert executor.issued == [("C001", 20), ("C001", 10), ("C001", 10), ("C002", 20)]


def test_what_a_supervisor_granted_counts_in_the_customer_total(lib: Path) -> None:
    sessions = Sessions(Library(lib), MemoryStore(), Vouchers())
    s = sessions.start("goodwill", {"customer_id": "C001"}, role="supervisor", actor="sam")
    assert voucher(sessions, s.id, 35).node == "offer"  # within the supervisor's limits
    s = sessions.start("goodwill", {"customer_id": "C001"})
    s = voucher(sessions, s.id, 10)  # the agent: 35 + 10 = 45 > 40
    assert s.outcome == "escalated"
    assert s.handoff is not None and "to 45" in s.handoff["reason"]


def test_the_customer_limit_is_available_again_after_the_period(lib: Path) -> None:
    store = MemoryStore()
    sessions = Sessions(Library(lib), store, Vouchers())
    t0 = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)
    moment = [t0]
    with clock.using(lambda: moment[0]):
        s = sessions.start("goodwill", {"customer_id": "C001"})
        voucher(sessions, s.id, 20)
        moment[0] = t0 + timedelta(days=10)
        voucher(sessions, s.id, 10)
        s = sessions.start("goodwill", {"customer_id": "C001"})
        moment[0] = t0 + timedelta(days=29, hours=23)
        voucher(sessions, s.id, 10)  # 40 over the last 30 days: all the room
        s = sessions.start("goodwill", {"customer_id": "C001"})
        assert voucher(sessions, s.id, 5).outcome == "escalated"  # still within 30 days
        moment[0] = t0 + timedelta(days=30, seconds=1)  # the 20 of day 0 has left the period
        s = sessions.start("goodwill", {"customer_id": "C001"})
        s = voucher(sessions, s.id, 20)
        assert s.node == "offer"
        assert [g["total"] for g in s.grants if g["rule"] == "per_customer"] == [40]
    assert [r["amount"] for r in store.granted("C001")] == [20, 10, 10, 20]


def test_above_the_customer_limit_a_supervisor_approves_within_theirs(lib: Path) -> None:
    approval = GOODWILL.replace(
        "    output: voucher\n",
        "    output: voucher\n    on_denied: approval\n",
    ).replace(
        "  done:\n",
        "  approval:\n    kind: choose\n    roles: [supervisor]\n    field: approval\n"
        "    options:\n      - {value: approve, next: voucher}\n"
        "      - {value: refuse, next: offer}\n  done:\n",
    )
    write(lib, {"goodwill.yaml": approval})
    store = MemoryStore()
    sessions = Sessions(Library(lib), store, Vouchers())
    s = sessions.start("goodwill", {"customer_id": "C001"})
    voucher(sessions, s.id, 20)
    s = sessions.start("goodwill", {"customer_id": "C001"})  # another call, the same month
    voucher(sessions, s.id, 15)
    s = voucher(sessions, s.id, 10)  # 45 > 40: the agent may not
    assert (s.node, s.context["last_denial"]["rule"]) == ("approval", "per_customer")
    s = sessions.answer(s.id, "approval", "approve", role="supervisor", actor="sam")
    assert s.node == "offer"  # granted: the supervisor's own limits (100 a call) apply
    assert [(r["amount"], r["role"]) for r in store.granted("C001")] == [
        (20, "agent"),
        (15, "agent"),
        (10, "supervisor"),
    ]


def test_a_grant_for_no_known_customer_is_refused_not_unlimited(lib: Path) -> None:
    optional = GOODWILL.replace(
        "customer_id: {type: string}", 'customer_id: {type: [string, "null"], default: null}'
    )
    write(lib, {"goodwill.yaml": optional})
    executor = Vouchers()
    sessions = Sessions(Library(lib), MemoryStore(), executor)
    s = sessions.start("goodwill", {})
    s = voucher(sessions, s.id, 5)
    assert s.outcome == "escalated" and executor.issued == []
    assert s.handoff is not None
    assert s.handoff["reason"] == (
        "payments.issue_voucher amount 5 is limited per customer, but the session does not know "
        "its customer, so the agent's limit of 40 per customer over 30 days cannot be checked"
    )


def test_the_customer_counted_is_the_one_the_action_names(lib: Path) -> None:
    """A voucher for C001 issued in a session started for C002 counts for C001."""
    store = MemoryStore()
    s = Sessions(Library(lib), store, Vouchers()).start("goodwill", {"customer_id": "C001"})
    sessions = Sessions(Library(lib), store, Vouchers())
    voucher(sessions, s.id, 20)
    voucher(sessions, s.id, 10)
    write(
        lib, {"goodwill.yaml": GOODWILL.replace("customer_id: =customer_id", "customer_id: C001")}
    )
    sessions = Sessions(Library(lib), store, Vouchers())  # the library as it is now
    s = sessions.start("goodwill", {"customer_id": "C002"})
    s = voucher(sessions, s.id, 20)  # C001 would reach 50
    assert s.outcome == "escalated"
    assert [r["amount"] for r in store.granted("C001")] == [20, 10]
    assert store.granted("C002") == []


class Refusing(Vouchers):
    """The back office refuses the first voucher (a business error), is down (a technical
    failure) for the amount ``down``, and issues the others."""

    def __init__(self, down: float) -> None:
        super().__init__()
        self.down, self.refused = down, False

    def run(self, effect: RunAction, session: Session) -> ActionOutcome:
        if not self.refused:
            self.refused = True
            return ActionOutcome(error="the customer's account is on hold", code="on_hold")
        if effect.input["amount"] == self.down:
            return ActionOutcome(failure="the voucher service timed out")
        return super().run(effect, session)


def test_a_voucher_the_back_office_refused_does_not_count(lib: Path, tmp_path: Path) -> None:
    write(
        lib,
        {
            "goodwill.yaml": GOODWILL.replace(
                "    next: offer\n  done:", "    on_error: offer\n    next: offer\n  done:"
            )
        },
    )
    for store in (MemoryStore(), SqlStore(f"sqlite:///{tmp_path / 'sessions.db'}")):
        executor = Refusing(down=19)
        sessions = Sessions(Library(lib), store, executor)
        s = sessions.start("goodwill", {"customer_id": "C001"})
        s = voucher(sessions, s.id, 20)  # refused by the back office: nothing given
        assert s.context["last_error"]["code"] == "on_hold" and s.node == "offer"
        assert s.totals == {"payments.issue_voucher": {"amount": 0}}
        for amount in (20, 10):  # the whole room, in this session and for the customer
            assert voucher(sessions, s.id, amount).node == "offer"
        assert executor.issued == [("C001", 20), ("C001", 10)]
        other = sessions.start("goodwill", {"customer_id": "C001"})
        assert voucher(sessions, other.id, 10).node == "offer"  # 40: the customer's limit
        down = sessions.start("goodwill", {"customer_id": "C002"})
        down = voucher(sessions, down.id, 19)  # an incident: the voucher may have been issued
        assert down.status == "incident"
        rows = store.granted("C001")
        assert [(r["amount"], bool(r.get("released") or r.get("released_ms"))) for r in rows] == [
            (20, True),
            (20, False),
            (10, False),
            (10, False),
        ]
        assert [r["amount"] for r in store.granted("C002")] == [19]  # still counted
        if isinstance(store, SqlStore):
            store.dispose()


def test_sessions_with_totals_replay_exactly(lib: Path) -> None:
    store = MemoryStore()
    sessions = Sessions(Library(lib), store, Vouchers())
    a = sessions.start("goodwill", {"customer_id": "C001"})
    voucher(sessions, a.id, 20)
    b = sessions.start("goodwill", {"customer_id": "C001"})
    voucher(sessions, b.id, 20)
    voucher(sessions, b.id, 5)  # denied: the customer's 40 are taken
    for session_id in store:
        stored = store.load(session_id)
        records = store.events(session_id)
        rebuilt = replay(store.load_bundle(stored.definition), records[0], records)
        assert rebuilt.to_dict() == stored.to_dict()
    assert [r["type"] for r in store.events(b.id)].count("authority") == 2


# ------------------------------------------------------------------ in the database


def test_the_sql_store_keeps_the_customer_totals_across_processes_restarts(
    lib: Path, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'sessions.db'}"
    store = SqlStore(url)
    try:
        sessions = Sessions(Library(lib), store, Vouchers())
        s = sessions.start("goodwill", {"customer_id": "C001"})
        voucher(sessions, s.id, 20)
        voucher(sessions, s.id, 10)
    finally:
        store.dispose()
    store = SqlStore(url)  # another process, later
    try:
        sessions = Sessions(Library(lib), store, Vouchers())
        s = sessions.start("goodwill", {"customer_id": "C001"})
        assert voucher(sessions, s.id, 10).node == "offer"
        assert voucher(sessions, s.id, 1).outcome == "escalated"
        rows = store.granted("C001")
        assert [(r["amount"], r["before"], r["role"]) for r in rows] == [
            (20, 0, "agent"),
            (10, 20, "agent"),
            (10, 30, "agent"),
        ]
        records = store.events(s.id)
        assert replay(store.load_bundle(s.definition), records[0], records).to_dict() == (
            store.load(s.id).to_dict()
        )
    finally:
        store.dispose()


def test_a_reservation_done_again_is_counted_once(tmp_path: Path) -> None:
    """A step repeated after a crash (the reservation committed, the session not saved)
    reserves with the same key: the same totals back, nothing counted twice."""
    from engine.sessions.authority import Claim
    from engine.sessions.runtime import Reserve

    claim = (Claim("amount", 20, 30, 86400 * 30),)
    first = Reserve(
        "voucher", "payments.issue_voucher", "agent", "C001", "s_1", "s_1:voucher:1", claim
    )
    again = Reserve(
        "voucher", "payments.issue_voucher", "agent", "C001", "s_2", "s_2:voucher:1", claim
    )
    for store in (MemoryStore(), SqlStore(f"sqlite:///{tmp_path / 'sessions.db'}")):
        assert store.reserve(first) == {"amount": 0}
        assert store.reserve(first) == {"amount": 0}  # the same step: granted on 0, once
        assert store.reserve(again) == {"amount": 20}  # another: 40 > 30, not recorded
        assert [r["amount"] for r in store.granted("C001")] == [20]
        if isinstance(store, SqlStore):
            store.dispose()


def test_db_upgrade_adds_the_grant_ledger_to_a_database_of_the_previous_version(
    lib: Path, tmp_path: Path
) -> None:
    from alembic import command
    from click.testing import CliRunner

    from cli import main
    from engine.adapters.sql.migrations import config
    from engine.adapters.sql.store import StoreError, make_engine

    url = f"sqlite:///{tmp_path / 'old.db'}"
    engine = make_engine(url)
    command.upgrade(config(engine), "0005")
    engine.dispose()
    with pytest.raises(StoreError, match=r"revision '0005'.*journeys db upgrade"):
        SqlStore(url)
    result = CliRunner().invoke(main, ["db", "upgrade", "--db", url])
    assert result.exit_code == 0, result.output
    store = SqlStore(url)
    try:
        sessions = Sessions(Library(lib), store, Vouchers())
        s = sessions.start("goodwill", {"customer_id": "C001"})
        assert voucher(sessions, s.id, 20).node == "offer"
        assert len(store.granted("C001")) == 1
    finally:
        store.dispose()
    engine = make_engine(url)
    command.downgrade(config(engine), "0005")  # and back: the table goes
    with engine.connect() as conn:
        from sqlalchemy import inspect

        assert "authority_grants" not in inspect(conn).get_table_names()
    engine.dispose()


# ---------------------------------------------------------------------- concurrency

ONE_VOUCHER = POLICY.replace(
    "per_customer: {max: 40, over: 30d}", "per_customer: {max: 20, over: 30d}"
)
THREADS, PROCESSES = 4, 4


def _slow_decision(claimed: Any, totals: Any) -> Any:
    """The store's decision, taken slowly: between reading the totals and recording the grant
    (under the lock), so that a store without a lock would let every session read 0."""
    time.sleep(0.05)
    return customer_breach(claimed, totals)


def _contend(url: str, library: str, barrier: Any, results: Any) -> None:
    """One process: THREADS sessions of customer C001 each ask for a 20 EUR voucher at once."""
    grants.customer_breach = _slow_decision  # this child process only
    store = SqlStore(url)
    executor = Vouchers()
    sessions = Sessions(Library(Path(library)), store, executor)
    started = [sessions.start("goodwill", {"customer_id": "C001"}) for _ in range(THREADS)]
    for s in started:
        sessions.answer(s.id, "offer", "voucher")
    outcomes: list[str] = []

    def one(s: Session) -> None:
        barrier.wait(timeout=60)
        done = sessions.answer(s.id, "ask_amount", 20)
        outcomes.append(done.outcome or done.node or "")

    threads = [threading.Thread(target=one, args=(s,)) for s in started]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    results.put((outcomes, len(executor.issued)))
    store.dispose()


def contend(url: str, lib: Path) -> tuple[list[str], int]:
    """PROCESSES processes of THREADS threads: every session of one customer asks at once."""
    write(lib, {"policies.yaml": ONE_VOUCHER})
    SqlStore(url).dispose()  # the schema, created once before the race
    context = multiprocessing.get_context("fork")
    barrier = context.Barrier(THREADS * PROCESSES)
    results = context.Queue()
    workers = [
        context.Process(target=_contend, args=(url, str(lib), barrier, results))
        for _ in range(PROCESSES)
    ]
    for w in workers:
        w.start()
    found = [results.get(timeout=120) for _ in workers]
    for w in workers:
        w.join(timeout=60)
        assert w.exitcode == 0
    outcomes = [o for part, _n in found for o in part]
    return outcomes, sum(n for _part, n in found)


def test_concurrent_sessions_of_one_customer_never_both_granted_sqlite(
    lib: Path, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'sessions.db'}"
    outcomes, issued = contend(url, lib)
    assert sorted(outcomes) == ["escalated"] * (THREADS * PROCESSES - 1) + ["offer"]
    assert issued == 1
    store = SqlStore(url)
    try:
        assert [r["amount"] for r in store.granted("C001")] == [20]
    finally:
        store.dispose()


@pytest.fixture
def pg_db(request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh PostgreSQL database (tests/test_store.py's, dropped afterwards)."""
    yield from _pg_database(request.getfixturevalue("pg_server"))


def test_concurrent_sessions_of_one_customer_never_both_granted_postgresql(
    lib: Path, pg_db: str
) -> None:
    pg_url = pg_db
    outcomes, issued = contend(pg_url, lib)
    assert sorted(outcomes) == ["escalated"] * (THREADS * PROCESSES - 1) + ["offer"]
    assert issued == 1
    store = SqlStore(pg_url)
    try:
        assert [r["amount"] for r in store.granted("C001")] == [20]
    finally:
        store.dispose()


# ------------------------------------------------------------------------- validation


def w003(check: Check, lib: Path) -> list[tuple[int, str | None, str]]:
    report = check(lib)
    assert report.errors == []
    return [(f.line, f.node, f.message) for f in report.warnings if f.code == "W003"]


def test_validate_warns_on_an_action_on_a_loop_limited_per_call_only(
    lib: Path, check: Check
) -> None:
    write(
        lib,
        {"policies.yaml": "roles:\n  agent:\n    payments.issue_voucher: {amount: {max: 20}}\n"},
    )
    assert w003(check, lib) == [
        (
            21,
            "voucher",
            "node 'voucher' runs payments.issue_voucher on a loop (voucher → offer → "
            "ask_amount → voucher), but policies.yaml limits it per call only (agent: amount "
            "up to 20 a call): each turn of the loop may grant it again; bound the total with "
            "per_session (one session) or per_customer (the customer's total over a period)",
        )
    ]
    report = check(lib)
    assert {f.severity for f in report.findings if f.code == "W003"} == {"warning"}
    # a total bounds the loop: nothing to say
    write(lib, {"policies.yaml": POLICY})
    assert w003(check, lib) == []


def test_validate_does_not_warn_on_the_way_back_of_a_denial(lib: Path, check: Check) -> None:
    """The supervisor's approval loop (on_denied -> approval -> the action) grants nothing
    on its way round: not a loop of grants; the voucher loop beside it is one."""
    from tests.test_policies import APPROVED

    write(
        lib,
        {
            "approved.yaml": APPROVED.replace("[order.approved]", "[order.goodwill]"),
            "policies.yaml": "roles:\n  agent:\n    payments.refund: {amount: {max: 20}}\n"
            "    payments.issue_voucher: {amount: {max: 20}}\n",
        },
    )
    assert [(line, node) for line, node, _message in w003(check, lib)] == [(21, "voucher")]


@pytest.mark.parametrize(
    ("rule", "code", "message"),
    [
        ("{per_customer: {max: 30}}", "J002", "'over'"),
        ("{per_customer: {max: 30, over: 30 days}}", "J002", "30 days"),
        ("{per_session: ten}", "J002", "ten"),
    ],
)
def test_validate_checks_the_totals_rules(
    lib: Path, check: Check, rule: str, code: str, message: str
) -> None:
    write(
        lib,
        {"policies.yaml": f"roles:\n  agent:\n    payments.issue_voucher:\n      amount: {rule}\n"},
    )
    found = [f for f in check(lib).errors if f.file == "policies.yaml"]
    assert [f.code for f in found] == [code] and message in found[0].message


def test_validate_refuses_a_total_on_a_parameter_that_is_not_a_number(
    lib: Path, check: Check
) -> None:
    write(
        lib,
        {
            "policies.yaml": "roles:\n  customer:\n    subscriptions.apply_offer:\n"
            "      offer: {per_session: 2}\n"
        },
    )
    found = [f for f in check(lib).errors if f.file == "policies.yaml"]
    assert [(f.code, f.line) for f in found] == [("J009", 4)]
    assert "'per_session' needs a number" in found[0].message


def test_the_shipped_policy_bounds_the_money_actions_in_total(check: Check) -> None:
    from tests.conftest import SHIPPED

    policy = Library(SHIPPED).bundle("delivery-late").policy
    assert policy is not None
    for role in ("agent", "supervisor", "customer"):
        for action in ("payments.issue_voucher", "payments.refund", "billing.credit"):
            (limit,) = [x for x in policy.limits_for(role, action) if x.param == "amount"]
            assert limit.per_customer is not None and limit.over_s, (role, action)
    (voucher,) = policy.limits_for("agent", "payments.issue_voucher")
    assert (voucher.max, voucher.per_session, voucher.per_customer, voucher.over) == (
        30,
        30,
        30,
        "30d",
    )
    assert [f for f in check(SHIPPED).findings if f.code == "W003"] == []


# A voucher given by a shared sub-journey, called on the caller's loop: the same multiplied
# grant, one file away.
GIVE_VOUCHER = """
journey: give-voucher
version: 1
title: Give a goodwill voucher
inputs:
  customer_id: {type: string}
start: ask_amount
nodes:
  ask_amount:
    kind: ask
    field: amount
    schema: {type: number}
    next: voucher
  voucher:
    kind: action
    action: payments.issue_voucher
    input: {customer_id: =customer_id, amount: =amount}
    output: voucher
    next: given
  given:
    kind: end
    outcome: resolved
"""

CALLER = """
journey: goodwill
version: 1
title: A goodwill voucher, offered until the customer is happy
motives: [order.goodwill]
inputs:
  customer_id: {type: string}
start: offer
nodes:
  offer:
    kind: choose
    field: next_step
    options:
      - {value: voucher, next: give}
      - {value: done, next: done}
  give:
    kind: journey
    journey: give-voucher
    next: offer
  done:
    kind: end
    outcome: resolved
"""


def test_validate_warns_on_a_sub_journey_called_on_a_loop(lib: Path, check: Check) -> None:
    write(
        lib,
        {
            "goodwill.yaml": CALLER,
            "give-voucher.yaml": GIVE_VOUCHER,
            "policies.yaml": "roles:\n  agent:\n    payments.issue_voucher: {amount: {max: 20}}\n",
        },
    )
    found = w003(check, lib)
    assert [(node, message.split(":")[0]) for _, node, message in found] == [
        (
            "give",
            "node 'give' calls the journey 'give-voucher' on a loop (give → offer → give), "
            "and it runs actions that policies.yaml limits per call only",
        )
    ]
    assert "payments.issue_voucher (agent: amount up to 20 a call)" in found[0][2]
    write(lib, {"policies.yaml": POLICY})  # a total bounds the loop: nothing to say
    assert w003(check, lib) == []
