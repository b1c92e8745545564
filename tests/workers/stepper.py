"""A process that steps sessions as fast as it can, to be killed with SIGKILL by a test.

Usage: python -m tests.workers.stepper LIBRARY DB_URL SEED
"""

from __future__ import annotations

import contextlib
import random
import sys
from pathlib import Path

from engine.adapters.sql.store import SqlStore
from engine.definitions.library import Library
from engine.errors import Conflict
from engine.insight.scenarios import StubExecutor
from engine.sessions.service import Sessions

STUBS = {
    "orders.get_tracking": {
        "order_id": "10000001",
        "status": "in_transit",
        "days_late": 7,
        "carrier": "X",
        "shipping_cost": 4.9,
        "amount": 20.0,
    },
    "payments.refund": {"refund_id": "R1", "amount": 4.9},
}


def main() -> None:
    library, url, seed = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
    rng = random.Random(seed)
    sessions = Sessions(Library(library), SqlStore(url), StubExecutor(STUBS))
    open_ids: list[str] = []
    print("ready", flush=True)
    while True:
        if len(open_ids) < 5 or rng.random() < 0.2:
            open_ids.append(
                sessions.start("crash", {"customer_id": f"C{rng.randrange(100):03d}"}).id
            )
            continue
        sid = rng.choice(open_ids)
        session = sessions.get(sid)
        if session.status != "waiting":
            open_ids.remove(sid)
            continue
        answer = {
            "ask_order": "10000001",
            "offer": rng.choice(["refund", "nothing"]),
            "ask_note": "note " + str(rng.random()),
        }[session.node or ""]
        with contextlib.suppress(Conflict):  # nobody else steps here; kept for safety
            sessions.answer(sid, session.node or "", answer, seq=session.seq)


if __name__ == "__main__":
    main()
