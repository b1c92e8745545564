"""Numbers that are not numbers, and tokens that are not tokens."""

from __future__ import annotations

import math
from pathlib import Path

import httpx
import pytest

from engine.adapters.http import Tokens
from engine.sessions.values import from_text, schema_problem
from tests.conftest import SHIPPED
from tests.test_http import serving

BOUNDED = {"type": "number", "minimum": 0, "maximum": 100}


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_nan_and_infinity_are_not_numbers(value: float) -> None:
    problem = schema_problem(value, BOUNDED)
    assert problem is not None and "not a number" in problem
    assert schema_problem([1, value], {"type": "array"}) is not None


@pytest.mark.parametrize("text", ["nan", "NaN", "inf", "-Infinity", "1e999"])
def test_nan_and_infinity_typed_as_text_are_refused(text: str) -> None:
    problem = schema_problem(from_text(text, BOUNDED), BOUNDED)
    assert problem is not None and "not a number" in problem


def test_plain_numbers_still_pass() -> None:
    assert schema_problem(from_text("4,5", BOUNDED), BOUNDED) is None
    assert schema_problem(12, BOUNDED) is None


@pytest.mark.parametrize(
    "token",
    [
        "²²²²²²²²²²." + "a" * 40,
        "9999999999." + "é" * 40,
        "٣٣٣٣٣٣٣٣٣٣." + "a" * 40,
        "1" * 5000 + "." + "a" * 40,
    ],
)
def test_a_malformed_token_is_not_valid(token: str) -> None:
    tokens = Tokens(b"secret")
    assert not tokens.check(token, "s_1")
    assert not Tokens.looks_like(token) or len(token) > 100


def test_the_api_answers_401_to_a_token_with_non_ascii_digits(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with (
        serving(SHIPPED, tmp_path, monkeypatch) as url,
        httpx.Client(base_url=url, timeout=30) as api,
    ):
        started = api.post(
            "/v1/sessions", json={"journey": "delivery-missing", "customer_id": "C001"}
        ).json()
        signature = started["token"].partition(".")[2]
        for bad in ["²" * 10 + "." + signature, "9999999999." + "é" * 40, "x" * 50]:
            answer = api.get(
                f"/v1/sessions/{started['id']}", headers={"Authorization": f"Bearer {bad}".encode()}
            )
            assert answer.status_code in (401, 403), (bad, answer.status_code, answer.text)
