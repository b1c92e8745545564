"""The action catalogue: what the spec promises exists, readable without Prefect."""

from __future__ import annotations

import subprocess
import sys

import pytest

from actions.registry import ActionSpec, catalogue
from tests.conftest import ROOT

#: The table at the end of the journey DSL spec: action -> (inputs, optional inputs, outputs).
#: The order actions also take an optional ``customer_id``: given, the order must be that
#: customer's (the ownership check of self-care, docs/selfcare-identity.md).
SPEC_TABLE = {
    "crm.get_customer": (["customer_id"], [], ["customer_id", "name", "tier", "phone", "email"]),
    "crm.log_contact": (["customer_id", "motive", "outcome"], ["note"], ["contact_id"]),
    "orders.get_tracking": (
        ["order_id"],
        ["customer_id"],
        ["order_id", "status", "days_late", "carrier", "shipping_cost"],
    ),
    "orders.create_return": (["order_id", "reason"], ["customer_id"], ["return_id", "label_url"]),
    "payments.refund": (["order_id", "amount", "reason"], ["customer_id"], ["refund_id", "amount"]),
    "payments.issue_voucher": (["customer_id", "amount"], [], ["voucher_code", "amount"]),
    "tickets.create": (["queue", "summary"], ["customer_id"], ["ticket_id"]),
    "notify.send": (["customer_id", "channel", "template"], [], ["message_id"]),
    "callbacks.schedule": (["customer_id", "when"], [], ["callback_id", "when"]),
}


@pytest.mark.parametrize("name", SPEC_TABLE)
def test_spec_actions_are_declared_with_their_parameters(name: str) -> None:
    required, optional, outputs = SPEC_TABLE[name]
    spec = catalogue()[name]
    assert [p.name for p in spec.params if p.required] == required
    assert [p.name for p in spec.params if not p.required] == optional
    assert set(outputs) <= set(spec.output)


def test_parameter_types_come_from_the_annotations() -> None:
    refund: ActionSpec = catalogue()["payments.refund"]
    assert [(p.name, p.type) for p in refund.params] == [
        ("order_id", "string"),
        ("amount", "number"),
        ("reason", "string"),
        ("customer_id", "string"),
    ]
    note = catalogue()["crm.log_contact"].param("note")
    assert note is not None and (note.required, note.nullable) == (False, True)


def test_every_action_has_a_summary_and_a_dotted_name() -> None:
    for name, spec in catalogue().items():
        assert spec.summary, name
        domain, _, verb = name.partition(".")
        assert domain and verb and spec.function.__module__ == f"actions.{domain}"


def test_reading_the_catalogue_does_not_import_prefect() -> None:
    code = "import sys; from actions.registry import catalogue; catalogue(); print('prefect' in sys.modules)"
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert proc.stdout.strip() == "False"
