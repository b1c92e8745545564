"""`journeys simulate` then `journeys report --format html`: the page, opened in Debian's
chromium, shows the headline figures, the charts and the journey diagrams with heat."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from cli import main
from tests.conftest import SHIPPED
from tests.test_console import ARTIFACTS, chromium


@pytest.mark.requires("chromium", "dot")  # the page's diagrams are drawn by Graphviz
def test_simulated_history_gives_a_report_page_with_charts_and_figures(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'history.db'}"
    runner = CliRunner()
    simulated = runner.invoke(
        main, ["--library", str(SHIPPED), "simulate", "--sessions", "400", "--db", db]
    )
    assert simulated.exit_code == 0, simulated.output
    page_file = tmp_path / "report.html"
    made = runner.invoke(
        main,
        [
            "--library",
            str(SHIPPED),
            "report",
            "--db",
            db,
            "--format",
            "html",
            "--out",
            str(page_file),
        ],
    )
    assert made.exit_code == 0, made.output
    figures = json.loads(
        runner.invoke(
            main, ["--library", str(SHIPPED), "report", "--db", db, "--format", "json"]
        ).output
    )
    html = page_file.read_text(encoding="utf-8")
    assert not re.search(r"""(src|href)=["']https?://""", html), "the page must work offline"

    ARTIFACTS.mkdir(exist_ok=True)
    with chromium() as browser:
        page = browser.new_page(viewport={"width": 1300, "height": 900})
        page.goto(page_file.as_uri())
        once = page.locator("#kpi-once-and-done .value").inner_text()
        expected = figures["overall"]["once_and_done_rate"]
        assert once == f"{expected * 100:.1f}%"
        assert (
            page.locator("#kpi-sessions .value").inner_text()
            == f"{figures['overall']['sessions']:,}"
        )
        assert page.locator("svg.chart").count() == 4
        bars = page.locator("#charts svg.chart rect")
        assert bars.count() > 10  # one bar per motive and channel, the outcome segments
        motives = page.locator("#by-motive tr").count() - 1
        assert motives == len(figures["by"]["motive"]) >= 5
        diagrams = page.locator(".funnel .diagram svg")
        assert diagrams.count() >= 5  # the journeys drawn by Graphviz, coloured by traffic
        assert page.locator("#funnel-delivery-missing table tr").count() > 3
        page.screenshot(path=str(ARTIFACTS / "report.png"), full_page=False)
        page.close()
