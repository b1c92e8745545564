"""Synthetic traffic through a library: weeks of plausible contacts written in a minute, so that
reports have something to show (``journeys simulate``).

Each contact follows one of the scenarios of its journey (``*.test.yaml``: inputs, answers,
action stubs), for a customer of the simulated population, on a channel and in a locale, at a
time of day and week a contact centre sees. On the way, with the probabilities of ``Rates``,
the customer gives up mid-way, moves to another channel (a ``resume``), meets a failing
back-office action (its ``on_error`` path), answers the survey (scores that follow the
outcome), skips it or leaves it, and comes back later on the same motive (more often after a
contact that did not resolve it). Each contact draws from generators of its own, seeded by
the seed and its number: the same seed gives the same sessions, ids included; another end
time changes their times (and leaves out the repeats that would come after it). The sessions go through ``Sessions`` like real ones, under
``engine.clock`` set to the simulated time. The rates and resulting figures: docs/insight.md.
"""

from __future__ import annotations

import math
import random
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from itertools import accumulate
from typing import Any

from engine import clock
from engine.definitions import build
from engine.definitions.library import Library
from engine.definitions.model import Journey, Node, Scenario
from engine.definitions.yamlsafe import YamlError, YamlMap
from engine.errors import (
    DefinitionError,
    SessionError,
    UnknownSession,
)
from engine.insight.scenarios import AnswerBook, StubExecutor, load_file, scenario_files
from engine.insight.simulate_rates import (
    AGENTS,
    CHANNELS,
    DEFAULT_RATES,
    ERRORS,
    HOURS,
    OUTCOME_WEIGHTS,
    PREVALENCE,
    WEEKDAYS,
    Rates,
    survey_scores,
)
from engine.sessions.runtime import SURVEY, WAITING, RunAction, Session, node_names
from engine.sessions.service import ActionOutcome, Sessions, SessionStore

DEFAULT_SEED = 7


_ID = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
_CODE = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"


class SimulationError(DefinitionError):
    """The simulation cannot run as asked: what, and what to do."""


@dataclass
class Summary:
    """What a simulation wrote."""

    sessions: int = 0
    events: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)  # "abandoned" for those waiting
    motives: Counter[str] = field(default_factory=Counter)
    repeats: int = 0  # contacts that came back on the same motive
    channel_changes: int = 0
    failures: int = 0  # contacts where an action was made to fail
    surveys: int = 0  # surveys answered


@dataclass(frozen=True)
class _Contact:
    customer: str
    motive: str
    journey: str
    at: datetime
    session_id: str
    contact_code: str
    draws: random.Random  # the decisions of this contact and of its repeats
    times: random.Random  # their times: the only draws that depend on the end
    repeat: bool = False


@dataclass(frozen=True)
class _Script:
    """What one contact will do: a scenario made the customer's, maybe with a failure."""

    stubs: dict[str, Any]
    inputs: dict[str, Any]
    answers: dict[str, Any]
    failing: str | None  # the action made to fail
    channel: str | None
    locale: str | None
    role: str | None


class SimClock:
    """The simulated time: moved by the simulation, never past ``end``."""

    def __init__(self, end: datetime) -> None:
        self.end = end
        self.at = end

    def __call__(self) -> datetime:
        return self.at

    def set(self, moment: datetime) -> None:
        self.at = min(moment, self.end)

    def wait(self, seconds: float) -> None:
        self.set(self.at + timedelta(seconds=seconds))


class _PacedStubs(StubExecutor):
    """Scenario stubs that take the time a back office takes."""

    def __init__(self, stubs: Mapping[str, Any], sim: _Simulation) -> None:
        super().__init__(stubs)
        self.sim = sim

    def run(self, effect: RunAction, session: Session) -> ActionOutcome:
        self.sim.clock.wait(self.sim.times.uniform(0.3, 4.0))
        return super().run(effect, session)


def simulate(
    library: Library,
    store: SessionStore,
    sessions: int,
    *,
    days: int = 30,
    seed: int = DEFAULT_SEED,
    end: datetime | None = None,
    rates: Rates = DEFAULT_RATES,
    progress: Callable[[int], None] | None = None,
) -> Summary:
    """Write ``sessions`` sessions spread over the ``days`` before ``end`` (default: now);
    ``progress(n)`` is called after each with the number done."""
    if sessions <= 0 or days <= 0:
        raise SimulationError("the number of sessions and of days must be positive")
    sim = _Simulation(library, store, sessions, days, seed, end or clock.now(), rates)
    with clock.using(sim.clock):
        while sim.summary.sessions < sessions:
            contact: _Contact | None = sim.first_contact()
            while contact is not None and sim.summary.sessions < sessions:
                session = sim.play(contact)
                if progress:
                    progress(sim.summary.sessions)
                contact = sim.again(contact, session)
    return sim.summary


class _Simulation:
    def __init__(
        self,
        library: Library,
        store: SessionStore,
        sessions: int,
        days: int,
        seed: int,
        end: datetime,
        rates: Rates,
    ) -> None:
        self.library, self.store, self.rates, self.seed = library, store, rates, seed
        self.drawn = 0  # first contacts so far
        # The generators of the contact being played (see first_contact).
        self.rng = self.times = random.Random(seed)
        first = _id(random.Random(f"{seed}/0"))
        try:
            store.load(first)
        except UnknownSession:
            pass
        else:
            raise SimulationError(
                f"the database already holds the sessions of seed {seed}: "
                "give another --seed or another --db"
            )
        self.clock = SimClock(end)
        self.start = end - timedelta(days=days)
        # About 3 contacts per customer in the window; the first 2% call often (C001...).
        self.population = max(50, sessions // 3)
        self.frequent = max(10, self.population // 50)
        self.summary = Summary()
        self.cases = _scenarios(library)
        self.motives = [
            m for m in library.motives.values() if self.cases.get(m.journey) and m.journey
        ]
        if not self.motives:
            raise SimulationError(
                f"no motive of the library {str(library.root)!r} has a journey with scenarios "
                "(*.test.yaml) to simulate"
            )
        self.motive_weights = list(accumulate(PREVALENCE.get(m.id, 3) for m in self.motives))
        self.outbound = {t.journey: t for t in library.triggers}
        self.weights = {j: list(accumulate(map(_weight, c))) for j, c in self.cases.items()}
        self.pools = {j: _answer_pool(cases) for j, cases in self.cases.items()}
        self.names: dict[str, list[str]] = {}
        self.fallible: dict[str, list[str]] = {}

    # -- who, what, when

    def first_contact(self) -> _Contact:
        """A new contact. Each draws from generators of its own, seeded by its number: the
        n-th contact is the same whatever the end time and whatever came before."""
        draws = random.Random(f"{self.seed}/{self.drawn}")
        self.times = random.Random(f"{self.seed}/{self.drawn}/times")
        self.drawn += 1
        session_id, code = _id(draws), _code(draws)
        motive = draws.choices(self.motives, cum_weights=self.motive_weights)[0]
        often = draws.random() < self.rates.frequent
        customer = f"C{draws.randint(1, self.frequent if often else self.population):03d}"
        at = self._moment()
        return _Contact(
            customer, motive.id, motive.journey, at, session_id, code, draws, self.times
        )

    def _moment(self) -> datetime:
        """A time in the window, as often as the contact centre's week and day have them."""
        span = (self.clock.end - self.start).total_seconds() - 3600  # the last hour: none
        while True:
            moment = self.start + timedelta(seconds=self.times.uniform(0, span))
            weight = WEEKDAYS[moment.weekday()] * HOURS[moment.hour] / max(HOURS)
            if self.times.random() < weight:
                return moment

    def again(self, contact: _Contact, session: Session) -> _Contact | None:
        """The same customer back on the same motive, a few hours or days later, or None."""
        if contact.journey in self.outbound:
            return None  # an outbound message is answered, not called back about
        resolved = session.outcome == "resolved"
        chance = self.rates.repeat_resolved if resolved else self.rates.repeat_unresolved
        if contact.draws.random() >= chance:
            return None
        times = contact.times
        hours = min(times.lognormvariate(math.log(20), 1.1), 240.0)
        at = contact.at + timedelta(hours=max(hours, 1.0))
        if HOURS[at.hour] < 5:  # at night: the next morning
            at = at.replace(hour=times.randint(8, 10), minute=times.randint(0, 59)) + timedelta(
                days=1 if at.hour > 12 else 0
            )
        if at > self.clock.end - timedelta(hours=1):
            return None  # has not happened yet
        ids = _id(contact.draws), _code(contact.draws)
        return _Contact(
            contact.customer, contact.motive, contact.journey, at, *ids, contact.draws, times, True
        )

    # -- one contact

    def play(self, contact: _Contact) -> Session:
        rng = self.rng = contact.draws
        self.times = contact.times
        journey = self.library.journeys[contact.journey]
        script = self._script(contact, journey)
        trigger = self.outbound.get(journey.id)
        channel = script.channel or (trigger.channel if trigger else None) or self._channel(journey)
        locales = journey.locales or ("en",)
        locale = script.locale or ("fr" if "fr" in locales and rng.random() < 0.6 else locales[0])
        executor = _PacedStubs(script.stubs, self)
        service = Sessions(self.library, self.store, executor)
        self.clock.set(contact.at)
        session = service.start(
            journey.id,
            script.inputs,
            channel=channel,
            locale=locale,
            contact_id=contact.contact_code,
            agent=None if channel in ("selfcare", "sms") else f"agent-{rng.randint(1, AGENTS):02d}",
            actor=f"trigger {trigger.event}" if trigger else None,
            session_id=contact.session_id,
            motive=contact.motive,
            role=script.role or ("customer" if trigger else None),
            # A simulated customer answering is proven: logged in on the company's site, or
            # written to by the back office (a trigger), so that the journeys' paths and the
            # customer's repeat contacts are as recorded.
            identity=_proven(channel, bool(trigger), script.role, script.inputs),
        )
        session, switched = self._answer(service, session, AnswerBook(script.answers))
        if session.status == SURVEY:
            self.clock.wait(self.times.uniform(10, 120))
            draw = rng.random()
            if draw < self.rates.survey:
                # Moving channel costs a point; a long journey up to one more.
                effort = switched + min(1.0, max(0, len(session.path) - 8) / 10)
                ces, nps = survey_scores(rng, session.outcome, effort)
                session = service.survey(session.id, ces, nps)
                self.summary.surveys += 1
            elif draw < self.rates.survey + self.rates.skip:
                session = service.skip_survey(session.id)
        failed = bool(script.failing and any(c[0] == script.failing for c in executor.calls))
        self._count(contact, session, switched, failed)
        return session

    def _script(self, contact: _Contact, journey: Journey) -> _Script:
        """A scenario of the journey, for this customer, perhaps with an action that fails."""
        cases = self.cases[journey.id]
        scenario = self.rng.choices(cases, cum_weights=self.weights[journey.id])[0]
        known = _customer_of(scenario)

        def ours(value: Mapping[str, Any]) -> dict[str, Any]:
            return dict(_replace(value, known, contact.customer) if known else value)

        stubs = ours(scenario.actions)
        failing = self._failing(journey, stubs) if self.rng.random() < self.rates.failure else None
        if failing:
            stubs[failing] = {"error": self.rng.choice(ERRORS)}
        inputs = ours(scenario.inputs)
        if "customer_id" in journey.inputs:  # so that the session records its customer
            inputs["customer_id"] = contact.customer
        answers = ours(scenario.answers)
        return _Script(
            stubs, inputs, answers, failing, scenario.channel, scenario.locale, scenario.role
        )

    def _count(self, contact: _Contact, session: Session, switched: bool, failed: bool) -> None:
        summary = self.summary
        summary.sessions += 1
        summary.events += session.seq  # one event per step: seq counts them
        summary.outcomes[session.outcome or "abandoned"] += 1
        summary.motives[contact.motive] += 1
        summary.repeats += contact.repeat
        summary.channel_changes += switched
        summary.failures += failed

    def _answer(
        self, service: Sessions, session: Session, book: AnswerBook
    ) -> tuple[Session, bool]:
        """Answer step by step, perhaps moving to another channel or giving up on the way."""
        rng = self.rng
        give_up = self.rates.abandon * (2 if session.channel == "selfcare" else 1)
        stop_at = rng.randint(0, 3) if rng.random() < give_up else None
        move_at = rng.randint(0, 2) if rng.random() < self.rates.channel_change else None
        switched = False
        answered = 0
        while session.status == WAITING and session.node:
            node = session.node
            if answered == move_at and not switched:
                self.clock.wait(self.times.uniform(120, 3 * 3600))
                journey = self.library.journeys[session.journey]
                session = service.resume(session.id, self._channel(journey, not_on=session.channel))
                switched = True
            if answered == stop_at:
                break
            found, value = book.next_for(node, self._names(service, session))
            if not found:
                found, value = self._improvise(service, session)
            if not found:
                break  # nobody knows what to answer: the contact ends there
            self.clock.wait(self.times.triangular(5, 90, 20))
            try:
                session = service.answer(session.id, node, value, seq=session.seq)
            except SessionError:
                break
            answered += 1
        return session, switched

    def _names(self, service: Sessions, session: Session) -> list[str]:
        if session.journey not in self.names:
            definitions = service.bundle_of(session).definitions
            self.names[session.journey] = node_names(definitions, session.journey)
        return self.names[session.journey]

    def _improvise(self, service: Sessions, session: Session) -> tuple[bool, Any]:
        """An answer for a step the scenario does not reach (after a failure): one that
        another scenario gives there, or any option of a choice."""
        node = session.node or ""
        pool = self.pools.get(session.journey, {})
        values = pool.get(node) or pool.get(node.rsplit("/", 1)[-1])
        if values:
            return True, self.rng.choice(values)
        found = _node(service.bundle_of(session).definitions, session)
        if found is not None and found.options:
            return True, self.rng.choice(found.options).value
        return False, None

    def _failing(self, journey: Journey, stubs: Mapping[str, Any]) -> str | None:
        """An action of the contact that has an ``on_error`` path, to make it fail."""
        if journey.id not in self.fallible:
            definitions = self.library.bundle(journey.id).definitions
            self.fallible[journey.id] = sorted(
                {
                    n.action
                    for j in definitions.values()
                    for n in j.nodes.values()
                    if n.kind == "action" and n.on_error and n.action
                }
            )
        candidates = [
            a
            for a in self.fallible[journey.id]
            if a in stubs and not (isinstance(stubs[a], Mapping) and "error" in stubs[a])
        ]
        return self.rng.choice(candidates) if candidates else None

    def _channel(self, journey: Journey, not_on: str | None = None) -> str:
        allowed = [c for c in journey.channels or CHANNELS if c != not_on] or [not_on or "phone"]
        return self.rng.choices(allowed, [CHANNELS.get(c, 1) for c in allowed])[0]


# ---------------------------------------------------------------------- scenarios


def _scenarios(library: Library) -> dict[str, list[Scenario]]:
    """The scenarios of each journey of the library, from its ``*.test.yaml`` files."""
    found: dict[str, list[Scenario]] = {}
    for path in scenario_files(library):
        try:
            data = load_file(library, path)
        except YamlError:
            continue  # `journeys test` reports it
        if isinstance(data, YamlMap):
            spec = build.build_scenarios(data, str(path))
            if spec.journey in library.journeys:
                found.setdefault(spec.journey, []).extend(spec.scenarios)
    return found


def _weight(scenario: Scenario) -> float:
    failing = any(isinstance(s, Mapping) and "error" in s for s in scenario.actions.values())
    return OUTCOME_WEIGHTS.get(scenario.outcome or "", 1.0) * (0.5 if failing else 1.0)


def _answer_pool(scenarios: list[Scenario]) -> dict[str, list[Any]]:
    """Every answer the scenarios give at each node (``{each: [...]}`` flattened)."""
    pool: dict[str, list[Any]] = {}
    for scenario in scenarios:
        for node, value in scenario.answers.items():
            each = value.get("each") if isinstance(value, Mapping) else None
            pool.setdefault(node, []).extend(each if isinstance(each, list) else [value])
    return pool


def _customer_of(scenario: Scenario) -> str | None:
    """The customer a scenario is written for: its input, or its answer to the identification."""
    for value in (
        scenario.inputs.get("customer_id"),
        scenario.answers.get("identify/ask_customer_id"),
        scenario.answers.get("ask_customer_id"),
    ):
        if isinstance(value, str):
            return value
    return None


def _replace(value: Any, old: str, new: str) -> Any:
    """``value`` with every string equal to ``old`` replaced by ``new``, at any depth."""
    if isinstance(value, str):
        return new if value == old else value
    if isinstance(value, Mapping):
        return {k: _replace(v, old, new) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_replace(v, old, new) for v in value]
    return value


def _node(definitions: Mapping[str, Journey], session: Session) -> Node | None:
    frame = session.stack[-1] if session.stack else None
    journey = definitions.get(frame.journey if frame else session.journey)
    local = (session.node or "")[len(frame.prefix) if frame else 0 :]
    return journey.nodes.get(local) if journey else None


def _id(rng: random.Random) -> str:
    return "s_" + "".join(rng.choices(_ID, k=16))


def _code(rng: random.Random) -> str:
    code = "".join(rng.choices(_CODE, k=8))
    return f"{code[:4]}-{code[4:]}"


def _proven(
    channel: str | None, outbound: bool, role: str | None, inputs: Mapping[str, Any]
) -> dict[str, Any] | None:
    customer = inputs.get("customer_id")
    if not isinstance(customer, str):
        return None
    if outbound:
        return {"customer_id": customer, "by": "event"}
    if channel == "selfcare" or role == "customer":
        return {"customer_id": customer, "by": "signed"}
    return None
