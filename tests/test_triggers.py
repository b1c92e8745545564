"""Proactive journeys: triggers in motives.yaml, their validation, `fire`, `journeys trigger`
and `journeys backoffice scan` against the demo back office."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from cli import main
from engine.definitions.library import Library
from engine.sessions.triggers import TriggerError, fire
from tests.conftest import SHIPPED, Check

MOTIVES = """\
motives:
  demo.late:
    title: Late order
    category: demo
    journey: late-offer
  demo.other:
    title: Something else
    category: demo
    journey: other
triggers:
  - event: order.delayed
    motive: demo.late
    journey: late-offer
    channel: sms
    inputs: {customer_id: =customer_id, order_id: =order_id, days_late: =days_late}
    when: days_late >= 3
"""

LATE_OFFER = """\
journey: late-offer
version: 1
title: Late order offer
motives: [demo.late]
channels: [sms, email]
inputs:
  customer_id: {type: string}
  order_id: {type: string, pattern: "^[0-9]{8}$"}
  days_late: {type: integer, minimum: 1}
  source: {type: string, default: scan}
start: offer
nodes:
  offer:
    kind: choose
    say: "Order {{ order_id }} is {{ days_late }} days late. A voucher?"
    field: answer
    options:
      - {value: "yes", label: "Yes", next: done}
      - {value: "no", label: "No", next: done}
  done:
    kind: end
    outcome: resolved
"""

OTHER = """\
journey: other
version: 1
title: Other
motives: [demo.other]
start: done
nodes:
  done:
    kind: end
    outcome: resolved
"""


@pytest.fixture
def lib(tmp_path: Path) -> Path:
    root = tmp_path / "lib"
    root.mkdir()
    (root / "motives.yaml").write_text(MOTIVES)
    (root / "late-offer.yaml").write_text(LATE_OFFER)
    (root / "other.yaml").write_text(OTHER)
    return root


def edit(lib: Path, old: str, new: str) -> None:
    path = lib / "motives.yaml"
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new))


# ------------------------------------------------------------------------- validation


def test_a_valid_trigger_has_no_findings(lib: Path, check: Check) -> None:
    assert check(lib).errors == []


@pytest.mark.parametrize(
    ("old", "new", "expected", "words"),
    [
        (
            "journey: late-offer\n    channel",
            "journey: late-ofer\n    channel",
            {("J003", 13)},
            "did you mean 'late-offer'?",
        ),
        ("motive: demo.late", "motive: demo.lat", {("J010", 12)}, "did you mean 'demo.late'?"),
        ("motive: demo.late", "motive: demo.other", {("J010", 12)}, "does not list it"),
        ("channel: sms", "channel: phone", {("J010", 14)}, "not one of its channels (sms, email)"),
        (
            "days_late: =days_late}",
            "days_lat: =days_late}",
            {("J003", 15), ("J008", 15)},
            "'days_lat'",
        ),
        ("days_late: =days_late}", "days_late: =days_late +}", {("J007", 15)}, "input 'days_late'"),
        ("when: days_late >= 3", "when: days_late >=", {("J007", 16)}, "'when'"),
        (
            "when: days_late >= 3",
            "when: open('x')",
            {("J007", 16)},
            "calling 'open' is not allowed",
        ),
        ("event: order.delayed", "event: Order Delayed", {("J002", 11)}, "event"),
        ("when: days_late", "whn: days_late", {("J002", 16)}, "did you mean 'when'?"),
        ("    channel: sms\n", "", {("J002", 11)}, "channel"),
    ],
)
def test_trigger_findings_point_at_the_line(
    lib: Path, check: Check, old: str, new: str, expected: set[tuple[str, int]], words: str
) -> None:
    edit(lib, old, new)
    report = check(lib)
    assert {(f.code, f.line) for f in report.errors} == expected
    assert all(f.file == "motives.yaml" for f in report.errors)
    assert any(words in f.message for f in report.errors), [f.message for f in report.errors]


def test_a_required_input_not_given_without_inputs_at_all(lib: Path, check: Check) -> None:
    edit(
        lib,
        "    inputs: {customer_id: =customer_id, order_id: =order_id, days_late: =days_late}\n",
        "",
    )
    edit(lib, "    when: days_late >= 3\n", "")
    report = check(lib)
    assert sorted((f.code, f.line) for f in report.errors) == [("J008", 13)] * 3
    assert {f.message.split("input ")[1].split(";")[0] for f in report.errors} == {
        "'customer_id'",
        "'order_id'",
        "'days_late'",
    }


def test_an_unreadable_trigger_journey_causes_no_finding_in_motives(
    lib: Path, check: Check
) -> None:
    (lib / "late-offer.yaml").write_text("journey: late-offer\nnodes: [oops\n")
    report = check(lib)
    assert {(f.code, f.file) for f in report.errors} == {("J001", "late-offer.yaml")}


def test_the_shipped_trigger_is_valid(check: Check) -> None:
    assert check(SHIPPED).findings == []
    library = Library(SHIPPED)
    [trigger] = [t for t in library.triggers if t.event == "order.delayed"]
    assert (trigger.journey, trigger.channel, trigger.motive) == (
        "delivery-delay-proactive",
        "sms",
        "delivery.proactive",
    )


# ------------------------------------------------------------------------------- fire


def test_fire_maps_the_data_to_inputs_when_the_condition_holds(lib: Path) -> None:
    library = Library(lib)
    data = {"customer_id": "C001", "order_id": "10000001", "days_late": 7, "carrier": "DPD"}
    [(trigger, inputs)] = fire(library, "order.delayed", data)
    assert trigger.journey == "late-offer" and trigger.channel == "sms"
    assert inputs == {"customer_id": "C001", "order_id": "10000001", "days_late": 7}
    assert fire(library, "order.delayed", {**data, "days_late": 2}) == []
    assert fire(library, "order.shipped", data) == []


def test_text_data_take_the_type_of_the_input_they_feed(lib: Path) -> None:
    library = Library(lib)
    data = {"customer_id": "C001", "order_id": "10000001", "days_late": "7"}
    [(_trigger, inputs)] = fire(library, "order.delayed", data, as_text=True)
    assert inputs["days_late"] == 7
    assert fire(library, "order.delayed", {**data, "days_late": "2"}, as_text=True) == []
    # Without as_text, "7" stays text: comparing it with 3 is a problem, not a silent no.
    with pytest.raises(TriggerError, match="cannot be evaluated"):
        fire(library, "order.delayed", data)


def test_literals_expressions_and_several_triggers(lib: Path) -> None:
    edit(
        lib,
        "    when: days_late >= 3\n",
        "    when: days_late >= 3\n"
        "  - event: order.delayed\n"
        "    journey: late-offer\n"
        "    channel: email\n"
        "    inputs: {customer_id: =customer_id, order_id: =order_id, days_late: =days_late * 2, source: '==literal'}\n"
        "  - event: order.delayed\n"
        "    journey: late-offer\n"
        "    channel: sms\n"
        "    inputs: {customer_id: =customer_id, order_id: =order_id, days_late: 1, source: manual}\n"
        "    when: carrier == 'DPD'\n",
    )
    library = Library(lib)
    data = {"customer_id": "C001", "order_id": "10000001", "days_late": 4, "carrier": "UPS"}
    fired = fire(library, "order.delayed", data)
    assert [(t.channel, i["days_late"], i.get("source")) for t, i in fired] == [
        ("sms", 4, None),
        ("email", 8, "=literal"),
    ]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"customer_id": "C001", "order_id": "10000001"}, "'days_late' is not in the event's data"),
        ({"customer_id": "C001", "order_id": "1", "days_late": 7}, "input 'order_id'"),
        ({"customer_id": "C001", "order_id": "10000001", "days_late": "x"}, "input 'days_late'"),
    ],
)
def test_data_that_do_not_fit_are_refused_with_the_reason(
    lib: Path, data: dict[str, object], message: str
) -> None:
    with pytest.raises(TriggerError) as err:
        fire(Library(lib), "order.delayed", data, as_text=True)
    assert message in err.value.message
    assert "the trigger of 'order.delayed' (journey 'late-offer', line 11)" in err.value.message


# ------------------------------------------------------------------------ the command


@pytest.fixture
def shipped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("JOURNEYS_LIBRARY", str(SHIPPED))
    monkeypatch.setenv("JOURNEYS_DB", f"sqlite:///{tmp_path / 'sessions.db'}")
    monkeypatch.setenv("JOURNEYS_BACKOFFICE_DB", f"sqlite:///{tmp_path / 'backoffice.db'}")
    monkeypatch.setenv("JOURNEYS_BACKOFFICE_TODAY", "2025-06-11")
    return tmp_path


def invoke(*args: str) -> Result:
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def rows(table: str) -> list[dict[str, object]]:
    result = invoke("backoffice", "show", table, "--format", "json")
    assert result.exit_code == 0, result.output
    data: list[dict[str, object]] = json.loads(result.stdout)
    return data


DELAYED = ["--data", "customer_id=C001", "--data", "order_id=10000001", "--data", "days_late=7"]


def answer(folder: Path, session: str, text: str) -> dict[str, object]:
    (folder / "answers.yaml").write_text(text)
    result = invoke(
        "run", "--session", session, "--answers", str(folder / "answers.yaml"), "--format", "json"
    )
    assert result.exit_code == 0, result.output
    data: dict[str, object] = json.loads(result.stdout)
    return data


def test_trigger_starts_an_outbound_session_that_runs_against_the_back_office(
    shipped: Path,
) -> None:
    result = invoke("trigger", "order.delayed", *DELAYED, "--format", "json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["event"] == "order.delayed" and "message" not in report
    [session] = report["sessions"]
    assert (session["journey"], session["channel"], session["motive"]) == (
        "delivery-delay-proactive",
        "sms",
        "delivery.proactive",
    )
    assert (session["status"], session["node"]) == ("waiting", "offer")
    assert session["path"] == ["get_customer", "fetch_tracking", "route", "offer"]
    assert session["context"]["days_late"] == 7  # converted from the text of --data
    step = session["step"]
    assert "Ada Martin, your order 10000001 is 7 days late with Colissimo" in step["text"]
    assert [o["value"] for o in step["options"]] == ["voucher", "refund_shipping", "decline"]

    ended = answer(shipped, session["session"], "offer: voucher\n")
    assert (ended["status"], ended["outcome"]) == ("ended", "resolved")
    voucher = ended["context"]["voucher"]  # type: ignore[index]
    assert any(
        v["voucher_code"] == voucher["voucher_code"]
        and v["customer_id"] == "C001"
        and v["amount"] == 10.0
        for v in rows("vouchers")
    )
    [contact] = [c for c in rows("contact_log") if c["motive"] == "delivery.proactive"]
    assert contact["customer_id"] == "C001" and voucher["voucher_code"] in str(contact["note"])


def test_the_customer_may_take_the_shipping_refund_instead(shipped: Path) -> None:
    result = invoke("trigger", "order.delayed", *DELAYED, "--locale", "fr")
    assert result.exit_code == 0, result.output
    assert "a 7 jours de retard chez Colissimo" in result.output
    assert "refund_shipping: Remboursement des frais de port (4.90 EUR)" in result.output
    session = result.output.split("journeys run --session ")[1].split()[0]
    ended = answer(shipped, session, "offer: refund_shipping\n")
    refund = ended["context"]["refund"]  # type: ignore[index]
    assert any(
        r["refund_id"] == refund["refund_id"] and r["order_id"] == "10000001" and r["amount"] == 4.9
        for r in rows("refunds")
    )


def test_no_trigger_matched_is_said_clearly_and_is_no_failure(shipped: Path) -> None:
    early = ["--data", "customer_id=C001", "--data", "order_id=10000001", "--data", "days_late=2"]
    result = invoke("trigger", "order.delayed", *early)
    assert result.exit_code == 0
    assert "No trigger of the event 'order.delayed' matched its data" in result.output
    assert "days_late >= 3" in result.output
    data = json.loads(invoke("trigger", "order.delayed", *early, "--format", "json").stdout)
    assert data["sessions"] == [] and "No session started" in data["message"]
    unknown = invoke("trigger", "order.delayd", *DELAYED)
    assert unknown.exit_code == 0
    assert (
        "No trigger listens to the event 'order.delayd' (did you mean 'order.delayed'?)"
        in unknown.output
    )
    assert rows("vouchers") == []


def test_usage_and_data_problems(shipped: Path) -> None:
    usage = invoke("trigger", "order.delayed", "--data", "customer_id")
    assert usage.exit_code == 2 and "write it as NAME=VALUE" in usage.output
    bad = CliRunner().invoke(
        main, ["trigger", "order.delayed", *DELAYED[:4], "--data", "days_late=soon"]
    )
    assert bad.exit_code == 1
    assert "input 'days_late'" in bad.output and "'soon' is not a whole number" in bad.output
    missing = CliRunner().invoke(
        main, ["trigger", "order.delayed", *DELAYED[:4], "--format", "json"]
    )
    assert missing.exit_code == 1
    assert "'days_late' is not in the event's data" in json.loads(missing.stdout)["error"]


def test_backoffice_scan_reaches_out_once_per_late_order(shipped: Path) -> None:
    result = invoke("backoffice", "scan", "--format", "json")
    assert result.exit_code == 0, result.output
    found = json.loads(result.stdout)
    # C001's order is 7 days late; C002's (free shipping, premium) 3 days late.
    assert [(f["data"]["order_id"], f["data"]["days_late"]) for f in found] == [
        ("10000001", 7),
        ("10000005", 3),
    ]
    first, second = (f["sessions"][0] for f in found)
    assert (first["node"], second["node"]) == ("offer", "offer_voucher")
    assert "15 EUR voucher" in second["step"]["text"]
    alerts = rows("delay_alerts")
    assert [(a["order_id"], a["sessions"]) for a in alerts] == [
        ("10000001", first["session"]),
        ("10000005", second["session"]),
    ]
    again = invoke("backoffice", "scan")
    assert again.exit_code == 0
    assert "0 order(s) 3 or more days late not alerted yet" in again.output


def test_a_proactive_journey_with_errors_is_not_started(
    shipped: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import shutil

    library = shipped / "library"
    shutil.copytree(SHIPPED, library, ignore=shutil.ignore_patterns(".journeys_cache"))
    path = next(library.rglob("delivery-delay-proactive.yaml"))
    text = path.read_text(encoding="utf-8")
    path.write_text(text.replace("next: route", "next: nowhere", 1), encoding="utf-8")
    line = text[: text.index("next: route")].count("\n") + 1
    monkeypatch.setenv("JOURNEYS_LIBRARY", str(library))
    result = CliRunner().invoke(main, ["trigger", "order.delayed", *DELAYED])
    assert result.exit_code == 1, result.output
    assert "the journey 'delivery-delay-proactive' has" in result.output
    assert f"delivery-delay-proactive.yaml:{line}: J003" in result.output
    assert "'nowhere'" in result.output and "Traceback" not in result.output
    assert rows("vouchers") == [] and rows("contact_log") == []
