"""What validation reports: findings with a stable code, a place and a plain message."""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

from engine.definitions.model import Loc

ERROR = "error"
WARNING = "warning"

#: Every code and what it means; the severity of each code is fixed.
CODES: dict[str, tuple[str, str]] = {
    "J001": (ERROR, "YAML syntax error, or a construct that is not plain data"),
    "J002": (ERROR, "schema violation"),
    "J003": (ERROR, "reference to a node, journey or motive that does not exist"),
    "J004": (ERROR, "node unreachable from start"),
    "J005": (ERROR, "no way to an end or handoff from a node"),
    "J006": (ERROR, "decide without else, or a choose option with nowhere to go"),
    "J007": (ERROR, "expression or template that does not parse or is not allowed"),
    "J008": (ERROR, "name possibly read before it is set on some path"),
    "J009": (ERROR, "unknown back-office action, or action input that does not match"),
    "J010": (ERROR, "catalogue inconsistency between motives.yaml and the journeys"),
    "J011": (ERROR, "sub-journey cycle"),
    "J012": (ERROR, "a locale missing from a text"),
    "W001": (WARNING, "a journey has no scenario test"),
    "W002": (WARNING, "a journey with no motives is not used as a sub-journey"),
    "W003": (WARNING, "an action on a loop whose authority limit applies per call only"),
}


@dataclass(frozen=True, order=True)
class Finding:
    file: str
    line: int
    column: int
    code: str
    message: str
    journey: str | None = None
    node: str | None = None

    @property
    def severity(self) -> str:
        return CODES[self.code][0]

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["severity"] = self.severity
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Finding:
        return cls(**{k: v for k, v in data.items() if k != "severity"})


def finding(
    code: str, loc: Loc, message: str, journey: str | None = None, node: str | None = None
) -> Finding:
    if code not in CODES:
        raise ValueError(f"unknown finding code {code!r}")
    return Finding(loc.file, loc.line, loc.column, code, message, journey, node)


def did_you_mean(word: str, candidates: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` when a close candidate exists, else an empty string."""
    close = difflib.get_close_matches(word, list(candidates), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def one_of(candidates: Iterable[str], limit: int = 8) -> str:
    """A short quoted list of what would be right."""
    items = sorted(candidates)
    shown = ", ".join(repr(c) for c in items[:limit])
    return shown + (f" and {len(items) - limit} more" if len(items) > limit else "")
