"""`journeys serve` end to end: its back office on PostgreSQL is unreachable (nothing listens
on its port), a session becomes an incident; then PostgreSQL is reachable on that port again
and the server's own retry loop carries the session on, with nothing lost. Slow by nature:
the first automatic retry comes 30 s after the failure."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest

from tests.conftest import PG_DSN, SHIPPED

pytestmark = pytest.mark.requires("postgresql")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Forwarder:
    """A TCP port that forwards to PostgreSQL once opened: before, nothing listens there (a
    database that is down); after, it answers (the database is back)."""

    def __init__(self, port: int, target: tuple[str, int] = ("127.0.0.1", 5432)) -> None:
        self.port, self.target = port, target
        self.server: socket.socket | None = None

    def open(self) -> None:
        self.server = socket.create_server(("127.0.0.1", self.port))
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        assert self.server is not None
        while True:
            try:
                client, _ = self.server.accept()
            except OSError:  # closed
                return
            upstream = socket.create_connection(self.target)
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for s in (source, sink):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        if self.server is not None:
            self.server.close()


@pytest.fixture
def backoffice_db() -> Iterator[str]:
    name = f"incidents_bo_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(PG_DSN, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield name
    finally:
        with psycopg.connect(PG_DSN, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


def test_served_an_incident_goes_on_by_itself_when_the_back_office_is_back(
    tmp_path: Path, backoffice_db: str
) -> None:
    bo_port, port = free_port(), free_port()
    forwarder = Forwarder(bo_port)
    env = {
        **os.environ,
        "JOURNEYS_EXECUTOR": "local",
        "JOURNEYS_RETRY_INTERVAL": "0.5",
        "JOURNEYS_HOME": str(tmp_path / "home"),
        "JOURNEYS_DB": f"sqlite:///{tmp_path / 'sessions.db'}",
        "JOURNEYS_BACKOFFICE_DB": f"postgresql+psycopg://postgres@127.0.0.1:{bo_port}/{backoffice_db}",
    }
    env.pop("JOURNEYS_AGENT_KEYS", None)
    journeys = str(Path(sys.executable).with_name("journeys"))
    server = subprocess.Popen(
        [journeys, "--library", str(SHIPPED), "serve", "--port", str(port)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(base_url=url, timeout=60) as api:
            deadline = time.monotonic() + 60
            while True:
                try:
                    api.get("/v1/journeys")
                    break
                except httpx.TransportError:
                    assert server.poll() is None and time.monotonic() < deadline, "no server"
                    time.sleep(0.2)
            started = api.post(
                "/v1/sessions", json={"journey": "delivery-missing", "customer_id": "C001"}
            ).json()
            sid = started["id"]
            assert started["status"] == "incident"
            assert "could not find" not in str(started).lower()

            forwarder.open()  # the back office is back
            deadline = time.monotonic() + 120  # the first automatic retry is due after 30 s
            while (now := api.get(f"/v1/sessions/{sid}").json())["status"] == "incident":
                assert time.monotonic() < deadline, "the server never retried the incident"
                time.sleep(0.5)
            assert (now["status"], now["step"]["node"]) == ("waiting", "ask_order")
            assert now["context"]["customer"]["customer_id"] == "C001"
            retries = [e for e in now["transcript"] if e["type"] == "retry"]
            assert [e["actor"] for e in retries] == ["system"]

            api.post(f"/v1/sessions/{sid}/answers", json={"node": "ask_order", "value": "10000001"})
            done = api.post(
                f"/v1/sessions/{sid}/answers", json={"node": "offer", "value": "refund"}
            )
            assert done.json()["outcome"] == "resolved", done.text
            refund = api.get(f"/v1/sessions/{sid}").json()["context"]["refund"]["refund_id"]
        with psycopg.connect(PG_DSN.replace("dbname=postgres", f"dbname={backoffice_db}")) as bo:
            rows = bo.execute("SELECT count(*) FROM refunds WHERE refund_id = %s", (refund,))
            assert rows.fetchone() == (1,)
    finally:
        server.terminate()
        server.wait(timeout=30)
        if server.stderr:
            server.stderr.close()
        forwarder.close()
