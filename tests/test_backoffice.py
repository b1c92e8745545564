"""The demo back office: its seed, what each action changes, its errors, and every shipped
journey run for real against it (no stubs)."""

from __future__ import annotations

import ast
import subprocess
import sys
import uuid
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any, get_type_hints

import pytest
from sqlalchemy import func, select

from actions import backoffice as bo
from actions.backoffice import once
from actions.registry import catalogue
from engine.adapters.execution.base import Call
from engine.adapters.execution.local_actions import LocalExecutor
from engine.definitions.library import Library
from engine.insight.scenarios import AnswerBook, answer_until_stuck
from engine.sessions.runtime import Session
from engine.sessions.service import MemoryStore, Sessions
from tests.conftest import PG_DSN, ROOT, SHIPPED, requires

#: The back office's "today" in these tests: a Wednesday. Seed dates are relative to it.
TODAY = date(2025, 6, 11)


@pytest.fixture(autouse=True)
def backoffice(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh back-office SQLite file for each test, on a pinned date."""
    path = tmp_path / "backoffice.db"
    monkeypatch.setenv("JOURNEYS_BACKOFFICE_DB", f"sqlite:///{path}")
    monkeypatch.setenv("JOURNEYS_BACKOFFICE_TODAY", TODAY.isoformat())
    return path


def call(name: str, **inputs: Any) -> Any:
    return catalogue()[name].function(**inputs)


def rows(table: str, **where: Any) -> list[dict[str, Any]]:
    t = bo.TABLES[table]
    with bo.transaction() as conn:
        found = conn.execute(
            select(t).where(*(t.c[k] == v for k, v in where.items())).order_by(*t.primary_key)
        )
        return [dict(r._mapping) for r in found]


def one(table: str, **where: Any) -> dict[str, Any]:
    found = rows(table, **where)
    assert len(found) == 1, f"{table} where {where}: {found}"
    return found[0]


def count(table: str) -> int:
    t = bo.TABLES[table]
    with bo.transaction() as conn:
        return int(conn.execute(select(func.count()).select_from(t)).scalar_one())


# --------------------------------------------------------------------------- the database


def test_database_url_defaults_to_a_file_in_the_journeys_home(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Absolute, so that the action host and the workers, which run from other folders,
    open the same file as the command in the user's folder."""
    monkeypatch.delenv("JOURNEYS_BACKOFFICE_DB")
    monkeypatch.delenv("JOURNEYS_HOME", raising=False)
    monkeypatch.chdir(tmp_path)
    assert bo.database_url() == f"sqlite:///{tmp_path / '.journeys' / 'backoffice.db'}"
    monkeypatch.setenv("JOURNEYS_HOME", "home")
    assert bo.database_url() == f"sqlite:///{tmp_path / 'home' / 'backoffice.db'}"
    monkeypatch.setenv("JOURNEYS_BACKOFFICE_DB", "sqlite:///elsewhere.db")
    assert bo.database_url() == f"sqlite:///{tmp_path / 'elsewhere.db'}"
    monkeypatch.setenv("JOURNEYS_BACKOFFICE_DB", "sqlite:////abs/bo.db")
    assert bo.database_url() == "sqlite:////abs/bo.db"


def test_the_file_is_created_and_seeded_on_first_use(backoffice: Path) -> None:
    assert not backoffice.exists()
    assert call("crm.get_customer", customer_id="C001")["name"] == "Ada Martin"
    assert backoffice.exists()
    assert bo.engine_for() is bo.engine_for(bo.database_url())  # one engine per URL


def test_an_in_memory_database_keeps_its_rows(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JOURNEYS_BACKOFFICE_DB", "sqlite://")
    call("tickets.create", queue="network", summary="first")
    assert call("tickets.create", queue="network", summary="second") == {"ticket_id": "T000002"}


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("nosuch://x", "URL 'nosuch://x' is not usable"),
        (
            "postgresql+psycopg://postgres:secret@127.0.0.1:1/x",
            r"cannot open the back-office database 'postgresql\+psycopg://postgres:\*\*\*@",
        ),
    ],
)
def test_an_unusable_database_is_named_without_its_password(
    monkeypatch: pytest.MonkeyPatch, url: str, message: str
) -> None:
    monkeypatch.setenv("JOURNEYS_BACKOFFICE_DB", url)
    with pytest.raises(bo.BackofficeUnavailable, match=message) as caught:
        call("crm.get_customer", customer_id="C001")
    assert "secret" not in str(caught.value)


def test_seeding_is_idempotent() -> None:
    engine = bo.get_engine()
    before = {name: count(name) for name in bo.TABLES}
    bo.ensure_seeded(engine)
    bo.ensure_seeded(engine)
    assert {name: count(name) for name in bo.TABLES} == before
    assert before["customers"] == 50 and before["refunds"] == 4


def test_processes_seeding_at_once_seed_once(backoffice: Path) -> None:
    code = "from actions import backoffice as bo; bo.get_engine()"
    procs = [
        subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stderr=subprocess.PIPE)
        for _ in range(4)
    ]
    errors = [p.communicate(timeout=120)[1].decode() for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0, 0], errors
    assert count("customers") == 50 and count("orders") == 52 and count("refunds") == 4
    assert count("meta") == 1


def test_postgresql_url(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any SQLAlchemy URL: PostgreSQL, seeded by three processes at once (.ci/run starts it)."""
    psycopg = pytest.importorskip("psycopg")
    requires("postgresql")
    name = f"journeys_backoffice_{uuid.uuid4().hex[:8]}"
    admin = psycopg.connect(PG_DSN, autocommit=True)
    admin.execute(f'CREATE DATABASE "{name}"')
    url = f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    monkeypatch.setenv("JOURNEYS_BACKOFFICE_DB", url)
    try:
        code = "from actions import backoffice as bo; bo.get_engine()"
        procs = [
            subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stderr=subprocess.PIPE)
            for _ in range(3)
        ]
        errors = [p.communicate(timeout=120)[1].decode() for p in procs]
        assert [p.returncode for p in procs] == [0, 0, 0], errors
        assert count("customers") == 50 and count("meta") == 1
        assert call("payments.refund", order_id="10000001", amount=4.9, reason="x") == {
            "refund_id": "R000005",
            "amount": 4.9,
        }
        assert bo.show("refunds")[1][-1][1:4] == ("R000005", "10000001", 4.9)
    finally:
        bo.engine_for(url).dispose()
        admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        admin.close()


def test_actions_import_neither_prefect_nor_the_engine() -> None:
    """But for engine/adapters/home.py (standard library only): where the journeys home is,
    said once for every process."""
    for path in sorted((ROOT / "actions").glob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        names = {
            a.name.split(".")[0]
            for n in ast.walk(tree)
            if isinstance(n, ast.Import)
            for a in n.names
        }
        names |= {
            n.module.split(".")[0]
            for n in ast.walk(tree)
            if isinstance(n, ast.ImportFrom)
            and n.module
            and n.level == 0
            and n.module != "engine.adapters.home"
        }
        assert not names & {"prefect", "engine"}, path.name
    assert not (ROOT / "actions" / "pending.py").exists()


def test_reading_the_catalogue_imports_no_database() -> None:
    code = (
        "import sys; from actions.registry import catalogue; catalogue();"
        "print(sorted(m for m in ('sqlalchemy', 'actions.backoffice') if m in sys.modules))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert proc.stdout.strip() == "[]"


# ------------------------------------------------------------------------------ the seed


def test_seed_customers() -> None:
    people = rows("customers")
    assert [p["customer_id"] for p in people] == [f"C{i:03d}" for i in range(1, 51)]
    assert (people[0]["name"], people[0]["tier"]) == ("Ada Martin", "standard")
    assert (people[1]["name"], people[1]["tier"]) == ("Bruno Petit", "premium")
    assert len({p["email"] for p in people}) == 50 and len({p["phone"] for p in people}) == 50


def test_seed_orders_of_the_brief() -> None:
    assert call("orders.get_tracking", order_id="10000001") == {
        "order_id": "10000001",
        "status": "in_transit",
        "days_late": 7,
        "carrier": "Colissimo",
        "shipping_cost": 4.9,
        "amount": 59.9,
    }
    assert one("orders", order_id="10000001")["customer_id"] == "C001"
    second = call("orders.get_tracking", order_id="10000002")
    assert (second["status"], one("orders", order_id="10000002")["customer_id"]) == (
        "delivered",
        "C002",
    )
    third = call("orders.get_tracking", order_id="10000003")
    assert (third["days_late"], one("orders", order_id="10000003")["customer_id"]) == (1, "C003")
    ids = [o["order_id"] for o in rows("orders")]
    assert ids == [str(n) for n in range(10000001, 10000001 + len(ids))]
    assert {o["customer_id"] for o in rows("orders")} == {f"C{i:03d}" for i in range(1, 51)}


def test_seed_tables_for_what_actions_write_start_empty() -> None:
    for table in ("vouchers", "returns", "tickets", "messages", "callbacks", "contact_log"):
        assert count(table) == 0, table
    assert [r["refund_id"] for r in rows("refunds")] == ["R000001", "R000002", "R000003", "R000004"]


@pytest.mark.parametrize(
    ("action", "inputs", "expected"),
    [
        ("orders.get_tracking", {"order_id": "10000004"}, {"status": "lost", "days_late": 14}),
        ("orders.get_tracking", {"order_id": "10000005"}, {"status": "in_transit", "days_late": 3}),
        ("orders.get_tracking", {"order_id": "10000006"}, {"status": "delivered", "amount": 34.9}),
        ("orders.get_tracking", {"order_id": "10000007"}, {"status": "returned"}),
        ("orders.get_tracking", {"order_id": "10000008"}, {"status": "ordered", "days_late": 0}),
        (
            "payments.get_refund_status",
            {"order_id": "10000009"},
            {"status": "paid", "refund_id": "R000001", "amount": 45.0, "days_since": 2},
        ),
        (
            "payments.get_refund_status",
            {"order_id": "10000010"},
            {"status": "pending", "days_since": 4},
        ),
        (
            "payments.get_refund_status",
            {"order_id": "10000011"},
            {"status": "pending", "days_since": 15},
        ),
        (
            "payments.get_refund_status",
            {"order_id": "10000012"},
            {"status": "rejected", "days_since": 3},
        ),
        (
            "payments.get_refund_status",
            {"order_id": "10000001"},
            {"status": "none", "refund_id": "", "amount": 0.0, "days_since": 0},
        ),
        (
            "network.line_test",
            {"customer_id": "C005"},
            {"line_id": "L-59000-005", "status": "down", "outage": True, "outage_eta_hours": 4},
        ),
        ("network.line_test", {"customer_id": "C006"}, {"status": "degraded", "outage": False}),
        ("network.line_test", {"customer_id": "C007"}, {"status": "degraded", "outage": False}),
        ("network.line_test", {"customer_id": "C008"}, {"status": "down", "outage": False}),
        (
            "network.line_test",
            {"customer_id": "C001"},
            {"status": "ok", "outage": False, "sync_rate_mbps": 940.0},
        ),
        (
            "appointments.get_current",
            {"customer_id": "C008"},
            {"appointment_id": "AP000001", "when": "2025-06-16 morning", "status": "booked"},
        ),
        ("appointments.get_current", {"customer_id": "C006"}, {"status": "none"}),  # past visit
        (
            "billing.get_last_invoice",
            {"customer_id": "C004"},
            {
                "invoice_id": "INV-2505-004",
                "amount": 66.99,
                "previous_amount": 34.99,
                "period": "May 2025",
            },
        ),
        (
            "billing.get_last_invoice",
            {"customer_id": "C005"},
            {"amount": 149.99, "previous_amount": 59.99},
        ),
        (
            "billing.get_last_invoice",
            {"customer_id": "C003"},
            {"amount": 24.99, "previous_amount": 24.99},
        ),
        (
            "subscriptions.get",
            {"customer_id": "C001"},
            {"plan": "fibre_plus", "monthly_price": 34.99, "tenure_months": 30, "months_left": 0},
        ),
        (
            "subscriptions.get",
            {"customer_id": "C002"},
            {"plan": "fibre_max", "monthly_price": 49.99, "tenure_months": 14, "months_left": 10},
        ),
        ("subscriptions.get", {"customer_id": "C003"}, {"tenure_months": 3, "months_left": 9}),
        ("crm.verify_identity", {"customer_id": "C001", "postcode": " 75011 "}, {"verified": True}),
        ("crm.verify_identity", {"customer_id": "C001", "postcode": "75012"}, {"verified": False}),
        ("accounts.unlock", {"customer_id": "C010"}, {"unlocked": False}),
    ],
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_seed_cases(action: str, inputs: dict[str, Any], expected: dict[str, Any]) -> None:
    result = call(action, **inputs)
    assert {k: result[k] for k in expected} == expected


def test_seed_accounts_lines_and_outages() -> None:
    assert one("accounts", customer_id="C009")["locked"] is True
    assert one("accounts", customer_id="C010")["lock_reason"] == "security_review"
    assert rows("lines", customer_id="C015", kind="mobile") == []
    assert rows("lines", customer_id="C016", kind="fibre") == []
    assert rows("subscriptions", customer_id="C016") == []
    assert [o["area"] for o in rows("outages", active=True)] == ["59000"]
    assert [c["customer_id"] for c in rows("customers", postcode="59000")] == ["C005"]


def test_seed_is_dated_from_the_real_day_without_a_pin(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("JOURNEYS_BACKOFFICE_TODAY")
    assert call("orders.get_tracking", order_id="10000001")["days_late"] == 7
    assert call("payments.get_refund_status", order_id="10000011")["days_since"] == 15
    assert call("subscriptions.get", customer_id="C002")["tenure_months"] == 14


def test_a_bad_pinned_date_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JOURNEYS_BACKOFFICE_TODAY", "tomorrow")
    with pytest.raises(ValueError, match="JOURNEYS_BACKOFFICE_TODAY"):
        bo.today()


# ------------------------------------------------------------------------------- show


def test_show_a_reference_table() -> None:
    columns, found = bo.show("customers", limit=2)
    assert columns[:3] == ["customer_id", "name", "tier"]
    assert [r[:2] for r in found] == [("C001", "Ada Martin"), ("C002", "Bruno Petit")]
    assert len(bo.show("customers")[1]) == 50


def test_show_the_latest_rows_of_a_log_table() -> None:
    for i in range(3):
        call("tickets.create", queue="network", summary=f"ticket {i}")
    columns, found = bo.show("tickets", limit=2)
    assert columns[:4] == ["id", "ticket_id", "queue", "summary"]
    assert [r[1] for r in found] == ["T000002", "T000003"]


def test_show_an_unknown_table_names_the_tables() -> None:
    with pytest.raises(ValueError, match=r"unknown back-office table 'nope'.*contact_log.*refunds"):
        bo.show("nope")
    with pytest.raises(ValueError, match="at least 1"):
        bo.show("customers", limit=0)


# ----------------------------------------------------------- every action, its outputs

#: One call of every action on the seed.
SAMPLES: dict[str, dict[str, Any]] = {
    "accounts.send_reset_link": {"customer_id": "C001", "channel": "email"},
    "accounts.unlock": {"customer_id": "C009"},
    "appointments.get_current": {"customer_id": "C008"},
    "appointments.reschedule": {"appointment_id": "AP000001", "slot": "2025-06-20 afternoon"},
    "billing.get_last_invoice": {"customer_id": "C001"},
    "billing.credit": {"customer_id": "C001", "amount": 7.5, "reason": "unknown_charge"},
    "billing.open_dispute": {"customer_id": "C004", "invoice_id": "INV-2505-004", "reason": "x"},
    "callbacks.schedule": {"customer_id": "C001", "when": "tomorrow_morning"},
    "crm.get_customer": {"customer_id": "C002"},
    "crm.verify_identity": {"customer_id": "C002", "postcode": "69003"},
    "crm.log_contact": {"customer_id": "C001", "motive": "delivery.late", "outcome": "resolved"},
    "crm.update_address": {
        "customer_id": "C001",
        "street": "1 rue A",
        "postcode": "69003",
        "city": "Lyon",
    },
    "lines.suspend": {"customer_id": "C001", "reason": "lost_sim"},
    "lines.order_sim": {"customer_id": "C001", "reason": "lost_sim"},
    "network.line_test": {"customer_id": "C006"},
    "network.remote_reset": {"customer_id": "C006"},
    "notify.send": {"customer_id": "C001", "channel": "sms", "template": "hello"},
    "orders.get_tracking": {"order_id": "10000001"},
    "orders.create_return": {"order_id": "10000002", "reason": "damaged item"},
    "orders.reship": {"order_id": "10000004", "reason": "lost"},
    "payments.refund": {"order_id": "10000001", "amount": 4.9, "reason": "late delivery"},
    "payments.get_refund_status": {"order_id": "10000009"},
    "payments.issue_voucher": {"customer_id": "C002", "amount": 15},
    "subscriptions.get": {"customer_id": "C001"},
    "subscriptions.change_plan": {"customer_id": "C001", "plan": "fibre_max"},
    "subscriptions.apply_offer": {"customer_id": "C001", "offer": "discount_20"},
    "subscriptions.cancel": {"customer_id": "C003", "reason": "price"},
    "tickets.create": {"queue": "billing", "summary": "check", "customer_id": "C001"},
    "identity.send_code": {"customer_id": "C001", "channel": "sms"},
    # The code of the challenge the sample of send_code makes first (see below).
    "identity.check_code": {"customer_id": "C001", "challenge_id": "OTP000001", "code": "x"},
}


def test_every_action_has_a_sample() -> None:
    assert set(SAMPLES) == set(catalogue())


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_action_returns_its_declared_fields_with_their_types(name: str) -> None:
    spec = catalogue()[name]
    if name == "identity.check_code":  # a code is checked once sent
        call("identity.send_code", **SAMPLES["identity.send_code"])
    result = spec.function(**SAMPLES[name])
    hints = get_type_hints(get_type_hints(spec.function)["return"])
    assert set(result) == set(hints)
    for key, kind in hints.items():
        assert type(result[key]) is kind, (key, result[key])


# -------------------------------------------------------------- what the actions change


def test_refund_is_recorded_pending_with_an_id_from_its_row() -> None:
    assert call("payments.refund", order_id="10000001", amount=4.9, reason="late delivery") == {
        "refund_id": "R000005",
        "amount": 4.9,
    }
    refund = one("refunds", refund_id="R000005")
    assert (refund["order_id"], refund["amount"], refund["status"], refund["requested_on"]) == (
        "10000001",
        4.9,
        "pending",
        TODAY,
    )
    assert call("payments.get_refund_status", order_id="10000001") == {
        "status": "pending",
        "refund_id": "R000005",
        "amount": 4.9,
        "days_since": 0,
    }


def test_refunds_never_exceed_the_order_amount() -> None:
    call("payments.refund", order_id="10000001", amount=50, reason="partial")
    with pytest.raises(ValueError, match=r"9\.9 EUR of 59\.9 EUR"):
        call("payments.refund", order_id="10000001", amount=10, reason="too much")
    call("payments.refund", order_id="10000001", amount=9.9, reason="the rest")
    # a rejected refund does not count: 249 EUR can still be refunded on 10000012
    call("payments.refund", order_id="10000012", amount=249, reason="return found")


@pytest.mark.parametrize("amount", [0, -5, 59.91, float("nan"), float("inf")])
def test_invalid_refund_amounts(amount: float) -> None:
    with pytest.raises(ValueError, match=r"refund|not an amount"):
        call("payments.refund", order_id="10000001", amount=amount, reason="x")
    assert count("refunds") == 4


def test_voucher() -> None:
    assert call("payments.issue_voucher", customer_id="C002", amount=15) == {
        "voucher_code": "V000001",
        "amount": 15.0,
    }
    voucher = one("vouchers", voucher_code="V000001")
    assert (voucher["customer_id"], voucher["expires_on"]) == ("C002", date(2026, 6, 11))
    for amount in (0, -1, 100.01):
        with pytest.raises(ValueError, match="voucher"):
            call("payments.issue_voucher", customer_id="C002", amount=amount)


def test_return_and_its_label() -> None:
    created = call("orders.create_return", order_id="10000006", reason="damaged item")
    assert created == {
        "return_id": "RT000001",
        "label_url": "https://returns.example.com/labels/RT000001.pdf",
    }
    assert one("returns", return_id="RT000001")["status"] == "open"
    # asked again: the same open return, not a second one
    assert call("orders.create_return", order_id="10000006", reason="damaged item") == created
    assert count("returns") == 1
    with pytest.raises(ValueError, match="in transit, not delivered"):
        call("orders.create_return", order_id="10000001", reason="damaged item")


def test_reship() -> None:
    assert call("orders.reship", order_id="10000004", reason="lost") == {
        "shipment_id": "S000001",
        "eta_days": 3,
    }
    assert one("shipments", shipment_id="S000001")["order_id"] == "10000004"
    with pytest.raises(ValueError, match="not been shipped"):
        call("orders.reship", order_id="10000008", reason="x")


def test_ticket_message_callback_and_contact_log() -> None:
    assert call("tickets.create", queue="logistics", summary="Investigate") == {
        "ticket_id": "T000001"
    }
    assert one("tickets", ticket_id="T000001")["customer_id"] is None
    assert call("notify.send", customer_id="C001", channel="email", template="voucher_issued") == {
        "message_id": "M000001"
    }
    assert one("messages", message_id="M000001")["recipient"] == "ada.martin@example.com"
    assert (
        call("notify.send", customer_id="C001", channel="sms", template="x")["message_id"]
        == "M000002"
    )
    assert one("messages", message_id="M000002")["recipient"] == "+33600000001"
    assert call("callbacks.schedule", customer_id="C001", when="today_evening") == {
        "callback_id": "CB000001",
        "when": "2025-06-11 17:00-20:00",
    }
    assert call("callbacks.schedule", customer_id="C001", when="next_business_day")["when"] == (
        "2025-06-12 09:00-18:00"
    )
    assert call("callbacks.schedule", customer_id="C001", when="2025-06-13T10:30")["when"] == (
        "2025-06-13 10:30"
    )
    assert one("callbacks", callback_id="CB000001")["requested"] == "today_evening"
    logged = call("crm.log_contact", customer_id="C001", motive="delivery.late", outcome="resolved")
    assert logged == {"contact_id": "CT000001"}
    entry = one("contact_log", contact_id="CT000001")
    assert (entry["motive"], entry["outcome"], entry["note"]) == ("delivery.late", "resolved", None)


def test_address_change_moves_the_orders_not_yet_shipped() -> None:
    changed = call(
        "crm.update_address",
        customer_id="C001",
        street="5 rue des Lilas",
        postcode="69003",
        city="Lyon",
    )
    assert changed == {"customer_id": "C001", "address": "5 rue des Lilas, 69003 Lyon"}
    assert one("customers", customer_id="C001")["city"] == "Lyon"
    assert one("orders", order_id="10000008")["delivery_address"] == "5 rue des Lilas, 69003 Lyon"
    assert one("orders", order_id="10000001")["delivery_address"] == "12 rue Oberkampf, 75011 Paris"
    change = one("address_changes", customer_id="C001")
    assert (change["old_address"], change["orders_moved"]) == ("12 rue Oberkampf, 75011 Paris", 1)
    assert call("crm.verify_identity", customer_id="C001", postcode="69003") == {"verified": True}


def test_lines_suspend_and_replacement_sim() -> None:
    assert call("lines.suspend", customer_id="C001", reason="stolen_phone") == {
        "line_id": "+33600000001",
        "suspended": True,
    }
    line = one("lines", line_id="+33600000001")
    assert (line["status"], line["suspended_reason"]) == ("suspended", "stolen_phone")
    assert call("lines.suspend", customer_id="C001", reason="again")["suspended"] is True
    assert call("lines.order_sim", customer_id="C001", reason="stolen_phone") == {
        "sim_order_id": "SIM000001",
        "eta_days": 2,
    }
    assert one("sim_orders", sim_order_id="SIM000001")["address"] == "12 rue Oberkampf, 75011 Paris"


def test_line_tests_and_resets() -> None:
    call("network.line_test", customer_id="C006")
    assert one("line_tests", line_id="L-33000-006")["status"] == "degraded"
    assert call("network.remote_reset", customer_id="C006") == {
        "reset_id": "RS000001",
        "status": "ok",
    }
    assert call("network.line_test", customer_id="C006")["status"] == "ok"
    assert one("lines", line_id="L-33000-006")["sync_rate_mbps"] == 1880.0
    assert call("network.remote_reset", customer_id="C007")["status"] == "failed"  # copper fault
    assert call("network.remote_reset", customer_id="C005")["status"] == "failed"  # area outage
    assert call("network.line_test", customer_id="C007")["status"] == "degraded"
    assert [r["status"] for r in rows("resets")] == ["ok", "failed", "failed"]


def test_accounts() -> None:
    assert call("accounts.unlock", customer_id="C009") == {"unlocked": True}
    account = one("accounts", customer_id="C009")
    assert (account["locked"], account["failed_attempts"]) == (False, 0)
    assert call("accounts.unlock", customer_id="C010") == {"unlocked": False}
    assert one("accounts", customer_id="C010")["locked"] is True
    assert call("accounts.send_reset_link", customer_id="C001", channel="sms") == {
        "message_id": "M000001",
        "expires_minutes": 30,
    }
    assert one("messages", message_id="M000001")["template"] == "password_reset_link"
    assert one("accounts", customer_id="C001")["reset_requested_at"] is not None
    with pytest.raises(PermissionError, match="security review"):
        call("accounts.send_reset_link", customer_id="C010", channel="email")
    with pytest.raises(ValueError, match="sms or email"):
        call("accounts.send_reset_link", customer_id="C001", channel="fax")


def test_subscription_changes() -> None:
    assert call("subscriptions.change_plan", customer_id="C002", plan="fibre_max_tv") == {
        "plan": "fibre_max_tv",
        "monthly_price": 59.99,
        "effective_date": "2025-07-01",
    }
    change = one("plan_changes", customer_id="C002")
    assert (change["from_plan"], change["to_plan"]) == ("fibre_max", "fibre_max_tv")
    assert call("subscriptions.get", customer_id="C002")["plan"] == "fibre_max_tv"
    with pytest.raises(ValueError, match="already on"):
        call("subscriptions.change_plan", customer_id="C002", plan="fibre_max_tv")
    with pytest.raises(LookupError, match=r"no plan 'fibre_gold'.*fibre_essential"):
        call("subscriptions.change_plan", customer_id="C002", plan="fibre_gold")
    # top of the range: no free upgrade; then the discount
    with pytest.raises(ValueError, match="top of the range"):
        call("subscriptions.apply_offer", customer_id="C002", offer="free_upgrade")
    assert call("subscriptions.apply_offer", customer_id="C002", offer="discount_20") == {
        "offer": "discount_20",
        "monthly_discount": 12.0,
        "months": 12,
    }
    with pytest.raises(ValueError, match="already has the offer"):
        call("subscriptions.apply_offer", customer_id="C002", offer="discount_20")
    assert call("subscriptions.apply_offer", customer_id="C001", offer="free_upgrade") == {
        "offer": "free_upgrade",
        "monthly_discount": 15.0,
        "months": 12,
    }
    upgraded = one("subscriptions", customer_id="C001")
    assert (upgraded["plan"], upgraded["monthly_price"]) == ("fibre_max", 34.99)
    with pytest.raises(ValueError, match="not one of"):
        call("subscriptions.apply_offer", customer_id="C003", offer="free_phone")


def test_cancellation_charges_the_months_left() -> None:
    assert call("subscriptions.cancel", customer_id="C003", reason="price") == {
        "cancellation_id": "X000001",
        "effective_date": "2025-07-31",
        "fee": 224.91,
    }
    assert one("subscriptions", customer_id="C003")["status"] == "cancelled"
    assert call("subscriptions.cancel", customer_id="C001", reason="moving")["fee"] == 0.0
    with pytest.raises(ValueError, match="already cancelled"):
        call("subscriptions.cancel", customer_id="C003", reason="price")


def test_credit_and_dispute() -> None:
    assert call("billing.credit", customer_id="C001", amount=7.5, reason="unknown_charge") == {
        "credit_id": "CR000001",
        "amount": 7.5,
    }
    assert one("credits", credit_id="CR000001")["customer_id"] == "C001"
    for amount in (0, -2, 42.5):
        with pytest.raises(ValueError, match="credit"):
            call("billing.credit", customer_id="C001", amount=amount, reason="x")
    assert call(
        "billing.open_dispute",
        customer_id="C004",
        invoice_id="INV-2505-004",
        reason="price_increase",
    ) == {"dispute_id": "D000001"}
    assert one("invoices", invoice_id="INV-2505-004")["status"] == "disputed"
    with pytest.raises(ValueError, match="already in dispute"):
        call("billing.open_dispute", customer_id="C004", invoice_id="INV-2505-004", reason="x")
    with pytest.raises(LookupError, match="no invoice 'INV-2505-004' for customer 'C001'"):
        call("billing.open_dispute", customer_id="C001", invoice_id="INV-2505-004", reason="x")


def test_appointment_reschedule_follows_the_planning_rules() -> None:
    assert call(
        "appointments.reschedule", appointment_id="AP000001", slot="2025-06-20 afternoon"
    ) == {
        "appointment_id": "AP000001",
        "when": "2025-06-20 afternoon",
    }
    moved = one("appointments", appointment_id="AP000001")
    assert (moved["day"], moved["period"], moved["previous_slot"]) == (
        date(2025, 6, 20),
        "afternoon",
        "2025-06-16 morning",
    )
    for slot, message in [
        ("2025-06-22 morning", "Sunday"),
        ("2025-06-11 morning", "from 2025-06-12 to 2025-07-11"),
        ("2025-08-01 morning", "from 2025-06-12"),
        ("2025-06-20 evening", "is not a day and a period"),
        ("soon", "is not a day and a period"),
    ]:
        with pytest.raises(ValueError, match=message):
            call("appointments.reschedule", appointment_id="AP000001", slot=slot)
    with pytest.raises(ValueError, match="is done"):
        call("appointments.reschedule", appointment_id="AP000002", slot="2025-06-20 morning")


# ------------------------------------------------------------------------------ errors


@pytest.mark.parametrize(
    ("name", "inputs", "message"),
    [
        ("crm.get_customer", {"customer_id": "C999"}, "no customer 'C999' in the back office"),
        ("crm.verify_identity", {"customer_id": "C999", "postcode": "75011"}, "no customer 'C999'"),
        (
            "crm.log_contact",
            {"customer_id": "C999", "motive": "m", "outcome": "resolved"},
            "no customer",
        ),
        ("orders.get_tracking", {"order_id": "99999999"}, "no order '99999999' in the back office"),
        ("orders.create_return", {"order_id": "99999999", "reason": "x"}, "no order '99999999'"),
        ("orders.reship", {"order_id": "99999999", "reason": "x"}, "no order '99999999'"),
        ("payments.refund", {"order_id": "99999999", "amount": 1, "reason": "x"}, "no order"),
        ("payments.get_refund_status", {"order_id": "99999999"}, "no order"),
        ("payments.issue_voucher", {"customer_id": "C999", "amount": 10}, "no customer"),
        ("tickets.create", {"queue": "q", "summary": "s", "customer_id": "C999"}, "no customer"),
        ("notify.send", {"customer_id": "C999", "channel": "sms", "template": "t"}, "no customer"),
        ("callbacks.schedule", {"customer_id": "C999", "when": "today_evening"}, "no customer"),
        ("billing.get_last_invoice", {"customer_id": "C999"}, "no customer"),
        (
            "billing.open_dispute",
            {"customer_id": "C001", "invoice_id": "INV-0", "reason": "x"},
            "no invoice 'INV-0'",
        ),
        ("subscriptions.get", {"customer_id": "C016"}, "'C016' has no internet subscription"),
        ("network.line_test", {"customer_id": "C016"}, "'C016' has no internet line"),
        (
            "lines.suspend",
            {"customer_id": "C015", "reason": "lost_sim"},
            "'C015' has no mobile line",
        ),
        ("appointments.get_current", {"customer_id": "C999"}, "no customer"),
        (
            "appointments.reschedule",
            {"appointment_id": "AP999999", "slot": "2025-06-20 morning"},
            "no appointment 'AP999999'",
        ),
        ("accounts.unlock", {"customer_id": "C999"}, "no customer"),
    ],
    ids=lambda v: v if isinstance(v, str) and "." in v else "",
)
def test_unknown_ids_are_lookup_errors(name: str, inputs: dict[str, Any], message: str) -> None:
    with pytest.raises(LookupError, match=message):
        call(name, **inputs)


@pytest.mark.parametrize(
    ("name", "inputs", "message"),
    [
        (
            "crm.log_contact",
            {"customer_id": "C001", "motive": "m", "outcome": "fine"},
            "outcome 'fine'",
        ),
        (
            "crm.log_contact",
            {"customer_id": "C001", "motive": " ", "outcome": "resolved"},
            "motive",
        ),
        (
            "crm.update_address",
            {"customer_id": "C001", "street": "", "postcode": "1", "city": "c"},
            "street",
        ),
        (
            "notify.send",
            {"customer_id": "C001", "channel": "pigeon", "template": "t"},
            "channel 'pigeon'",
        ),
        ("tickets.create", {"queue": "", "summary": "s"}, "queue"),
        ("callbacks.schedule", {"customer_id": "C001", "when": "whenever"}, "neither a date-time"),
        ("callbacks.schedule", {"customer_id": "C001", "when": "2025-06-10T10:00"}, "in the past"),
    ],
    ids=lambda v: v if isinstance(v, str) and "." in v else "",
)
def test_invalid_inputs_are_value_errors(name: str, inputs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        call(name, **inputs)


def test_the_same_idempotency_key_never_refunds_twice() -> None:
    executor = LocalExecutor(ledger=once)
    inputs = {"order_id": "10000001", "amount": 4.9, "reason": "late delivery"}
    first = executor.call(Call("payments.refund", "s_x:do_refund:1", inputs, retries=0))
    again = executor.call(Call("payments.refund", "s_x:do_refund:1", inputs, retries=0))
    other_visit = executor.call(Call("payments.refund", "s_x:do_refund:2", inputs, retries=0))
    assert first.result == again.result
    assert other_visit.result is not None and other_visit.result != first.result
    assert count("refunds") == 6  # the 4 of the seed, then one per distinct key


def test_an_error_becomes_the_action_error_and_writes_nothing() -> None:
    """Through the executor, as a journey sees it: the message and its code, nothing
    half-written, and not tried again (the back office's answer would be the same)."""
    executor = LocalExecutor(ledger=once)
    inputs = {"order_id": "10000001", "amount": 100, "reason": "x"}
    outcome = executor.call(Call("payments.refund", "s_t:refund:1", inputs, retries=1))
    assert outcome.error is not None and "more than what is left to refund" in outcome.error
    assert (outcome.code, outcome.failure) == ("refused", None)
    assert outcome.attempts == 1 and count("refunds") == 4


# ------------------------------------------------ every shipped journey, for real, no stubs


@dataclass(frozen=True)
class Case:
    journey: str
    name: str
    inputs: dict[str, Any]
    answers: dict[str, Any]
    outcome: str
    end: str
    #: rows that must be in the back office afterwards: (table, {column: value})
    rows: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    context: dict[str, Any] = field(default_factory=dict)


def logged(customer: str, motive: str, outcome: str) -> tuple[str, dict[str, Any]]:
    return ("contact_log", {"customer_id": customer, "motive": motive, "outcome": outcome})


CASES = [
    # -- shared sub-journeys, run on their own
    Case(
        "identify-customer", "customer gives a known number", {}, {"ask_customer_id": "C002"},
        "resolved", "done", context={"customer": {"name": "Bruno Petit", "tier": "premium"}},
    ),
    Case(
        "identify-customer", "unknown number, transfer", {},
        {"ask_customer_id": "C999", "not_found": "transfer"}, "escalated", "to_agent",
    ),
    Case(
        "satisfaction-survey", "solved", {}, {"ask_solved": "yes", "offer_comment": "no"},
        "resolved", "done",
    ),
    # -- change-address
    Case(
        "change-address", "verified, new address saved", {"customer_id": "C001"},
        {"ask_security": "75011", "ask_street": "5 rue des Lilas", "ask_postcode": "69003",
         "ask_city": "Lyon", "confirm_address": "yes"},
        "resolved", "updated",
        rows=[
            ("customers", {"customer_id": "C001", "street": "5 rue des Lilas", "city": "Lyon"}),
            ("address_changes", {"customer_id": "C001", "new_address": "5 rue des Lilas, 69003 Lyon"}),
            ("orders", {"order_id": "10000008", "delivery_address": "5 rue des Lilas, 69003 Lyon"}),
            ("messages", {"customer_id": "C001", "channel": "email", "template": "address_changed"}),
            logged("C001", "account.address_change", "resolved"),
        ],
    ),
    Case(
        "change-address", "wrong postcode twice", {"customer_id": "C001"},
        {"ask_security": "75012", "ask_security_again": "75015"}, "unresolved", "not_verified",
        rows=[
            ("customers", {"customer_id": "C001", "street": "12 rue Oberkampf"}),
            logged("C001", "account.address_change", "unresolved"),
        ],
    ),
    # -- damaged-item
    Case(
        "damaged-item", "low value, no photos, refund", {"customer_id": "C006"},
        {"ask_order": "10000006", "ask_photos": "no", "choose_remedy": "refund"},
        "resolved", "refunded",
        rows=[
            ("returns", {"order_id": "10000006", "label_url": "https://returns.example.com/labels/RT000001.pdf"}),
            ("refunds", {"order_id": "10000006", "amount": 34.9, "status": "pending"}),
            ("messages", {"customer_id": "C006", "template": "return_label"}),
            logged("C006", "order.damaged", "resolved"),
        ],
    ),
    Case(
        "damaged-item", "photos, replacement", {"customer_id": "C002", "order_id": "10000002"},
        {"ask_photos": "yes", "ask_photo_link": "PH-12345", "choose_remedy": "replacement"},
        "resolved", "replaced",
        rows=[("returns", {"order_id": "10000002"}), ("shipments", {"order_id": "10000002", "eta_days": 3})],
    ),
    Case(
        "damaged-item", "high value without photos", {"customer_id": "C002", "order_id": "10000002"},
        {"ask_photos": "no"}, "unresolved", "photos_requested",
        rows=[("messages", {"customer_id": "C002", "template": "damage_photos_request"})],
    ),
    Case(
        "damaged-item", "parcel not delivered yet: the return is refused", {"customer_id": "C001"},
        {"ask_order": "10000001", "ask_photos": "yes", "ask_photo_link": "PH-00001", "choose_remedy": "refund"},
        "escalated", "to_logistics",
    ),
    # -- delivery-late
    Case(
        "delivery-late", "7 days late, shipping refunded", {"customer_id": "C001"},
        {"ask_order": "10000001", "offer": "refund_shipping"}, "resolved", "shipping_refunded",
        rows=[("refunds", {"order_id": "10000001", "amount": 4.9, "reason": "late delivery"}),
              logged("C001", "delivery.late", "resolved")],
    ),
    Case(
        "delivery-late", "premium 3 days late, 15 EUR voucher", {"customer_id": "C002"},
        {"ask_order": "10000005", "offer": "voucher"}, "resolved", "voucher_end",
        rows=[("vouchers", {"customer_id": "C002", "amount": 15.0}),
              ("messages", {"customer_id": "C002", "template": "voucher_issued"})],
    ),
    Case(
        "delivery-late", "1 day late, reassured with a text alert", {"customer_id": "C003"},
        {"ask_order": "10000003", "offer_alert": "yes"}, "resolved", "reassured",
        rows=[("messages", {"customer_id": "C003", "channel": "sms", "recipient": "+33600000003",
                            "template": "out_for_delivery_alert"})],
    ),
    Case(
        "delivery-late", "already delivered", {"customer_id": "C002", "order_id": "10000002"}, {},
        "resolved", "delivered_end",
    ),
    Case(
        "delivery-late", "lost parcel", {"customer_id": "C004", "order_id": "10000004"}, {},
        "escalated", "to_logistics",
    ),
    # -- delivery-missing
    Case(
        "delivery-missing", "7 days late, refunded", {"customer_id": "C001"},
        {"ask_order": "10000001", "offer": "refund"}, "resolved", "refunded",
        rows=[("refunds", {"order_id": "10000001", "amount": 59.9, "reason": "parcel not received",
                           "status": "pending", "refund_id": "R000005"}),
              logged("C001", "delivery.missing", "resolved")],
    ),
    Case(
        "delivery-missing", "lost, sent again", {"customer_id": "C004"},
        {"ask_order": "10000004", "offer": "reship"}, "resolved", "reshipped",
        rows=[("shipments", {"order_id": "10000004", "reason": "parcel not received"})],
    ),
    Case(
        "delivery-missing", "delivered but not found: investigation", {"customer_id": "C002"},
        {"ask_order": "10000002", "delivered_claim": "not_found"}, "unresolved", "investigation_end",
        rows=[("tickets", {"queue": "logistics", "customer_id": "C002", "summary":
               "Carrier investigation: order 10000002 marked delivered by Chronopost but not received"})],
    ),
    Case(
        "delivery-missing", "1 day late, reassured", {"customer_id": "C003"},
        {"ask_order": "10000003"}, "resolved", "wait_end",
    ),
    Case(
        "delivery-missing", "unknown order", {"customer_id": "C001"}, {"ask_order": "99999999"},
        "escalated", "to_logistics",
    ),
    # -- refund-status
    Case(
        "refund-status", "paid, solved", {"customer_id": "C011"},
        {"ask_order": "10000009", "confirm/ask_solved": "yes", "confirm/offer_comment": "no"},
        "resolved", "paid_end", context={"refund_status": {"status": "paid", "days_since": 2}},
    ),
    Case(
        "refund-status", "pending 4 days", {"customer_id": "C012"}, {"ask_order": "10000010"},
        "resolved", "pending_end",
    ),
    Case(
        "refund-status", "pending 15 days: priority ticket", {"customer_id": "C013"},
        {"ask_order": "10000011"}, "unresolved", "ticket_end",
        rows=[("tickets", {"queue": "billing", "customer_id": "C013",
                           "summary": "Refund follow-up for order 10000011: status pending for 15 days"}),
              logged("C013", "payment.refund_status", "unresolved")],
    ),
    Case(
        "refund-status", "rejected", {"customer_id": "C014"}, {"ask_order": "10000012"},
        "escalated", "to_billing",
    ),
    Case(
        "refund-status", "no refund on the order", {"customer_id": "C001"}, {"ask_order": "10000001"},
        "resolved", "no_refund_end",
    ),
    # -- billing-dispute
    Case(
        "billing-dispute", "small increase credited", {"customer_id": "C001"},
        {"ask_reason": "unknown_charge", "offer_credit": "yes"}, "resolved", "credit_done",
        rows=[("credits", {"customer_id": "C001", "amount": 7.5, "reason": "unknown_charge"}),
              ("messages", {"customer_id": "C001", "template": "billing_credit_confirmation"})],
    ),
    Case(
        "billing-dispute", "premium, 17.50 credited", {"customer_id": "C002"},
        {"ask_reason": "usage_charges", "offer_credit": "yes"}, "resolved", "credit_done",
        rows=[("credits", {"customer_id": "C002", "amount": 17.5})],
    ),
    Case(
        "billing-dispute", "no increase, explained", {"customer_id": "C003"},
        {"ask_reason": "unknown_charge", "still_dispute": "no"}, "resolved", "explained_done",
    ),
    Case(
        "billing-dispute", "jump of 32 EUR: formal dispute", {"customer_id": "C004"},
        {"ask_reason": "price_increase"}, "resolved", "dispute_done",
        rows=[("disputes", {"customer_id": "C004", "invoice_id": "INV-2505-004", "status": "open"}),
              ("invoices", {"invoice_id": "INV-2505-004", "status": "disputed"})],
    ),
    Case(
        "billing-dispute", "jump of 90 EUR: specialist", {"customer_id": "C005"},
        {"ask_reason": "unknown_charge"}, "escalated", "to_billing_large",
        rows=[("disputes", {"customer_id": "C005", "invoice_id": "INV-2505-005"})],
    ),
    # -- cancellation
    Case(
        "cancellation", "loyal customer keeps a 20% discount", {"customer_id": "C001"},
        {"ask_reason": "price", "offer_loyal": "discount_20"}, "resolved", "retained_done",
        rows=[("offers", {"customer_id": "C001", "offer": "discount_20", "monthly_discount": 7.0}),
              ("subscriptions", {"customer_id": "C001", "status": "active"})],
    ),
    Case(
        "cancellation", "loyal customer takes the free upgrade", {"customer_id": "C001"},
        {"ask_reason": "competitor", "offer_loyal": "free_upgrade"}, "resolved", "retained_done",
        rows=[("subscriptions", {"customer_id": "C001", "plan": "fibre_max", "monthly_price": 34.99})],
    ),
    Case(
        "cancellation", "new customer cancels and pays the months left", {"customer_id": "C003"},
        {"ask_reason": "competitor", "confirm_cancel": "yes"}, "resolved", "cancelled_done",
        rows=[("cancellations", {"customer_id": "C003", "fee": 224.91, "effective_date": date(2025, 7, 31)}),
              ("subscriptions", {"customer_id": "C003", "status": "cancelled"}),
              ("messages", {"customer_id": "C003", "template": "cancellation_confirmation"})],
    ),
    Case(
        "cancellation", "declines the offer, then keeps the subscription", {"customer_id": "C002"},
        {"ask_reason": "price", "offer_standard": "decline", "confirm_cancel": "no"},
        "resolved", "kept_done", rows=[("subscriptions", {"customer_id": "C002", "status": "active"})],
    ),
    Case(
        "cancellation", "no internet subscription", {"customer_id": "C016"}, {}, "escalated", "to_retention",
    ),
    # -- internet-outage
    Case(
        "internet-outage", "known area outage", {"customer_id": "C005"}, {}, "resolved", "outage_done",
        rows=[("line_tests", {"line_id": "L-59000-005", "outage": True}),
              ("messages", {"customer_id": "C005", "channel": "sms", "template": "outage_restored_alert"})],
    ),
    Case(
        "internet-outage", "degraded line fixed by a remote reset", {"customer_id": "C006"},
        {"confirm_fixed": "yes"}, "resolved", "fixed_done",
        rows=[("resets", {"line_id": "L-33000-006", "status": "ok"}),
              ("lines", {"line_id": "L-33000-006", "status": "ok"})],
    ),
    Case(
        "internet-outage", "reset fails: repair ticket and callback", {"customer_id": "C007"},
        {"choose_slot": "today_evening"}, "callback", "callback_done",
        rows=[("resets", {"line_id": "L-44000-007", "status": "failed"}),
              ("tickets", {"queue": "network", "customer_id": "C007",
                           "summary": "Internet not working on line L-44000-007 (line test: degraded)"}),
              ("callbacks", {"customer_id": "C007", "slot": "2025-06-11 17:00-20:00"})],
    ),
    Case(
        "internet-outage", "line fine, box restarted", {"customer_id": "C001"}, {"confirm_fixed": "yes"},
        "resolved", "fixed_done", rows=[("line_tests", {"line_id": "L-75011-001", "status": "ok"})],
    ),
    Case(
        "internet-outage", "no internet line", {"customer_id": "C016"}, {}, "escalated", "to_network",
    ),
    # -- lost-sim
    Case(
        "lost-sim", "lost SIM, replacement to the address on file", {"customer_id": "C001"},
        {"what_lost": "lost_sim", "offer_sim": "yes", "address_check": "yes"}, "resolved", "sim_done",
        rows=[("lines", {"line_id": "+33600000001", "status": "suspended", "suspended_reason": "lost_sim"}),
              ("sim_orders", {"customer_id": "C001", "address": "12 rue Oberkampf, 75011 Paris"}),
              ("messages", {"customer_id": "C001", "template": "replacement_sim_ordered"})],
    ),
    Case(
        "lost-sim", "stolen phone, customer has moved", {"customer_id": "C002"},
        {"what_lost": "stolen_phone", "offer_sim": "yes", "address_check": "no",
         "ask_street": "3 rue Neuve", "ask_postcode": "69002", "ask_city": "Lyon"},
        "resolved", "sim_done",
        rows=[("customers", {"customer_id": "C002", "street": "3 rue Neuve", "postcode": "69002"}),
              ("sim_orders", {"customer_id": "C002", "address": "3 rue Neuve, 69002 Lyon"})],
    ),
    Case(
        "lost-sim", "no mobile line", {"customer_id": "C015"}, {"what_lost": "lost_phone"},
        "escalated", "to_mobile",
    ),
    # -- password-reset
    Case(
        "password-reset", "forgotten password, link by text", {"customer_id": "C001"},
        {"choose_problem": "forgot_password", "choose_channel": "sms", "confirm_received": "yes"},
        "resolved", "link_done",
        rows=[("messages", {"customer_id": "C001", "channel": "sms", "recipient": "+33600000001",
                            "template": "password_reset_link"})],
    ),
    Case(
        "password-reset", "locked after failed sign-ins, unlocked", {"customer_id": "C009"},
        {"choose_problem": "account_locked", "ask_postcode": "35000", "need_reset": "no"},
        "resolved", "unlocked_done", rows=[("accounts", {"customer_id": "C009", "locked": False})],
    ),
    Case(
        "password-reset", "locked by the security team", {"customer_id": "C010"},
        {"choose_problem": "account_locked", "ask_postcode": "34000"}, "escalated", "to_support",
        rows=[("accounts", {"customer_id": "C010", "locked": True})],
    ),
    Case(
        "password-reset", "security check failed", {"customer_id": "C009"},
        {"choose_problem": "account_locked", "ask_postcode": "75011"}, "unresolved", "not_verified",
        rows=[("accounts", {"customer_id": "C009", "locked": True})],
    ),
    # -- plan-change
    Case(
        "plan-change", "premium upgrade", {"customer_id": "C002"},
        {"choose_plan": "fibre_max_tv", "confirm_change": "yes"}, "resolved", "changed_done",
        rows=[("subscriptions", {"customer_id": "C002", "plan": "fibre_max_tv", "monthly_price": 59.99}),
              ("plan_changes", {"customer_id": "C002", "to_plan": "fibre_max_tv",
                                "effective_date": date(2025, 7, 1)}),
              ("messages", {"customer_id": "C002", "template": "plan_change_confirmation"})],
    ),
    Case(
        "plan-change", "already on the plan", {"customer_id": "C001"}, {"choose_plan": "fibre_plus"},
        "resolved", "already_on_plan",
    ),
    Case(
        "plan-change", "cheaper plan during the commitment, kept", {"customer_id": "C002"},
        {"choose_plan": "fibre_essential", "confirm_change": "no"}, "resolved", "kept_done",
        rows=[("subscriptions", {"customer_id": "C002", "plan": "fibre_max"})],
    ),
    # -- technician-reschedule
    Case(
        "technician-reschedule", "moved to another day", {"customer_id": "C008"},
        {"choose_intent": "reschedule", "ask_date": "2025-06-20", "choose_period": "afternoon",
         "confirm_slot": "yes"},
        "resolved", "rescheduled_done",
        rows=[("appointments", {"appointment_id": "AP000001", "day": date(2025, 6, 20),
                                "period": "afternoon", "previous_slot": "2025-06-16 morning"}),
              ("messages", {"customer_id": "C008", "template": "technician_appointment_rescheduled"})],
    ),
    Case(
        "technician-reschedule", "a Sunday: a planner calls back", {"customer_id": "C008"},
        {"choose_intent": "reschedule", "ask_date": "2025-06-22", "choose_period": "morning",
         "confirm_slot": "yes"},
        "callback", "callback_done",
        rows=[("appointments", {"appointment_id": "AP000001", "day": date(2025, 6, 16)}),
              ("callbacks", {"customer_id": "C008", "requested": "next_business_day",
                             "slot": "2025-06-12 09:00-18:00"})],
    ),
    Case(
        "technician-reschedule", "kept", {"customer_id": "C008"}, {"choose_intent": "keep"},
        "resolved", "kept_done",
    ),
    Case(
        "technician-reschedule", "no appointment", {"customer_id": "C001"}, {}, "unresolved",
        "no_appointment_done",
    ),
    # -- delivery-delay-proactive (outbound, started by the trigger of order.delayed)
    Case(
        "delivery-delay-proactive", "7 days late, voucher",
        {"customer_id": "C001", "order_id": "10000001", "days_late": 7}, {"offer": "voucher"},
        "resolved", "voucher_end",
        rows=[("vouchers", {"customer_id": "C001", "amount": 10.0}),
              logged("C001", "delivery.proactive", "resolved")],
    ),
    Case(
        "delivery-delay-proactive", "7 days late, shipping refunded",
        {"customer_id": "C001", "order_id": "10000001", "days_late": 7},
        {"offer": "refund_shipping"}, "resolved", "refund_end",
        rows=[("refunds", {"order_id": "10000001", "amount": 4.9, "status": "pending"})],
    ),
    Case(
        "delivery-delay-proactive", "premium, free shipping, voucher of 15",
        {"customer_id": "C002", "order_id": "10000005", "days_late": 3},
        {"offer_voucher": "voucher"}, "resolved", "voucher_end",
        rows=[("vouchers", {"customer_id": "C002", "amount": 15.0})],
    ),
    Case(
        "delivery-delay-proactive", "declined",
        {"customer_id": "C001", "order_id": "10000001", "days_late": 7}, {"offer": "decline"},
        "resolved", "declined", rows=[logged("C001", "delivery.proactive", "resolved")],
    ),
    Case(
        "delivery-delay-proactive", "lost parcel, logistics",
        {"customer_id": "C004", "order_id": "10000004", "days_late": 14}, {},
        "escalated", "to_logistics",
    ),
]  # fmt: skip


def run_journey(case: Case) -> Session:
    sessions = Sessions(Library(SHIPPED), MemoryStore(), LocalExecutor(ledger=once))
    session = sessions.start(case.journey, case.inputs)
    return answer_until_stuck(sessions, session, AnswerBook(case.answers))


def subset(want: Any, got: Any) -> bool:
    if isinstance(want, dict) and isinstance(got, dict):
        return all(k in got and subset(v, got[k]) for k, v in want.items())
    return bool(want == got)


def test_every_shipped_journey_reaches_a_resolved_end_for_real() -> None:
    journeys = set(Library(SHIPPED).journeys)
    assert {c.journey for c in CASES} == journeys
    assert {c.journey for c in CASES if c.outcome == "resolved"} == journeys


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c.journey}: {c.name}")
def test_shipped_journey_against_the_back_office(case: Case) -> None:
    session = run_journey(case)
    assert session.status == "ended", (session.status, session.node, session.path, session.error)
    assert (session.outcome, session.path[-1]) == (case.outcome, case.end), session.path
    assert subset(case.context, session.context), session.context
    for table, values in case.rows:
        assert rows(table, **values), f"no row {values} in {table}: {bo.show(table)[1][-5:]}"
    if case.outcome in ("resolved", "unresolved", "callback") and case.journey not in (
        "identify-customer",
        "satisfaction-survey",
    ):
        customer = case.inputs.get("customer_id")
        assert rows("contact_log", customer_id=customer), "the contact was not logged"


def test_the_back_office_re_exports_every_table_it_declares() -> None:
    """The tables live in actions/backoffice_tables.py; the actions read them as bo.<table>."""
    from actions import backoffice_tables

    assert set(backoffice_tables.__all__) == {"TABLES", "metadata", *bo.TABLES}
    assert all(getattr(bo, name) is table for name, table in bo.TABLES.items())
    assert bo.metadata is backoffice_tables.metadata
