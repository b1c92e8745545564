"""`journeys validate` as CI and editors use it: formats, exit codes, paths, bad input."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from cli import main
from tests.conftest import FIXTURES, ROOT, Check

BROKEN = FIXTURES / "broken"


def run(runner: CliRunner, *args: str) -> tuple[int, str, str]:
    result = runner.invoke(main, list(args), catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture
def broken_library(library: Path) -> Path:
    shutil.copy(BROKEN / "j003_option_target.yaml", library / "bad.yaml")
    return library


def test_clean_library_exits_0(runner: CliRunner, library: Path) -> None:
    code, out, err = run(runner, "validate", "--no-cache", str(library))
    assert code == 0
    assert out == ""
    assert "5 files checked, no problems found" in err


def test_text_format_is_file_line_column_code_message(
    runner: CliRunner, broken_library: Path
) -> None:
    code, out, _err = run(runner, "validate", "--no-cache", str(broken_library))
    assert code == 1
    [line] = [x for x in out.splitlines() if " J0" in x]
    location, message = line.split(": ", 1)
    assert location.endswith("bad.yaml:11:26")
    assert message.startswith("J003 node 'pick': option 'a' goes to 'vouchr'")
    assert "did you mean 'voucher'?" in message


def test_json_format(runner: CliRunner, broken_library: Path) -> None:
    code, out, _err = run(runner, "validate", "--no-cache", "--format", "json", str(broken_library))
    assert code == 1
    data = json.loads(out)
    assert set(data) >= {"errors", "warnings"}
    [error] = data["errors"]
    assert set(error) == {
        "file",
        "line",
        "column",
        "code",
        "severity",
        "journey",
        "node",
        "message",
    }
    assert (error["code"], error["line"], error["severity"]) == ("J003", 11, "error")
    assert (error["journey"], error["node"]) == ("option-target", "pick")
    assert [w["code"] for w in data["warnings"]] == ["W001", "W002"]


def test_github_format(runner: CliRunner, broken_library: Path) -> None:
    code, out, _err = run(
        runner, "validate", "--no-cache", "--format", "github", str(broken_library)
    )
    assert code == 1
    lines = out.splitlines()
    error = next(x for x in lines if x.startswith("::error "))
    assert ",line=11,col=26,title=J003::" in error
    assert "file=" in error and "bad.yaml" in error
    assert any(x.startswith("::warning ") and "title=W001" in x for x in lines)


def test_warnings_fail_only_with_strict(runner: CliRunner, library: Path) -> None:
    (library / "who.test.yaml").unlink()
    assert run(runner, "validate", "--no-cache", str(library))[0] == 0
    code, out, _ = run(runner, "validate", "--no-cache", "--strict", str(library))
    assert code == 1
    assert "W001" in out


def test_a_file_is_validated_within_its_library(runner: CliRunner, broken_library: Path) -> None:
    """A file that runs a sub-journey validates clean alone: the library around it is used."""
    code, out, _ = run(runner, "validate", "--no-cache", str(broken_library / "order-status.yaml"))
    assert (code, out) == (0, "")
    code, out, _ = run(runner, "validate", "--no-cache", str(broken_library / "bad.yaml"))
    assert code == 1
    assert out.count("J003") == 1


def test_library_option_and_environment(
    runner: CliRunner, broken_library: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert run(runner, "--library", str(broken_library), "validate", "--no-cache")[0] == 1
    # After the command too, as people write it: the same option.
    assert run(runner, "validate", "--library", str(broken_library), "--no-cache")[0] == 1
    assert run(runner, "validate", "--no-cache", f"--library={broken_library}")[0] == 1
    monkeypatch.setenv("JOURNEYS_LIBRARY", str(broken_library))
    assert run(runner, "validate", "--no-cache")[0] == 1


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["validate", "no/such/path"], "does not exist"),
        (["validate", "--format", "xml"], "'xml' is not one of"),
        (["--library", "no/such/library", "validate"], "does not exist"),
        (["serve", "--library", "no/such/library"], "does not exist"),  # before any server
        (["validate", "--max-file-size", "big"], "is not a size"),
    ],
)
def test_usage_errors_exit_2(runner: CliRunner, args: list[str], says: str, library: Path) -> None:
    code, _out, err = run(runner, *args)
    assert code == 2
    assert says in err
    assert "Traceback" not in err


# ----------------------------------------------------------------------- bad input


def one_file_library(library: Path, name: str, data: bytes) -> Path:
    path = library / name
    path.write_bytes(data)
    return path


BAD_INPUTS = {
    "empty": (b"", "J002", "the file is empty"),
    "binary": (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "J001", "binary file"),
    "latin1": ("journey: caf\xe9\n".encode("latin-1"), "J001", "not UTF-8"),
    "nested": (
        b"journey: x\nnodes: " + b"[" * 10_000 + b"]" * 10_000 + b"\n",
        "J001",
        "nested more than",
    ),
    "alias-bomb": (
        b'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n'
        + b"".join(
            f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 9)}]\n".encode()
            for i in range(9)
        ),
        "J001",
        "aliases expand",
    ),
    "list": (b"- a\n- b\n", "J002", "holds a list"),
}


@pytest.mark.parametrize("name", BAD_INPUTS)
def test_bad_input_gets_one_clear_finding(runner: CliRunner, library: Path, name: str) -> None:
    data, code, says = BAD_INPUTS[name]
    path = one_file_library(library, f"{name}.yaml", data)
    started = time.perf_counter()
    status, out, err = run(runner, "validate", "--no-cache", "--format", "json", str(path))
    elapsed = time.perf_counter() - started
    assert status == 1
    [finding] = json.loads(out)["errors"]
    assert finding["code"] == code
    assert says in finding["message"]
    assert "Traceback" not in err
    print(f"{name}: {elapsed:.3f} s")  # shown with -s; the limit is in bench/, not here


def test_huge_file_is_refused_unread(runner: CliRunner, library: Path) -> None:
    path = library / "huge.yaml"
    path.write_bytes(b"journey: x\n" + b"# padding\n" * 120_000)
    status, out, _ = run(runner, "validate", "--no-cache", "--format", "json", str(path))
    [finding] = json.loads(out)["errors"]
    assert status == 1
    assert finding["code"] == "J001"
    assert "1.2 MB, over the 1.0 MB limit" in finding["message"]
    status, out, _ = run(
        runner, "validate", "--no-cache", "--max-file-size", "2MB", "--format", "json", str(path)
    )
    assert "over the" not in out


def test_yes_and_no_stay_text(runner: CliRunner, library: Path) -> None:
    """An option value `no` is the text "no", so the schema (string) accepts it."""
    text = (library / "order-status.yaml").read_text()
    assert '{value: "no"' in text
    (library / "order-status.yaml").write_text(text.replace('{value: "no"', "{value: no"))
    assert run(runner, "validate", "--no-cache", str(library))[0] == 0


# --------------------------------------------------------------------------- cache


def test_warm_run_uses_the_cache_and_sees_changes(library: Path, check: Check) -> None:
    cold = check(library, use_cache=True)
    assert (cold.analysed, cold.findings) == (5, [])
    warm = check(library, use_cache=True)
    assert (warm.analysed, warm.findings) == (0, [])
    path = library / "order-status.yaml"
    path.write_text(path.read_text().replace("next: voucher}", "next: vouchr}"))
    changed = check(library, use_cache=True)
    assert changed.analysed == 1
    assert [f.code for f in changed.errors] == ["J003"]


def test_cached_findings_are_reported_again(library: Path, check: Check) -> None:
    shutil.copy(BROKEN / "j008_one_branch.yaml", library / "bad.yaml")
    first = check(library, use_cache=True)
    again = check(library, use_cache=True)
    assert again.analysed == 0
    assert again.findings == first.findings and len(first.errors) == 2


def test_changing_a_sub_journey_rechecks_its_callers(library: Path, check: Check) -> None:
    check(library, use_cache=True)
    who = library / "who.yaml"
    (library / "who.test.yaml").unlink()
    who.write_text(
        who.read_text().replace(
            "  unknown:\n    kind: handoff\n    queue: security\n",
            "  unknown:\n    kind: say\n    next: found\n",
        )
    )
    report = check(library, use_cache=True)
    assert report.analysed == 1  # only who.yaml is parsed again; order-status is re-solved
    assert {(f.code, f.file) for f in report.errors} == {("J008", "order-status.yaml")}


def test_a_corrupt_cache_is_ignored(library: Path, check: Check) -> None:
    check(library, use_cache=True)
    cache = library / ".journeys_cache" / "validate.json"
    cache.write_text("{not json")
    report = check(library, use_cache=True)
    assert (report.analysed, report.findings) == (5, [])


def test_unwritable_cache_is_skipped_with_a_note(
    library: Path, check: Check, capsys: pytest.CaptureFixture[str]
) -> None:
    blocker = library / "not-a-folder"
    blocker.write_text("a file where the cache folder should go")
    report = check(library, use_cache=True, cache_dir=blocker / "cache")
    assert report.findings == []
    assert "cache not written" in capsys.readouterr().err


# -------------------------------------------------------------------- real process


def test_installed_command_on_the_shipped_library() -> None:
    """What CI runs: the console script, in its own process, on the shipped library."""
    exe = Path(sys.executable).with_name("journeys")
    proc = subprocess.run(
        [str(exe), "validate", "--strict", "--no-cache", "journeys"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "no problems found" in proc.stderr


def test_validate_does_not_import_prefect_or_sqlalchemy() -> None:
    code = (
        "import sys; from click.testing import CliRunner; from cli import main;"
        "r = CliRunner().invoke(main, ['validate', '--no-cache', 'journeys']);"
        "assert r.exit_code == 0, r.output;"
        "print(sorted(m for m in ('prefect', 'sqlalchemy', 'fastapi', 'networkx') if m in sys.modules))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert proc.stdout.strip() == "['networkx']"


def test_the_shipped_library_is_validated_without_writing_in_the_install_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from actions.registry import catalogue
    from engine.definitions.shipped import SHIPPED_LIBRARY
    from engine.definitions.validate import CACHE_DIR_NAME, Options, validate

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    shipped = SHIPPED_LIBRARY / CACHE_DIR_NAME / "validate.json"
    before = shipped.stat().st_mtime if shipped.exists() else None
    validate([SHIPPED_LIBRARY], SHIPPED_LIBRARY, catalogue(), Options())
    assert list((tmp_path / "cache" / "journeys").glob("shipped-*/validate.json"))
    assert (shipped.stat().st_mtime if shipped.exists() else None) == before
