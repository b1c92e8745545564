"""Motive suggestion: which motives of the catalogue a customer's own words point at.

A keyword search, as the agent console and self-care have always had it: the words of the
text (folded: lower case, no accents, longer than two letters) are looked up in each motive's
keywords and titles, in every language. A phrase of several words found whole in the text
counts 3; each word of the text that is a word of a phrase counts 1. The motives that score
are given best first, ties by motive id, at most ``limit``.

Pure: no HTTP, no storage. ``suggest`` is the whole interface, so the algorithm can change
(issue 16) without its callers changing.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass

from engine.definitions.model import Motive, Text

LIMIT = 5  # suggestions shown: more is a list to read, not a suggestion


@dataclass(frozen=True)
class Suggestion:
    motive: Motive
    score: int  # higher is closer; only compared with the other scores of the same text


def suggest(
    motives: Iterable[Motive], text: str, locale: str | None = None, limit: int = LIMIT
) -> list[Suggestion]:
    """The motives ``text`` points at, best first. ``locale`` is the language of the text
    when known; the keyword search does not need it (every language's words count)."""
    folded = fold(text)
    words = {w for w in folded.replace("'", " ").split() if len(w) > 2}
    scored = []
    for motive in motives:
        score = _score(_vocabulary(motive), folded, words)
        if score:
            scored.append(Suggestion(motive, score))
    scored.sort(key=lambda s: (-s.score, s.motive.id))
    return scored[:limit]


def fold(text: str) -> str:
    """``text`` in lower case without accents: "Arrivé" and "arrive" are the same word."""
    return "".join(
        c for c in unicodedata.normalize("NFKD", text.lower()) if not unicodedata.combining(c)
    )


def _vocabulary(motive: Motive) -> list[str]:
    """The phrases a motive is known by: its keywords, then its titles, folded."""
    return [fold(k) for k in motive.keywords] + [fold(t) for t in _titles(motive.title)]


def _score(vocabulary: list[str], text: str, words: set[str]) -> int:
    whole = sum(3 for phrase in vocabulary if " " in phrase and phrase in text)
    return whole + sum(1 for phrase in vocabulary for w in words if w in phrase.split())


def _titles(title: Text) -> list[str]:
    return [title] if isinstance(title, str) else list(title.values())
