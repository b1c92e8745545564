"""The bodies of the back-office actions arrive with the demo back office (issue 4).

Until then an action is declared (name, typed input and output, read by the validator) and
calling it says plainly that nothing was done, instead of pretending to succeed.
"""

from __future__ import annotations

from typing import NoReturn


class ActionNotWired(RuntimeError):
    """An action was called before its back-office body exists."""


def not_yet_wired(name: str) -> NoReturn:
    raise ActionNotWired(
        f"action {name!r} is declared but its back-office body is not wired yet; "
        "stub it in a scenario (actions: {...}) until the demo back office lands"
    )
