"""A library is its folder: links out of it are refused unread, dangling links and odd files
are one finding each, never a traceback."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner

from cli import main
from engine.definitions.library import Library
from tests.test_http import serving

SECRET = "root:$6$S3CR3T-HASH-OF-THE-TEST:19000:0:99999:7:::"


@pytest.fixture
def secret(tmp_path: Path) -> Path:
    """A file outside the library that must never be shown: a stand-in for /etc/shadow."""
    path = tmp_path / "outside" / "shadow"
    path.parent.mkdir()
    path.write_text(SECRET + "\n", encoding="utf-8")
    return path


def validate(runner: CliRunner, *args: str) -> tuple[int, str]:
    result = runner.invoke(main, ["validate", *args])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result.exit_code, result.output


@pytest.mark.parametrize("fmt", ["text", "json", "github"])
def test_a_link_out_of_the_library_is_one_finding_without_its_content(
    library: Path, secret: Path, runner: CliRunner, fmt: str
) -> None:
    (library / "passwords.yaml").symlink_to(secret)
    (library / "old.test.yaml").symlink_to(secret)
    code, output = validate(runner, "--format", fmt, str(library))
    assert code == 1
    assert "S3CR3T" not in output and "19000" not in output
    if fmt == "json":
        errors = json.loads(output)["errors"]
        assert [(e["file"].rsplit("/", 1)[-1], e["code"]) for e in errors] == [
            ("old.test.yaml", "J001"),
            ("passwords.yaml", "J001"),
        ]
        assert "a link to" in errors[1]["message"] and "outside the library" in errors[1]["message"]


def test_naming_the_link_itself_reads_nothing(
    library: Path, secret: Path, runner: CliRunner
) -> None:
    (library / "passwords.yaml").symlink_to(secret)
    code, output = validate(runner, str(library / "passwords.yaml"))
    assert code == 1
    assert "S3CR3T" not in output
    assert output.count("J001") == 1 and "outside the library" in output


def test_a_dangling_link_is_one_finding_never_a_traceback(
    library: Path, tmp_path: Path, runner: CliRunner
) -> None:
    (library / "gone.yaml").symlink_to(tmp_path / "nowhere.yaml")
    code, output = validate(runner, str(library))
    assert code == 1
    assert output.count("J001") == 1
    assert "gone.yaml:1:1: J001 this file is a link to" in output and "does not exist" in output
    # Validating another file of the same library reads the whole library: still no traceback.
    code, output = validate(runner, str(library / "who.yaml"))
    assert (code, output.strip()) == (0, "journeys: 6 files checked, no problems found")


def within(seconds: float, work: Any) -> Any:
    out: list[Any] = []
    thread = threading.Thread(target=lambda: out.append(work()), daemon=True)
    thread.start()
    thread.join(seconds)
    assert out, f"still reading after {seconds} s"
    return out[0]


def test_a_named_pipe_or_a_folder_named_like_a_journey_is_one_finding(
    library: Path, tmp_path: Path, runner: CliRunner
) -> None:
    os.mkfifo(library / "pipe.yaml")  # opening it to read would wait for a writer, forever
    (tmp_path / "folder.yaml").mkdir()
    (library / "folder.yaml").symlink_to(tmp_path / "folder.yaml", target_is_directory=True)
    code, output = within(20, lambda: validate(runner, str(library)))
    assert code == 1
    assert output.count("J001") == 1 and "pipe.yaml:1:1: J001 this is not a regular file" in output


def test_links_inside_the_library_are_read(
    library: Path, runner: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    (library / ".drafts").mkdir()
    (library / "order-status.yaml").rename(library / ".drafts" / "order-status.yaml")
    (library / "order-status.yaml").symlink_to(Path(".drafts") / "order-status.yaml")
    code, output = validate(runner, str(library))
    assert (code, output.strip()) == (0, "journeys: 5 files checked, no problems found")
    assert "order-status" in Library(library).journeys


STOLEN = """journey: stolen
version: 1
title: Not in the library
start: done
nodes:
  done: {kind: end, outcome: resolved, say: "read from outside the library"}
"""


def test_the_runtime_never_loads_a_journey_through_a_link_out(
    library: Path, tmp_path: Path
) -> None:
    outside = tmp_path / "outside.yaml"
    outside.write_text(STOLEN, encoding="utf-8")
    (library / "stolen.yaml").symlink_to(outside)
    (library / "policies.yaml").symlink_to(tmp_path / "nowhere.yaml")
    loaded = Library(library)  # no traceback for the dangling policy link either
    assert "stolen" not in loaded.journeys
    assert loaded.policy_problem is not None and "does not exist" in loaded.policy_problem


def test_the_api_never_starts_a_journey_from_a_file_path(
    library: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    outside = tmp_path / "elsewhere" / "stolen.yaml"
    outside.parent.mkdir()
    outside.write_text(STOLEN, encoding="utf-8")
    with (
        serving(library, tmp_path, monkeypatch) as url,
        httpx.Client(base_url=url, timeout=30) as api,
    ):
        answer = api.post("/v1/sessions", json={"journey": str(outside)})
        assert answer.status_code == 404, answer.text
        assert "read from outside" not in answer.text
        assert api.get("/v1/journeys").json() == api.get("/v1/journeys").json()
        assert "stolen" not in {j["id"] for j in api.get("/v1/journeys").json()}


def test_scenarios_through_a_link_out_are_not_run(
    library: Path, secret: Path, runner: CliRunner
) -> None:
    (library / "old.test.yaml").symlink_to(secret)
    result = runner.invoke(main, ["--library", str(library), "test"])
    assert result.exit_code == 1
    assert "S3CR3T" not in result.output
    assert "outside the library" in result.output
