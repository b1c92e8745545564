"""`journeys graph`: a journey as Mermaid, DOT, SVG or HTML, with or without its traffic."""

from __future__ import annotations

import html
import re
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import pytest
from click.testing import CliRunner, Result

from cli import main
from engine.adapters.graphviz_render import NO_DOT, to_html, to_svg
from engine.definitions.library import Library
from engine.definitions.model import Journey
from engine.insight.diagram import (
    OUTCOME_COLOURS,
    Heat,
    heat_colour,
    legend_dot,
    to_dot,
    to_mermaid,
)
from tests.conftest import FIXTURES, SHIPPED

LIBRARY = Library(SHIPPED)
SHIPPED_IDS = sorted(LIBRARY.journeys)
needs_dot = pytest.mark.requires("dot")  # SVG and HTML

# A DOT quoted string, and `name=value` attributes; both as to_dot writes them.
_QUOTED = r'"(?:[^"\\]|\\.)*"'
_NODE = re.compile(rf"^  ({_QUOTED}) \[(.*)\];$")
_EDGE = re.compile(rf"^  ({_QUOTED}) -> ({_QUOTED})(?: \[(.*)\])?;$")
_ATTR = re.compile(rf"(\w+)=({_QUOTED}|[^,\]]+)")


def unquote(text: str) -> str:
    """A DOT quoted string read back: \\" is a quote, \\\\ a backslash, \\n a new line."""
    if not text.startswith('"'):
        return text
    escapes = {'"': '"', "\\": "\\", "n": "\n"}
    return re.sub(r"\\(.)", lambda m: escapes.get(m[1], "\\" + m[1]), text[1:-1])


def attrs(text: str | None) -> dict[str, str]:
    return {k: unquote(v) for k, v in _ATTR.findall(text or "")}


def dot_nodes(dot: str) -> dict[str, dict[str, str]]:
    return {unquote(m[1]): attrs(m[2]) for line in dot.splitlines() if (m := _NODE.match(line))}


def dot_edges(dot: str) -> dict[tuple[str, str], dict[str, str]]:
    found = {}
    for line in dot.splitlines():
        if m := _EDGE.match(line):
            key = (unquote(m[1]), unquote(m[2]))
            assert key not in found, f"two arrows {key}: they should be one"
            found[key] = attrs(m[3])
    return found


def decode_mermaid(text: str) -> str:
    """Mermaid's entity codes (#quot; #35;) read back, without the zero-width space that keeps
    a backslash and n from becoming a line break."""
    return re.sub(
        r"#([a-z]+|\d+);",
        lambda m: html.unescape("&" + ("#" if m[1].isdigit() else "") + m[1] + ";"),
        text.replace("#92;\u200bn", "#92;n"),
    )


def mermaid_labels(mermaid: str) -> list[str]:
    """Every quoted label of the flowchart, checked to hide nothing Mermaid or HTML would read."""
    labels = []
    for line in mermaid.splitlines()[1:]:
        for raw in re.findall(r'"([^"]*)"', line):
            bare = raw.replace("<br/>", "")
            assert not set(bare) & set('<>&`{}|"\\'), f"unescaped character in {raw!r}"
            assert re.sub(r"#([a-z]+|\d+);", "", bare).count("#") == 0, raw
            labels.append(decode_mermaid(raw))
    return labels


def pairs(journey: Journey) -> set[tuple[str, str]]:
    return {(e.source, e.target) for n in journey.nodes.values() for e in n.edges()}


# --------------------------------------------------------------------------- every journey


@pytest.mark.parametrize("jid", SHIPPED_IDS)
def test_dot_has_every_node_and_every_arrow(jid: str) -> None:
    journey = LIBRARY.journeys[jid]
    dot = to_dot(journey)
    nodes, edges = dot_nodes(dot), dot_edges(dot)
    entry = next(n for n, a in nodes.items() if a.get("shape") == "point")
    assert set(nodes) == {*journey.nodes, entry}
    assert set(edges) == {*pairs(journey), (entry, journey.start)}
    for node in journey.nodes.values():
        assert nodes[node.id]["label"].split("\n")[0] == node.id
    assert dot == to_dot(LIBRARY.journeys[jid])  # deterministic
    assert dot == to_dot(Library(SHIPPED).journeys[jid])


@pytest.mark.parametrize("jid", SHIPPED_IDS)
def test_mermaid_has_every_node_and_every_arrow(jid: str) -> None:
    journey = LIBRARY.journeys[jid]
    mermaid = to_mermaid(journey)
    assert mermaid.splitlines()[1] == "flowchart TD"
    arrows = set(re.findall(r"^  (n_\w+) -->(?:\|\"[^\"]*\"\|)? (n_\w+)$", mermaid, re.M))
    assert arrows == {(f"n_{s}", f"n_{t}") for s, t in pairs(journey)}
    assert f"  entry --> n_{journey.start}" in mermaid.splitlines()
    labels = mermaid_labels(mermaid)
    for node in journey.nodes.values():
        assert any(label.split("<br/>")[0] == node.id for label in labels), node.id
    assert mermaid == to_mermaid(Library(SHIPPED).journeys[jid])


@needs_dot
@pytest.mark.parametrize("jid", SHIPPED_IDS)
def test_svg_is_xml_with_every_node(jid: str) -> None:
    journey = LIBRARY.journeys[jid]
    root = ElementTree.fromstring(to_svg(journey, locale="fr"))
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    ns = {"svg": "http://www.w3.org/2000/svg"}
    titles = {g.findtext("svg:title", namespaces=ns) for g in root.iterfind(".//svg:g", ns)}
    texts = {t.text for t in root.iterfind(".//svg:text", ns)}
    for node in journey.nodes.values():
        assert node.id in titles and node.id in texts


@needs_dot
@pytest.mark.parametrize("jid", SHIPPED_IDS)
def test_html_is_one_offline_page(jid: str) -> None:
    journey = LIBRARY.journeys[jid]
    page = to_html(journey)
    assert page.startswith("<!doctype html>")
    assert f"<title>{html.escape(journey.title)} ({jid})" in page
    assert page.count("<svg") == 2  # the journey and the legend
    assert not re.search(r"https?://", page)  # no CDN, no font, no namespace URL even
    assert not re.search(r"<(script|link|img|iframe)\b|@import|url\(", page, re.I)
    for node in journey.nodes.values():
        assert f">{html.escape(node.id)}</text>" in page
    for outcome in OUTCOME_COLOURS:
        assert f"</span> {outcome}</li>" in page


# --------------------------------------------------------------------------- one journey


def test_labels_shapes_and_colours_of_delivery_missing() -> None:
    journey = LIBRARY.find("delivery-missing")
    dot = to_dot(journey)
    nodes, edges = dot_nodes(dot), dot_edges(dot)
    assert edges[("route", "delivered_claim")]["label"] == 'tracking.status == "delivered"'
    assert '"route" -> "delivered_claim" [label="tracking.status == \\"delivered\\""];' in dot
    assert edges[("route", "reassure")]["label"] == "else"
    assert edges[("delivered_claim", "found_end")]["label"] == "found"
    assert edges[("delivered_claim", "open_investigation")]["label"] == "not_found"
    assert edges[("do_refund", "to_billing")]["label"] == "error"
    assert "label" not in edges[("identify", "ask_order")]  # a plain `next`
    # two branches go to `offer`: one arrow, both conditions (the long one wrapped)
    both = edges[("route", "offer")]["label"]
    assert both.startswith('tracking.status in ["lost", "returned"]\n')
    assert " ".join(both.split("\n")[1:]) == (
        'tracking.days_late > 5 or (customer.tier == "premium" and tracking.days_late > 2)'
    )
    shapes = {n: (a["shape"], a.get("peripheries")) for n, a in nodes.items()}
    assert shapes["identify"] == ("box", "2")
    assert shapes["ask_order"][0] == "parallelogram"
    assert shapes["route"][0] == "diamond"
    assert shapes["offer"][0] == "hexagon"
    assert shapes["do_refund"][0] == "component"
    assert shapes["reassure"][0] == "note"
    assert shapes["to_billing"][0] == "house"
    assert shapes["found_end"] == ("oval", "2")
    colours = {n: (a.get("fillcolor"), a["color"]) for n, a in nodes.items()}
    assert colours["found_end"] == OUTCOME_COLOURS["resolved"]
    assert colours["investigation_end"] == OUTCOME_COLOURS["unresolved"]
    assert colours["to_logistics"] == OUTCOME_COLOURS["escalated"]
    assert colours["route"] == ("#ffffff", "#424242")
    assert nodes["fetch_tracking"]["label"] == "fetch_tracking\norders.get_tracking"
    assert nodes["investigation_end"]["label"].split("\n")[:2] == [
        "investigation_end",
        "unresolved",
    ]
    mermaid = to_mermaid(journey)
    assert '  n_route -->|"else"| n_reassure' in mermaid
    assert '  n_delivered_claim -->|"found"| n_found_end' in mermaid
    assert '  n_route -->|"tracking.status == #quot;delivered#quot;"| n_delivered_claim' in mermaid
    assert '  n_identify[["identify<br/>calls identify-customer"]]' in mermaid
    assert '  n_route{"route"}' in mermaid
    fill, border = OUTCOME_COLOURS["unresolved"]
    assert f"  style n_investigation_end fill:{fill},stroke:{border}," in mermaid


def test_callback_and_abandoned_ends_take_their_colours(tmp_path: Path) -> None:
    outage = to_dot(LIBRARY.find("internet-outage"))
    assert dot_nodes(outage)["callback_done"]["fillcolor"] == OUTCOME_COLOURS["callback"][0]
    journey = awkward_library(tmp_path).find("awkward")
    assert dot_nodes(to_dot(journey))["gone"]["color"] == OUTCOME_COLOURS["abandoned"][1]


def test_texts_in_the_chosen_locale_cut_short() -> None:
    journey = LIBRARY.find("delivery-missing")
    en = dot_nodes(to_dot(journey))["found_end"]["label"].split("\n")[2]
    fr = dot_nodes(to_dot(journey, locale="fr"))["found_end"]["label"].split("\n")[2]
    assert en.startswith("Good news! Enjoy") and fr.startswith("Bonne nouvelle !")
    assert len(fr) == 40 and fr.endswith("…")
    assert (
        dot_nodes(to_dot(journey, locale="de"))["found_end"]["label"]
        == (
            dot_nodes(to_dot(journey))["found_end"]["label"]  # no such locale: the first one
        )
    )


# --------------------------------------------------------------------------- awkward texts

AWKWARD = r"""
journey: awkward
version: 3
title: "Quotes \" <b>bold</b> &\n \"more\""
locales: [en]
start: 'ask "name"'
nodes:
  'ask "name"':
    kind: ask
    say: "<script> & \"hi\"\n C:\\tmp é 日本"
    field: name
    next: 'pick|one'
  'pick|one':
    kind: choose
    say: "{{ name }} #1 `tick`"
    field: choice
    options:
      - {value: 'a"b', label: 'A "quoted" label', next: 'check<it>'}
      - {value: 'x|y', next: gone}
      - {value: true, next: gone}
  'check<it>':
    kind: decide
    branches:
      - {if: 'name == "<&>"', next: done}
    else: gone
  done:
    kind: end
    outcome: resolved
    say: 'back\slash\n and \"'
  gone:
    kind: end
    outcome: abandoned
"""
SAY = '<script> & "hi" C:\\tmp é 日本'  # on two lines in the YAML


def awkward_library(tmp_path: Path) -> Library:
    (tmp_path / "lib").mkdir(exist_ok=True)
    (tmp_path / "lib" / "awkward.yaml").write_text(AWKWARD, encoding="utf-8")
    return Library(tmp_path / "lib")


def test_dot_quotes_awkward_ids_and_texts(tmp_path: Path) -> None:
    journey = awkward_library(tmp_path).find("awkward")
    assert set(journey.nodes) == {'ask "name"', "pick|one", "check<it>", "done", "gone"}
    dot = to_dot(journey)
    nodes, edges = dot_nodes(dot), dot_edges(dot)
    assert nodes['ask "name"']["label"] == f'ask "name"\n{SAY}'
    assert nodes["done"]["label"] == 'done\nresolved\nback\\slash\\n and \\"'
    assert nodes["pick|one"]["label"] == "pick|one\n{{ name }} #1 `tick`"
    assert edges[("pick|one", "check<it>")]["label"] == 'a"b'
    assert edges[("pick|one", "gone")]["label"] == "x|y\ntrue"
    assert edges[("check<it>", "done")]["label"] == 'name == "<&>"'
    assert dot.splitlines()[0] == 'digraph "Quotes \\" <b>bold</b> & \\"more\\" (awkward v3)" {'


def test_mermaid_escapes_awkward_ids_and_texts(tmp_path: Path) -> None:
    journey = awkward_library(tmp_path).find("awkward")
    mermaid = to_mermaid(journey)
    labels = mermaid_labels(mermaid)  # nothing unescaped
    assert mermaid.splitlines()[:2] == [
        "%% Quotes #quot; #lt;b#gt;bold#lt;/b#gt; #amp; #quot;more#quot; (awkward v3)",
        "flowchart TD",
    ]
    assert f'ask "name"<br/>{SAY}' in labels
    assert 'done<br/>resolved<br/>back\\slash\\n and \\"' in labels
    assert 'a"b' in labels and "x|y<br/>true" in labels and 'name == "<&>"' in labels
    assert "<script>" not in mermaid and "#lt;script#gt;" in mermaid
    assert "back#92;slash#92;\u200bn and" in mermaid  # else Mermaid breaks the line there
    assert "  n_done" in mermaid and "  n0>" not in mermaid  # safe ids kept, others numbered
    assert re.search(r"^  n\d+\[/\"ask #quot;name#quot;", mermaid, re.M)


@needs_dot
def test_svg_and_html_of_awkward_texts(tmp_path: Path) -> None:
    journey = awkward_library(tmp_path).find("awkward")
    root = ElementTree.fromstring(to_svg(journey))
    texts = {t.text for t in root.iter("{http://www.w3.org/2000/svg}text")}
    assert {'ask "name"', SAY, "check<it>", 'name == "<&>"', 'a"b'} <= texts
    page = to_html(journey)
    assert "<script" not in page and "&lt;script&gt;" in page
    assert "<title>Quotes &quot; &lt;b&gt;bold&lt;/b&gt; &amp; &quot;more&quot; (awkward)" in page


# --------------------------------------------------------------------------- heat

HEAT = Heat(
    reached={"identify": 1234, "ask_order": 1000, "offer": 617, "found_end": 300},
    dropped={"ask_order": 120, "to_logistics": 5},
    edges={("identify", "ask_order"): 1000, ("route", "offer"): 617, ("offer", "do_refund"): 12},
)


def test_heat_colours_nodes_by_share_and_labels_drop_off() -> None:
    journey = LIBRARY.find("delivery-missing")
    nodes = dot_nodes(to_dot(journey, HEAT))
    assert nodes["identify"]["fillcolor"] == heat_colour(1.0) == "#a50f15"
    assert nodes["offer"]["fillcolor"] == heat_colour(0.5)
    assert nodes["route"]["fillcolor"] == heat_colour(0.0) == "#fff5f0"
    assert nodes["identify"]["fontcolor"] == "#ffffff" and nodes["route"]["fontcolor"] == "#000000"
    assert nodes["identify"]["label"].endswith("\nreached 1,234 · dropped 0%")
    assert nodes["ask_order"]["label"].endswith("\nreached 1,000 · dropped 12%")
    assert nodes["to_logistics"]["label"].endswith("\nreached 0")
    # an end keeps its outcome as a thick border
    assert nodes["found_end"]["color"] == OUTCOME_COLOURS["resolved"][1]
    assert nodes["found_end"]["penwidth"] == "3" and "penwidth" not in nodes["route"]
    plain = dot_nodes(to_dot(journey))
    assert not any("reached" in a["label"] for a in plain.values())


def test_heat_sizes_and_counts_arrows() -> None:
    edges = dot_edges(to_dot(LIBRARY.find("delivery-missing"), HEAT))
    assert edges[("identify", "ask_order")]["label"] == "1,000"
    assert edges[("route", "offer")]["label"].endswith("\n617")
    assert edges[("offer", "do_refund")]["label"] == "refund\n12"
    widths = [float(edges[p]["penwidth"]) for p in [("identify", "ask_order"), ("route", "offer")]]
    assert widths[0] > widths[1] > float(edges[("offer", "do_refund")]["penwidth"]) > 1
    unused = edges[("offer", "do_reship")]
    assert unused["label"] == "reship\n0" and unused["style"] == "dashed"
    assert unused["penwidth"] == "1"


def test_heat_in_mermaid() -> None:
    journey = LIBRARY.find("delivery-missing")
    mermaid = to_mermaid(journey, HEAT)
    assert f"  style n_identify fill:{heat_colour(1.0)},stroke:#424242,color:#ffffff" in mermaid
    assert "reached 1,000 · dropped 12%" in mermaid
    arrows = [line for line in mermaid.splitlines() if " --> " in line or " -->|" in line]
    styled = re.findall(r"^  linkStyle (\d+) ", mermaid, re.M)
    assert [int(i) for i in styled] == list(range(1, len(arrows)))  # 0: into the start
    first = arrows[int(styled[0])]
    assert first.startswith("  n_identify -->") and "1,000" in first
    assert "linkStyle" not in to_mermaid(journey)


def test_heat_with_nothing_recorded() -> None:
    empty = Heat(reached={}, dropped={}, edges={})
    nodes = dot_nodes(to_dot(LIBRARY.find("delivery-missing"), empty))
    assert {a["fillcolor"] for n, a in nodes.items() if n != "__start__"} == {heat_colour(0)}


@needs_dot
def test_html_with_heat_explains_it() -> None:
    page = to_html(LIBRARY.find("delivery-missing"), HEAT)
    assert "1,234 session(s)" in page and "<h3>Traffic</h3>" in page
    assert "<h3>Traffic</h3>" not in to_html(LIBRARY.find("delivery-missing"))


@needs_dot
def test_legend_draws() -> None:
    from engine.adapters.graphviz_render import svg

    root = ElementTree.fromstring(svg(legend_dot()))
    texts = {t.text for t in root.iter("{http://www.w3.org/2000/svg}text")}
    assert {"say", "decide", "handoff", "end", *OUTCOME_COLOURS} <= texts


# --------------------------------------------------------------------------- the command


def invoke(*args: str) -> Result:
    return CliRunner().invoke(main, ["--library", str(SHIPPED), *args])


@pytest.mark.parametrize("fmt", ["mermaid", "dot"])
def test_cli_text_formats_to_stdout(fmt: str) -> None:
    result = invoke("graph", "delivery.missing", "--format", fmt)  # a motive finds its journey
    assert result.exit_code == 0, result.output
    expected = to_dot if fmt == "dot" else to_mermaid
    assert result.stdout == expected(LIBRARY.find("delivery-missing"))


def test_cli_default_is_mermaid_in_the_first_locale() -> None:
    result = invoke("graph", "delivery-missing", "--locale", "fr")
    assert result.exit_code == 0
    assert result.stdout == to_mermaid(LIBRARY.find("delivery-missing"), locale="fr")
    assert "Bonne nouvelle" in result.stdout
    assert "Good news" in invoke("graph", "delivery-missing").stdout


@needs_dot
@pytest.mark.parametrize("fmt", ["svg", "html"])
def test_cli_drawn_formats_to_a_file(fmt: str, tmp_path: Path) -> None:
    out = tmp_path / f"diagram.{fmt}"
    result = invoke("graph", "password-reset", "--format", fmt, "--out", str(out))
    assert result.exit_code == 0, result.output
    assert result.stdout == "" and f"wrote {out}" in result.stderr
    text = out.read_text(encoding="utf-8")
    if fmt == "svg":
        ElementTree.fromstring(text)
    else:
        assert text.startswith("<!doctype html>") and "https://" not in text


def test_cli_unknown_journey_is_a_usage_error_with_a_suggestion() -> None:
    result = invoke("graph", "delivry-missing")
    assert result.exit_code == 2
    assert isinstance(result.exception, SystemExit)  # no traceback
    assert "no journey or motive 'delivry-missing'" in result.stderr
    assert "did you mean 'delivery-missing'?" in result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--locale", "de"], "has no texts in 'de'; it has 'en', 'fr'"),
        (["--since", "2026-01-01"], "add --heat"),
        (["--format", "png"], "'png' is not one of"),
        (["--heat", "--since", "yesterday"], "'yesterday' is not a date"),
        (["--heat", "--since", "2026-02-02", "--until", "2026-02-01"], "is not before"),
    ],
)
def test_cli_usage_errors(args: list[str], message: str) -> None:
    result = invoke("graph", "delivery-missing", *args)
    assert result.exit_code == 2
    assert message in result.stderr


def test_cli_without_dot_says_how_to_fix_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no `dot` here
    result = invoke("graph", "delivery-missing", "--format", "svg")
    assert result.exit_code == 1
    assert isinstance(result.exception, SystemExit)
    assert NO_DOT in result.stderr
    assert "apt-get install graphviz" in result.stderr and "--format mermaid" in result.stderr
    assert invoke("graph", "delivery-missing", "--format", "dot").exit_code == 0


def test_cli_heat_asks_the_session_database(monkeypatch: pytest.MonkeyPatch) -> None:
    import engine.adapters.sql.reporting as reporting

    calls: list[tuple[Any, ...]] = []

    def journey_heat(url: str, journey: str, since: Any, until: Any) -> Heat:
        calls.append((url, journey, since, until))
        return HEAT

    monkeypatch.setattr(reporting, "journey_heat", journey_heat)
    args = ["--heat", "--db", "sqlite:///x.db", "--since", "2026-03-01", "--until", "2026-03-31"]
    result = invoke("graph", "delivery.missing", "--format", "dot", *args)
    assert result.exit_code == 0, result.output
    assert calls == [
        (
            "sqlite:///x.db",
            "delivery-missing",
            datetime(2026, 3, 1, tzinfo=UTC),
            datetime(2026, 4, 1, tzinfo=UTC),  # --until's day included
        )
    ]
    assert result.stdout == to_dot(LIBRARY.find("delivery-missing"), HEAT)


STUBS = """
crm.get_customer: {customer_id: C001, name: Ada}
orders.get_tracking: {order_id: "10000001", status: in_transit, days_late: 7}
"""


def test_cli_heat_from_sessions_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """End to end: three sessions of the fixture library, then their diagram."""
    shutil.copytree(FIXTURES / "base", tmp_path / "lib")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("JOURNEYS_LIBRARY", "lib")
    monkeypatch.setenv("JOURNEYS_DB", f"sqlite:///{tmp_path / 'sessions.db'}")
    (tmp_path / "stubs.yaml").write_text(STUBS)
    for customer, choice in [("C001", "voucher"), ("C002", '"no"'), ("C003", '"no"')]:
        (tmp_path / "answers.yaml").write_text(f'ask_order: "10000001"\noffer: {choice}\n')
        args = ["--input", f"customer_id={customer}", "--actions", "stubs.yaml"]
        run = CliRunner().invoke(main, ["run", "order-status", *args, "--answers", "answers.yaml"])
        assert run.exit_code == 0, run.output
    result = CliRunner().invoke(main, ["graph", "order-status", "--heat", "--format", "dot"])
    assert result.exit_code == 0, result.output
    nodes, edges = dot_nodes(result.stdout), dot_edges(result.stdout)
    assert nodes["identify"]["label"].endswith("reached 3 · dropped 0%")
    assert nodes["voucher"]["label"].endswith("reached 1 · dropped 0%")
    assert edges[("offer", "done")]["label"] == "no\n2"
    assert edges[("route", "done")]["label"] == "else\n0"
    assert nodes["done"]["fillcolor"] == heat_colour(1.0)


def test_cli_heat_without_a_database(tmp_path: Path) -> None:
    result = invoke("graph", "delivery-missing", "--heat", "--db", f"sqlite:///{tmp_path}/no.db")
    assert result.exit_code == 1
    assert isinstance(result.exception, SystemExit)
    assert "there is no session database" in result.stderr
