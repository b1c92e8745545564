"""Self-care identity: an anonymous caller sees and changes nothing of a customer's until
the customer is proven (a signed identity from the company's site, or the one-time code sent
to the phone on file); back-office actions check that orders are the customer's own.

Against a real server on loopback, with agent keys configured (a real deployment: the
self-care caller is anonymous), the real demo back office on SQLite and real actions.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
import uvicorn
from sqlalchemy import select, update

from actions import backoffice as bo
from actions.backoffice import once
from actions.identity import MAX_ATTEMPTS
from engine.adapters.execution.local_actions import LocalExecutor
from engine.adapters.http import create_app
from engine.adapters.http.signed_identity import IdentityError, SignedIdentity
from engine.adapters.sql.store import SqlStore
from engine.definitions.library import Library
from engine.sessions.identity import IdentityGate
from tests.conftest import SHIPPED
from tests.test_http import free_port

AGENT_KEY = "agent-key-for-tests-0123456789"
AGENT = {"Authorization": f"Bearer {AGENT_KEY}"}
SITE_KEY = "the-company-site-and-journeys-share-this-key"
ISSUER = "https://www.example.com"


@dataclass
class Server:
    api: httpx.Client

    def start(self, **body: Any) -> dict[str, Any]:
        answer = self.api.post("/v1/sessions", json={"journey": "delivery-missing", **body})
        assert answer.status_code == 201, answer.text
        return dict(answer.json())

    def answer(self, session: dict[str, Any], value: Any) -> dict[str, Any]:
        answer = self.api.post(
            f"/v1/sessions/{session['id']}/answers",
            json={"node": session["step"]["node"], "value": value},
            headers=own(session),
        )
        assert answer.status_code == 200, answer.text
        return {**answer.json(), "token": session["token"]}

    def read(self, session: dict[str, Any]) -> dict[str, Any]:
        answer = self.api.get(f"/v1/sessions/{session['id']}", headers=own(session))
        assert answer.status_code == 200, answer.text
        return {**answer.json(), "token": session["token"]}


def own(session: dict[str, Any]) -> dict[str, str]:
    return {"Authorization": f"Bearer {session['token']}"}


@contextmanager
def serving(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Server]:
    monkeypatch.setenv("JOURNEYS_BACKOFFICE_DB", f"sqlite:///{tmp_path / 'bo.db'}")
    monkeypatch.setenv("JOURNEYS_AGENT_KEYS", f"{AGENT_KEY}:agent")
    monkeypatch.setenv("JOURNEYS_IDENTITY_KEY", SITE_KEY)
    monkeypatch.setenv("JOURNEYS_IDENTITY_ISSUER", ISSUER)
    store = SqlStore(f"sqlite:///{tmp_path / 'sessions.db'}")
    app = create_app(Library(SHIPPED), store, LocalExecutor(ledger=once), tmp_path / "home")
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=free_port(), log_level="error")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    for _ in range(200):
        if server.started:
            break
        time.sleep(0.05)
    try:
        url = f"http://127.0.0.1:{server.config.port}"
        with httpx.Client(base_url=url, timeout=30) as api:
            yield Server(api)
    finally:
        server.should_exit = True
        thread.join(10)
        store.dispose()


@pytest.fixture
def server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Server]:
    with serving(tmp_path, monkeypatch) as s:
        yield s


def personal(customer_id: str) -> list[str]:
    """What of a customer's record is personal: name, phone, e-mail, address."""
    with bo.transaction() as conn:
        row = bo.customer_row(conn, customer_id)
    return [row.name, row.phone, row.email, row.postcode, row.street, row.city]


def order_of(customer_id: str) -> str:
    with bo.transaction() as conn:
        return str(
            conn.execute(
                select(bo.orders.c.order_id)
                .where(bo.orders.c.customer_id == customer_id)
                .order_by(bo.orders.c.order_id)
            ).scalar()
        )


def assert_nothing_of(customer_id: str, *answers: Any) -> None:
    shown = json.dumps(answers, ensure_ascii=False)
    for value in personal(customer_id):
        assert value not in shown, f"{value!r} of {customer_id} was shown"


def last_code(customer_id: str) -> str:
    """The code as the customer reads it on their phone (the demo gateway's copy)."""
    phone = personal(customer_id)[1]
    d = bo.deliveries
    with bo.transaction() as conn:
        text = conn.execute(
            select(d.c.text).where(d.c.recipient == phone).order_by(d.c.id.desc())
        ).scalar()
    found = re.search(r"\b(\d{6})\b", text or "")
    assert found, f"no code was sent to {phone}"
    return found.group(1)


def signed(customer_id: str, **changes: Any) -> str:
    now = int(time.time())
    claims = {"sub": customer_id, "iss": ISSUER, "aud": "journeys", "iat": now, "exp": now + 120}
    key = changes.pop("key", SITE_KEY)
    claims.update(changes)
    return jwt.encode({k: v for k, v in claims.items() if v is not None}, key, algorithm="HS256")


def hs256_by_hand(claims: dict[str, Any], secret: bytes) -> str:
    """An HS256 token made without PyJWT's guard (it refuses a public key as a secret)."""
    import base64
    import hashlib
    import hmac

    def part(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    head = part(json.dumps({"alg": "HS256", "typ": "JWT", "kid": "k1"}).encode())
    body = part(json.dumps(claims).encode())
    signature = hmac.new(secret, f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{part(signature)}"


def changes_on(customer_id: str) -> dict[str, int]:
    """What the back office did for a customer: contact log, vouchers, refunds, reships."""
    with bo.transaction() as conn:
        orders = select(bo.orders.c.order_id).where(bo.orders.c.customer_id == customer_id)
        counts = {
            "contacts": bo.contact_log.c.customer_id == customer_id,
            "vouchers": bo.vouchers.c.customer_id == customer_id,
            "refunds": bo.refunds.c.order_id.in_(orders),
            "shipments": bo.shipments.c.order_id.in_(orders),
        }
        tables = {
            "contacts": bo.contact_log,
            "vouchers": bo.vouchers,
            "refunds": bo.refunds,
            "shipments": bo.shipments,
        }
        return {
            name: len(conn.execute(select(tables[name]).where(where)).all())
            for name, where in counts.items()
        }


# ----------------------------------------------------------- an anonymous caller


def test_a_number_sent_at_the_start_shows_nothing_of_that_customer(server: Server) -> None:
    started = server.start(channel="selfcare", inputs={"customer_id": "C001"})
    full = server.read(started)
    assert_nothing_of("C001", started, full)
    assert started["step"]["node"] == "identify/ask_code"  # the number is to be proven
    assert "customer" not in full["context"]


def test_a_number_typed_at_the_identify_step_shows_nothing(server: Server) -> None:
    started = server.start()
    assert started["channel"] == "selfcare"
    typed = server.answer(started, "C001")
    assert typed["step"]["node"] == "identify/ask_code"
    assert_nothing_of("C001", typed, server.read(started))


def test_an_anonymous_caller_changes_nothing_on_the_account(server: Server) -> None:
    before = changes_on("C001")
    order = order_of("C001")
    started = server.start(inputs={"customer_id": "C001", "order_id": order})
    for wrong in ["000000", "111111"]:
        server.answer(server.read(started), wrong)
    full = server.read(started)
    assert_nothing_of("C001", full)
    assert "tracking" not in full["context"]
    assert {run["action"] for run in full["actions"]} <= {
        "identity.send_code",
        "identity.check_code",
    }
    assert changes_on("C001") == before


def test_the_code_goes_to_the_phone_on_file_and_is_in_no_answer(server: Server) -> None:
    started = server.start(inputs={"customer_id": "C002"})
    code = last_code("C002")
    assert code not in json.dumps([started, server.read(started)])
    with bo.transaction() as conn:
        stored = conn.execute(select(bo.one_time_codes)).all()
    assert len(stored) == 1 and stored[0].customer_id == "C002"
    assert code not in json.dumps([list(r) for r in stored], default=str)  # only its hash


def test_wrong_codes_are_limited_then_even_the_right_one_is_refused(server: Server) -> None:
    started = server.start(inputs={"customer_id": "C003"})
    code = last_code("C003")
    wrong = "000000" if code != "000000" else "111111"
    for _ in range(MAX_ATTEMPTS):
        server.answer(server.read(started), wrong)
    now = server.read(started)
    assert now["step"]["node"] == "identify/code_unusable"
    with bo.transaction() as conn:
        row = conn.execute(select(bo.one_time_codes)).one()
    assert (row.status, row.attempts) == ("locked", MAX_ATTEMPTS)
    assert_nothing_of("C003", now)


def test_an_expired_code_proves_nothing(server: Server) -> None:
    started = server.start(inputs={"customer_id": "C004"})
    code = last_code("C004")
    with bo.transaction() as conn:
        conn.execute(update(bo.one_time_codes).values(expires_at=bo.now()))
    after = server.answer(server.read(started), code)
    assert after["step"]["node"] == "identify/code_unusable"
    assert_nothing_of("C004", after, server.read(started))


# --------------------------------------------------------- a verified customer


def test_a_customer_with_the_code_goes_on_as_before(server: Server) -> None:
    started = server.start(inputs={"customer_id": "C001"}, locale="fr")
    proven = server.answer(started, last_code("C001"))
    name = personal("C001")[0]
    assert any(f"Merci, {name}" in m for m in proven["step"]["messages"])
    assert proven["step"]["node"] == "ask_order"
    tracked = server.answer(proven, order_of("C001"))
    assert "tracking" in server.read(started)["context"], tracked


def test_the_proof_is_rebuilt_from_the_sessions_events(server: Server, tmp_path: Path) -> None:
    from engine.sessions.service import replay

    proven = server.answer(server.start(inputs={"customer_id": "C008"}), last_code("C008"))
    signed_in = server.start(identity=signed("C009"))
    store = SqlStore(f"sqlite:///{tmp_path / 'sessions.db'}")
    try:
        for session, by in ((proven, "code"), (signed_in, "signed")):
            stored = store.load(session["id"])
            records = store.events(session["id"])
            rebuilt = replay(store.load_bundle(stored.definition), records[0], records)
            assert stored.identity is not None and stored.identity["by"] == by
            assert rebuilt.identity == stored.identity
            assert rebuilt.customer_id == stored.customer_id == stored.identity["customer_id"]
    finally:
        store.dispose()


def test_another_customers_order_is_not_found(server: Server) -> None:
    before = changes_on("C002")
    started = server.start(inputs={"customer_id": "C001"})
    proven = server.answer(started, last_code("C001"))
    server.answer(proven, order_of("C002"))
    full = server.read(started)
    assert "tracking" not in full["context"]
    [run] = [r for r in full["actions"] if r["action"] == "orders.get_tracking"]
    assert run["status"] == "refused" and "has no order" in run["error"]
    assert_nothing_of("C002", full)
    assert changes_on("C002") == before


def test_a_signed_identity_from_the_site_needs_no_code(server: Server) -> None:
    started = server.start(identity=signed("C005"))
    name = personal("C005")[0]
    assert any(name in m for m in started["step"]["messages"]), started
    assert started["step"]["node"] == "ask_order"
    assert server.read(started)["context"]["customer_id"] == "C005"


def test_a_signed_identity_is_the_only_number(server: Server) -> None:
    refused = server.api.post(
        "/v1/sessions",
        json={"journey": "delivery-missing", "identity": signed("C005"), "customer_id": "C001"},
    )
    assert refused.status_code == 403, refused.text
    assert_nothing_of("C001", refused.json())
    assert_nothing_of("C005", refused.json())


@pytest.mark.parametrize(
    ("changes", "said"),
    [
        ({"exp": int(time.time()) - 600}, "expired"),
        ({"aud": "another-service"}, "audience"),
        ({"iss": "https://evil.example"}, "issued by"),
        ({"key": "a-key-the-attacker-made-up-of-32-bytes!"}, "not valid"),
        ({"exp": int(time.time()) + 86_400}, "at most"),
        ({"iat": None}, "'iat'"),
    ],
)
def test_a_bad_signed_identity_is_refused(
    server: Server, changes: dict[str, Any], said: str
) -> None:
    refused = server.api.post(
        "/v1/sessions", json={"journey": "delivery-missing", "identity": signed("C006", **changes)}
    )
    assert refused.status_code == 401, refused.text
    assert said in refused.json()["detail"]
    assert_nothing_of("C006", refused.json())


def test_an_unsigned_identity_is_refused(server: Server) -> None:
    forged = jwt.encode(
        {"sub": "C006", "iss": ISSUER, "aud": "journeys", "iat": 1, "exp": 2**40},
        key="",
        algorithm="none",
    )
    refused = server.api.post(
        "/v1/sessions", json={"journey": "delivery-missing", "identity": forged}
    )
    assert refused.status_code == 401 and "'none'" in refused.json()["detail"]


# ----------------------------------------------------------------- channels, agents


def test_a_self_care_customer_cannot_take_an_agents_channel(server: Server) -> None:
    refused = server.api.post(
        "/v1/sessions", json={"journey": "delivery-missing", "channel": "phone"}
    )
    assert refused.status_code == 403 and "selfcare" in refused.json()["detail"]
    started = server.start()
    moved = server.api.post(
        f"/v1/sessions/{started['id']}/resume", json={"channel": "phone"}, headers=own(started)
    )
    assert moved.status_code == 403, moved.text
    assert server.read(started)["channel"] == "selfcare"
    taken = server.api.post(
        f"/v1/sessions/{started['id']}/resume", json={"channel": "phone"}, headers=AGENT
    )
    assert taken.status_code == 200 and taken.json()["channel"] == "phone"


def test_agents_are_unaffected(server: Server) -> None:
    started = server.api.post(
        "/v1/sessions",
        json={"journey": "delivery-missing", "channel": "phone", "customer_id": "C007"},
        headers=AGENT,
    ).json()
    assert any(personal("C007")[0] in m for m in started["step"]["messages"])
    assert started["step"]["node"] == "ask_order"


def test_an_outbound_message_is_answered_by_its_customer(server: Server) -> None:
    order = order_of("C001")
    fired = server.api.post(
        "/v1/events",
        json={
            "event": "order.delayed",
            "data": {"customer_id": "C001", "order_id": order, "days_late": 7},
        },
        headers=AGENT,
    )
    assert fired.status_code == 200, fired.text
    [session] = fired.json()["sessions"]
    full = server.read(session)
    assert full["context"]["customer"]["customer_id"] == "C001"  # the back office named them


# ------------------------------------------------------------------------ units


def test_the_gate_holds_customers_only() -> None:
    gate = IdentityGate(
        accounts=frozenset({"crm.get_customer", "identity.send_code", "identity.check_code"}),
        challenges=frozenset({"identity.send_code"}),
        proofs=frozenset({"identity.check_code"}),
    )
    ask = {"customer_id": "C001"}
    assert gate.refusal("agent", None, "crm.get_customer", ask) is None
    assert gate.refusal("customer", None, "crm.get_customer", ask)
    assert gate.refusal("customer", {"customer_id": "C002"}, "crm.get_customer", ask)
    assert gate.refusal("customer", {"customer_id": "C001"}, "crm.get_customer", ask) is None
    assert gate.refusal("customer", {"customer_id": "C001"}, "crm.get_customer", {})
    assert gate.refusal("customer", None, "identity.send_code", ask) is None
    assert gate.refusal("customer", None, "network.status", {}) is None  # no account
    assert gate.proven("identity.check_code", ask, {"verified": True}) == "C001"
    assert gate.proven("identity.check_code", ask, {"verified": False}) is None
    assert gate.proven("crm.get_customer", ask, {"verified": True}) is None


@pytest.mark.parametrize(
    ("env", "said"),
    [
        ({"JOURNEYS_IDENTITY_KEY": SITE_KEY}, "JOURNEYS_IDENTITY_ISSUER"),
        ({"JOURNEYS_IDENTITY_KEY": "short", "JOURNEYS_IDENTITY_ISSUER": ISSUER}, "32"),
        (
            {
                "JOURNEYS_IDENTITY_KEY": SITE_KEY,
                "JOURNEYS_IDENTITY_ISSUER": ISSUER,
                "JOURNEYS_IDENTITY_MAX_AGE": "²",
            },
            "seconds",
        ),
    ],
)
def test_an_unsafe_configuration_is_refused_with_its_reason(env: dict[str, str], said: str) -> None:
    with pytest.raises(IdentityError, match=said):
        SignedIdentity.from_environment(env)
    assert SignedIdentity.from_environment({}) is None


@pytest.mark.parametrize(
    ("action", "inputs"),
    [
        ("orders.get_tracking", {}),
        ("orders.create_return", {"reason": "damaged"}),
        ("orders.reship", {"reason": "lost"}),
        ("payments.refund", {"amount": 1.0, "reason": "lost"}),
        ("payments.get_refund_status", {}),
    ],
)
def test_another_customers_order_is_a_business_error(
    action: str, inputs: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from actions.registry import NotFound, catalogue

    monkeypatch.setenv("JOURNEYS_BACKOFFICE_DB", f"sqlite:///{tmp_path / 'bo.db'}")
    before = changes_on("C002")
    theirs = order_of("C002")
    with pytest.raises(NotFound, match="has no order"):
        catalogue()[action].function(order_id=theirs, customer_id="C001", **inputs)
    assert changes_on("C002") == before


def test_another_customers_appointment_is_a_business_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from actions.registry import NotFound, catalogue

    monkeypatch.setenv("JOURNEYS_BACKOFFICE_DB", f"sqlite:///{tmp_path / 'bo.db'}")
    with bo.transaction() as conn:
        row = conn.execute(select(bo.appointments).limit(1)).one()
    stranger = "C001" if row.customer_id != "C001" else "C002"
    day = bo.today() + timedelta(days=2)
    day += timedelta(days=1) if day.weekday() == 6 else timedelta(0)  # no visit on Sundays
    with pytest.raises(NotFound, match="for this customer"):
        catalogue()["appointments.reschedule"].function(
            appointment_id=row.appointment_id, slot=f"{day} morning", customer_id=stranger
        )
    with bo.transaction() as conn:
        assert conn.execute(select(bo.appointments).limit(1)).one() == row  # not moved


def test_an_openid_connect_id_token_is_checked_against_the_providers_keys(
    tmp_path: Path,
) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public = jwt.algorithms.RSAAlgorithm.to_jwk(private.public_key(), as_dict=True)
    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps({"keys": [{**public, "kid": "k1", "use": "sig"}]}))
    checker = SignedIdentity.from_environment(
        {
            "JOURNEYS_IDENTITY_JWKS": str(jwks),
            "JOURNEYS_IDENTITY_ISSUER": "https://login.example.com",
            "JOURNEYS_IDENTITY_CLAIM": "customer_number",
        }
    )
    assert checker is not None
    now = int(time.time())
    claims = {
        "sub": "user-8c1f",
        "customer_number": "C010",
        "iss": "https://login.example.com",
        "aud": "journeys",
        "iat": now,
        "exp": now + 60,
    }
    token = jwt.encode(claims, private, algorithm="RS256", headers={"kid": "k1"})
    assert checker.check(token)["customer_id"] == "C010"
    # The provider's public key used as an HS256 secret (algorithm confusion): refused.
    pem = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    confused = hs256_by_hand(claims, pem)
    with pytest.raises(IdentityError, match="accepts RS256"):
        checker.check(confused)
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    with pytest.raises(IdentityError, match="not valid"):
        checker.check(jwt.encode(claims, other, algorithm="RS256", headers={"kid": "k1"}))


def test_a_journey_cannot_set_the_engines_identity(tmp_path: Path) -> None:
    """A journey that set `identity` itself would fool its own decisions (never the gate):
    `journeys validate` refuses it."""
    from click.testing import CliRunner

    from cli import main

    (tmp_path / "j.yaml").write_text(
        "journey: j\nversion: 1\ntitle: t\nstart: a\nnodes:\n"
        "  a: {kind: ask, say: who?, field: identity, schema: {type: string}, next: b}\n"
        "  b: {kind: end, outcome: resolved}\n",
        encoding="utf-8",
    )
    result = CliRunner().invoke(main, ["validate", str(tmp_path), "--format", "json"])
    [problem] = [f for f in json.loads(result.stdout)["errors"] if "identity" in f["message"]]
    assert problem["code"] == "J008" and "name it otherwise" in problem["message"]


def test_guessing_codes_is_rate_limited_per_session_and_address(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JOURNEYS_RATE_LIMITS", "otp=3/600")
    with serving(tmp_path, monkeypatch) as server:
        started = server.start(inputs={"customer_id": "C003"})
        code = last_code("C003")
        wrong = "000000" if code != "000000" else "111111"
        for _ in range(3):
            server.answer(server.read(started), wrong)
        now = server.read(started)
        refused = server.api.post(
            f"/v1/sessions/{started['id']}/answers",
            json={"node": now["step"]["node"], "value": code},
            headers=own(started),
        )
        assert refused.status_code == 429, refused.text
        assert int(refused.headers["Retry-After"]) > 0
        assert refused.json()["limit"] == "otp"
        assert_nothing_of("C003", refused.json(), server.read(started))
        # A customer the company's site signed in is proven: their answers are not counted.
        proven = server.start(identity=signed("C001"))
        for _ in range(4):
            proven = server.read(proven)
            if proven["status"] != "active" or proven["step"]["kind"] != "ask":
                break
            options = proven["step"].get("options") or []
            server.answer(proven, options[0]["value"] if options else "fine")
