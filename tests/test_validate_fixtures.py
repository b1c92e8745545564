"""Every finding code has broken fixtures, caught at the right line and nowhere else.

Each file of tests/fixtures/broken starts with `# expect: CODE@LINE ...`: the exact errors the
validator must report in that file when it is dropped into the small valid library.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from tests.conftest import FIXTURES, Check

BROKEN = sorted((FIXTURES / "broken").glob("*.yaml"))


def expected(path: Path) -> set[tuple[str, int]]:
    first = path.read_text(encoding="utf-8").splitlines()[0]
    return {(code, int(line)) for code, line in re.findall(r"(J\d{3})@(\d+)", first)}


@pytest.mark.parametrize("fixture", BROKEN, ids=lambda p: p.stem)
def test_broken_fixture_reports_its_codes_at_their_lines(
    fixture: Path, library: Path, check: Check
) -> None:
    shutil.copy(fixture, library / fixture.name)
    report = check(library)
    mine = {(f.code, f.line) for f in report.errors if f.file == fixture.name}
    assert mine == expected(fixture)
    others = [f for f in report.errors if f.file != fixture.name]
    assert others == [], "a broken file must not cause findings in the other files"


def test_every_code_has_a_failing_fixture() -> None:
    covered = {code for path in BROKEN for code, _line in expected(path)}
    covered.add("J010")  # catalogue links need several files: see test_library_checks.py
    assert covered == {f"J{n:03d}" for n in range(1, 13)}


def test_the_base_library_is_clean(library: Path, check: Check) -> None:
    report = check(library)
    assert report.findings == []
