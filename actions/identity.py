"""Proving a customer number in self-care: a one-time code sent to the contact details on file.

``identity.send_code`` sends a 6-digit code by SMS (or e-mail) to the customer's own phone
(or mailbox), as ``notify.send`` sends any message; ``identity.check_code`` checks what the
customer typed. The engine treats a successful check (``verified: true``) as the proof that
the self-care customer is the holder of that number (engine/sessions/identity.py): only then may the
journey read or change anything of theirs.

Only a salted hash of a code is stored; a code expires after ``CODE_MINUTES`` and allows
``MAX_ATTEMPTS`` tries; a customer receives at most ``MAX_CODES_PER_HOUR`` codes an hour
(nobody can flood a stranger's phone). The code is in no action result, log or response.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, TypedDict

from actions.registry import Forbidden, NotFound, Refused, action

if TYPE_CHECKING:  # reading the catalogue imports no database
    from sqlalchemy.engine import Connection

CODE_DIGITS = 6
CODE_MINUTES = 10
MAX_ATTEMPTS = 5
MAX_CODES_PER_HOUR = 5
CHANNELS = ("sms", "email")

#: What the customer receives, by channel (the demo gateway's text; no personal data).
TEXT = "Your code: {code}. It is valid {minutes} minutes. Never give it to anyone. / Votre code : {code}. Valable {minutes} minutes. Ne le communiquez à personne."


class CodeSent(TypedDict):
    challenge_id: str
    channel: str
    expires_in_minutes: int


class CodeChecked(TypedDict):
    verified: bool
    attempts_left: int


def _hash(salt: str, code: str) -> str:
    return hashlib.sha256(f"{salt}:{code}".encode()).hexdigest()


def _aware(moment: datetime) -> datetime:
    """SQLite gives back naive date-times: they were written in UTC."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@action(
    "identity.send_code",
    errors={
        "not_found": "the customer or what was asked for is not in the back office",
        "refused": "the request cannot be granted as asked (too many codes this hour, or no such channel)",
    },
    identity="challenge",
)
def send_code(customer_id: str, channel: str) -> CodeSent:
    """Send a one-time code to the customer's phone (``sms``) or e-mail on file."""
    from sqlalchemy import func, select

    from actions import backoffice as bo

    if channel not in CHANNELS:
        raise Refused(f"channel {channel!r} is not one of {', '.join(CHANNELS)}")
    c = bo.one_time_codes
    with bo.transaction() as conn:
        customer = bo.customer_row(conn, customer_id)
        since = bo.now() - timedelta(hours=1)
        recent = conn.execute(
            select(func.count())
            .select_from(c)
            .where(c.c.customer_id == customer_id, c.c.created_at >= since)
        ).scalar_one()
        if recent >= MAX_CODES_PER_HOUR:
            raise Refused(
                f"{MAX_CODES_PER_HOUR} codes were sent to this customer in the last hour; "
                "an advisor can help, or try again later"
            )
        code = "".join(secrets.choice("0123456789") for _ in range(CODE_DIGITS))
        recipient = customer.phone if channel == "sms" else customer.email
        message_id = _deliver(conn, customer_id, channel, recipient, code)
        salt = secrets.token_hex(16)
        challenge_id = bo.add_with_code(
            conn,
            c,
            "challenge_id",
            "OTP",
            {
                "customer_id": customer_id,
                "channel": channel,
                "message_id": message_id,
                "salt": salt,
                "code_hash": _hash(salt, code),
                "attempts": 0,
                "status": "open",
                "expires_at": bo.now() + timedelta(minutes=CODE_MINUTES),
            },
        )
    return {"challenge_id": challenge_id, "channel": channel, "expires_in_minutes": CODE_MINUTES}


def _deliver(conn: Connection, customer_id: str, channel: str, recipient: str, code: str) -> str:
    """Send the code: the message on the customer's record, its text to the gateway; its id."""
    from actions import backoffice as bo

    message_id = bo.add_message(conn, customer_id, channel, recipient, "one_time_code")
    conn.execute(
        bo.deliveries.insert().values(
            message_id=message_id,
            recipient=recipient,
            text=TEXT.format(code=code, minutes=CODE_MINUTES),
            created_at=bo.now(),
        )
    )
    return message_id


@action(
    "identity.check_code",
    errors={
        "not_found": "the customer or what was asked for is not in the back office",
        "forbidden": "the code has expired, was already used, or had too many wrong tries: send a new one",
    },
    identity="proof",
)
def check_code(customer_id: str, challenge_id: str, code: str) -> CodeChecked:
    """Check the one-time code the customer typed: ``verified``, or the tries left."""
    from sqlalchemy import select, update

    from actions import backoffice as bo

    c = bo.one_time_codes
    typed = "".join(str(code or "").split())
    with bo.transaction() as conn:
        row = conn.execute(
            select(c).where(c.c.challenge_id == challenge_id).with_for_update()
        ).first()
        if row is None or row.customer_id != customer_id:
            raise NotFound(f"no code {challenge_id!r} was sent to customer {customer_id!r}")
        if row.status != "open":
            raise Forbidden(f"code {challenge_id!r} is {row.status}: send a new one")
        if _aware(row.expires_at) <= bo.now():
            raise Forbidden(f"code {challenge_id!r} has expired: send a new one")
        if row.attempts >= MAX_ATTEMPTS:
            raise Forbidden(f"code {challenge_id!r} had {MAX_ATTEMPTS} wrong tries: send a new one")
        right = hmac.compare_digest(_hash(row.salt, typed), row.code_hash)
        attempts = row.attempts + (0 if right else 1)
        status = "verified" if right else ("locked" if attempts >= MAX_ATTEMPTS else "open")
        # Written before answering: a wrong try counts even if the caller goes away.
        conn.execute(update(c).where(c.c.id == row.id).values(attempts=attempts, status=status))
    return {"verified": right, "attempts_left": 0 if right else MAX_ATTEMPTS - attempts}
