"""The interactive terminal mode of ``journeys run``: one step at a time, for an agent.

Shows the step's text and the messages before it, numbers the options of a choice, states
the expected format, asks again with the reason after an invalid answer, offers the survey,
and after the end asks whether there is anything else (the next motive in the same contact).
Ctrl-C leaves the session waiting and says how to resume it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

from engine.errors import InvalidAnswer
from engine.sessions.runtime import SURVEY, WAITING, Session, current_step
from engine.sessions.service import Sessions

#: Asks a question and returns the reply; raises EOFError (or KeyboardInterrupt) when the
#: person stops: no more replies will come.
Ask = Callable[[str], str]
Say = Callable[[str], None]

NEXT_MOTIVE = "Anything else? A motive or journey id for the same contact [Enter to finish] > "


class Conversation(NamedTuple):
    """How a contact in the terminal ended: its last session, and whether the person
    stopped (Ctrl-C, the end of input), leaving that session waiting as saved."""

    session: Session
    interrupted: bool = False


def converse(sessions: Sessions, session: Session, ask: Ask, say: Say) -> Conversation:
    """The whole contact, step by step: the session until it ends, then "anything else?"
    and the next motive's journey in the same contact (carrying the inputs it already has),
    until the person has nothing more. Stopping keeps every answer given so far."""
    say(
        f"── {session.journey} v{session.version} · session {session.id} "
        f"({session.channel or 'no channel'}, {session.locale or 'default locale'})"
    )
    try:
        while True:
            session = run_interactive(sessions, session, ask, say)
            following = _next_motive(sessions, session, ask, say)
            if following is None:
                return Conversation(session)
            session = following
            say(f"── {session.journey} v{session.version} · session {session.id} (same contact)")
    except (KeyboardInterrupt, EOFError):
        return Conversation(sessions.get(session.id), interrupted=True)


def _next_motive(sessions: Sessions, session: Session, ask: Ask, say: Say) -> Session | None:
    """After an end: the session of the next motive the person names, or None to finish."""
    if session.status not in ("ended", SURVEY) or session.error:
        return None
    say(f"Outcome: {session.outcome}")
    name = ask(NEXT_MOTIVE).strip()
    if not name:
        return None
    try:
        following = sessions.library.find(name, paths=True)
    except Exception as err:  # a wrong name (or file): say so and finish cleanly
        say(f"  ✗ {err}")
        return None
    carried = {k: session.context[k] for k in following.inputs if k in session.context}
    return sessions.start(
        following.id,
        carried,
        channel=session.channel,
        locale=session.locale,
        contact_id=session.contact_id,
        role=session.role,
    )


def _format_hint(step: dict[str, Any]) -> str:
    schema = step.get("schema") or {}
    kind = schema.get("type", "string")
    kinds = kind if isinstance(kind, list) else [kind]
    words = {
        "string": "text",
        "integer": "a whole number",
        "number": "a number",
        "boolean": "yes/no",
    }
    hint = " or ".join(words.get(str(k), str(k)) for k in kinds if k != "null")
    if "enum" in schema:
        hint = "one of " + ", ".join(map(str, schema["enum"]))
    if "pattern" in schema:
        hint += f", format {schema['pattern']}"
    if "description" in schema:
        hint += f": {schema['description']}"
    return hint


def run_interactive(sessions: Sessions, session: Session, ask: Ask, say: Say) -> Session:
    """Drive the session from the terminal until it ends (or Ctrl-C leaves it waiting)."""
    bundle = sessions.bundle_of(session)
    shown = 0
    while True:
        step = current_step(bundle.definitions, session)
        if session.status == WAITING and step:
            for message in step["messages"][shown:]:
                say(f"  {message}")
            shown = len(step["messages"])
            session = _ask_step(sessions, session, step, ask, say)
            if (
                session.status == WAITING and session.node != step["node"]
            ) or session.status != WAITING:
                shown = 0
            continue
        if session.status == SURVEY and step:
            for message in step["messages"][shown:]:
                say(f"  {message}")
            shown = 0
            session = _survey(sessions, session, step["surveys"], ask, say)
            continue
        return session


def _ask_step(
    sessions: Sessions, session: Session, step: dict[str, Any], ask: Ask, say: Say
) -> Session:
    say(f"? {step.get('text') or step['node']}")
    options = step.get("options")
    if options:
        for i, option in enumerate(options, 1):
            say(f"    {i}) {option['label']}")
        prompt = f"  [1-{len(options)}] > "
    else:
        if "known" in step:
            say(f"    (on record: {step['known']})")
        prompt = f"  [{_format_hint(step)}] > "
    while True:
        text = ask(prompt)
        value: Any = text
        if options and text.strip().isdigit() and 1 <= int(text) <= len(options):
            value = options[int(text) - 1]["value"]
            try:
                return sessions.answer(session.id, step["node"], value, seq=session.seq)
            except InvalidAnswer as problem:
                say(f"  ✗ {problem.message}")
                continue
        try:
            return sessions.answer(session.id, step["node"], value, seq=session.seq, as_text=True)
        except InvalidAnswer as problem:
            say(f"  ✗ {problem.message}; try again")


def _survey(
    sessions: Sessions, session: Session, surveys: list[str], ask: Ask, say: Say
) -> Session:
    questions = {
        "ces": ("How easy was it to get your request handled? (1 very hard - 7 very easy)", 1, 7),
        "nps": ("How likely are you to recommend us? (0 - 10)", 0, 10),
    }
    answers: dict[str, int] = {}
    for name in surveys:
        text, low, high = questions[name]
        while True:
            reply = ask(f"? {text} [Enter to skip] > ").strip()
            if not reply:
                break
            if reply.isdigit() and low <= int(reply) <= high:
                answers[name] = int(reply)
                break
            say(f"  ✗ a whole number from {low} to {high}, or Enter to skip")
    if not answers:
        return sessions.skip_survey(session.id)
    return sessions.survey(session.id, answers.get("ces"), answers.get("nps"))
