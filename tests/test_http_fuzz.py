"""Fuzz the HTTP API from its OpenAPI description (schemathesis): no input gives a 5xx."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import schemathesis
from hypothesis import HealthCheck, settings

from actions.backoffice import once
from engine.adapters.execution.local_actions import LocalExecutor
from engine.adapters.http import create_app
from engine.adapters.sql.store import SqlStore
from engine.definitions.library import Library
from tests.conftest import SHIPPED

_scratch = Path(tempfile.mkdtemp(prefix="journeys-fuzz-"))
os.environ.setdefault("JOURNEYS_BACKOFFICE_DB", f"sqlite:///{_scratch / 'bo.db'}")
# The in-process client is not this machine ('testclient', Host 'testserver'): the app is made
# with an agent key, as in production, and every case is sent with it and without.
_KEY = "fuzz-agent-key"
_before = os.environ.get("JOURNEYS_AGENT_KEYS")
os.environ["JOURNEYS_AGENT_KEYS"] = f"{_KEY}:agent"
try:
    APP = create_app(
        Library(SHIPPED),
        SqlStore(f"sqlite:///{_scratch / 'sessions.db'}"),
        LocalExecutor(ledger=once),
        _scratch,
    )
finally:
    if _before is None:
        del os.environ["JOURNEYS_AGENT_KEYS"]
    else:
        os.environ["JOURNEYS_AGENT_KEYS"] = _before
schema = schemathesis.openapi.from_asgi("/openapi.json", APP)


@schema.parametrize()
@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_server_error(case: schemathesis.Case) -> None:
    for headers in ({"Authorization": f"Bearer {_KEY}"}, {}):
        response = case.call(headers={**(case.headers or {}), **headers})
        assert response.status_code < 500, (
            f"{case.method} {case.formatted_path}: {response.status_code} {response.text[:300]}"
        )
