"""How a session is shown: to an agent, and to a self-care customer (who never sees a step
meant for an agent, nor a system's failure)."""

from __future__ import annotations

from typing import Any

from engine.definitions.model import Motive
from engine.sessions.runtime import Session, current_step
from engine.sessions.service import Sessions, SessionStore

#: What a self-care customer reads when the journey waits for an agent, by locale.
HANDOVER = {
    "en": "An agent will continue from here: nothing you told us is lost. If you call us, "
    "give this code: {code}. This page goes on by itself when it is your turn again.",
    "fr": "Un conseiller va prendre la suite : rien de ce que vous nous avez dit n'est perdu. "
    "Si vous nous appelez, donnez ce code : {code}. Cette page continue d'elle-même quand "
    "c'est de nouveau à vous.",
}

#: What a self-care customer reads while the back office does not answer (an incident): their
#: request is kept and goes on by itself; never the technical reason, never a business answer.
KEPT = {
    "en": "Our systems are slow to answer just now. Your request is kept: nothing you told us "
    "is lost, and it goes on by itself as soon as they are back. You can leave this page open "
    "or come back later. If you call us, give this code: {code}.",
    "fr": "Nos systèmes tardent à répondre en ce moment. Votre demande est conservée : rien de "
    "ce que vous nous avez dit n'est perdu, et elle reprendra d'elle-même dès leur retour. "
    "Vous pouvez laisser cette page ouverte ou revenir plus tard. Si vous nous appelez, donnez "
    "ce code : {code}.",
}


def session_view(sessions: Sessions, session: Session, customer: bool = False) -> dict[str, Any]:
    """The session as shown; to a ``customer``, a step that waits for an agent shows
    the hand-over (message and contact code), not the agent's question."""
    bundle = sessions.bundle_of(session)
    return {
        "id": session.id,
        "journey": session.journey,
        "version": session.version,
        "status": session.status,
        "outcome": session.outcome,
        "seq": session.seq,
        "channel": session.channel,
        "contact": session.contact_id,
        "step": held(
            handed_over(current_step(bundle.definitions, session), session, customer),
            session,
            customer,
        ),
    }


def session_detail(
    sessions: Sessions, store: SessionStore, session: Session, customer: bool
) -> dict[str, Any]:
    """The session with its context, path, transcript and actions (``GET`` of a session);
    to a customer, without what a system's failure said (its hosts, its errors: the agents'
    business)."""
    transcript = store.events(session.id)
    runs = [dict(run) for run in store.runs(session.id)]
    if customer:
        transcript = [{k: v for k, v in e.items() if k != "failure"} for e in transcript]
        runs = [{**r, "error": None} if r["status"] == "failed" else r for r in runs]
    return {
        **session_view(sessions, session, customer),
        "context": session.context,
        "path": session.path,
        "transcript": transcript,
        "actions": runs,
        "handoff": session.handoff,
        "error": session.error,
        **troubles(session, store, customer),
    }


def handed_over(
    step: dict[str, Any] | None, session: Session, customer: bool
) -> dict[str, Any] | None:
    """A step the customer may not answer says so (``waiting_for: agent`` and the contact
    code); shown to the customer, it is the hand-over message instead of the question."""
    if step is None or session.status != "waiting" or "customer" in step.get("roles", ()):
        return step
    code = session.contact_id or ""
    if not customer:
        return {**step, "waiting_for": "agent", "contact": code}
    language = (session.locale or "en").split("-")[0].lower()
    message = HANDOVER.get(language, HANDOVER["en"]).format(code=code)
    return {
        "node": step["node"],
        "kind": step["kind"],
        "text": message,
        "messages": step["messages"],
        "roles": step["roles"],
        "waiting_for": "agent",
        "contact": code,
    }


def held(step: dict[str, Any] | None, session: Session, customer: bool) -> dict[str, Any] | None:
    """An incident shown to the customer: a calm message that the request is kept and goes
    on by itself, with the contact code; never the technical reason (agents see it)."""
    if step is None or step.get("kind") != "incident" or not customer:
        return step
    language = (session.locale or "en").split("-")[0].lower()
    code = session.contact_id or ""
    return {
        "node": step["node"],
        "kind": "incident",
        "text": KEPT.get(language, KEPT["en"]).format(code=code),
        "messages": step["messages"],
        "retry_at": step.get("retry_at"),
        "contact": code,
    }


def troubles(session: Session, store: SessionStore, customer: bool) -> dict[str, Any]:
    """What went wrong technically, for the agent: the incident holding the session (what
    failed, since when, tries, next retry) and the background actions that failed (never the
    outcome's business, but a promise to keep: `journeys runs retry` runs one again)."""
    if customer:
        incident = session.incident
        kept = (
            {"since": incident.get("since"), "retry_at": incident.get("retry_at")}
            if incident
            else None
        )
        return {"incident": kept}
    return {"incident": session.incident, "failed_actions": store.failed_runs(session.id)}


def motive_view(m: Motive) -> dict[str, Any]:
    return {
        "id": m.id,
        "title": m.title,
        "category": m.category,
        "journey": m.journey,
        "keywords": list(m.keywords),
    }
