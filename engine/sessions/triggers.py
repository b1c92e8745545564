"""Proactive journeys: an event raised by the back office starts outbound sessions.

``motives.yaml`` declares ``triggers``: an event type, the journey to start, the outbound
channel, how the event's data map to the journey's inputs and an optional condition on the
data. :func:`fire` decides which triggers an event fires and with which inputs; starting the
sessions is the service's job (``Sessions.start``). No I/O here.

An event is handled whole: every trigger it fires is evaluated, and its inputs checked against
its journey, before any session starts, so an event refused for bad data can be raised again
once corrected without messaging a customer twice.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from engine.definitions.expressions import (
    EvaluationError,
    ExpressionError,
    compile_expression,
    is_expression,
    literal,
)
from engine.definitions.findings import did_you_mean
from engine.definitions.library import Library, LibraryError
from engine.definitions.model import Journey, Trigger
from engine.errors import (
    JourneyHasErrors,
    MissingInput,
    SessionError,
)
from engine.sessions.values import convert_inputs, from_text, schema_problem


class Fired(NamedTuple):
    """A trigger an event fires, with the inputs of the session to start."""

    trigger: Trigger
    inputs: dict[str, Any]


class TriggerError(SessionError):
    """An event that cannot be handled: which trigger, and why (no session was started)."""

    def __init__(self, message: str, trigger: Trigger | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.trigger = trigger


def triggers_of(library: Library, event_type: str) -> list[Trigger]:
    """The triggers that listen to an event type, in the order of ``motives.yaml``."""
    return [t for t in library.triggers if t.event == event_type]


def events_of(library: Library) -> list[str]:
    """The event types some trigger listens to."""
    return sorted({t.event for t in library.triggers})


def fire(
    library: Library, event_type: str, data: Mapping[str, Any], *, as_text: bool = False
) -> list[Fired]:
    """The triggers of ``event_type`` whose ``when`` holds on ``data``, with their inputs.

    ``as_text``: the data were typed (command line, query string); a value passed unchanged
    to an input (``order_id: =order_id``) is converted to that input's type first, so that
    ``when`` compares numbers with numbers. Raises :class:`TriggerError` when a trigger's
    condition or inputs cannot be evaluated on the data or do not fit its journey.
    """
    fired = []
    for trigger in triggers_of(library, event_type):
        where = _where(trigger)
        journey = library.journeys.get(trigger.journey)
        if journey is None:
            raise TriggerError(
                f"{where}: the journey {trigger.journey!r} is not in the library"
                f"{did_you_mean(trigger.journey, library.journeys)}",
                trigger,
            )
        values = _typed(data, trigger, journey, where) if as_text else dict(data)
        if trigger.when is not None and not _evaluate(trigger, "'when'", trigger.when, values):
            continue
        inputs = {
            name: _evaluate(trigger, f"input {name!r}", value[1:], values)
            if is_expression(value)
            else literal(value)
            for name, value in trigger.inputs.items()
        }
        try:
            convert_inputs(journey, inputs, as_text=as_text)
        except MissingInput as err:
            raise TriggerError(f"{where}: {err.message}", trigger) from None
        fired.append(Fired(trigger, inputs))
    return fired


def _where(trigger: Trigger) -> str:
    return (
        f"the trigger of {trigger.event!r} (journey {trigger.journey!r}, line {trigger.loc.line})"
    )


def _typed(
    data: Mapping[str, Any], trigger: Trigger, journey: Journey, where: str
) -> dict[str, Any]:
    """Text data converted to the type of the input each one is passed to unchanged; a
    text that cannot be (``days_late=soon`` for a whole number) is refused at once."""
    values = dict(data)
    for name, value in trigger.inputs.items():
        source = value[1:].strip() if is_expression(value) else ""
        schema = journey.inputs.get(name)
        if not (source.isidentifier() and source in values and isinstance(schema, Mapping)):
            continue
        values[source] = from_text(values[source], schema)
        problem = (
            schema_problem(values[source], {"type": schema["type"]}) if "type" in schema else None
        )
        if problem:
            raise TriggerError(
                f"{where}: the data {source!r} is the input {name!r} of the journey: {problem}",
                trigger,
            )
    return values


def _evaluate(trigger: Trigger, where: str, source: str, data: Mapping[str, Any]) -> Any:
    try:
        return compile_expression(source).evaluate(data)
    except (ExpressionError, EvaluationError) as err:
        reason = str(err).replace("is not set in the session", "is not in the event's data")
        raise TriggerError(
            f"{_where(trigger)}, {where}: {source!r} cannot be evaluated on the event's data: "
            f"{reason}",
            trigger,
        ) from None


def start_outbound(
    sessions: Any,
    event: str,
    data: Mapping[str, Any],
    *,
    as_text: bool,
    locale: str | None = None,
    before_start: Callable[[str], None] | None = None,
) -> tuple[list[Any], str | None]:
    """Start the outbound sessions an event fires: (the sessions, why none when none).

    ``sessions`` is the Sessions service; ``before_start(journey_id)`` may refuse a journey
    (the CLI checks it validates) before any session starts.
    """
    library = sessions.library
    fired = fire(library, event, data, as_text=as_text)
    if not fired:
        listening = triggers_of(library, event)
        if not listening:
            known = events_of(library)
            return [], (
                f"no trigger listens to the event {event!r}{did_you_mean(event, known)}; "
                f"the events with triggers are: {', '.join(known) or 'none'}. No session started."
            )
        conditions = "; ".join(f"{t.journey}: {t.when}" for t in listening)
        return [], (
            f"no trigger of the event {event!r} matched its data (conditions: {conditions}). "
            "No session started."
        )
    if before_start is not None:
        for journey in dict.fromkeys(f.trigger.journey for f in fired):
            before_start(journey)
    started = [
        sessions.start(
            trigger.journey,
            inputs,
            channel=trigger.channel,
            locale=locale,
            as_text=as_text,
            actor=f"trigger {event}",
            motive=trigger.motive,
            role="customer",  # outbound: the customer answers the message
            # The back office names the customer it writes to, at the contact details on
            # file: whoever answers through that message holds the customer's own phone.
            identity=_known(inputs),
        )
        for trigger, inputs in fired
    ]
    return started, None


def _known(inputs: Mapping[str, Any]) -> dict[str, Any] | None:
    customer = inputs.get("customer_id")
    return {"customer_id": customer, "by": "event"} if isinstance(customer, str) else None


@dataclass
class Raised:
    """One event of a scan: its data, the sessions it started, and why none started: no
    trigger matched (``nothing``) or the event was refused (``error``)."""

    data: Mapping[str, Any]
    started: list[Any] = field(default_factory=list)
    nothing: str | None = None
    error: str | None = None


def raise_each(
    sessions: Any,
    event: str,
    found: Iterable[Mapping[str, Any]],
    *,
    alerted: Callable[[Mapping[str, Any], list[Any]], None],
    locale: str | None = None,
    before_start: Callable[[str], None] | None = None,
) -> list[Raised]:
    """Raise ``event`` once for each item a back-office scan ``found`` (the late orders,
    say), as :func:`start_outbound` does, and call ``alerted(data, sessions)`` for each
    that started sessions, so that the back office skips it next time.

    An event refused for its data (:class:`TriggerError`, a session error) is recorded with
    the reason and the scan goes on with the next. A journey that may not start
    (:class:`JourneyHasErrors`) stops the scan: that is the library's fault, not the
    data's, and every event would be refused the same way.
    """
    raised = []
    for data in found:
        try:
            started, nothing = start_outbound(
                sessions, event, data, as_text=False, locale=locale, before_start=before_start
            )
        except JourneyHasErrors:
            raise
        except (TriggerError, SessionError, LibraryError) as err:
            raised.append(Raised(data, error=err.message))
            continue
        if started:
            alerted(data, started)
        raised.append(Raised(data, started, nothing))
    return raised
