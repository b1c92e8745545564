"""The agent console in a real browser: Debian's chromium driven by Playwright (headless)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from playwright.sync_api import Browser

from tests.conftest import ROOT, SHIPPED, requires
from tests.test_http import handover_library, serving

pytestmark = pytest.mark.requires("chromium")
ARTIFACTS = ROOT / "tests" / "artifacts"


@contextmanager
def chromium() -> Iterator[Browser]:
    """Debian's chromium, headless, without the background traffic a closed network refuses."""
    from playwright.sync_api import sync_playwright

    requires("chromium")
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=shutil.which("chromium"),
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ],
        )
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def console_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    with serving(SHIPPED, tmp_path, monkeypatch) as url:
        yield url


@pytest.fixture
def handover_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The consoles on a library whose journey has a step for agents only."""
    with serving(handover_library(tmp_path), tmp_path, monkeypatch) as url:
        yield url


def test_agent_resolves_a_missing_parcel_in_the_console(console_url: str) -> None:
    from playwright.sync_api import expect

    ARTIFACTS.mkdir(exist_ok=True)
    with chromium() as browser:
        page = browser.new_page()
        page.goto(console_url + "/?lang=en")
        page.get_by_label("The customer's own words").fill("my parcel never arrived")
        page.get_by_label("Customer number (if known)").fill("C001")
        page.get_by_role("button", name="Find the motive").click()
        page.get_by_role("button", name="Parcel not received").click()
        expect(page.locator("#question")).to_contain_text("Which order")
        page.locator("#value").fill("123")
        page.keyboard.press("Enter")
        expect(page.locator("#error")).to_contain_text("not in the expected format")
        page.locator("#value").fill("10000001")
        page.keyboard.press("Enter")
        page.get_by_role("button", name="A refund of 59.90 EUR").click()
        expect(page.locator("#outcome")).to_contain_text("resolved")
        expect(page.locator("#actions")).to_contain_text("payments.refund: succeeded")
        expect(page.locator("#context")).to_contain_text("refund_id")
        page.screenshot(path=str(ARTIFACTS / "agent-console.png"), full_page=True)


def test_selfcare_session_continued_by_an_agent_with_its_code(console_url: str) -> None:
    """The customer starts in self-care, then calls: the agent continues, nothing asked twice."""
    from playwright.sync_api import expect

    ARTIFACTS.mkdir(exist_ok=True)
    with chromium() as browser:
        customer = browser.new_page(viewport={"width": 390, "height": 844})  # a phone
        customer.goto(console_url + "/selfcare?lang=fr")
        customer.get_by_label("Dites-le avec vos mots").fill("mon colis n'est jamais arrivé")
        customer.get_by_role("button", name="Trouver le motif").click()
        customer.get_by_role("button", name="Colis non reçu").click()
        expect(customer.locator("#question")).to_contain_text("numéro client")
        customer.locator("#value").fill("C001")
        customer.keyboard.press("Enter")
        expect(customer.locator("#question")).to_contain_text("quelle commande")
        customer.locator("#value").fill("10000001")
        customer.keyboard.press("Enter")
        expect(customer.locator("#answer button")).to_have_count(
            2
        )  # the offer: the customer calls instead
        code = customer.locator("#code-shown").inner_text().rsplit(" ", 1)[-1]
        customer.screenshot(path=str(ARTIFACTS / "selfcare.png"), full_page=True)

        agent = browser.new_page()
        agent.goto(console_url + "/?lang=en")
        agent.get_by_label("Continue a session (its code)").fill(code)
        agent.get_by_role("button", name="Open").click()
        # The offer, in the customer's language: the customer number and the order are not
        # asked again.
        expect(agent.locator("#question")).to_contain_text("préférez")
        expect(agent.locator("#context")).to_contain_text("10000001")
        agent.locator("#answer button").nth(1).click()
        expect(agent.locator("#outcome")).to_contain_text("resolved")
        agent.screenshot(path=str(ARTIFACTS / "agent-continues.png"), full_page=True)


def test_an_agent_only_step_is_handed_over_and_self_care_goes_on(handover_url: str) -> None:
    """Self-care reaches a step for agents: the page shows the code and waits; an agent takes
    the session from the queue and answers; the customer's page continues by itself."""
    from playwright.sync_api import expect

    ARTIFACTS.mkdir(exist_ok=True)
    later = 15_000  # ms: the pages look again every 3 s
    with chromium() as browser:
        customer = browser.new_page(viewport={"width": 390, "height": 844})
        customer.goto(handover_url + "/selfcare?lang=en")
        customer.get_by_label("Tell us in your own words").fill("a goodwill gesture please")
        customer.keyboard.press("Enter")
        customer.get_by_role("button", name="A goodwill gesture").click()
        expect(customer.locator("#question")).to_contain_text("Which order")
        customer.locator("#value").fill("10000001")
        customer.keyboard.press("Enter")
        expect(customer.locator("#question")).to_have_text("An agent takes over")
        code = customer.locator("#handover-code").inner_text()
        assert code and code in customer.locator("#handover").inner_text()
        expect(customer.locator("#handover")).to_contain_text("An agent will continue")
        expect(customer.locator("#value")).to_have_count(0)  # nothing to answer here
        expect(customer.locator("#answer button")).to_have_count(0)
        expect(customer.locator("#send")).to_be_hidden()
        customer.screenshot(path=str(ARTIFACTS / "selfcare-handover.png"), full_page=True)

        agent = browser.new_page()
        agent.goto(handover_url + "/?lang=en")
        waiting = agent.locator("#queue button", has_text=code)
        expect(waiting).to_have_count(1, timeout=later)
        agent.screenshot(path=str(ARTIFACTS / "agent-queue.png"), full_page=True)
        waiting.focus()
        agent.keyboard.press("Enter")  # keyboard only
        expect(agent.locator("#question")).to_contain_text("Grant a gesture on order 10000001")
        expect(agent.locator("#queue")).to_contain_text("Nobody is waiting.", timeout=later)
        agent.get_by_role("button", name="Grant it").click()
        expect(agent.locator("#question")).to_contain_text("Where shall we send your voucher?")

        # The customer's page goes on by itself, and the journey ends there.
        expect(customer.locator("#question")).to_contain_text(
            "Where shall we send your voucher?", timeout=later
        )
        customer.locator("#value").fill("ada@example.org")
        customer.keyboard.press("Enter")
        expect(customer.locator("#outcome")).to_contain_text("resolved")


@contextmanager
def serving_while_starting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, state: dict[str, str]
) -> Iterator[str]:
    """The consoles on a server whose back office is in ``state["now"]`` (starting, ready)."""
    import threading
    import time

    import uvicorn

    from engine.adapters.http import create_app
    from engine.adapters.keeper import GatedExecutor, Keeper
    from engine.adapters.local_actions import LocalExecutor
    from engine.adapters.prefect_server import free_port
    from engine.adapters.sql_store import SqlStore
    from engine.library import Library

    monkeypatch.setenv("JOURNEYS_BACKOFFICE_DB", f"sqlite:///{tmp_path / 'bo.db'}")
    monkeypatch.delenv("JOURNEYS_AGENT_KEYS", raising=False)
    keeper = Keeper("prefect", probe=lambda: state["now"], launch=lambda: None, believe=0)
    store = SqlStore(f"sqlite:///{tmp_path / 'sessions.db'}")
    app = create_app(
        Library(SHIPPED), store, GatedExecutor(LocalExecutor(), keeper), tmp_path, backoffice=keeper
    )
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
        store.dispose()


@pytest.mark.parametrize(
    ("lang", "said"),
    [("en", "The back office is starting"), ("fr", "Le back-office démarre")],
)
def test_the_console_says_the_back_office_is_starting_then_goes_on_by_itself(
    lang: str, said: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No silent wait: the agent reads why nothing happens yet (read out by screen readers),
    and the session starts by itself once the back office is ready."""
    from playwright.sync_api import expect

    state = {"now": "starting"}
    with serving_while_starting(tmp_path, monkeypatch, state) as url, chromium() as browser:
        page = browser.new_page()
        page.goto(f"{url}/?lang={lang}")
        page.locator("#words").fill("my parcel never arrived")
        page.locator("#customer").fill("C001")
        page.locator("#search button").click()
        page.locator("#motives button").first.click()
        notice = page.locator("#notice")
        expect(notice).to_contain_text(said)
        assert notice.get_attribute("aria-live") == "polite"
        expect(page.locator("#session")).to_be_hidden()  # nothing started meanwhile
        state["now"] = "ready"
        expect(page.locator("#question")).not_to_be_empty(timeout=15_000)
        expect(notice).to_be_empty()
