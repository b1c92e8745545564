"""The tables of the demo back office: what it knows (reference data, seeded once:
actions/seed.py) and what the actions write (refunds, tickets, messages, the contact log, ...).

Only SQLAlchemy's table declarations: the database itself (engines, seeding, the idempotency
ledger, the helpers the actions share) is actions/backoffice.py, which re-exports these
tables, so that an action reads ``bo.customers`` beside ``bo.transaction()``.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    Boolean,
    Column,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Table,
)

metadata = MetaData()


def _id() -> Column[int]:
    return Column("id", Integer, primary_key=True, autoincrement=True)


def _created() -> Column[datetime]:
    return Column("created_at", DateTime(timezone=True), nullable=False)


# -------------------------------------------------------------------- reference data

meta = Table(
    "meta",
    metadata,
    Column("key", String(40), primary_key=True),
    Column("value", String(200), nullable=False),
)

# Exactly-once effects: each action run carries an idempotency key (session, node, visit);
# the key is written in the same transaction as the action's own writes, so a run repeated
# after a crash or a duplicate dispatch finds it and returns the first result instead.
idempotency = Table(
    "idempotency",
    metadata,
    Column("key", String(300), primary_key=True),
    Column("action", String(100), nullable=False),
    Column("result", String, nullable=False),
    Column("created_at", DateTime, nullable=False),
)

customers = Table(
    "customers",
    metadata,
    Column("customer_id", String(20), primary_key=True),
    Column("name", String(120), nullable=False),
    Column("tier", String(20), nullable=False),  # standard, premium
    Column("phone", String(30), nullable=False),
    Column("email", String(200), nullable=False),
    Column("street", String(200), nullable=False),
    Column("postcode", String(20), nullable=False),
    Column("city", String(80), nullable=False),
)

orders = Table(
    "orders",
    metadata,
    Column("order_id", String(20), primary_key=True),
    Column("customer_id", ForeignKey("customers.customer_id"), nullable=False, index=True),
    Column("status", String(20), nullable=False),  # ordered, in_transit, delivered, lost, returned
    Column("carrier", String(40), nullable=False),
    Column("shipping_cost", Float, nullable=False),
    Column("amount", Float, nullable=False),  # what the customer paid, shipping included
    Column("ordered_on", Date, nullable=False),
    Column("expected_on", Date, nullable=False),
    Column("delivered_on", Date),
    Column("delivery_address", String(300), nullable=False),
)

plans = Table(
    "plans",
    metadata,
    Column("plan", String(40), primary_key=True),
    Column("name", String(80), nullable=False),
    Column("monthly_price", Float, nullable=False),
    Column("speed_mbps", Float, nullable=False),  # the sync rate of a healthy line
    Column("rank", Integer, nullable=False),  # order of the range: free_upgrade goes one up
)

subscriptions = Table(
    "subscriptions",
    metadata,
    Column("customer_id", ForeignKey("customers.customer_id"), primary_key=True),
    Column("plan", ForeignKey("plans.plan"), nullable=False),
    Column("monthly_price", Float, nullable=False),
    Column("started_on", Date, nullable=False),
    Column("commitment_months", Integer, nullable=False),
    Column("status", String(20), nullable=False),  # active, cancelled
)

lines = Table(
    "lines",
    metadata,
    Column("line_id", String(40), primary_key=True),  # the number of a mobile line
    Column("customer_id", ForeignKey("customers.customer_id"), nullable=False, index=True),
    Column("kind", String(20), nullable=False),  # mobile, fibre
    Column(
        "status", String(20), nullable=False
    ),  # mobile: active, suspended; fibre: ok, degraded, down
    Column("area", String(20), nullable=False),  # network area (the postcode of the premises)
    Column("sync_rate_mbps", Float, nullable=False),
    Column("fault", String(40)),  # fibre: box_profile (a remote reset fixes it), copper, fibre_cut
    Column("suspended_reason", String(80)),
)

outages = Table(
    "outages",
    metadata,
    _id(),
    Column("area", String(20), nullable=False, index=True),
    Column("description", String(200), nullable=False),
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("eta_hours", Integer, nullable=False),
    Column("active", Boolean, nullable=False),
)

invoices = Table(
    "invoices",
    metadata,
    Column("invoice_id", String(30), primary_key=True),
    Column("customer_id", ForeignKey("customers.customer_id"), nullable=False, index=True),
    Column("period", String(40), nullable=False),  # "May 2025"
    Column("issued_on", Date, nullable=False),
    Column("amount", Float, nullable=False),
    Column("status", String(20), nullable=False),  # due, paid, disputed
)

accounts = Table(
    "accounts",
    metadata,
    Column("customer_id", ForeignKey("customers.customer_id"), primary_key=True),
    Column("login", String(200), nullable=False),
    Column("locked", Boolean, nullable=False),
    Column("lock_reason", String(40)),  # too_many_attempts, security_review
    Column("failed_attempts", Integer, nullable=False),
    Column("reset_requested_at", DateTime(timezone=True)),
)

appointments = Table(
    "appointments",
    metadata,
    _id(),
    Column("appointment_id", String(20), unique=True),
    Column("customer_id", ForeignKey("customers.customer_id"), nullable=False, index=True),
    Column("day", Date, nullable=False),
    Column("period", String(20), nullable=False),  # morning, afternoon
    Column("purpose", String(120), nullable=False),
    Column("status", String(20), nullable=False),  # booked, done, cancelled
    Column("previous_slot", String(40)),
    _created(),
)

# ------------------------------------------------------------- what the actions write

refunds = Table(
    "refunds",
    metadata,
    _id(),
    Column("refund_id", String(20), unique=True),
    Column("order_id", ForeignKey("orders.order_id"), nullable=False, index=True),
    Column("amount", Float, nullable=False),
    Column("reason", String(200), nullable=False),
    Column("status", String(20), nullable=False),  # pending, paid, rejected
    Column("requested_on", Date, nullable=False),
    Column("decided_on", Date),  # paid or rejected on
    _created(),
)

vouchers = Table(
    "vouchers",
    metadata,
    _id(),
    Column("voucher_code", String(20), unique=True),
    Column("customer_id", ForeignKey("customers.customer_id"), nullable=False, index=True),
    Column("amount", Float, nullable=False),
    Column("expires_on", Date, nullable=False),
    _created(),
)

returns = Table(
    "returns",
    metadata,
    _id(),
    Column("return_id", String(20), unique=True),
    Column("order_id", ForeignKey("orders.order_id"), nullable=False, index=True),
    Column("reason", String(200), nullable=False),
    Column("label_url", String(300), nullable=False),
    Column("status", String(20), nullable=False),  # open, received
    _created(),
)

shipments = Table(
    "shipments",
    metadata,
    _id(),
    Column("shipment_id", String(20), unique=True),
    Column("order_id", ForeignKey("orders.order_id"), nullable=False, index=True),
    Column("reason", String(200), nullable=False),
    Column("eta_days", Integer, nullable=False),
    _created(),
)

tickets = Table(
    "tickets",
    metadata,
    _id(),
    Column("ticket_id", String(20), unique=True),
    Column("queue", String(60), nullable=False),
    Column("summary", String(500), nullable=False),
    Column("customer_id", ForeignKey("customers.customer_id"), index=True),
    Column("status", String(20), nullable=False),  # open, closed
    _created(),
)

messages = Table(
    "messages",
    metadata,
    _id(),
    Column("message_id", String(20), unique=True),
    Column("customer_id", ForeignKey("customers.customer_id"), nullable=False, index=True),
    Column("channel", String(20), nullable=False),  # sms, email, push
    Column("recipient", String(200), nullable=False),
    Column("template", String(80), nullable=False),
    Column("status", String(20), nullable=False),  # sent
    _created(),
)

callbacks = Table(
    "callbacks",
    metadata,
    _id(),
    Column("callback_id", String(20), unique=True),
    Column("customer_id", ForeignKey("customers.customer_id"), nullable=False, index=True),
    Column("requested", String(40), nullable=False),  # as asked: a slot name or a date-time
    Column("slot", String(60), nullable=False),  # when, resolved: "2025-06-10 17:00-20:00"
    Column("status", String(20), nullable=False),  # booked, done
    _created(),
)

contact_log = Table(
    "contact_log",
    metadata,
    _id(),
    Column("contact_id", String(20), unique=True),
    Column("customer_id", ForeignKey("customers.customer_id"), nullable=False, index=True),
    Column("motive", String(80), nullable=False),
    Column("outcome", String(20), nullable=False),
    Column("note", String(500)),
    _created(),
)

address_changes = Table(
    "address_changes",
    metadata,
    _id(),
    Column("customer_id", ForeignKey("customers.customer_id"), nullable=False, index=True),
    Column("old_address", String(300), nullable=False),
    Column("new_address", String(300), nullable=False),
    Column("orders_moved", Integer, nullable=False),
    _created(),
)

sim_orders = Table(
    "sim_orders",
    metadata,
    _id(),
    Column("sim_order_id", String(20), unique=True),
    Column("customer_id", ForeignKey("customers.customer_id"), nullable=False, index=True),
    Column("line_id", ForeignKey("lines.line_id"), nullable=False),
    Column("reason", String(80), nullable=False),
    Column("address", String(300), nullable=False),
    Column("eta_days", Integer, nullable=False),
    _created(),
)

line_tests = Table(
    "line_tests",
    metadata,
    _id(),
    Column("line_id", ForeignKey("lines.line_id"), nullable=False, index=True),
    Column("status", String(20), nullable=False),
    Column("outage", Boolean, nullable=False),
    Column("sync_rate_mbps", Float, nullable=False),
    _created(),
)

resets = Table(
    "resets",
    metadata,
    _id(),
    Column("reset_id", String(20), unique=True),
    Column("line_id", ForeignKey("lines.line_id"), nullable=False, index=True),
    Column("status", String(20), nullable=False),  # ok, failed
    _created(),
)

plan_changes = Table(
    "plan_changes",
    metadata,
    _id(),
    Column("customer_id", ForeignKey("customers.customer_id"), nullable=False, index=True),
    Column("from_plan", String(40), nullable=False),
    Column("to_plan", String(40), nullable=False),
    Column("monthly_price", Float, nullable=False),
    Column("effective_date", Date, nullable=False),
    _created(),
)

offers = Table(
    "offers",
    metadata,
    _id(),
    Column("customer_id", ForeignKey("customers.customer_id"), nullable=False, index=True),
    Column("offer", String(40), nullable=False),
    Column("monthly_discount", Float, nullable=False),
    Column("months", Integer, nullable=False),
    Column("ends_on", Date, nullable=False),
    _created(),
)

cancellations = Table(
    "cancellations",
    metadata,
    _id(),
    Column("cancellation_id", String(20), unique=True),
    Column("customer_id", ForeignKey("customers.customer_id"), nullable=False, index=True),
    Column("reason", String(200), nullable=False),
    Column("effective_date", Date, nullable=False),
    Column("fee", Float, nullable=False),
    _created(),
)

credits = Table(
    "credits",
    metadata,
    _id(),
    Column("credit_id", String(20), unique=True),
    Column("customer_id", ForeignKey("customers.customer_id"), nullable=False, index=True),
    Column("amount", Float, nullable=False),
    Column("reason", String(200), nullable=False),
    _created(),
)

disputes = Table(
    "disputes",
    metadata,
    _id(),
    Column("dispute_id", String(20), unique=True),
    Column("customer_id", ForeignKey("customers.customer_id"), nullable=False, index=True),
    Column("invoice_id", ForeignKey("invoices.invoice_id"), nullable=False, index=True),
    Column("reason", String(200), nullable=False),
    Column("status", String(20), nullable=False),  # open, closed
    _created(),
)

# The back office reaching out first: each late order it raised `order.delayed` for (once).
delay_alerts = Table(
    "delay_alerts",
    metadata,
    _id(),
    Column("order_id", ForeignKey("orders.order_id"), nullable=False, unique=True),
    Column("customer_id", ForeignKey("customers.customer_id"), nullable=False, index=True),
    Column("days_late", Integer, nullable=False),
    Column("sessions", String(400), nullable=False),  # the outbound sessions it started
    _created(),
)

# Self-care identity: the one-time codes sent to prove a customer number (actions/identity.py).
# Only a salted hash of each code is kept; a code expires and allows a few attempts.
one_time_codes = Table(
    "one_time_codes",
    metadata,
    _id(),
    Column("challenge_id", String(20), unique=True),
    Column("customer_id", ForeignKey("customers.customer_id"), nullable=False, index=True),
    Column("channel", String(20), nullable=False),  # sms, email
    Column("message_id", String(20), nullable=False),
    Column("salt", String(40), nullable=False),
    Column("code_hash", String(64), nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("status", String(20), nullable=False),  # open, verified, locked
    Column("expires_at", DateTime(timezone=True), nullable=False),
    _created(),
)

# The demo's SMS and e-mail gateway: the text each message delivered to the customer's phone
# or mailbox (a one-time code, a link), as the customer reads it. A real back office hands
# the text to its gateway instead; nothing else reads this table.
deliveries = Table(
    "deliveries",
    metadata,
    _id(),
    Column("message_id", String(20), nullable=False, index=True),
    Column("recipient", String(200), nullable=False),
    Column("text", String(400), nullable=False),
    _created(),
)

TABLES: dict[str, Table] = dict(metadata.tables)

#: What actions/backoffice.py re-exports (a literal list, for the type checker).
__all__ = [
    "TABLES",
    "accounts",
    "address_changes",
    "appointments",
    "callbacks",
    "cancellations",
    "contact_log",
    "credits",
    "customers",
    "delay_alerts",
    "deliveries",
    "disputes",
    "idempotency",
    "invoices",
    "line_tests",
    "lines",
    "messages",
    "meta",
    "metadata",
    "offers",
    "one_time_codes",
    "orders",
    "outages",
    "plan_changes",
    "plans",
    "refunds",
    "resets",
    "returns",
    "shipments",
    "sim_orders",
    "subscriptions",
    "tickets",
    "vouchers",
]  # fmt: skip
