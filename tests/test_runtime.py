"""The runtime as users rely on it: every node kind, "never ask twice", inputs, locales,
concurrency, version pinning, replay, and the scenario runner with coverage.

Small journeys are written into temporary libraries and driven through
``Sessions(Library(path), MemoryStore(), StubExecutor(stubs))``; the concurrency rules are
also checked on the pure ``step``. The shipped library's scenarios must all pass, cover every
node, and replay exactly.
"""

from __future__ import annotations

import textwrap
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from engine.definitions import build
from engine.definitions.library import Bundle, Library
from engine.definitions.model import Loc, Scenario
from engine.definitions.yamlsafe import YamlMap, load
from engine.errors import Conflict, InvalidAnswer, MissingInput, SessionError
from engine.insight.scenarios import (
    AnswerBook,
    Coverage,
    StubExecutor,
    answer_until_stuck,
    coverage_of,
    drive,
    run_file,
    run_scenario,
    scenario_files,
)
from engine.sessions.runtime import (
    ActionDone,
    Answer,
    Effect,
    Ended,
    RunAction,
    RunAfter,
    Session,
    SkipSurvey,
    Start,
    SurveyAnswer,
    current_step,
    new_session,
    step,
)
from engine.sessions.service import ActionOutcome, MemoryStore, Sessions, replay
from tests.conftest import SHIPPED, Check

# ----------------------------------------------------------------------------- journeys

MOTIVES = """
motives:
  delivery.missing:
    title: {en: Parcel not received, fr: Colis non reçu}
    category: delivery
    journey: order
    keywords: [parcel]
    sources: [orders]
"""

ORDER = """
journey: order
version: 1
title: Parcel not received
motives: [delivery.missing]
channels: [phone, chat]
locales: [en, fr]
inputs:
  customer_id: {type: string, description: the CRM customer number}
  tier: {type: string, enum: [standard, gold], default: standard}
  order_id: {type: [string, "null"], default: null}
start: hello
nodes:
  hello:
    kind: say
    say:
      en: "Hello {{ customer_id }}, tier {{ tier }}."
      fr: "Bonjour {{ customer_id }}, niveau {{ tier }}."
    set: {code: "==5", greeted: true}
    next: ask_order
  ask_order:
    kind: ask
    say: {en: "Which order is it about?", fr: "Pour quelle commande ?"}
    field: order_id
    schema: {type: string, pattern: "^[0-9]{8}$"}
    set: {order_ref: '="No. " + order_id'}
    next: ask_count
  ask_count:
    kind: ask
    say: {en: "How many parcels?", fr: "Combien de colis ?"}
    field: parcels
    schema: {type: integer, minimum: 1}
    next: fetch
  fetch:
    kind: action
    action: orders.get_tracking
    input: {order_id: =order_id}
    output: tracking
    retries: 2
    timeout: 30
    set: {late: =tracking.days_late > 5, checked: yes}
    on_error: sorry
    next: route
  route:
    kind: decide
    branches:
      - {if: tracking.status == "delivered", next: delivered}
      - {if: late or tier == "gold", next: offer}
    else: reassure
  offer:
    kind: choose
    say:
      en: "Sorry for the {{ tracking.days_late }} days of delay. What would you prefer?"
      fr: "Désolés pour ces {{ tracking.days_late }} jours de retard. Que préférez-vous ?"
    field: compensation
    options:
      - value: refund_shipping
        label: {en: "Refund of {{ tracking.shipping_cost }} EUR", fr: "Remboursement de {{ tracking.shipping_cost }} EUR"}
        next: refund
      - value: voucher
        label: {en: A voucher, fr: Un bon d'achat}
      - value: no
        label: {en: Nothing thanks, fr: Rien merci}
        next: reassure
    next: voucher_note
  voucher_note:
    kind: say
    say: {en: "A voucher it is.", fr: "Va pour un bon."}
    next: done
  refund:
    kind: action
    action: payments.refund
    input: {order_id: =order_id, amount: =tracking.shipping_cost, reason: late delivery}
    wait: false
    set: {refund_requested: true}
    next: done
  done:
    kind: end
    outcome: resolved
    say: {en: "Done, {{ customer_id }}.", fr: "C'est fait, {{ customer_id }}."}
    survey: [ces, nps]
    after:
      - action: crm.log_contact
        input: {customer_id: =customer_id, motive: delivery.missing, outcome: resolved}
  delivered:
    kind: end
    outcome: unresolved
    say: {en: "It was delivered.", fr: "Il a été livré."}
  reassure:
    kind: end
    outcome: callback
    say: {en: "It is on its way.", fr: "Il est en route."}
  sorry:
    kind: say
    say: {en: "The tracking failed.", fr: "Le suivi a échoué."}
    next: to_logistics
  to_logistics:
    kind: handoff
    queue: logistics
    reason: Tracking unavailable
    say: {en: "I am transferring you.", fr: "Je vous transfère."}
"""

IDENTIFY = """
journey: identify
version: 1
title: Identify the customer
motives: []
inputs:
  customer_id: {type: [string, "null"], default: null}
start: ask_id
nodes:
  ask_id:
    kind: ask
    say: "Your customer number?"
    field: customer_id
    schema: {type: string, pattern: "^C[0-9]{3}$"}
    next: lookup
  lookup:
    kind: action
    action: crm.get_customer
    input: {customer_id: =customer_id}
    output: customer
    on_error: lost
    next: found
  found:
    kind: end
    outcome: resolved
    say: "Found {{ customer.name }}."
  lost:
    kind: handoff
    queue: identification
    reason: Customer not found
    say: "Transferring you."
"""

PARENT = """
journey: parent
version: 1
title: Calls identify
motives: []
inputs:
  customer_id: {type: [string, "null"], default: null}
start: identify
nodes:
  identify:
    kind: journey
    journey: identify
    set: {greeting: '="Hi " + customer_id'}
    next: ask_topic
  ask_topic:
    kind: ask
    say: "What can I do for you, {{ customer.name }}?"
    field: topic
    schema: {type: string}
    next: bye
  bye:
    kind: end
    outcome: callback
    say: "Bye {{ customer.name }}."
"""

CONTACT = """
journey: contact
version: 1
title: Contact details
motives: []
inputs:
  phone: {type: [string, "null"], default: null}
  email: {type: [string, "null"], default: null}
start: ask_phone
nodes:
  ask_phone:
    kind: ask
    say: "Your phone number?"
    field: phone
    schema: {type: string}
    next: ask_email
  ask_email:
    kind: ask
    say: "Is {{ email }} still your e-mail address? Give it again."
    field: email
    schema: {type: string, pattern: "@"}
    confirm: true
    next: done
  done:
    kind: end
    outcome: resolved
"""

TYPED = """
journey: typed
version: 1
title: Typed inputs
motives: []
inputs:
  count: {type: integer, description: the number of lines}
  urgent: {type: boolean, default: false}
  label: {type: string, default: none given}
  ratio: {type: number, default: 1.5}
start: done
nodes:
  done:
    kind: end
    outcome: resolved
"""

BONJOUR = """
journey: bonjour
version: 1
title: French first
motives: []
locales: [fr, en]
start: ask_name
nodes:
  ask_name:
    kind: ask
    say: {fr: "Votre nom ?", en: "Your name?"}
    field: name
    schema: {type: string}
    next: done
  done:
    kind: end
    outcome: resolved
    say: {fr: "Merci {{ name }}.", en: "Thank you {{ name }}."}
"""

VERSION_1 = """
journey: versioned
version: 1
title: Versioned
motives: []
start: ask_name
nodes:
  ask_name:
    kind: ask
    field: name
    schema: {type: string}
    next: done
  done:
    kind: end
    outcome: resolved
"""

VERSION_2 = """
journey: versioned
version: 2
title: Versioned
motives: []
start: ask_name
nodes:
  ask_name:
    kind: ask
    field: name
    schema: {type: string}
    next: ask_reason
  ask_reason:
    kind: ask
    field: reason
    schema: {type: string}
    next: later
  later:
    kind: end
    outcome: callback
"""

TWICE = """
journey: twice
version: 1
title: A sub-journey node and a node of the caller share an id
motives: []
start: identify
nodes:
  identify:
    kind: journey
    journey: identify
    next: ask_id
  ask_id:
    kind: ask
    say: "Your loyalty card number?"
    field: card
    schema: {type: string}
    next: bye
  bye:
    kind: end
    outcome: resolved
"""

FILES = {
    "motives.yaml": MOTIVES,
    "order.yaml": ORDER,
    "shared/identify.yaml": IDENTIFY,
    "parent.yaml": PARENT,
    "contact.yaml": CONTACT,
    "typed.yaml": TYPED,
    "bonjour.yaml": BONJOUR,
    "versioned.yaml": VERSION_1,
    "twice.yaml": TWICE,
}

LATE = {"status": "in_transit", "days_late": 7, "shipping_cost": 4.9}
ANN = {"customer_id": "C001", "name": "Ann", "tier": "gold"}


# ------------------------------------------------------------------------------ helpers


def write_library(root: Path, files: Mapping[str, str]) -> Path:
    """A library folder holding ``files`` (name -> YAML text)."""
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
    return root


class RecordingExecutor(StubExecutor):
    """A stub executor that also keeps the effects it ran and the session state at the time."""

    def __init__(self, stubs: Mapping[str, Any]) -> None:
        super().__init__(stubs)
        self.runs: list[RunAction] = []
        self.afters: list[tuple[RunAfter, str, str | None]] = []

    def run(self, effect: RunAction, session: Session) -> ActionOutcome:
        self.runs.append(effect)
        return super().run(effect, session)

    def run_after(self, effect: RunAfter, session: Session) -> ActionOutcome:
        self.afters.append((effect, session.status, session.outcome))
        return super().run_after(effect, session)


@dataclass
class Harness:
    library: Library
    store: MemoryStore
    executor: RecordingExecutor
    sessions: Sessions

    def step_view(self, session: Session) -> dict[str, Any] | None:
        return current_step(self.sessions.bundle_of(session).definitions, session)

    def refused(
        self, session_id: str, call: Callable[[], object], error: type[SessionError]
    ) -> SessionError:
        """``call`` is refused with ``error`` and the stored session and its log are unchanged."""
        before = self.store.load(session_id).to_dict()
        logged = len(self.store.events(session_id))
        with pytest.raises(error) as info:
            call()
        assert self.store.load(session_id).to_dict() == before
        assert len(self.store.events(session_id)) == logged
        return info.value


def harness(
    path: Path, stubs: Mapping[str, Any] | None = None, store: MemoryStore | None = None
) -> Harness:
    library = Library(path)
    store = store if store is not None else MemoryStore()
    executor = RecordingExecutor(stubs or {})
    return Harness(library, store, executor, Sessions(library, store, executor))


@pytest.fixture
def lib(tmp_path: Path) -> Path:
    return write_library(tmp_path / "lib", FILES)


def start_pure(
    path: Path, journey: str, inputs: Mapping[str, Any], **details: Any
) -> tuple[Bundle, Session, list[Effect]]:
    bundle = Library(path).bundle(journey)
    fresh = new_session("s_pure", bundle.root, bundle.hash, **details)
    session, effects = step(bundle.definitions, fresh, Start(inputs))
    return bundle, session, effects


def to_offer(h: Harness, **start: Any) -> Session:
    """An `order` session waiting at the `offer` choice (tracking 7 days late)."""
    s = h.sessions.start("order", {"customer_id": "C042"}, **start)
    s = h.sessions.answer(s.id, "ask_order", "12345678")
    s = h.sessions.answer(s.id, "ask_count", 1)
    assert (s.status, s.node) == ("waiting", "offer")
    return s


def check_replays(store: MemoryStore) -> int:
    """Every session of the store rebuilt from its events alone equals the stored one."""
    count = 0
    for session_id in store:
        stored = store.load(session_id)
        records = store.events(session_id)
        rebuilt = replay(store.load_bundle(stored.definition), records[0], records)
        assert rebuilt.to_dict() == stored.to_dict(), session_id
        count += 1
    return count


def test_the_test_library_is_valid(lib: Path, check: Check) -> None:
    """The journeys below exercise valid definitions only, not undefined behaviour."""
    write_library(lib, {"versioned.yaml": VERSION_2})
    assert [f"{f.file}:{f.line} {f.code} {f.message}" for f in check(lib).errors] == []


# ------------------------------------------------------------------------------- say


def test_say_text_is_shown_with_the_next_interactive_step(lib: Path) -> None:
    h = harness(lib)
    s = h.sessions.start("order", {"customer_id": "C042"})
    assert (s.status, s.node, s.path) == ("waiting", "ask_order", ["hello", "ask_order"])
    assert s.messages == ["Hello C042, tier standard."]
    view = h.step_view(s)
    assert view is not None
    assert view["messages"] == ["Hello C042, tier standard."]
    assert (view["node"], view["kind"], view["text"]) == (
        "ask_order",
        "ask",
        "Which order is it about?",
    )
    assert view["field"] == "order_id"
    assert view["schema"] == {"type": "string", "pattern": "^[0-9]{8}$"}
    # Once the step is answered, the texts already shown are not shown again.
    s = h.sessions.answer(s.id, "ask_order", "12345678")
    assert s.messages == []
    assert h.step_view(s)["messages"] == []  # type: ignore[index]


def test_say_set_applies_literals_and_doubled_equals(lib: Path) -> None:
    s = harness(lib).sessions.start("order", {"customer_id": "C042"})
    assert s.context["code"] == "=5"
    assert s.context["greeted"] is True


# ------------------------------------------------------------------------------- ask


def test_ask_stores_the_answer_then_applies_its_set(lib: Path) -> None:
    h = harness(lib)
    s = h.sessions.start("order", {"customer_id": "C042"})
    s = h.sessions.answer(s.id, "ask_order", "12345678")
    assert s.context["order_id"] == "12345678"
    assert s.context["order_ref"] == "No. 12345678"  # `set` read the field just stored
    assert (s.node, s.path[-1]) == ("ask_count", "ask_count")


@pytest.mark.parametrize(
    ("node", "value", "expected"),
    [
        ("ask_order", "1234", "^[0-9]{8}$"),
        ("ask_order", "abcdefgh", "expected format"),
        ("ask_order", 12345678, "is not text"),
        ("ask_count", "3", "is not a whole number"),
        ("ask_count", 2.5, "is not a whole number"),
        ("ask_count", 0, "minimum of 1"),
    ],
)
def test_ask_refuses_an_answer_its_schema_does_not_accept(
    lib: Path, node: str, value: object, expected: str
) -> None:
    h = harness(lib)
    s = h.sessions.start("order", {"customer_id": "C042"})
    if node == "ask_count":
        s = h.sessions.answer(s.id, "ask_order", "12345678")
    error = h.refused(s.id, lambda: h.sessions.answer(s.id, node, value), InvalidAnswer)
    assert expected in error.message
    assert error.node == node
    assert error.field == ("order_id" if node == "ask_order" else "parcels")
    stored = h.store.load(s.id)
    assert (stored.seq, stored.node, stored.context) == (s.seq, s.node, s.context)


def test_ask_answer_given_as_text_is_converted_to_its_type(lib: Path) -> None:
    h = harness(lib, {"orders.get_tracking": LATE})
    s = h.sessions.start("order", {"customer_id": "C042"})
    s = h.sessions.answer(s.id, "ask_order", "12345678", as_text=True)
    assert s.context["order_id"] == "12345678"  # a string schema keeps the text
    s = h.sessions.answer(s.id, "ask_count", " 3 ", as_text=True)
    assert s.context["parcels"] == 3
    assert type(s.context["parcels"]) is int


# ---------------------------------------------------------------------------- choose


@pytest.mark.parametrize(
    ("value", "path_after", "outcome"),
    [
        ("refund_shipping", ["refund", "done"], "resolved"),  # the option's next
        ("voucher", ["voucher_note", "done"], "resolved"),  # no option next: the node's next
        ("no", ["reassure"], "callback"),
    ],
)
def test_choose_stores_the_option_value_and_option_next_wins(
    lib: Path, value: str, path_after: list[str], outcome: str
) -> None:
    h = harness(lib, {"orders.get_tracking": LATE})
    s = to_offer(h)
    s = h.sessions.answer(s.id, "offer", value)
    assert s.context["compensation"] == value
    assert type(s.context["compensation"]) is str  # an unquoted `no` stays the text "no"
    assert s.path[s.path.index("offer") + 1 :] == path_after
    assert s.outcome == outcome


def test_choose_shows_its_options_with_rendered_labels(lib: Path) -> None:
    h = harness(lib, {"orders.get_tracking": LATE})
    view = h.step_view(to_offer(h))
    assert view is not None
    assert view["text"] == "Sorry for the 7 days of delay. What would you prefer?"
    assert view["options"] == [
        {"value": "refund_shipping", "label": "Refund of 4.90 EUR"},
        {"value": "voucher", "label": "A voucher"},
        {"value": "no", "label": "Nothing thanks"},
    ]


@pytest.mark.parametrize("value", ["cash", False, None, "refund"])
def test_choose_refuses_an_unknown_option(lib: Path, value: object) -> None:
    h = harness(lib, {"orders.get_tracking": LATE})
    s = to_offer(h)
    error = h.refused(s.id, lambda: h.sessions.answer(s.id, "offer", value), InvalidAnswer)
    assert "'refund_shipping'" in error.message and "'voucher'" in error.message
    assert (error.node, error.field) == ("offer", "compensation")


# ---------------------------------------------------------------------------- decide


@pytest.mark.parametrize(
    ("tracking", "tier", "goes_to", "outcome"),
    [
        # both branches are true: the first wins
        (
            {"status": "delivered", "days_late": 9, "shipping_cost": 1},
            "gold",
            "delivered",
            "unresolved",
        ),
        ({"status": "in_transit", "days_late": 9, "shipping_cost": 1}, "standard", "offer", None),
        ({"status": "in_transit", "days_late": 0, "shipping_cost": 1}, "gold", "offer", None),
        (
            {"status": "in_transit", "days_late": 2, "shipping_cost": 1},
            "standard",
            "reassure",
            "callback",
        ),
    ],
)
def test_decide_takes_the_first_true_branch_else_its_else(
    lib: Path, tracking: dict[str, Any], tier: str, goes_to: str, outcome: str | None
) -> None:
    h = harness(lib, {"orders.get_tracking": tracking})
    s = h.sessions.start("order", {"customer_id": "C042", "tier": tier})
    s = h.sessions.answer(s.id, "ask_order", "12345678")
    s = h.sessions.answer(s.id, "ask_count", 1)
    assert s.path[s.path.index("route") + 1] == goes_to
    assert s.outcome == outcome
    assert s.context["late"] is (tracking["days_late"] > 5)


# ---------------------------------------------------------------------------- action


def test_action_output_is_stored_and_its_set_reads_it(lib: Path) -> None:
    h = harness(lib, {"orders.get_tracking": LATE})
    s = to_offer(h)
    assert s.context["tracking"] == LATE
    assert s.context["late"] is True
    assert s.context["checked"] == "yes"  # YAML 1.2: `yes` is text
    assert "last_error" not in s.context
    [run] = [r for r in h.executor.runs if r.action == "orders.get_tracking"]
    assert (run.node, run.input, run.wait, run.retries, run.timeout) == (
        "fetch",
        {"order_id": "12345678"},
        True,
        2,
        30.0,
    )
    assert run.key.startswith(s.id)


def test_waiting_action_makes_the_pure_session_wait_for_its_result(lib: Path) -> None:
    bundle, s, _ = start_pure(lib, "order", {"customer_id": "C042", "order_id": "12345678"})
    s, effects = step(bundle.definitions, s, Answer("ask_count", 2))
    assert (s.status, s.node) == ("running", "fetch")
    [effect] = effects
    assert effect == RunAction(
        "fetch", "orders.get_tracking", {"order_id": "12345678"}, True, 2, 30.0, "s_pure:fetch:1"
    )
    assert "tracking" not in s.context
    s, _ = step(bundle.definitions, s, ActionDone("fetch", LATE))
    assert (s.status, s.node, s.context["tracking"]) == ("waiting", "offer", LATE)


def test_failed_action_goes_to_on_error_without_output_or_set(lib: Path) -> None:
    h = harness(lib, {"orders.get_tracking": {"error": "carrier down"}})
    s = h.sessions.start("order", {"customer_id": "C042", "order_id": "12345678"})
    s = h.sessions.answer(s.id, "ask_count", 1)
    assert s.path == ["hello", "ask_count", "fetch", "sorry", "to_logistics"]
    assert s.context["last_error"]["message"] == "carrier down"
    assert s.context["last_error"]["node"] == "fetch"
    for name in ("tracking", "late", "checked"):
        assert name not in s.context
    assert s.messages == ["The tracking failed.", "I am transferring you."]
    assert (s.status, s.outcome) == ("ended", "escalated")


@pytest.mark.parametrize(
    ("tracking", "node", "reason"),
    [
        ({}, "fetch", "has no 'days_late'"),  # the action's `set` cannot be computed
        ({"days_late": 1}, "route", "has no 'status'"),  # the decide cannot be evaluated
    ],
)
def test_a_session_that_cannot_go_on_ends_unresolved_not_stuck(
    lib: Path, tracking: dict[str, Any], node: str, reason: str
) -> None:
    h = harness(lib, {"orders.get_tracking": tracking})
    s = h.sessions.start("order", {"customer_id": "C042", "order_id": "12345678"})
    s = h.sessions.answer(s.id, "ask_count", 1)
    assert (s.status, s.outcome, s.node) == ("ended", "unresolved", None)
    assert s.error is not None
    assert s.error["node"] == node and reason in s.error["message"]
    assert h.store.load(s.id).to_dict() == s.to_dict()
    assert [r.action for r in h.executor.runs] == ["orders.get_tracking"]  # run once
    assert check_replays(h.store) == 1


def test_a_crash_while_an_action_runs_loses_no_step_and_repeats_the_same_key(lib: Path) -> None:
    """The answer and the results of the actions it ran are saved together: a process that
    dies while the action runs saved nothing of that step, and the answer given again runs
    the action under the same idempotency key (the back office recognises it)."""

    class Crash(StubExecutor):
        def run(self, effect: RunAction, session: Session) -> ActionOutcome:
            crashed_keys.append(effect.key)
            raise KeyboardInterrupt  # the process dies while the action runs

    crashed_keys: list[str] = []
    store = MemoryStore()
    s = harness(lib, store=store).sessions.start("order", {"customer_id": "C042"})
    crashed = Sessions(Library(lib), store, Crash({}))
    crashed.answer(s.id, "ask_order", "12345678")
    before = store.load(s.id).to_dict()
    with pytest.raises(KeyboardInterrupt):
        crashed.answer(s.id, "ask_count", 1)
    assert store.load(s.id).to_dict() == before  # waiting at ask_count, as before the crash
    h = harness(lib, {"orders.get_tracking": LATE}, store=store)
    s = h.sessions.answer(s.id, "ask_count", 1)
    assert (s.status, s.node, s.context["tracking"]) == ("waiting", "offer", LATE)
    [run] = h.executor.runs
    assert run.key == crashed_keys[0] == f"{s.id}:fetch:1"
    assert check_replays(store) == 1


def test_action_without_wait_does_not_hold_the_session(lib: Path) -> None:
    bundle, s, _ = start_pure(lib, "order", {"customer_id": "C042", "order_id": "12345678"})
    s, _ = step(bundle.definitions, s, Answer("ask_count", 1))
    s, _ = step(bundle.definitions, s, ActionDone("fetch", LATE))
    s, effects = step(bundle.definitions, s, Answer("offer", "refund_shipping"))
    refund = [e for e in effects if isinstance(e, RunAction)]
    assert [(e.action, e.wait, dict(e.input)) for e in refund] == [
        (
            "payments.refund",
            False,
            {"order_id": "12345678", "amount": 4.9, "reason": "late delivery"},
        )
    ]
    # No ActionDone came, yet the session went on to the end.
    assert (s.status, s.outcome, s.path[-2:]) == ("survey", "resolved", ["refund", "done"])
    assert s.context["refund_requested"] is True
    # Through the service, the executor ran it and the session did not wait.
    h = harness(lib, {"orders.get_tracking": LATE})
    s2 = h.sessions.answer(to_offer(h).id, "offer", "refund_shipping")
    assert [r.action for r in h.executor.runs] == ["orders.get_tracking", "payments.refund"]
    assert s2.status == "survey"


# --------------------------------------------------------------------------- journey


def test_sub_journey_shares_context_and_returns_to_the_callers_next(lib: Path) -> None:
    h = harness(lib, {"crm.get_customer": ANN})
    s = h.sessions.start("parent", {})
    assert (s.node, s.path) == ("identify/ask_id", ["identify", "identify/ask_id"])
    assert h.step_view(s)["text"] == "Your customer number?"  # type: ignore[index]
    s = h.sessions.answer(s.id, "ask_id", "C001")  # the bare name, unambiguous
    assert s.path == [
        "identify",
        "identify/ask_id",
        "identify/lookup",
        "identify/found",
        "ask_topic",
    ]
    assert [r.node for r in h.executor.runs] == ["identify/lookup"]
    assert s.context["customer_id"] == "C001"
    assert s.context["customer"] == ANN
    assert s.context["greeting"] == "Hi C001"  # the journey node's `set`, after the return
    assert s.messages == ["Found Ann."]
    assert h.step_view(s)["text"] == "What can I do for you, Ann?"  # type: ignore[index]
    s = h.sessions.answer(s.id, "ask_topic", "billing")
    # The sub-journey's end (resolved) did not end the session: the caller's end did.
    assert (s.status, s.outcome, s.path[-1]) == ("ended", "callback", "bye")
    assert s.messages == ["Bye Ann."]


def test_sub_journey_node_may_be_answered_by_its_qualified_name(lib: Path) -> None:
    h = harness(lib, {"crm.get_customer": ANN})
    s = h.sessions.start("parent", {})
    s = h.sessions.answer(s.id, "identify/ask_id", "C001")
    assert s.node == "ask_topic"


def test_a_bare_name_that_is_ambiguous_does_not_answer_a_sub_journey_node(lib: Path) -> None:
    """`ask_id` is a node of `twice` itself: it does not name `identify/ask_id`."""
    h = harness(lib, {"crm.get_customer": ANN})
    s = h.sessions.start("twice", {})
    assert s.node == "identify/ask_id"
    error = h.refused(s.id, lambda: h.sessions.answer(s.id, "ask_id", "C001"), Conflict)
    assert "'identify/ask_id'" in error.message
    s = h.sessions.answer(s.id, "identify/ask_id", "C001")
    assert s.node == "ask_id"
    s = h.sessions.answer(s.id, "ask_id", "L-77")
    assert (s.outcome, s.context["customer_id"], s.context["card"]) == ("resolved", "C001", "L-77")


@pytest.mark.parametrize(
    ("answers", "status", "node"),
    [
        ({"identify/ask_id": "C001", "ask_id": "L-77"}, "ended", None),
        ({"ask_id": "L-77"}, "waiting", "identify/ask_id"),  # not taken for the sub-journey
    ],
)
def test_answer_book_uses_a_bare_name_only_when_unambiguous(
    lib: Path, answers: dict[str, str], status: str, node: str | None
) -> None:
    h = harness(lib, {"crm.get_customer": ANN})
    s = drive(h.sessions, "twice", {}, AnswerBook(answers))
    assert (s.status, s.node) == (status, node)
    s = drive(h.sessions, "parent", {}, AnswerBook({"ask_id": "C001", "ask_topic": "x"}))
    assert s.outcome == "callback"  # in `parent`, the bare `ask_id` is unambiguous


def test_sub_journey_skips_what_the_caller_knows(lib: Path) -> None:
    h = harness(lib, {"crm.get_customer": ANN})
    s = h.sessions.start("parent", {"customer_id": "C001"})
    assert s.path == ["identify", "identify/lookup", "identify/found", "ask_topic"]
    assert h.executor.runs[0].input == {"customer_id": "C001"}


def test_handoff_inside_a_sub_journey_ends_the_whole_session(lib: Path) -> None:
    h = harness(lib, {"crm.get_customer": {"error": "no such customer"}})
    s = h.sessions.start("parent", {"customer_id": "C999"})
    assert s.path == ["identify", "identify/lookup", "identify/lost"]
    assert (s.status, s.outcome, s.node) == ("ended", "escalated", None)
    assert s.handoff == {
        "queue": "identification",
        "reason": "Customer not found",
        "node": "identify/lost",
    }
    assert "ask_topic" not in s.path and "greeting" not in s.context
    h.refused(s.id, lambda: h.sessions.answer(s.id, "ask_topic", "x"), Conflict)


# --------------------------------------------------------------------------- handoff


def test_handoff_escalates_with_queue_and_reason(lib: Path) -> None:
    bundle, s, _ = start_pure(lib, "order", {"customer_id": "C042", "order_id": "12345678"})
    s, _ = step(bundle.definitions, s, Answer("ask_count", 1))
    s, effects = step(bundle.definitions, s, ActionDone("fetch", error="timeout"))
    assert (s.status, s.outcome, s.node) == ("ended", "escalated", None)
    assert s.handoff == {
        "queue": "logistics",
        "reason": "Tracking unavailable",
        "node": "to_logistics",
    }
    assert effects == [Ended("escalated")]
    assert current_step(bundle.definitions, s) is None


# ------------------------------------------------------------------------------- end


def test_end_outcome_is_final_and_after_actions_run_after_it(lib: Path) -> None:
    h = harness(lib, {"orders.get_tracking": LATE})
    s = h.sessions.answer(to_offer(h).id, "offer", "voucher")
    assert (s.status, s.outcome, s.node) == ("survey", "resolved", "done")
    assert s.messages == ["A voucher it is.", "Done, C042."]
    assert h.step_view(s) == {
        "node": "done",
        "kind": "survey",
        "messages": ["A voucher it is.", "Done, C042."],
        "surveys": ["ces", "nps"],
    }
    [(after, status, outcome)] = h.executor.afters
    assert (after.action, dict(after.input)) == (
        "crm.log_contact",
        {"customer_id": "C042", "motive": "delivery.missing", "outcome": "resolved"},
    )
    assert (status, outcome) == ("survey", "resolved")  # run once the outcome was final
    # A session that reached its end takes no more answers.
    h.refused(s.id, lambda: h.sessions.answer(s.id, "offer", "voucher"), Conflict)


def test_end_emits_run_after_effects_on_the_pure_level(lib: Path) -> None:
    bundle, s, _ = start_pure(lib, "order", {"customer_id": "C042", "order_id": "12345678"})
    s, _ = step(bundle.definitions, s, Answer("ask_count", 1))
    s, _ = step(bundle.definitions, s, ActionDone("fetch", LATE))
    s, effects = step(bundle.definitions, s, Answer("offer", "voucher"))
    afters = [e for e in effects if isinstance(e, RunAfter)]
    assert [(a.action, dict(a.input)) for a in afters] == [
        (
            "crm.log_contact",
            {"customer_id": "C042", "motive": "delivery.missing", "outcome": "resolved"},
        )
    ]
    assert not any(isinstance(e, Ended) for e in effects)  # the survey is still offered
    s, effects = step(bundle.definitions, s, SkipSurvey())
    assert effects == [Ended("resolved")]


def test_end_without_survey_ends_at_once(lib: Path) -> None:
    delivered = {"status": "delivered", "days_late": 0, "shipping_cost": 0}
    h = harness(lib, {"orders.get_tracking": delivered})
    s = h.sessions.start("order", {"customer_id": "C042", "order_id": "12345678"})
    s = h.sessions.answer(s.id, "ask_count", 1)
    assert (s.status, s.outcome, s.node, s.path[-1]) == ("ended", "unresolved", None, "delivered")
    assert h.executor.afters == []  # that end has no `after`
    h.refused(s.id, lambda: h.sessions.survey(s.id, ces=5), Conflict)


@pytest.mark.parametrize(("ces", "nps"), [(6, 9), (1, 0), (7, 10), (None, 3), (4, None)])
def test_survey_answer_is_recorded(lib: Path, ces: int | None, nps: int | None) -> None:
    h = harness(lib, {"orders.get_tracking": LATE})
    s = h.sessions.answer(to_offer(h).id, "offer", "voucher")
    s = h.sessions.survey(s.id, ces=ces, nps=nps)
    expected = {k: v for k, v in {"ces": ces, "nps": nps}.items() if v is not None}
    assert (s.status, s.outcome, s.survey) == ("ended", "resolved", expected)
    h.refused(s.id, lambda: h.sessions.survey(s.id, ces=5), Conflict)


@pytest.mark.parametrize(
    ("ces", "nps", "name"),
    [(0, None, "ces"), (8, None, "ces"), (None, -1, "nps"), (None, 11, "nps"), (6, 11, "nps")],
)
def test_survey_answer_out_of_range_is_refused(
    lib: Path, ces: int | None, nps: int | None, name: str
) -> None:
    h = harness(lib, {"orders.get_tracking": LATE})
    s = h.sessions.answer(to_offer(h).id, "offer", "voucher")
    error = h.refused(s.id, lambda: h.sessions.survey(s.id, ces=ces, nps=nps), InvalidAnswer)
    assert error.field == name
    assert ("from 1 to 7" if name == "ces" else "from 0 to 10") in error.message
    assert h.store.load(s.id).status == "survey"


def test_skipping_the_survey_ends_the_session(lib: Path) -> None:
    h = harness(lib, {"orders.get_tracking": LATE})
    s = h.sessions.answer(to_offer(h).id, "offer", "voucher")
    s = h.sessions.skip_survey(s.id)
    assert (s.status, s.outcome, s.survey, s.node) == ("ended", "resolved", {}, None)


# ------------------------------------------------------------------ never ask twice


def test_an_ask_whose_field_is_known_is_skipped(lib: Path) -> None:
    h = harness(lib)
    s = h.sessions.start("order", {"customer_id": "C042", "order_id": "87654321"})
    assert (s.node, s.path) == ("ask_count", ["hello", "ask_count"])
    assert "ask_order" not in s.path
    assert s.context["order_id"] == "87654321"
    assert s.context["order_ref"] == "No. 87654321"  # the skipped step still completes
    error = h.refused(s.id, lambda: h.sessions.answer(s.id, "ask_order", "12345678"), Conflict)
    assert error.node == "ask_count"


def test_null_is_not_known(lib: Path) -> None:
    s = harness(lib).sessions.start("order", {"customer_id": "C042", "order_id": None})
    assert s.node == "ask_order"
    s = harness(lib).sessions.start("contact", {"phone": None})
    assert s.node == "ask_phone"


def test_confirm_asks_again_and_replaces_the_known_value(lib: Path) -> None:
    h = harness(lib)
    s = h.sessions.start("contact", {"phone": "0612345678", "email": "old@example.com"})
    assert (s.node, s.path) == ("ask_email", ["ask_email"])  # phone known, email confirmed
    view = h.step_view(s)
    assert view is not None
    assert view["known"] == "old@example.com"
    assert view["text"] == "Is old@example.com still your e-mail address? Give it again."
    s = h.sessions.answer(s.id, "ask_email", "new@example.com")
    assert s.context["email"] == "new@example.com"
    assert s.context["phone"] == "0612345678"
    assert s.outcome == "resolved"


# --------------------------------------------------------------- templates and locales


def test_texts_default_to_the_first_locale(lib: Path) -> None:
    h = harness(lib)
    s = h.sessions.start("order", {"customer_id": "C042"})
    assert s.locale == "en"
    assert s.messages == ["Hello C042, tier standard."]
    s = h.sessions.start("bonjour", {})
    assert s.locale == "fr"
    assert h.step_view(s)["text"] == "Votre nom ?"  # type: ignore[index]
    s = h.sessions.answer(s.id, "ask_name", "Zoé")
    assert s.messages == ["Merci Zoé."]


def test_texts_render_in_the_session_locale(lib: Path) -> None:
    h = harness(lib, {"orders.get_tracking": LATE})
    s = to_offer(h, locale="fr")
    assert s.locale == "fr"
    view = h.step_view(s)
    assert view is not None
    assert view["text"] == "Désolés pour ces 7 jours de retard. Que préférez-vous ?"
    assert [o["label"] for o in view["options"]] == [
        "Remboursement de 4.90 EUR",
        "Un bon d'achat",
        "Rien merci",
    ]
    s = h.sessions.answer(s.id, "offer", "voucher")
    assert s.messages == ["Va pour un bon.", "C'est fait, C042."]
    s = h.sessions.start("bonjour", {}, locale="en")
    assert h.step_view(s)["text"] == "Your name?"  # type: ignore[index]


def test_a_locale_the_journey_lacks_falls_back_to_its_first(lib: Path) -> None:
    s = harness(lib).sessions.start("order", {"customer_id": "C042"}, locale="de")
    assert s.locale == "en"
    assert s.messages == ["Hello C042, tier standard."]


def test_first_message_in_french_before_any_answer(lib: Path) -> None:
    s = harness(lib).sessions.start("order", {"customer_id": "C042", "tier": "gold"}, locale="fr")
    assert s.messages == ["Bonjour C042, niveau gold."]


# ---------------------------------------------------------------------------- inputs


def test_missing_required_input_is_refused_naming_it(lib: Path) -> None:
    h = harness(lib)
    with pytest.raises(MissingInput) as info:
        h.sessions.start("typed", {"urgent": True})
    assert info.value.field == "count"
    assert "'count'" in info.value.message and "the number of lines" in info.value.message
    with pytest.raises(MissingInput) as info:
        h.sessions.start("order", {})
    assert info.value.field == "customer_id"
    assert list(h.store) == []  # nothing was stored


def test_defaults_are_applied(lib: Path) -> None:
    s = harness(lib).sessions.start("typed", {"count": 2})
    assert s.context == {"count": 2, "urgent": False, "label": "none given", "ratio": 1.5}
    assert s.outcome == "resolved"


def test_unknown_input_is_refused(lib: Path) -> None:
    h = harness(lib)
    with pytest.raises(MissingInput) as info:
        h.sessions.start("typed", {"count": 2, "cuont": 3})
    assert info.value.field == "cuont"
    assert "'cuont'" in info.value.message
    assert list(h.store) == []


def test_input_of_the_wrong_type_is_refused(lib: Path) -> None:
    h = harness(lib)
    with pytest.raises(MissingInput) as info:
        h.sessions.start("typed", {"count": "3"})
    assert info.value.field == "count"
    assert "whole number" in info.value.message
    with pytest.raises(MissingInput):
        h.sessions.start("order", {"customer_id": "C042", "tier": "platinum"})


def test_inputs_given_as_text_are_converted_to_their_declared_type(lib: Path) -> None:
    s = harness(lib).sessions.start(
        "typed", {"count": "3", "urgent": "true", "ratio": "2.5", "label": "42"}, as_text=True
    )
    assert s.context == {"count": 3, "urgent": True, "ratio": 2.5, "label": "42"}
    assert type(s.context["count"]) is int
    with pytest.raises(MissingInput) as info:
        harness(lib).sessions.start("typed", {"count": "three"}, as_text=True)
    assert info.value.field == "count"


# ----------------------------------------------------------------------- concurrency


def test_pure_step_refuses_events_that_do_not_apply(lib: Path) -> None:
    bundle, s, _ = start_pure(lib, "order", {"customer_id": "C042"})
    defs = bundle.definitions
    frozen = s.to_dict()

    def refused(event: Any) -> Conflict:
        with pytest.raises(Conflict) as info:
            step(defs, s, event)
        assert s.to_dict() == frozen  # the session given is never modified
        return info.value

    assert refused(Answer("ask_count", 1)).node == "ask_order"  # not the waiting node
    assert "step 0" in refused(Answer("ask_order", "12345678", seq=0)).message  # stale seq
    refused(Answer("ask_order", "12345678", seq=s.seq + 1))
    refused(ActionDone("ask_order", {}))  # no action is running
    refused(Start({"customer_id": "C042"}))  # already started
    refused(SurveyAnswer(ces=5))  # no survey offered
    # The right node with the right seq is accepted.
    moved, _ = step(defs, s, Answer("ask_order", "12345678", seq=s.seq))
    assert (moved.node, moved.seq) == ("ask_count", s.seq + 1)
    # A finished session takes no more answers, in the survey and after it.
    ended, _ = step(defs, moved, Answer("ask_count", 1))
    ended, _ = step(defs, ended, ActionDone("fetch", {"status": "delivered", "days_late": 0}))
    assert ended.status == "ended"
    snapshot = ended.to_dict()
    with pytest.raises(Conflict):
        step(defs, ended, Answer("ask_count", 1))
    with pytest.raises(Conflict):
        step(defs, ended, SkipSurvey())
    assert ended.to_dict() == snapshot


def test_pure_step_refuses_answers_in_the_survey(lib: Path) -> None:
    bundle, s, _ = start_pure(lib, "order", {"customer_id": "C042", "order_id": "12345678"})
    s, _ = step(bundle.definitions, s, Answer("ask_count", 1))
    s, _ = step(bundle.definitions, s, ActionDone("fetch", LATE))
    s, _ = step(bundle.definitions, s, Answer("offer", "voucher"))
    assert s.status == "survey"
    snapshot = s.to_dict()
    for event in (Answer("done", "x"), Answer("offer", "voucher"), ActionDone("done", {})):
        with pytest.raises(Conflict):
            step(bundle.definitions, s, event)
    with pytest.raises(InvalidAnswer):
        step(bundle.definitions, s, SurveyAnswer(ces=9))
    assert s.to_dict() == snapshot


def test_service_refuses_conflicts_and_keeps_the_stored_session(lib: Path) -> None:
    h = harness(lib, {"orders.get_tracking": LATE})
    s = h.sessions.start("order", {"customer_id": "C042"})
    h.refused(s.id, lambda: h.sessions.answer(s.id, "ask_count", 1), Conflict)
    h.refused(s.id, lambda: h.sessions.answer(s.id, "no_such_node", 1), Conflict)
    stale = s.seq
    s = h.sessions.answer(s.id, "ask_order", "12345678", seq=stale)
    # A second agent answering from the same screen is refused.
    error = h.refused(s.id, lambda: h.sessions.answer(s.id, "ask_count", 2, seq=stale), Conflict)
    assert "reload" in error.message
    assert h.sessions.answer(s.id, "ask_count", 2, seq=s.seq).context["parcels"] == 2


# -------------------------------------------------------------------------- versions


def test_a_running_session_keeps_its_version(lib: Path) -> None:
    store = MemoryStore()
    old = harness(lib, store=store)
    first = old.sessions.start("versioned", {})
    assert first.version == 1
    write_library(lib, {"versioned.yaml": VERSION_2})
    new = harness(lib, store=store)  # the edited library, the same store
    second = new.sessions.start("versioned", {})
    assert second.version == 2
    assert second.definition != first.definition
    assert new.sessions.bundle_of(second).root.version == 2
    # The running session goes on with the definition it started on...
    first = new.sessions.answer(first.id, "ask_name", "Ann")
    assert (first.status, first.outcome, first.path) == ("ended", "resolved", ["ask_name", "done"])
    assert first.definition == old.library.bundle("versioned").hash
    # ...while the new one takes the new definition.
    second = new.sessions.answer(second.id, "ask_name", "Bob")
    assert (second.status, second.node) == ("waiting", "ask_reason")
    second = new.sessions.answer(second.id, "ask_reason", "later")
    assert (second.outcome, second.path) == ("callback", ["ask_name", "ask_reason", "later"])
    assert check_replays(store) == 2


def test_editing_a_sub_journey_does_not_change_a_running_caller(lib: Path) -> None:
    store = MemoryStore()
    h = harness(lib, {"crm.get_customer": ANN}, store=store)
    s = h.sessions.start("parent", {})
    edited = IDENTIFY.replace('pattern: "^C[0-9]{3}$"', 'pattern: "^X[0-9]{3}$"')
    write_library(lib, {"shared/identify.yaml": edited})
    h2 = harness(lib, {"crm.get_customer": ANN}, store=store)
    assert h2.sessions.start("parent", {}).definition != s.definition
    s = h2.sessions.answer(s.id, "ask_id", "C001")  # still the old pattern
    assert s.node == "ask_topic"


# ---------------------------------------------------------------------------- replay


def test_replay_rebuilds_every_session_exactly(lib: Path) -> None:
    store = MemoryStore()
    # ended after a survey answer, in French
    h = harness(lib, {"orders.get_tracking": LATE}, store=store)
    s = h.sessions.answer(to_offer(h, locale="fr", channel="phone").id, "offer", "refund_shipping")
    h.sessions.survey(s.id, ces=6, nps=9)
    # on_error then a handoff
    h = harness(lib, {"orders.get_tracking": {"error": "down"}}, store=store)
    s = h.sessions.start("order", {"customer_id": "C042", "order_id": "12345678"})
    h.sessions.answer(s.id, "ask_count", "2", as_text=True)
    # a sub-journey, resumed on another channel midway
    h = harness(lib, {"crm.get_customer": ANN}, store=store)
    s = h.sessions.start("parent", {}, channel="phone", agent="a1")
    s = h.sessions.answer(s.id, "ask_id", "C001")
    resumed = h.sessions.resume(s.id, "chat", actor="customer")
    assert (resumed.channel, resumed.node, resumed.context) == ("chat", "ask_topic", s.context)
    assert resumed.seq == s.seq + 1
    h.sessions.answer(s.id, "ask_topic", "billing")
    assert store.load(s.id).channel == "chat"
    # still waiting, resumed twice
    s = h.sessions.start("contact", {"email": "a@b.c"}, channel="email")
    h.sessions.resume(s.id, "selfcare")
    h.sessions.resume(s.id, "phone")
    # with the survey skipped, and one refused answer in between (not logged)
    h = harness(lib, {"orders.get_tracking": LATE}, store=store)
    s = to_offer(h)
    with pytest.raises(InvalidAnswer):
        h.sessions.answer(s.id, "offer", "cash")
    s = h.sessions.answer(s.id, "offer", "no")
    assert check_replays(store) == 5


def test_replay_differs_when_the_log_differs(lib: Path) -> None:
    """The replay check can fail: a log with an answer changed does not rebuild the session."""
    h = harness(lib)
    s = h.sessions.start("contact", {})
    s = h.sessions.answer(s.id, "ask_phone", "0611")
    records = h.store.events(s.id)
    records[-1] = {**records[-1], "value": "0622"}
    rebuilt = replay(h.sessions.bundle_of(s), records[0], records)
    assert rebuilt.to_dict() != h.store.load(s.id).to_dict()
    assert rebuilt.context["phone"] == "0622"


def test_a_finished_session_cannot_be_resumed(lib: Path) -> None:
    h = harness(lib)
    s = h.sessions.start("typed", {"count": 1})
    h.refused(s.id, lambda: h.sessions.resume(s.id, "chat"), Conflict)


# ------------------------------------------------------------------- scenario runner

SCENARIOS = """
journey: order
scenarios:
  - name: right
    inputs: {customer_id: C042}
    actions:
      orders.get_tracking: {status: in_transit, days_late: 7, shipping_cost: 4.9}
    answers: {ask_order: "12345678", ask_count: 1, offer: refund_shipping, survey: {ces: 6}}
    expect:
      outcome: resolved
      path: [hello, ask_order, ask_count, fetch, route, offer, refund, done]
      context: {compensation: refund_shipping, tracking: {days_late: 7}, refund_requested: true}
  - name: wrong
    inputs: {customer_id: C042}
    actions:
      orders.get_tracking: {status: in_transit, days_late: 7, shipping_cost: 4.9}
    answers: {ask_order: "12345678", ask_count: 1, offer: voucher}
    expect:
      outcome: callback
      path: [hello, ask_order, ask_count, fetch, route, offer, refund, done]
      context: {compensation: refund_shipping, tracking: {days_late: 8}, nowhere: 1}
"""


def test_scenario_runner_reports_the_differences(lib: Path) -> None:
    write_library(lib, {"order.test.yaml": SCENARIOS})
    library = Library(lib)
    coverage = coverage_of(library)
    right, wrong = run_file(library, lib / "order.test.yaml", coverage)
    assert (right.name, right.passed, right.differences) == ("right", True, [])
    assert (wrong.name, wrong.passed) == ("wrong", False)
    assert wrong.outcome == "resolved"
    text = "\n".join(wrong.differences)
    assert "outcome: expected 'callback', got 'resolved'" in text
    assert "path: differs at step 7: expected 'refund', got 'voucher_note'" in text
    assert "context: 'compensation' expected 'refund_shipping', got 'voucher'" in text
    assert "context: 'tracking' expected {'days_late': 8}" in text
    assert "context: 'nowhere' expected 1, but it is not set" in text
    assert len(wrong.differences) == 5


def test_scenario_with_a_waiting_session_does_not_pass_for_an_outcome(lib: Path) -> None:
    write_library(
        lib,
        {
            "order.test.yaml": """
            journey: order
            scenarios:
              - name: answers run out
                inputs: {customer_id: C042}
                answers: {ask_order: "12345678"}
                expect: {outcome: resolved}
            """
        },
    )
    library = Library(lib)
    [result] = run_file(library, lib / "order.test.yaml", coverage_of(library))
    assert not result.passed
    assert result.differences == ["outcome: expected 'resolved', got None (waiting at 'ask_count')"]


def test_scenario_expecting_a_waiting_session_fails_when_it_ends(lib: Path) -> None:
    write_library(
        lib,
        {
            "typed.test.yaml": """
            journey: typed
            scenarios:
              - name: expects to wait, but the journey ends at once
                inputs: {count: 1}
                expect: {status: waiting}
            """
        },
    )
    library = Library(lib)
    [result] = run_file(library, lib / "typed.test.yaml", coverage_of(library))
    assert result.status == "ended"
    assert not result.passed


def test_scenario_stops_with_an_error_on_a_missing_input(lib: Path) -> None:
    library = Library(lib)
    scenario = Scenario(name="no inputs", loc=Loc("x"), outcome="resolved")
    result = run_scenario(library, "order", scenario, "x", coverage_of(library))
    assert not result.passed
    assert "customer_id" in result.differences[0]


def test_coverage_names_uncovered_nodes_and_edges(lib: Path) -> None:
    write_library(lib, {"order.test.yaml": SCENARIOS})
    library = Library(lib)
    coverage = coverage_of(library)
    run_file(library, lib / "order.test.yaml", coverage)
    order = coverage["order"]
    assert order.covered_nodes >= {"hello", "ask_order", "offer", "refund", "voucher_note", "done"}
    uncovered = order.uncovered
    for name in ("delivered", "reassure", "sorry", "to_logistics"):
        assert f"node {name}" in uncovered
    for a, b in [("route", "delivered"), ("fetch", "sorry"), ("offer", "reassure")]:
        assert f"edge {a} → {b}" in uncovered
    assert "node offer" not in uncovered and "edge offer → refund" not in uncovered
    assert order.node_share == pytest.approx(100 * 9 / 13)
    assert 0 < order.edge_share < 100
    assert coverage["typed"].node_share == 0.0 and coverage["typed"].uncovered == ["node done"]


def test_coverage_counts_sub_journey_nodes_for_the_sub_journey(lib: Path) -> None:
    write_library(
        lib,
        {
            "parent.test.yaml": """
            journey: parent
            scenarios:
              - name: found
                actions: {crm.get_customer: {name: Ann}}
                answers: {identify/ask_id: C001, ask_topic: billing}
                expect:
                  outcome: callback
                  path: [identify, identify/ask_id, identify/lookup, identify/found, ask_topic, bye]
            """
        },
    )
    library = Library(lib)
    coverage = coverage_of(library)
    [result] = run_file(library, lib / "parent.test.yaml", coverage)
    assert result.passed, result.differences
    assert coverage["parent"].node_share == 100.0
    assert coverage["identify"].covered_nodes == {"ask_id", "lookup", "found"}
    assert coverage["identify"].uncovered == ["node lost", "edge lookup → lost"]


# ------------------------------------------------------------------- shipped library

SHIPPED_LIBRARY = Library(SHIPPED)
SHIPPED_FILES = scenario_files(SHIPPED_LIBRARY)


def _rel(path: Path) -> str:
    return str(path.relative_to(SHIPPED))


def _journey_of(path: Path) -> str:
    data = load(path)
    assert isinstance(data, YamlMap)
    return build.build_scenarios(data, str(path)).journey


def test_every_shipped_journey_has_scenarios() -> None:
    tested = {_journey_of(p) for p in SHIPPED_FILES}
    assert tested == set(SHIPPED_LIBRARY.journeys)


@pytest.mark.parametrize("path", SHIPPED_FILES, ids=_rel)
def test_shipped_scenarios_pass(path: Path) -> None:
    results = run_file(SHIPPED_LIBRARY, path, coverage_of(SHIPPED_LIBRARY))
    assert results
    failed = {r.name: r.differences for r in results if not r.passed}
    assert failed == {}


def test_shipped_scenarios_cover_every_node(record_property: Callable[[str, object], None]) -> None:
    coverage: dict[str, Coverage] = coverage_of(SHIPPED_LIBRARY)
    for path in SHIPPED_FILES:
        assert all(r.passed for r in run_file(SHIPPED_LIBRARY, path, coverage))
    report = {jid: (c.node_share, c.edge_share, c.uncovered) for jid, c in coverage.items()}
    for jid, (nodes, edges, uncovered) in sorted(report.items()):
        print(f"{jid}: nodes {nodes:.0f}%, edges {edges:.0f}%", *uncovered, sep="\n  ")
        record_property(f"coverage {jid}", f"nodes {nodes:.0f}% edges {edges:.0f}%")
    assert {jid: c.uncovered for jid, c in coverage.items() if c.node_share < 100} == {}


def _shipped_scenarios(journey: str) -> list[Scenario]:
    found: list[Scenario] = []
    for path in SHIPPED_FILES:
        data = load(path)
        assert isinstance(data, YamlMap)
        spec = build.build_scenarios(data, str(path))
        if spec.journey == journey:
            found += spec.scenarios
    return found


@pytest.mark.parametrize("journey", sorted(SHIPPED_LIBRARY.journeys))
def test_shipped_sessions_replay_exactly(journey: str) -> None:
    store = MemoryStore()
    scenarios = _shipped_scenarios(journey)
    assert scenarios
    for scenario in scenarios:
        answers = {**scenario.answers, **({"survey": scenario.survey} if scenario.survey else {})}
        sessions = Sessions(SHIPPED_LIBRARY, store, StubExecutor(scenario.actions))
        # as in the scenario, on one channel
        drive(sessions, journey, scenario.inputs, AnswerBook(answers), channel="phone")
        # and continued on another channel after the first step
        s = sessions.start(journey, scenario.inputs, channel="phone", locale="fr")
        if not s.finished:
            s = sessions.resume(s.id, "chat")
        answer_until_stuck(sessions, s, AnswerBook(answers))
    assert check_replays(store) == 2 * len(scenarios)


# ----------------------------------------------------------- decisions taken after review

EXTRAS = {
    "motives.yaml": "motives: {}\n",
    "inner.yaml": """
        journey: inner
        version: 1
        title: A sub-journey with post-contact automation on its end
        start: done
        nodes:
          done:
            kind: end
            outcome: resolved
            after:
              - {action: crm.log_contact, input: {customer_id: C1, motive: inner, outcome: resolved}}
    """,
    "extras.yaml": """
        journey: extras
        version: 1
        title: Texts on non-interactive nodes, last_error, a journey node's set, a ces-only survey
        inputs:
          nickname: {type: [string, "null"], default: null}
        start: fetch
        nodes:
          fetch:
            kind: action
            say: "Let me check that for you."
            action: orders.get_tracking
            input: {order_id: "10000001"}
            output: tracking
            on_error: apologise
            next: sub
          apologise:
            kind: say
            say: "Sorry: {{ last_error.message }}"
            next: sub
          sub:
            kind: journey
            journey: inner
            set: {came_back: true}
            next: ask_nick
          ask_nick:
            kind: ask
            field: nickname
            schema: {type: [string, "null"]}
            next: done
          done:
            kind: end
            outcome: resolved
            survey: [ces]
    """,
}


@pytest.fixture
def extras(tmp_path: Path) -> Path:
    return write_library(tmp_path / "extras", EXTRAS)


def test_extras_library_validates(extras: Path, check: Check) -> None:
    """`last_error` is known on the error path; a journey node's `set` may read what returns."""
    assert check(extras).errors == []


def test_text_of_an_action_node_is_shown_with_the_next_step(extras: Path) -> None:
    h = harness(extras, {"orders.get_tracking": {"order_id": "10000001"}})
    s = h.sessions.start("extras", {})
    assert s.node == "ask_nick"
    assert s.messages == ["Let me check that for you."]
    assert s.context["came_back"] is True


def test_last_error_is_readable_on_the_error_path(extras: Path) -> None:
    h = harness(extras, {"orders.get_tracking": {"error": "carrier unreachable"}})
    s = h.sessions.start("extras", {})
    assert "Sorry: carrier unreachable" in s.messages


def test_after_actions_of_a_sub_journey_end_run_at_that_end(extras: Path) -> None:
    h = harness(extras, {"orders.get_tracking": {"order_id": "10000001"}})
    h.sessions.start("extras", {})
    assert [effect.action for effect, _status, _outcome in h.executor.afters] == ["crm.log_contact"]


def test_empty_text_for_a_nullable_answer_is_not_known(extras: Path) -> None:
    h = harness(extras, {"orders.get_tracking": {"order_id": "10000001"}})
    s = h.sessions.start("extras", {"nickname": ""}, as_text=True)
    assert s.node == "ask_nick"  # "" typed for a nullable input means: not given
    s = h.sessions.answer(s.id, "ask_nick", "", as_text=True)
    assert s.context["nickname"] is None


def test_only_the_surveys_an_end_offers_are_recorded(extras: Path) -> None:
    h = harness(extras, {"orders.get_tracking": {"order_id": "10000001"}})
    s = h.sessions.start("extras", {})
    s = h.sessions.answer(s.id, "ask_nick", "Ada")
    assert s.status == "survey"
    s = h.sessions.survey(s.id, ces=6, nps=9)
    assert (s.status, s.survey) == ("ended", {"ces": 6})
