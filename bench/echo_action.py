"""A trivial action for bench/actions.py, loaded with JOURNEYS_ACTION_MODULES=bench.echo_action
(by the benchmark and by the action host it starts)."""

from __future__ import annotations

from typing import TypedDict

from actions.registry import action


class Echo(TypedDict):
    echo: str


@action("bench.echo")
def echo(text: str) -> Echo:
    """Return the input: a back-office action that costs nothing."""
    return {"echo": text}
