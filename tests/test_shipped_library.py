"""The shipped library: complete, bilingual, and tested for every outcome it can reach."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.definitions import build
from engine.definitions.model import Journey
from engine.definitions.yamlsafe import load
from tests.conftest import SHIPPED

JOURNEY_FILES = sorted(
    p
    for p in SHIPPED.rglob("*.yaml")
    if not p.name.endswith(".test.yaml") and p.name not in ("motives.yaml", "policies.yaml")
)


def journeys() -> dict[str, Journey]:
    found = {}
    for path in JOURNEY_FILES:
        j = build.build_journey(load(path), str(path))
        found[j.id] = j
    return found


def reachable_outcomes(jid: str, all_journeys: dict[str, Journey], depth: int = 0) -> set[str]:
    """Outcomes a session of ``jid`` can end with: its ends, and handoffs anywhere inside."""
    journey = all_journeys[jid]
    seen, todo, outcomes = set(), [journey.start], set()
    while todo:
        node = journey.nodes[todo.pop()]
        if node.id in seen:
            continue
        seen.add(node.id)
        if node.kind == "end" and node.outcome and depth == 0:
            outcomes.add(node.outcome)
        if node.kind == "handoff":
            outcomes.add("escalated")
        if node.kind == "journey" and node.journey:
            outcomes |= reachable_outcomes(node.journey, all_journeys, depth + 1) & {"escalated"}
        todo += [e.target for e in node.edges()]
    return outcomes


def test_at_least_twelve_motive_journeys_and_the_shared_ones() -> None:
    found = journeys()
    assert len([j for j in found.values() if j.motives]) >= 12
    assert {"identify-customer", "satisfaction-survey"} <= set(found)


@pytest.mark.parametrize("path", JOURNEY_FILES, ids=lambda p: p.stem)
def test_journey_is_in_english_and_french(path: Path) -> None:
    journey = build.build_journey(load(path), str(path))
    assert journey.locales == ("en", "fr")


@pytest.mark.parametrize("path", JOURNEY_FILES, ids=lambda p: p.stem)
def test_scenarios_cover_every_reachable_outcome(path: Path) -> None:
    all_journeys = journeys()
    journey = build.build_journey(load(path), str(path))
    tests = path.with_name(path.stem + ".test.yaml")
    scenarios = build.build_scenarios(load(tests), str(tests))
    assert scenarios.journey == journey.id
    expected = {s.outcome for s in scenarios.scenarios}
    assert reachable_outcomes(journey.id, all_journeys) <= expected


def test_motives_are_bilingual_with_keywords() -> None:
    motives = build.build_motives(load(SHIPPED / "motives.yaml"), "motives.yaml")
    assert len(motives) >= 12
    for motive in motives.values():
        assert isinstance(motive.title, dict) and set(motive.title) == {"en", "fr"}, motive.id
        assert len(motive.keywords) >= 5 and motive.sources and motive.category, motive.id
