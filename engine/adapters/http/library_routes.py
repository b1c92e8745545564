"""The library over HTTP: its journeys, its motives, and the motives a customer's words
point at (engine/sessions/motive_search.py)."""

from __future__ import annotations

from typing import Any

from fastapi import Depends

from engine.adapters.http.auth import Caller, caller
from engine.adapters.http.problems import Endpoint, NoSuchJourney
from engine.adapters.http.state import AppState, served
from engine.adapters.http.views import motive_view
from engine.sessions.motive_search import suggest as suggest_motives


async def journeys(
    who: Caller = Depends(caller), state: AppState = Depends(served)
) -> list[dict[str, Any]]:
    return [
        {"id": j.id, "version": j.version, "title": j.title, "motives": list(j.motives)}
        for j in sorted(state.library.journeys.values(), key=lambda j: j.id)
    ]


async def journey(
    journey_id: str, who: Caller = Depends(caller), state: AppState = Depends(served)
) -> dict[str, Any]:
    j = state.library.journeys.get(journey_id)
    if j is None:
        raise NoSuchJourney(f"there is no journey {journey_id!r}")
    return {
        "id": j.id,
        "version": j.version,
        "title": j.title,
        "start": j.start,
        "nodes": [{"id": n.id, "kind": n.kind} for n in j.nodes.values()],
        "edges": [
            {"from": e.source, "to": e.target, "via": e.via}
            for n in j.nodes.values()
            for e in n.edges()
        ],
    }


async def motives(
    who: Caller = Depends(caller), state: AppState = Depends(served)
) -> list[dict[str, Any]]:
    return [motive_view(m) for m in state.library.motives.values()]


async def suggest(
    q: str = "", who: Caller = Depends(caller), state: AppState = Depends(served)
) -> list[dict[str, Any]]:
    found = suggest_motives(state.library.motives.values(), q)
    return [{**motive_view(s.motive), "score": s.score} for s in found]


ROUTES = [
    Endpoint("/v1/journeys", journeys),
    Endpoint("/v1/journeys/{journey_id}", journey),
    Endpoint("/v1/motives", motives),
    Endpoint("/v1/motives/suggest", suggest),
]
