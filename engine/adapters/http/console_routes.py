"""The console's pages (plain HTML and JavaScript: works offline, no CDN) and its files."""

from __future__ import annotations

from pathlib import Path

from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles
from starlette.routing import Mount

from engine.adapters.http.problems import Endpoint

CONSOLE = Path(__file__).resolve().parent.parent / "console"


def agent_page() -> FileResponse:
    """The agent console (plain HTML and JavaScript: works offline, no CDN)."""
    return FileResponse(CONSOLE / "agent.html")


def selfcare_page() -> FileResponse:
    """The self-care page: the same journeys, in the customer's role."""
    return FileResponse(CONSOLE / "selfcare.html")


ROUTES = [
    Mount("/console", StaticFiles(directory=CONSOLE), name="console"),
    Endpoint("/", agent_page, include_in_schema=False),
    Endpoint("/selfcare", selfcare_page, include_in_schema=False),
]
