"""The agent console in a real browser: Debian's chromium driven by Playwright (headless)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from playwright.sync_api import Browser

from tests.conftest import ROOT, SHIPPED, requires
from tests.security.test_identity import ISSUER, SITE_KEY, last_code, personal, signed
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
        expect(customer.locator("#question")).to_contain_text("code à 6 chiffres")
        customer.locator("#value").fill(last_code("C001"))  # read on the customer's phone
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


@pytest.fixture
def signed_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The consoles, accepting the signed identities of the company's site."""
    monkeypatch.setenv("JOURNEYS_IDENTITY_KEY", SITE_KEY)
    monkeypatch.setenv("JOURNEYS_IDENTITY_ISSUER", ISSUER)
    with serving(SHIPPED, tmp_path, monkeypatch) as url:
        yield url


#: What the self-care page says around the one-time code, by language.
CODE_PAGE = {
    "fr": {
        "words": ("Dites-le avec vos mots", "mon colis n'est jamais arrivé"),
        "find": "Trouver le motif",
        "motive": "Colis non reçu",
        "asked": "code à 6 chiffres par SMS",
        "verify": "Confirmez que c'est bien vous",
        "wrong": "Ce code n'est pas le bon",
        "thanks": "Merci, {name}",
        "next": "quelle commande",
    },
    "en": {
        "words": ("Tell us in your own words", "my parcel never arrived"),
        "find": "Find the motive",
        "motive": "Parcel not received",
        "asked": "6-digit code by SMS",
        "verify": "Confirm it is you",
        "wrong": "This code is not the right one",
        "thanks": "Thank you, {name}",
        "next": "Which order",
    },
}


@pytest.mark.parametrize("lang", sorted(CODE_PAGE))
def test_selfcare_customer_proves_their_number_with_the_code_sent_by_sms(
    console_url: str, lang: str
) -> None:
    """On a phone, in French and in English: a typed customer number shows nothing of that
    customer until the code sent to the phone on file is typed; a wrong code says so; the
    right one opens the journey as before."""
    from playwright.sync_api import expect

    ARTIFACTS.mkdir(exist_ok=True)
    says = CODE_PAGE[lang]
    name, phone, email, postcode, street, _city = personal("C002")
    with chromium() as browser:
        customer = browser.new_page(viewport={"width": 390, "height": 844})
        customer.goto(console_url + f"/selfcare?lang={lang}")
        customer.get_by_label(says["words"][0]).fill(says["words"][1])
        customer.get_by_role("button", name=says["find"]).click()
        customer.get_by_role("button", name=says["motive"]).click()
        customer.locator("#value").fill("C002")
        customer.keyboard.press("Enter")
        expect(customer.locator("#question")).to_contain_text(says["asked"])
        expect(customer.locator("#verify")).to_contain_text(says["verify"])
        code_input = customer.locator("#value")
        expect(code_input).to_have_attribute("inputmode", "numeric")
        expect(code_input).to_have_attribute("autocomplete", "one-time-code")
        page = customer.content()
        for value in (name, phone, email, postcode, street, "^", "[0-9]"):
            assert value not in page, f"{value!r} is on the page before the code"
        customer.screenshot(path=str(ARTIFACTS / f"selfcare-code-{lang}.png"), full_page=True)
        code = last_code("C002")
        code_input.fill("000000" if code != "000000" else "111111")
        customer.keyboard.press("Enter")
        expect(customer.locator("#messages")).to_contain_text(says["wrong"])
        assert name not in customer.content()
        customer.locator("#value").fill(code)
        customer.keyboard.press("Enter")
        expect(customer.locator("#messages")).to_contain_text(says["thanks"].format(name=name))
        expect(customer.locator("#question")).to_contain_text(says["next"])
        customer.screenshot(path=str(ARTIFACTS / f"selfcare-verified-{lang}.png"), full_page=True)


def test_selfcare_opened_from_the_companys_site_needs_no_code(signed_url: str) -> None:
    """In English, a logged-in customer arrives with a signed identity in the link's
    fragment: no number, no code asked; the token leaves the address bar at once."""
    from playwright.sync_api import expect

    name = personal("C003")[0]
    with chromium() as browser:
        customer = browser.new_page(viewport={"width": 390, "height": 844})
        customer.goto(signed_url + "/selfcare?lang=en#identity=" + signed("C003"))
        assert "identity" not in customer.url
        customer.get_by_label("Tell us in your own words").fill("my parcel never arrived")
        customer.get_by_role("button", name="Find the motive").click()
        customer.get_by_role("button", name="Parcel not received").click()
        expect(customer.locator("#messages")).to_contain_text(f"Thank you, {name}")
        expect(customer.locator("#question")).to_contain_text("Which order")


DOWN = "postgresql+psycopg://nobody@127.0.0.1:1/none"  # the back-office database unreachable


def test_an_incident_in_the_consoles_then_the_back_office_is_back(
    console_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The back office down: the agent reads what could not be reached, since when and the
    next retry, in English and French, never "customer not found"; the self-care customer
    reads that the request is kept. Back up, "Retry now" goes on where it was, and the
    customer's page goes on by itself."""
    from playwright.sync_api import expect

    ARTIFACTS.mkdir(exist_ok=True)
    later = 15_000  # ms: the pages look again every 3 s
    monkeypatch.setenv("JOURNEYS_BACKOFFICE_DB", DOWN)
    with chromium() as browser:
        agent = browser.new_page()
        agent.goto(console_url + "/?lang=en")
        agent.get_by_label("The customer's own words").fill("my parcel never arrived")
        agent.get_by_label("Customer number (if known)").fill("C001")
        agent.get_by_role("button", name="Find the motive").click()
        agent.get_by_role("button", name="Parcel not received").click()
        panel = agent.locator("#incident")
        expect(panel).to_be_visible()
        expect(panel).to_contain_text("The back office did not answer")
        expect(panel).to_contain_text("The customer records (CRM) could not be reached")
        expect(panel).to_contain_text("tried once · next automatic retry at")
        expect(panel).to_contain_text("crm.get_customer")
        expect(panel).to_have_attribute("aria-live", "polite")
        expect(agent.get_by_role("button", name="Retry now")).to_be_focused()
        assert "could not find" not in agent.content().lower()
        agent.screenshot(path=str(ARTIFACTS / "agent-incident.png"), full_page=True)
        agent.locator("#lang").select_option("fr")
        expect(panel).to_contain_text("Le back-office n'a pas répondu")
        expect(panel).to_contain_text("Le fichier clients (CRM) est injoignable")
        expect(panel).to_contain_text("1 essai · prochain essai automatique à")
        expect(agent.get_by_role("button", name="Réessayer maintenant")).to_be_visible()
        text = panel.inner_text()
        assert "crm." not in text and "could" not in text and "answer" not in text
        agent.locator("#lang").select_option("en")

        customer = browser.new_page(viewport={"width": 390, "height": 844})
        customer.goto(console_url + "/selfcare?lang=fr")
        customer.get_by_label("Dites-le avec vos mots").fill("mon colis n'est jamais arrivé")
        customer.get_by_role("button", name="Trouver le motif").click()
        customer.get_by_role("button", name="Colis non reçu").click()
        customer.locator("#value").fill("C002")
        customer.keyboard.press("Enter")
        expect(customer.locator("#question")).to_have_text("Votre demande est conservée")
        expect(customer.locator("#kept")).to_contain_text("rien de ce que vous nous avez dit")
        shown = customer.locator("#session").inner_text()
        for word in ("crm", "introuvable", "pas trouvé", "aucun client", "127.0.0.1", "incident"):
            assert word not in shown.lower()
        code = customer.locator("#code-shown").inner_text().rsplit(" ", 1)[-1]
        customer.screenshot(path=str(ARTIFACTS / "selfcare-incident.png"), full_page=True)

        # The back office is back: the agent retries now, the session goes on where it was.
        monkeypatch.setenv("JOURNEYS_BACKOFFICE_DB", f"sqlite:///{tmp_path / 'bo.db'}")
        agent.get_by_role("button", name="Retry now").click()
        expect(agent.locator("#question")).to_contain_text("Which order")
        expect(panel).to_be_hidden()

        # The customer's request, continued by an agent: the customer's page goes on by itself.
        other = browser.new_page()
        other.goto(console_url + "/?lang=en")
        other.get_by_label("Continue a session (its code)").fill(code)
        other.get_by_role("button", name="Open").click()
        expect(other.locator("#incident")).to_be_visible()
        other.get_by_role("button", name="Retry now").click()
        expect(other.locator("#question")).to_contain_text("code à 6 chiffres")
        # The code could not be sent while the back office was down: now it is, and the
        # customer proves their number before anything of theirs is shown.
        expect(customer.locator("#verify")).to_contain_text("Confirmez", timeout=later)
        customer.locator("#value").fill(last_code("C002"))
        customer.keyboard.press("Enter")
        expect(customer.locator("#question")).to_contain_text("quelle commande")


def test_a_failed_background_action_is_shown_to_the_agent(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A refund made in the background (wait: false) that failed: the agent who opens the
    session sees it is not done, and the command that runs it again."""
    import httpx
    from playwright.sync_api import expect

    from tests.test_background_failures import GOODWILL

    library = tmp_path / "goodwill"
    library.mkdir()
    (library / "goodwill.yaml").write_text(GOODWILL, encoding="utf-8")
    with serving(library, tmp_path, monkeypatch) as url, chromium() as browser:
        monkeypatch.setenv("JOURNEYS_BACKOFFICE_DB", DOWN)
        started = httpx.post(
            url + "/v1/sessions", json={"journey": "goodwill", "customer_id": "C001"}
        ).json()
        done = httpx.post(
            f"{url}/v1/sessions/{started['id']}/answers",
            json={"node": "ask_order", "value": "10000001"},
            timeout=60,
        ).json()
        assert done["outcome"] == "resolved"
        page = browser.new_page()
        page.goto(url + "/?lang=fr")
        page.get_by_label("Reprendre une session (son code)").fill(started["contact"])
        page.get_by_role("button", name="Ouvrir").click()
        failed = page.locator("#failed-background")
        expect(failed).to_be_visible()
        expect(failed).to_contain_text("Actions en arrière-plan non faites")
        expect(failed.locator("li")).to_have_count(2)
        expect(failed).to_contain_text("Les paiements")
        expect(failed).to_contain_text("journeys runs retry")


def test_the_agent_hands_an_incident_off_to_the_back_office(
    console_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from playwright.sync_api import expect

    monkeypatch.setenv("JOURNEYS_BACKOFFICE_DB", DOWN)
    with chromium() as browser:
        agent = browser.new_page()
        agent.goto(console_url + "/?lang=en")
        agent.get_by_label("The customer's own words").fill("my parcel never arrived")
        agent.get_by_label("Customer number (if known)").fill("C001")
        agent.get_by_role("button", name="Find the motive").click()
        agent.get_by_role("button", name="Parcel not received").click()
        agent.get_by_role("button", name="Hand off to the back office").click()
        expect(agent.locator("#outcome")).to_contain_text(
            "Handed off to the back office: it finishes the request"
        )
        expect(agent.locator("#incident")).to_be_hidden()


@contextmanager
def serving_while_starting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, state: dict[str, str]
) -> Iterator[str]:
    """The consoles on a server whose back office is in ``state["now"]`` (starting, ready)."""
    import threading
    import time

    import uvicorn

    from actions.backoffice import once
    from engine.adapters.execution.keeper import GatedExecutor, Keeper
    from engine.adapters.execution.local_actions import LocalExecutor
    from engine.adapters.execution.prefect_server import free_port
    from engine.adapters.http import create_app
    from engine.adapters.sql.store import SqlStore
    from engine.definitions.library import Library

    monkeypatch.setenv("JOURNEYS_BACKOFFICE_DB", f"sqlite:///{tmp_path / 'bo.db'}")
    monkeypatch.delenv("JOURNEYS_AGENT_KEYS", raising=False)
    keeper = Keeper("prefect", probe=lambda: state["now"], launch=lambda: None, believe=0)
    store = SqlStore(f"sqlite:///{tmp_path / 'sessions.db'}")
    app = create_app(
        Library(SHIPPED),
        store,
        GatedExecutor(LocalExecutor(ledger=once), keeper),
        tmp_path,
        backoffice=keeper,
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
