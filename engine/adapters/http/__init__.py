"""The HTTP API (FastAPI): sessions, journeys and motives for the console, CRMs, IVRs, bots.

Endpoints are thin: they authenticate, parse, call the ``Sessions`` service and shape the
answer. Errors are RFC 9457 problem details, chosen by the error's class (problems.py). Who
may do what:
- agents present a bearer key from ``JOURNEYS_AGENT_KEYS`` (``key:role`` pairs, comma
  separated; role agent or supervisor); with no key configured only loopback clients are
  served, as agents;
- a self-care customer presents the token returned when their session was created: it opens
  that session alone, for the steps whose roles include ``customer``; a step for agents only
  is handed over (shown as ``waiting_for: agent`` with the contact code, listed in
  ``GET /v1/queue``) until an agent has answered it. The session stays on the ``selfcare``
  channel unless an agent continues it;
- a self-care customer is anonymous until proven (engine/sessions/identity.py): by the signed
  identity the company's site hands over at the start (``identity``, see signed_identity.py),
  or by the one-time code the identify journey sends. Until then no action reads or changes
  a customer's account (docs/selfcare-identity.md).

Where things are:
- app.py: ``create_app`` (the state, the route table, the handlers) and the uvicorn factory;
- state.py: what every endpoint works with (``AppState``, reached by ``request.app.state``);
- auth.py and tokens.py: who calls; problems.py: errors as problem details; edge.py: what
  every request passes first (body size and type, Server-Timing); bodies.py: the JSON bodies;
- session_routes.py, agent_routes.py, report_routes.py, event_routes.py,
  library_routes.py, console_routes.py: the endpoints, one table of routes each;
- views.py: how a session is shown to an agent and to a customer.
"""

from engine.adapters.http.app import app_from_environment, create_app
from engine.adapters.http.auth import Caller, agent_keys
from engine.adapters.http.edge import MAX_BODY
from engine.adapters.http.tokens import TOKEN_LIFETIME, Tokens, server_secret

__all__ = [
    "MAX_BODY",
    "TOKEN_LIFETIME",
    "Caller",
    "Tokens",
    "agent_keys",
    "app_from_environment",
    "create_app",
    "server_secret",
]
