"""Authority limits (``policies.yaml``): validated like the journeys, enforced when an action
runs, recorded (who granted what), pinned with the session, replayed exactly, and chosen from
the command line with ``journeys run --role``."""

from __future__ import annotations

import json
import textwrap
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from cli import main
from engine.definitions import build
from engine.definitions.analyse import POLICIES, role_of
from engine.definitions.findings import Finding
from engine.definitions.library import POLICY_SOURCE, Library, LibraryError
from engine.definitions.model import Policy
from engine.definitions.yamlsafe import YamlMap, parse
from engine.errors import InvalidAnswer
from engine.insight.scenarios import StubExecutor
from engine.sessions.authority import decide, default_role
from engine.sessions.runtime import RunAction, Session
from engine.sessions.service import ActionOutcome, MemoryStore, Sessions, replay
from tests.conftest import SHIPPED, Check

MOTIVES = """
motives:
  order.refund:
    title: {en: Refund, fr: Remboursement}
    category: payments
    journey: refund
  order.approved:
    title: {en: Refund with approval, fr: Remboursement avec accord}
    category: payments
    journey: approved
"""

REFUND = """
journey: refund
version: 1
title: Refund an order
motives: [order.refund]
channels: [phone, chat, selfcare]
inputs:
  order_id: {type: string, default: "10000001"}
start: ask_amount
nodes:
  ask_amount:
    kind: ask
    say: How much should we refund?
    field: amount
    schema: {type: number}
    next: refund
  refund:
    kind: action
    action: payments.refund
    input: {order_id: =order_id, amount: =amount, reason: goodwill}
    output: refunded
    set: {refund_note: refunded}
    next: done
  done:
    kind: end
    outcome: resolved
"""

# Above the agent's limit, a supervisor approves in the journey: the action is tried again
# with the supervisor performing the step.
APPROVED = """
journey: approved
version: 1
title: Refund an order, with a supervisor's approval above the limit
motives: [order.approved]
inputs:
  order_id: {type: string, default: "10000001"}
start: ask_amount
nodes:
  ask_amount:
    kind: ask
    field: amount
    schema: {type: number}
    next: refund
  refund:
    kind: action
    action: payments.refund
    input: {order_id: =order_id, amount: =amount, reason: goodwill}
    output: refunded
    set: {refund_note: refunded}
    on_denied: approval
    next: done
  approval:
    kind: choose
    say: "A refund of {{ last_denial.value }} EUR is above the {{ last_denial.role }}'s limit of {{ last_denial.limit }} EUR."
    roles: [supervisor]
    field: approval
    options:
      - {value: approve, next: refund}
      - {value: refuse, next: refused}
  refused:
    kind: end
    outcome: unresolved
  done:
    kind: end
    outcome: resolved
"""

POLICY = """
roles:
  agent:
    payments.refund: {amount: {max: 30}}
    payments.issue_voucher: {amount: {max: 20}}
  supervisor:
    payments.refund: {amount: {max: 200}}
  customer:
    payments.refund: {amount: {max: 10}}
"""

FILES = {
    "motives.yaml": MOTIVES,
    "refund.yaml": REFUND,
    "approved.yaml": APPROVED,
    "policies.yaml": POLICY,
}

RESULT = {"refund_id": "R1", "amount": 0}


def write(root: Path, files: Mapping[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
    return root


@pytest.fixture
def lib(tmp_path: Path) -> Path:
    return write(tmp_path / "lib", FILES)


class Recorder(StubExecutor):
    def __init__(self) -> None:
        super().__init__({"payments.refund": RESULT})
        self.runs: list[RunAction] = []

    def run(self, effect: RunAction, session: Session) -> ActionOutcome:
        self.runs.append(effect)
        return super().run(effect, session)


def sessions_of(path: Path, store: MemoryStore | None = None) -> tuple[Sessions, Recorder]:
    executor = Recorder()
    return Sessions(Library(path), store or MemoryStore(), executor), executor


def refund(
    path: Path, amount: float, journey: str = "refund", **start: Any
) -> tuple[Session, Recorder]:
    sessions, executor = sessions_of(path)
    s = sessions.start(journey, {}, **start)
    return sessions.answer(s.id, "ask_amount", amount), executor


def policy_of(text: str) -> Policy:
    data = parse(textwrap.dedent(text).lstrip())
    assert isinstance(data, YamlMap)
    return build.build_policy(data, "policies.yaml")


def where(findings: list[Finding]) -> list[tuple[str, int, str]]:
    return sorted((f.code, f.line, f.message) for f in findings)


def test_the_test_library_is_valid(lib: Path, check: Check) -> None:
    assert [f"{f.file}:{f.line} {f.code} {f.message}" for f in check(lib).errors] == []


# --------------------------------------------------------------------------- validation

BAD_POLICY = """\
roles:
  agent:
    payments.refnd: {amount: {max: 30}}
    payments.refund:
      amout: {max: 30}
      reason: {max: 3}
      amount: {min: 50, max: 30}
    payments.issue_voucher:
      amount: {in: [ten, 5]}
    billing.credit:
      amount: {}
  superviser:
    payments.refund: {amount: {max: 200}}
  supervisor:
    payments.refund: {amount: {max: thirty}}
"""


def test_policy_findings_have_a_code_a_line_and_a_plain_message(lib: Path, check: Check) -> None:
    (lib / "policies.yaml").write_text(BAD_POLICY)
    found = [f for f in check(lib).findings if f.file == "policies.yaml"]
    assert [(f.code, f.line, f.column) for f in sorted(found)] == [
        ("J009", 3, 5),
        ("J009", 5, 7),
        ("J009", 6, 21),
        ("J002", 7, 21),
        ("J009", 9, 20),
        ("J002", 11, 7),
        ("J002", 12, 3),
        ("J002", 15, 37),
    ]
    messages = {f.line: f.message for f in found}
    assert messages[3] == (
        "role 'agent': 'payments.refnd' is not a back-office action of the catalogue "
        "(did you mean 'payments.refund'?)"
    )
    assert messages[5] == (
        "role 'agent': payments.refund has no parameter 'amout' (did you mean 'amount'?); "
        "it takes 'amount', 'customer_id', 'order_id', 'reason'"
    )
    assert messages[6].startswith(
        "role 'agent', payments.refund 'reason': 'max' needs a number, but 'reason' of "
        "payments.refund is text"
    )
    assert "min 50 is above max 30, so no value would be allowed" in messages[7]
    assert (
        "the allowed value 'ten' can never match: 'amount' of payments.issue_voucher is a number"
        in messages[9]
    )
    assert "no limit is given" in messages[11]
    assert "unknown key 'superviser' (did you mean 'supervisor'?)" in messages[12]
    assert messages[15] == (
        "role 'supervisor', 'payments.refund' > 'amount' > 'max': expected a number, "
        "found the text 'thirty'"
    )
    assert all(f.severity == "error" for f in found)


def test_the_policy_file_is_checked_not_taken_for_a_journey(lib: Path, check: Check) -> None:
    assert role_of("policies.yaml") == POLICIES
    assert role_of("shared/policies.yaml") != POLICIES  # only at the library's root
    (lib / "policies.yaml").write_text("")
    [f] = [f for f in check(lib).findings if f.file == "policies.yaml"]
    assert (f.code, f.message) == (
        "J002",
        "the file is empty; the authority limits start with 'roles:'",
    )
    (lib / "policies.yaml").write_text("roles: {agent: [\n")
    [f] = [f for f in check(lib).findings if f.file == "policies.yaml"]
    assert f.code == "J001"


def test_the_cache_sees_an_edited_policy(lib: Path, check: Check, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    assert check(lib, use_cache=True, cache_dir=cache).errors == []
    (lib / "policies.yaml").write_text(POLICY.replace("payments.refund", "payments.refnd", 1))
    report = check(lib, use_cache=True, cache_dir=cache)
    assert [(f.code, f.file) for f in report.errors] == [("J009", "policies.yaml")]
    assert report.analysed == 1  # only the policy file was analysed again
    (lib / "policies.yaml").write_text(POLICY)
    assert check(lib, use_cache=True, cache_dir=cache).errors == []


def test_shipped_policy_is_valid_and_limits_the_shipped_money_actions(check: Check) -> None:
    assert [f for f in check(SHIPPED).errors if f.file == "policies.yaml"] == []
    policy = Library(SHIPPED).bundle("delivery-missing").policy
    assert policy is not None
    limits = {(x.role, x.action): x.bound for x in policy.limits if x.param == "amount"}
    assert limits[("agent", "payments.refund")] < limits[("supervisor", "payments.refund")]
    assert limits[("customer", "payments.refund")] < limits[("agent", "payments.refund")]
    assert {a for _r, a in limits} == {
        "payments.refund",
        "payments.issue_voucher",
        "billing.credit",
    }


# ------------------------------------------------------------------ on_denied in journeys


def test_on_denied_is_a_checked_edge(lib: Path, check: Check) -> None:
    text = APPROVED.replace("on_denied: approval", "on_denied: aproval")
    write(lib, {"approved.yaml": text})
    [f] = check(lib).errors
    assert f.code == "J003" and f.node == "refund"
    assert f.message == (
        "node 'refund': on_denied goes to 'aproval', which is not a node of this journey "
        "(did you mean 'approval'?)"
    )
    # the approval node is reached only by on_denied: reachable, no J004
    write(lib, {"approved.yaml": APPROVED})
    assert check(lib).errors == []


def test_on_the_denied_edge_neither_output_nor_set_is_stored(lib: Path, check: Check) -> None:
    text = APPROVED.replace(
        'say: "A refund of {{ last_denial.value }} EUR',
        'say: "{{ refunded.refund_id }} {{ refund_note }} A refund of {{ last_denial.value }} EUR',
    )
    write(lib, {"approved.yaml": text})
    found = [f for f in check(lib).errors if f.code == "J008"]
    assert [f.node for f in found] == ["approval", "approval"]
    assert "reads 'refund_note', which may not be set here" in found[0].message
    assert "refund (on_denied) → approval" in found[0].message
    assert "reads 'refunded'" in found[1].message


def test_last_denial_is_known_only_on_the_denied_edge(lib: Path, check: Check) -> None:
    text = REFUND.replace(
        "    kind: end\n    outcome: resolved",
        '    kind: end\n    outcome: resolved\n    say: "{{ last_denial.value }}"',
    )
    write(lib, {"refund.yaml": text})
    [f] = check(lib).errors
    assert (f.code, f.node) == ("J008", "done")
    assert "reads 'last_denial'" in f.message


def test_a_scenario_may_expect_the_supervisor_handoff_of_any_action(
    lib: Path, check: Check
) -> None:
    write(
        lib,
        {
            "refund.test.yaml": """
            journey: refund
            scenarios:
              - name: above the agent's limit
                answers: {ask_amount: 45}
                expect: {outcome: escalated}
            """
        },
    )
    assert check(lib).errors == []


# ---------------------------------------------------------------------- enforcement


@pytest.mark.parametrize(
    ("start", "amount", "allowed"),
    [
        ({}, 25, True),
        ({}, 30, True),  # "up to": the limit itself is allowed
        ({}, 30.01, False),
        ({"channel": "phone"}, 45, False),
        ({"role": "supervisor"}, 150, True),
        ({"role": "supervisor"}, 250, False),
        ({"channel": "selfcare"}, 10, True),  # self-care: the customer's limit
        ({"channel": "selfcare"}, 12, False),
        ({"channel": "selfcare", "role": "agent"}, 12, True),  # an agent in the self-care tool
    ],
)
def test_each_role_has_its_limit(
    lib: Path, start: dict[str, Any], amount: float, allowed: bool
) -> None:
    s, executor = refund(lib, amount, **start)
    role = start.get("role") or default_role(start.get("channel"))
    assert s.role == role
    if allowed:
        assert (s.status, s.outcome, s.handoff) == ("ended", "resolved", None)
        assert [r.input["amount"] for r in executor.runs] == [amount]
        assert "last_denial" not in s.context
    else:
        assert (s.status, s.outcome) == ("ended", "escalated")
        assert executor.runs == []  # the refund was not made
        limit = {"agent": 30, "supervisor": 200, "customer": 10}[role]
        assert s.handoff == {
            "queue": "supervisor",
            "reason": f"payments.refund amount {amount} is above the {role}'s limit of {limit}",
            "node": "refund",
        }
        assert s.context["last_denial"] == {
            "node": "refund",
            "action": "payments.refund",
            "param": "amount",
            "value": amount,
            "limit": limit,
            "rule": "max",
            "role": role,
        }
        assert "refunded" not in s.context and "refund_note" not in s.context
        assert s.grants == []
        assert s.path == ["ask_amount", "refund"]


def test_grants_record_who_granted_what(lib: Path) -> None:
    s, _ = refund(lib, 25, agent="ann", actor="ann")
    assert s.grants == [
        {
            "node": "refund",
            "action": "payments.refund",
            "param": "amount",
            "value": 25,
            "limit": 30,
            "rule": "max",
            "role": "agent",
            "actor": "ann",
        }
    ]
    # no limit applies: nothing to record
    write(
        lib, {"policies.yaml": "roles:\n  agent:\n    payments.issue_voucher: {amount: {max: 5}}\n"}
    )
    s, executor = refund(lib, 999)
    assert (s.outcome, s.grants, len(executor.runs)) == ("resolved", [], 1)


def test_on_denied_goes_to_its_node_and_a_supervisor_approves(lib: Path) -> None:
    sessions, executor = sessions_of(lib)
    s = sessions.start("approved", {}, agent="ann", actor="ann")
    s = sessions.answer(s.id, "ask_amount", 120, actor="ann")
    assert (s.status, s.node, executor.runs) == ("waiting", "approval", [])
    assert s.context["last_denial"]["limit"] == 30
    assert "refunded" not in s.context and "refund_note" not in s.context
    assert s.handoff is None
    view = sessions.get(s.id)
    assert view.role == "agent"
    s = sessions.answer(s.id, "approval", "approve", role="supervisor", actor="sam")
    assert (s.status, s.outcome, s.role, s.actor) == ("ended", "resolved", "supervisor", "sam")
    assert [r.input["amount"] for r in executor.runs] == [120]
    assert s.context["refund_note"] == "refunded"
    assert s.grants == [
        {
            "node": "refund",
            "action": "payments.refund",
            "param": "amount",
            "value": 120,
            "limit": 200,
            "rule": "max",
            "role": "supervisor",
            "actor": "sam",
        }
    ]
    assert s.path == ["ask_amount", "refund", "approval", "refund", "done"]


def test_a_supervisor_above_their_own_limit_goes_round_again(lib: Path) -> None:
    sessions, executor = sessions_of(lib)
    s = sessions.start("approved", {})
    s = sessions.answer(s.id, "ask_amount", 500)
    s = sessions.answer(s.id, "approval", "approve", role="supervisor")
    assert (s.node, s.context["last_denial"]["role"], s.actor) == ("approval", "supervisor", None)
    s = sessions.answer(s.id, "approval", "refuse")
    assert (s.outcome, executor.runs) == ("unresolved", [])


def test_an_unknown_role_is_refused(lib: Path) -> None:
    sessions, _ = sessions_of(lib)
    with pytest.raises(InvalidAnswer, match="'boss' is not a role"):
        sessions.start("refund", {}, role="boss")
    s = sessions.start("refund", {})
    with pytest.raises(InvalidAnswer, match="'boss' is not a role"):
        sessions.answer(s.id, "ask_amount", 5, role="boss")
    assert sessions.get(s.id).node == "ask_amount"


def test_resuming_on_another_channel_takes_its_role(lib: Path) -> None:
    sessions, _ = sessions_of(lib)
    s = sessions.start("refund", {}, channel="selfcare")
    assert s.role == "customer"
    s = sessions.resume(s.id, "phone", actor="ann")
    assert (s.role, s.actor) == ("agent", "ann")
    s = sessions.answer(s.id, "ask_amount", 25)
    assert s.outcome == "resolved" and s.grants[0]["actor"] == "ann"


@pytest.mark.parametrize(
    ("rule", "value", "reason"),
    [
        ("{max: 30}", 31, "payments.refund amount 31 is above the agent's limit of 30"),
        ("{min: 5}", 2, "payments.refund amount 2 is below the agent's minimum of 5"),
        ("{max: 30}", "31", "is not a number, so it cannot be checked against the agent's limit"),
        ("{max: 30}", None, "payments.refund amount None is not a number"),
        ("{in: [5, 10]}", 7, "amount 7 is not one of the values the agent may decide (5, 10)"),
        ("{in: [1]}", True, "amount True is not one of the values"),
    ],
)
def test_what_is_refused_and_why(rule: str, value: Any, reason: str) -> None:
    policy = policy_of(f"roles:\n  agent:\n    payments.refund:\n      amount: {rule}\n")
    breach, applied = decide(policy, "agent", "payments.refund", {"amount": value})
    assert breach is not None and applied == []
    assert reason in breach.reason


def test_what_is_allowed() -> None:
    policy = policy_of(
        """
        roles:
          agent:
            payments.refund:
              amount: {min: 1, max: 30}
              reason: {in: [goodwill, late delivery]}
        """
    )
    breach, applied = decide(
        policy, "agent", "payments.refund", {"amount": 1, "reason": "goodwill"}
    )
    assert breach is None and [x.param for x in applied] == ["amount", "reason"]
    # a parameter not given is not decided; another role or action is unlimited
    assert decide(policy, "agent", "payments.refund", {}) == (None, [])
    assert decide(policy, "supervisor", "payments.refund", {"amount": 10**6}) == (None, [])
    assert decide(policy, "agent", "billing.credit", {"amount": 10**6}) == (None, [])
    assert decide(None, "agent", "payments.refund", {"amount": 10**6}) == (None, [])
    ruleless = policy_of("roles:\n  agent:\n    billing.credit:\n      amount: {description: x}\n")
    assert decide(ruleless, "agent", "billing.credit", {"amount": 5}) == (None, [])


# ------------------------------------------------------------- pinning and replay


def test_a_running_session_keeps_the_policy_it_started_with(lib: Path) -> None:
    store = MemoryStore()
    sessions, _ = sessions_of(lib, store)
    old = sessions.start("refund", {})
    write(lib, {"policies.yaml": POLICY.replace("max: 30", "max: 5")})
    sessions, _ = sessions_of(lib, store)  # the library as it is now
    assert sessions.bundle_of(sessions.get(old.id)).policy is not None
    new = sessions.start("refund", {})
    assert new.definition != old.definition  # the policy is part of the bundle's hash
    assert sessions.answer(old.id, "ask_amount", 25).outcome == "resolved"
    assert sessions.answer(new.id, "ask_amount", 25).outcome == "escalated"


def test_a_library_without_policy_has_no_limits(lib: Path) -> None:
    (lib / "policies.yaml").unlink()
    library = Library(lib)
    bundle = library.bundle("refund")
    assert POLICY_SOURCE not in bundle.sources and bundle.policy is None
    s, _ = refund(lib, 10_000)
    assert (s.outcome, s.grants) == ("resolved", [])


def test_a_broken_policy_stops_new_sessions(lib: Path) -> None:
    """Failing closed: a policy with errors never lets sessions run without limits."""
    (lib / "policies.yaml").write_text(
        "roles:\n  agent:\n    payments.refund: {amount: {max: x}}\n"
    )
    sessions, _ = sessions_of(lib)
    with pytest.raises(LibraryError, match=r"policies\.yaml:3: role 'agent'"):
        sessions.start("refund", {})
    (lib / "policies.yaml").write_text("- a list\n")
    with pytest.raises(LibraryError, match="authority limits cannot be used"):
        sessions_of(lib)[0].start("refund", {})


def test_sessions_with_denials_and_grants_replay_exactly(lib: Path) -> None:
    store = MemoryStore()
    sessions, _ = sessions_of(lib, store)
    s = sessions.start("refund", {}, agent="ann", actor="ann")
    sessions.answer(s.id, "ask_amount", 45)  # denied: supervisor handoff
    s = sessions.start("refund", {}, channel="selfcare")
    sessions.answer(s.id, "ask_amount", 8)  # granted to the customer
    s = sessions.start("approved", {})
    s = sessions.answer(s.id, "ask_amount", 120)
    sessions.answer(s.id, "approval", "approve", role="supervisor", actor="sam")
    s = sessions.start("refund", {}, channel="selfcare")
    s = sessions.resume(s.id, "chat", actor="bob")
    sessions.answer(s.id, "ask_amount", 25)
    write(lib, {"policies.yaml": POLICY.replace("max: 30", "max: 5")})  # pinned: no effect
    for session_id in store:
        stored = store.load(session_id)
        records = store.events(session_id)
        rebuilt = replay(store.load_bundle(stored.definition), records[0], records)
        assert rebuilt.to_dict() == stored.to_dict(), session_id
        assert stored.outcome in ("escalated", "resolved")
    outcomes = sorted((store.load(i).outcome, len(store.load(i).grants)) for i in store)
    assert outcomes == [("escalated", 0), ("resolved", 1), ("resolved", 1), ("resolved", 1)]


def test_the_sql_store_keeps_the_pinned_policy(lib: Path, tmp_path: Path) -> None:
    from engine.adapters.sql.store import SqlStore

    url = f"sqlite:///{tmp_path / 'sessions.db'}"
    sessions = Sessions(Library(lib), SqlStore(url), Recorder())
    s = sessions.start("refund", {})
    write(lib, {"policies.yaml": POLICY.replace("max: 30", "max: 5")})
    fresh = Sessions(Library(lib), SqlStore(url), Recorder())  # another process, later
    assert fresh.answer(s.id, "ask_amount", 25).outcome == "resolved"
    store = SqlStore(url)
    records = store.events(s.id)
    rebuilt = replay(store.load_bundle(store.load(s.id).definition), records[0], records)
    assert rebuilt.to_dict() == store.load(s.id).to_dict()


# ------------------------------------------------------------------ command line


@pytest.fixture
def env(tmp_path: Path, lib: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("JOURNEYS_LIBRARY", str(lib))
    monkeypatch.setenv("JOURNEYS_DB", f"sqlite:///{tmp_path / 'sessions.db'}")
    (tmp_path / "actions.yaml").write_text("payments.refund: {refund_id: R1, amount: 45}\n")
    (tmp_path / "answers.yaml").write_text("ask_amount: 45\n")
    return tmp_path


def run(*args: str) -> Result:
    return CliRunner().invoke(
        main,
        ["run", "refund", "--actions", "actions.yaml", "--answers", "answers.yaml", *args],
        catch_exceptions=False,
    )


def test_run_as_an_agent_above_the_limit_is_handed_to_a_supervisor(env: Path) -> None:
    result = run("--format", "json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert (data["status"], data["outcome"]) == ("ended", "escalated")
    assert data["handoff"]["queue"] == "supervisor"
    assert data["context"]["last_denial"]["role"] == "agent"
    assert "grants" not in data
    text = run()
    assert "handed to the supervisor queue (payments.refund amount 45 is above the agent's" in (
        text.stdout
    )


def test_run_with_role_supervisor_records_the_grant(env: Path) -> None:
    result = run("--role", "supervisor", "--agent", "sam", "--format", "json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["outcome"] == "resolved"
    assert data["grants"] == [
        {
            "node": "refund",
            "action": "payments.refund",
            "param": "amount",
            "value": 45,
            "limit": 200,
            "rule": "max",
            "role": "supervisor",
            "actor": "sam",
        }
    ]
    assert (
        "Granted by the supervisor sam: payments.refund amount 45"
        in run("--role", "supervisor", "--agent", "sam").stdout
    )


def test_run_in_selfcare_is_the_customer_by_default(env: Path) -> None:
    (env / "answers.yaml").write_text("ask_amount: 8\n")
    data = json.loads(run("--channel", "selfcare", "--format", "json").stdout)
    assert (data["outcome"], data["grants"][0]["role"]) == ("resolved", "customer")
    (env / "answers.yaml").write_text("ask_amount: 12\n")
    data = json.loads(run("--channel", "selfcare", "--format", "json").stdout)
    assert data["outcome"] == "escalated"
    data = json.loads(run("--channel", "selfcare", "--role", "agent", "--format", "json").stdout)
    assert data["outcome"] == "resolved"


def test_run_continues_a_session_with_another_role(env: Path) -> None:
    first = CliRunner().invoke(
        main, ["run", "approved", "--answers", "answers.yaml", "--format", "json"]
    )
    assert first.exit_code == 3, first.output
    sid = json.loads(first.stdout)["session"]
    (env / "approve.yaml").write_text("approval: approve\n")
    result = CliRunner().invoke(
        main,
        [
            "run",
            "--session",
            sid,
            "--role",
            "supervisor",
            "--agent",
            "sam",
            "--actions",
            "actions.yaml",
            "--answers",
            "approve.yaml",
            "--format",
            "json",
        ],
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert (data["outcome"], data["grants"][0]["actor"]) == ("resolved", "sam")


def test_run_refuses_to_start_under_a_broken_policy(env: Path, lib: Path) -> None:
    (lib / "policies.yaml").write_text(POLICY.replace("payments.refund", "payments.refnd", 1))
    result = run("--format", "json")
    assert result.exit_code == 1
    assert "policies.yaml" in result.stderr and "J009" in result.stderr
