"""Motive suggestion (engine/sessions/motive_search.py): the keyword search the console has always had."""

from __future__ import annotations

import pytest

from engine.definitions.library import Library
from engine.definitions.model import Loc, Motive
from engine.sessions.motive_search import fold, suggest
from tests.conftest import SHIPPED


def motive(id: str, keywords: tuple[str, ...], title: str | dict[str, str] = "") -> Motive:
    here = Loc("motives.yaml")
    return Motive(id, title or id, "test", "j", here, here, keywords=keywords)


# What the HTTP adapter answered before the search moved into the engine, on the shipped
# library: the same motives, the same scores, the same order.
@pytest.mark.parametrize(
    ("text", "found"),
    [
        ("my parcel never arrived", [("delivery.missing", 7)]),
        (
            "mon colis n'est jamais arrivé",
            [("delivery.missing", 7), ("subscription.cancel", 2), ("delivery.late", 1)],
        ),
        (
            "MON COLIS N EST JAMAIS ARRIVE",
            [("delivery.missing", 7), ("subscription.cancel", 2), ("delivery.late", 1)],
        ),
        ("internet ne marche plus", [("network.outage", 9), ("subscription.plan_change", 2)]),
        ("facture", [("billing.dispute", 3)]),
        (
            "remboursement commande",
            [
                ("payment.refund_status", 3),
                ("delivery.proactive", 2),
                ("billing.dispute", 1),
                ("delivery.late", 1),
                ("order.damaged", 1),
            ],
        ),
        ("I want to cancel my subscription", [("subscription.cancel", 7)]),
        ("Box coupée depuis hier", [("network.outage", 2)]),
        ("", []),
        ("le la les", []),  # words of two letters or fewer say nothing
    ],
)
def test_the_shipped_catalogue_answers_as_before(text: str, found: list[tuple[str, int]]) -> None:
    motives = Library(SHIPPED).motives.values()
    assert [(s.motive.id, s.score) for s in suggest(motives, text, "en")] == found


def test_a_whole_phrase_counts_three_and_each_word_one() -> None:
    lost = motive("lost", ("never arrived",))
    # "never arrived" is found whole (3), and "never" and "arrived" are words of it (1 each).
    assert [s.score for s in suggest([lost], "it never arrived")] == [5]
    assert [s.score for s in suggest([lost], "arrived late")] == [1]
    assert suggest([lost], "nothing to do with it") == []


def test_titles_count_in_every_language_and_accents_do_not() -> None:
    parcel = motive("parcel", (), {"en": "Parcel lost", "fr": "Colis égaré"})
    assert [s.motive.id for s in suggest([parcel], "mon colis est egare", "fr")] == ["parcel"]
    assert fold("Égaré ARRIVÉ") == "egare arrive"


def test_best_first_ties_by_id_and_at_most_limit() -> None:
    motives = [motive(name, ("refund",)) for name in ("c", "a", "b")]
    assert [s.motive.id for s in suggest(motives, "refund please")] == ["a", "b", "c"]
    assert [s.motive.id for s in suggest(motives, "refund please", limit=2)] == ["a", "b"]
    better = motive("z", ("refund", "refund please"))
    assert suggest([*motives, better], "refund please")[0].motive.id == "z"
