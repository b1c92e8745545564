"""`journeys run`, `journeys test` and `journeys db` as users and CI call them."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from xml.etree import ElementTree

import pytest
from click.testing import CliRunner, Result

from cli import main
from tests.conftest import FIXTURES, SHIPPED

STUBS = """
crm.get_customer: {customer_id: C001, name: Ada Martin}
orders.get_tracking: {order_id: "10000001", status: in_transit, days_late: 7}
"""


@pytest.fixture
def env(tmp_path: Path, library: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A library, a session database and stub files in a scratch folder."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("JOURNEYS_LIBRARY", str(library))
    monkeypatch.setenv("JOURNEYS_DB", f"sqlite:///{tmp_path / 'sessions.db'}")
    (tmp_path / "actions.yaml").write_text(STUBS)
    return tmp_path


def invoke(*args: str, input: str | None = None) -> Result:
    return CliRunner().invoke(main, list(args), input=input, catch_exceptions=False)


def answers(folder: Path, text: str) -> str:
    path = folder / f"answers-{abs(hash(text))}.yaml"
    path.write_text(text)
    return str(path)


def test_scripted_run_to_the_end(env: Path) -> None:
    result = invoke(
        "run",
        "order-status",
        "--input",
        "customer_id=C001",
        "--actions",
        "actions.yaml",
        "--answers",
        answers(env, 'ask_order: "10000001"\noffer: voucher\n'),
        "--format",
        "json",
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert set(data) >= {"session", "journey", "version", "status", "outcome", "path", "context"}
    assert (data["journey"], data["version"], data["status"], data["outcome"]) == (
        "order-status",
        1,
        "ended",
        "resolved",
    )
    assert data["path"] == [
        "identify",
        "identify/lookup",
        "identify/found",
        "ask_order",
        "track",
        "route",
        "offer",
        "voucher",
        "done",
    ]
    assert data["context"]["compensation"] == "voucher"


def test_missing_answer_exits_3_and_names_the_node(env: Path) -> None:
    result = invoke(
        "run",
        "order-status",
        "--input",
        "customer_id=C001",
        "--actions",
        "actions.yaml",
        "--answers",
        answers(env, 'ask_order: "10000001"\n'),
        "--format",
        "json",
    )
    assert result.exit_code == 3
    data = json.loads(result.stdout)
    assert (data["status"], data["node"]) == ("waiting", "offer")


def test_invalid_answer_exits_1_and_loses_nothing(env: Path) -> None:
    bad = invoke(
        "run",
        "order-status",
        "--input",
        "customer_id=C001",
        "--actions",
        "actions.yaml",
        "--answers",
        answers(env, 'ask_order: "123"\n'),
        "--format",
        "json",
    )
    assert bad.exit_code == 1
    assert "'123' is not in the expected format" in json.loads(bad.stdout)["error"]
    # The session is still there, waiting at the same question: run again resumes it.
    good = invoke(
        "run",
        "order-status",
        "--input",
        "customer_id=C001",
        "--actions",
        "actions.yaml",
        "--answers",
        answers(env, 'ask_order: "10000001"\noffer: "no"\n'),
        "--format",
        "json",
    )
    assert good.exit_code == 0
    assert "Resuming session" in good.stderr
    assert json.loads(good.stdout)["context"]["compensation"] == "no"


def test_new_starts_another_session_and_session_continues_one(env: Path) -> None:
    first = invoke(
        "run",
        "order-status",
        "--input",
        "customer_id=C001",
        "--actions",
        "actions.yaml",
        "--answers",
        answers(env, "{}\n"),
        "--format",
        "json",
        "--channel",
        "chat",
    )
    assert first.exit_code == 3
    sid = json.loads(first.stdout)["session"]
    other = invoke(
        "run",
        "order-status",
        "--new",
        "--input",
        "customer_id=C001",
        "--actions",
        "actions.yaml",
        "--answers",
        answers(env, "{}\n"),
        "--format",
        "json",
    )
    assert json.loads(other.stdout)["session"] != sid
    cont = invoke(
        "run",
        "--session",
        sid,
        "--channel",
        "phone",
        "--actions",
        "actions.yaml",
        "--answers",
        answers(env, 'ask_order: "10000001"\noffer: voucher\n'),
        "--format",
        "json",
    )
    assert cont.exit_code == 0
    assert json.loads(cont.stdout)["session"] == sid


@pytest.mark.parametrize(
    ("args", "says", "code"),
    [
        (["run", "order-statu"], "did you mean 'order-status'?", 2),
        (["run", "--session", "s_nope", "--format", "json"], "no session 's_nope'", 1),
        (["run", "order-status", "--input", "customer_id"], "NAME=VALUE", 2),
        (
            ["run", "order-status", "--input", "colour=blue", "--format", "json"],
            "has no input 'colour'",
            1,
        ),
        (["run", "order-status", "--db", "nodb://x"], "not usable", 1),
        (["run"], "give a JOURNEY", 2),
    ],
)
def test_bad_input_is_a_clear_error(env: Path, args: list[str], says: str, code: int) -> None:
    result = invoke(*args)
    assert result.exit_code == code
    assert says in result.output
    assert "Traceback" not in result.output


def test_a_journey_with_errors_does_not_start(env: Path, library: Path) -> None:
    path = library / "order-status.yaml"
    path.write_text(path.read_text().replace("next: voucher}", "next: vouchr}"))
    result = invoke("run", "order-status", "--answers", answers(env, "{}\n"))
    assert result.exit_code == 1
    assert "J003" in result.output and "journeys validate" in result.output


def test_interactive_run(env: Path) -> None:
    typed = (
        "\n".join(
            [
                "C001",  # identify/ask_id
                "123",  # ask_order: refused, asked again with the reason
                "10000001",  # ask_order
                "1",  # offer: option 1 (voucher)
                "",  # anything else? no
            ]
        )
        + "\n"
    )
    result = invoke("run", "order-status", "--actions", "actions.yaml", input=typed)
    assert result.exit_code == 0, result.output
    out = result.output
    assert "Your customer number?" in out
    assert "'123' is not in the expected format" in out and "try again" in out
    assert "1) A voucher" in out and "2) Nothing" in out
    assert "Outcome: resolved" in out


def test_interactive_run_left_waiting_says_how_to_resume(env: Path) -> None:
    result = invoke("run", "order-status", "--actions", "actions.yaml", input="C001\n")
    assert result.exit_code == 3
    assert "is left waiting at 'ask_order'" in result.output
    assert "journeys run --session s_" in result.output


def test_anything_else_starts_the_next_motive_in_the_same_contact(env: Path) -> None:
    typed = "C001\n10000001\n2\norder-status\n10000002\n1\n\n"
    result = invoke("run", "order-status", "--actions", "actions.yaml", input=typed)
    assert result.exit_code == 0, result.output
    assert result.output.count("Outcome: resolved") == 2
    assert "(same contact)" in result.output
    # The customer was identified once: the second journey did not ask again.
    assert result.output.count("Your customer number?") == 1


# ----------------------------------------------------------------------- journeys test


def test_shipped_scenarios_pass_with_full_coverage(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("JOURNEYS_LIBRARY", str(SHIPPED))
    junit = tmp_path / "junit.xml"
    result = invoke("test", "--min-coverage", "100", "--junit", str(junit))
    assert result.exit_code == 0, result.output
    assert " 0 failed" in result.output
    suite = ElementTree.parse(junit).getroot()
    assert int(suite.get("tests", "0")) >= 100 and suite.get("failures") == "0"


def test_failing_scenario_shows_the_difference(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lib = tmp_path / "lib"
    shutil.copytree(FIXTURES / "base", lib)
    path = lib / "order-status.test.yaml"
    path.write_text(path.read_text().replace("outcome: resolved", "outcome: escalated"))
    monkeypatch.setenv("JOURNEYS_LIBRARY", str(lib))
    junit = tmp_path / "junit.xml"
    result = invoke("test", "--junit", str(junit))
    assert result.exit_code == 1
    assert "FAIL  order-status: late order, voucher" in result.output
    assert "outcome: expected 'escalated', got 'resolved'" in result.output
    data = json.loads(invoke("test", "--format", "json").stdout)
    assert data["failed"] == 1
    assert ElementTree.parse(junit).getroot().find("testcase/failure") is not None


def test_min_coverage_fails_and_names_what_is_uncovered(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lib = tmp_path / "lib"
    shutil.copytree(FIXTURES / "base", lib)
    monkeypatch.setenv("JOURNEYS_LIBRARY", str(lib))
    result = invoke("test", "--min-coverage", "100")
    assert result.exit_code == 1
    assert "uncovered: node sorry" in result.output
    assert "coverage below 100.0% for: order-status" in result.output


def test_no_scenarios_is_a_failure(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    lib = tmp_path / "lib"
    shutil.copytree(FIXTURES / "base", lib)
    for path in lib.glob("*.test.yaml"):
        path.unlink()
    monkeypatch.setenv("JOURNEYS_LIBRARY", str(lib))
    result = invoke("test")
    assert result.exit_code == 1
    assert "no scenario found" in result.output


def test_db_upgrade(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    result = invoke("db", "upgrade", "--db", url)
    assert result.exit_code == 0
    from engine.adapters.sql.migrations import head_revision

    assert f"revision {head_revision()}" in result.output
    assert (tmp_path / "fresh.db").exists()


def test_a_journey_that_cannot_go_on_ends_failed_not_stuck(env: Path) -> None:
    """A back office answering without `days_late`: the decide cannot be evaluated."""
    (env / "short.yaml").write_text(
        "crm.get_customer: {customer_id: C001, name: Ada}\norders.get_tracking: {}\n"
    )
    result = invoke(
        "run",
        "order-status",
        "--input",
        "customer_id=C001",
        "--actions",
        "short.yaml",
        "--answers",
        answers(env, 'ask_order: "10000001"\n'),
        "--format",
        "json",
    )
    assert result.exit_code == 1
    data = json.loads(result.stdout)
    assert (data["status"], data["outcome"]) == ("ended", "unresolved")
    assert data["error"]["node"] == "route"
    assert "has no 'days_late'" in data["error"]["message"]


def test_journey_given_by_its_file(env: Path, library: Path) -> None:
    result = invoke(
        "run",
        str(library / "order-status.yaml"),
        "--input",
        "customer_id=C001",
        "--actions",
        "actions.yaml",
        "--answers",
        answers(env, 'ask_order: "10000001"\noffer: voucher\n'),
        "--format",
        "json",
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["journey"] == "order-status"


def test_backoffice_show(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JOURNEYS_BACKOFFICE_DB", f"sqlite:///{tmp_path / 'bo.db'}")
    result = invoke("backoffice", "show", "customers", "--limit", "2", "--format", "json")
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert [r["customer_id"] for r in rows] == ["C001", "C002"]
    bad = invoke("backoffice", "show", "refundz")
    assert bad.exit_code == 2 and "the tables are" in bad.output


def test_shipped_journey_runs_against_the_demo_back_office(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The main job: a shipped journey, the real actions, the embedded databases."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("JOURNEYS_LIBRARY", str(SHIPPED))
    monkeypatch.delenv("JOURNEYS_DB", raising=False)
    monkeypatch.setenv("JOURNEYS_BACKOFFICE_DB", f"sqlite:///{tmp_path / 'bo.db'}")
    script = answers(tmp_path, 'ask_order: "10000001"\noffer: refund\nconfirm/ask_solved: "yes"\n')
    result = invoke(
        "run",
        "delivery-missing",
        "--input",
        "customer_id=C001",
        "--answers",
        script,
        "--format",
        "json",
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["outcome"] == "resolved"
    refunds = json.loads(invoke("backoffice", "show", "refunds", "--format", "json").stdout)
    assert any(
        r["order_id"] == "10000001" and r["refund_id"] == data["context"]["refund"]["refund_id"]
        for r in refunds
    )
    assert (tmp_path / ".journeys" / "sessions.db").exists()


def test_a_back_office_that_is_down_is_an_incident_never_customer_not_found(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The back-office database unreachable: the session holds at the action, `status:
    incident`, exit 1; it is never the journey's "no such customer" path."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("JOURNEYS_LIBRARY", str(SHIPPED))
    monkeypatch.setenv("JOURNEYS_DB", f"sqlite:///{tmp_path / 'sessions.db'}")
    monkeypatch.setenv("JOURNEYS_BACKOFFICE_DB", "postgresql+psycopg://nobody@127.0.0.1:1/none")
    result = invoke("run", "delivery-missing", "--input", "customer_id=C001", "--format", "json")
    assert result.exit_code == 1, result.output
    data = json.loads(result.stdout[result.stdout.index("{") :])
    assert data["status"] == "incident" and data["outcome"] is None
    assert data["incident"]["action"] == "crm.get_customer"
    assert "last_error" not in data["context"]
    assert "could not find" not in result.output.lower()


def test_an_incident_is_said_and_continued_once_the_back_office_is_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Held by an incident: the text says so (not "waiting"); `journeys run --session` runs the
    action again, and the session goes on where it was."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("JOURNEYS_LIBRARY", str(SHIPPED))
    monkeypatch.setenv("JOURNEYS_DB", f"sqlite:///{tmp_path / 'sessions.db'}")
    monkeypatch.setenv("JOURNEYS_BACKOFFICE_DB", "postgresql+psycopg://nobody@127.0.0.1:1/none")
    held = invoke("run", "delivery-missing", "--input", "customer_id=C001", "--answers",
                  answers(tmp_path, "{}"))  # fmt: skip
    assert held.exit_code == 1
    assert "is held at 'identify/get_customer': the back office did not answer" in held.stdout
    assert "crm.get_customer" in held.stdout and "is waiting" not in held.stdout
    session = held.stdout.rsplit("journeys run --session ", 1)[1].split()[0]
    monkeypatch.setenv("JOURNEYS_BACKOFFICE_DB", f"sqlite:///{tmp_path / 'bo.db'}")
    script = answers(tmp_path, 'ask_order: "10000001"\noffer: refund\nconfirm/ask_solved: "yes"\n')
    done = invoke("run", "--session", session, "--answers", script, "--format", "json")
    assert done.exit_code == 0, done.output
    data = json.loads(done.stdout)
    assert (data["status"], data["outcome"]) == ("ended", "resolved")
    assert data["context"]["customer"]["customer_id"] == "C001"
