"""Checks across files: the motive catalogue (J010), sub-journeys (J003, J008, J011),
scenario files against their journey, and the warnings."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.definitions.validate import Report
from tests.conftest import Check


def codes(report: Report, file: str | None = None) -> set[tuple[str, str, int]]:
    return {(f.code, f.file, f.line) for f in report.findings if file is None or f.file == file}


def test_motive_naming_a_missing_journey(library: Path, check: Check) -> None:
    text = (library / "motives.yaml").read_text()
    (library / "motives.yaml").write_text(
        text + "  demo.other:\n    title: Other\n    category: demo\n    journey: order-statuss\n"
    )
    report = check(library)
    [f] = report.errors
    assert (f.code, f.file, f.line) == ("J010", "motives.yaml", 12)
    assert "did you mean 'order-status'?" in f.message


def test_journey_motive_missing_from_the_catalogue(library: Path, check: Check) -> None:
    path = library / "order-status.yaml"
    path.write_text(
        path.read_text().replace("motives: [demo.order]", "motives: [demo.order, demo.ordr]")
    )
    report = check(library)
    [f] = report.errors
    assert (f.code, f.file, f.line, f.column) == ("J010", "order-status.yaml", 5, 23)
    assert "'demo.ordr'" in f.message


def test_motive_whose_journey_does_not_list_it(library: Path, check: Check) -> None:
    path = library / "order-status.yaml"
    path.write_text(path.read_text().replace("motives: [demo.order]", "motives: []"))
    report = check(library)
    assert codes(report) >= {("J010", "motives.yaml", 6)}


def test_duplicate_journey_id_is_reported_in_every_file(library: Path, check: Check) -> None:
    (library / "copy").mkdir()
    (library / "copy" / "again.yaml").write_text((library / "who.yaml").read_text())
    report = check(library)
    assert {(f.code, f.file) for f in report.errors} == {
        ("J010", "who.yaml"),
        ("J010", "copy/again.yaml"),
    }


def test_library_without_catalogue(tmp_path: Path, library: Path, check: Check) -> None:
    (library / "motives.yaml").unlink()
    report = check(library)
    [f] = report.errors
    assert f.code == "J010" and "no motives.yaml" in f.message


def test_sub_journey_cycle_through_two_journeys(library: Path, check: Check) -> None:
    who = library / "who.yaml"
    who.write_text(
        who.read_text().replace(
            "  found:\n    kind: end",
            "  found:\n    kind: journey\n    journey: order-status\n    next: fin\n  fin:\n    kind: end",
        )
    )
    report = check(library)
    j011 = {(f.file, f.line) for f in report.errors if f.code == "J011"}
    assert j011 == {("who.yaml", 23), ("order-status.yaml", 13)}


def test_sub_journey_required_input_must_be_given(library: Path, check: Check) -> None:
    who = library / "who.yaml"
    who.write_text(
        who.read_text().replace(
            "start: ask_id", "inputs:\n  channel_hint: {type: string}\nstart: ask_id"
        )
    )
    report = check(library)
    [f] = report.errors
    assert (f.code, f.file, f.line) == ("J008", "order-status.yaml", 11)
    assert "'channel_hint'" in f.message


def test_exports_of_a_sub_journey_follow_its_changes(library: Path, check: Check) -> None:
    """The caller reads customer.name: once the sub-journey stops setting it, J008 appears."""
    assert check(library).errors == []
    (library / "who.test.yaml").unlink()  # its scenario expects the handoff removed here
    who = library / "who.yaml"
    who.write_text(
        who.read_text().replace(
            "  unknown:\n    kind: handoff\n    queue: security\n",
            "  unknown:\n    kind: say\n    next: found\n",
        )
    )
    report = check(library)
    assert {(f.code, f.file, f.line) for f in report.errors} == {("J008", "order-status.yaml", 17)}


def test_a_broken_sub_journey_causes_no_findings_elsewhere(library: Path, check: Check) -> None:
    (library / "who.yaml").write_text("journey: who\nnodes: [oops\n")
    report = check(library)
    assert {f.file for f in report.errors} == {"who.yaml"}
    assert [f.code for f in report.errors] == ["J001"]


def test_a_broken_catalogue_causes_no_findings_elsewhere(library: Path, check: Check) -> None:
    (library / "motives.yaml").write_text("motives:\n  demo.order: {title: x\n")
    report = check(library)
    assert {(f.code, f.file) for f in report.errors} == {("J001", "motives.yaml")}


@pytest.mark.parametrize(
    ("change", "code", "line"),
    [
        ('answers: {ask_order: "10000001", offer: voucher}', None, None),
        ('answers: {ask_ordr: "10000001", offer: voucher}', "J003", 9),
        ("      orders.get_tracking: {days_late: 7}", None, None),
        ("      orders.get_trackin: {days_late: 7}", "J009", 8),
        ("      outcome: resolved", None, None),
        ("      outcome: callback", "J003", 11),
        ("identify/found, ask_order", None, None),
        ("identify/fuond, ask_order", "J003", 12),
    ],
)
def test_scenario_files_are_checked_against_their_journey(
    library: Path, check: Check, change: str, code: str | None, line: int | None
) -> None:
    path = library / "order-status.test.yaml"
    original = path.read_text()
    anchor = (
        change.replace("ordr", "order")
        .replace("trackin:", "tracking:")
        .replace("callback", "resolved")
        .replace("fuond", "found")
    )
    assert anchor in original
    path.write_text(original.replace(anchor, change))
    found = {(f.code, f.line) for f in check(library).errors}
    assert found == (set() if code is None else {(code, line)})


def test_scenario_for_a_missing_journey(library: Path, check: Check) -> None:
    (library / "ghost.test.yaml").write_text(
        "journey: gohst\nscenarios:\n  - {name: x, expect: {outcome: resolved}}\n"
    )
    [f] = check(library).errors
    assert (f.code, f.file, f.line) == ("J003", "ghost.test.yaml", 1)


def test_warnings_untested_and_unused_journeys(library: Path, check: Check) -> None:
    (library / "who.test.yaml").unlink()
    (library / "lonely.yaml").write_text(
        "journey: lonely\nversion: 1\ntitle: Nobody comes here\nstart: a\nnodes:\n  a: {kind: end, outcome: resolved}\n"
    )
    report = check(library)
    assert report.errors == []
    assert {(f.code, f.journey) for f in report.warnings} == {
        ("W001", "who"),
        ("W001", "lonely"),
        ("W002", "lonely"),
    }
