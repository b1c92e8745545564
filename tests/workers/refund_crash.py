"""Answer one step whose action issues a refund, then die (SIGKILL) right after the back
office has done it and before the session is saved: the worst moment for exactly-once.

Usage: python -m tests.workers.refund_crash LIBRARY DB_URL SESSION_ID
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

from actions.backoffice import once
from engine.adapters.execution.local_actions import LocalExecutor
from engine.adapters.sql.store import SqlStore
from engine.definitions.library import Library
from engine.sessions.runtime import RunAction, Session
from engine.sessions.service import ActionOutcome, Sessions


class DieAfterRefund(LocalExecutor):
    def run(self, effect: RunAction, session: Session) -> ActionOutcome:
        outcome = super().run(effect, session)
        if effect.action == "payments.refund":
            print(f"refunded {outcome.result}", flush=True)
            os.kill(os.getpid(), signal.SIGKILL)
        return outcome


def main() -> None:
    library, url, session_id = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
    sessions = Sessions(Library(library), SqlStore(url), DieAfterRefund(ledger=once))
    sessions.answer(session_id, "ask_order", "10000001")


if __name__ == "__main__":
    main()
