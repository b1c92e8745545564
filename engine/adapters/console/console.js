// The agent console: plain JavaScript on the journeys HTTP API, no build step, no CDN.
"use strict";

const TEXTS = {
  en: {
    title: "Agent console", report: "Report", language: "Language", find: "What does the customer need?",
    words: "The customer's own words", customer: "Customer number (if known)",
    search: "Find the motive", code: "Continue a session (its code)", open: "Open",
    session: "Session", send: "Send", context: "Customer context", actions: "Back office",
    transcript: "Transcript", none: "No motive matches these words.",
    ended: "Ended: ", handoff: "Handed over to ", running: "The back office is working…",
    selftitle: "How can we help?", selfwords: "Tell us in your own words", yourcode: "Your contact code (give it to an agent to continue on the phone): ",
    handover: "An agent takes over", codelabel: "Your contact code", queue: "Waiting for an agent",
    nobody: "Nobody is waiting.", take: "Take", minutes: " min",
    verify: "Confirm it is you", codehint: "6 digits, received by SMS",
    incidenttitle: "The back office did not answer", retrynow: "Retry now", handoffnow: "Hand off to the back office",
    unreachable: "{system} could not be reached. The session waits at this step: nothing is lost, and it goes on by itself as soon as the back office answers.",
    since: "Since {since} · {tries} · next automatic retry at {next}.", nonext: "Since {since} · {tries}.",
    once: "tried once", times: "tried {n} times",
    retrying: "Trying again…", failedtitle: "Background actions not done", redo: "run it again with",
    handedoff: "Handed off to the back office: it finishes the request with everything the customer said.",
    kept: "Your request is kept",
    systems: { accounts: "The accounts system", appointments: "The appointments system", billing: "Billing", callbacks: "The callback planner", crm: "The customer records (CRM)", lines: "The lines system", network: "The network system", notify: "Messaging", orders: "The order system", payments: "Payments", subscriptions: "The subscriptions system", tickets: "The ticketing system", other: "A back-office system" },
    starting: "The back office is starting: this goes on by itself in a few seconds.",
  },
  fr: {
    title: "Console conseiller", report: "Rapport", language: "Langue", find: "De quoi le client a-t-il besoin ?",
    words: "Les mots du client", customer: "Numéro client (si connu)",
    search: "Trouver le motif", code: "Reprendre une session (son code)", open: "Ouvrir",
    session: "Session", send: "Envoyer", context: "Contexte client", actions: "Back-office",
    transcript: "Historique", none: "Aucun motif ne correspond à ces mots.",
    ended: "Terminé : ", handoff: "Transféré à ", running: "Le back-office travaille…",
    selftitle: "Comment pouvons-nous vous aider ?", selfwords: "Dites-le avec vos mots", yourcode: "Votre code de contact (à donner à un conseiller pour continuer au téléphone) : ",
    handover: "Un conseiller prend le relais", codelabel: "Votre code de contact", queue: "En attente d'un conseiller",
    nobody: "Personne n'attend.", take: "Prendre", minutes: " min",
    verify: "Confirmez que c'est bien vous", codehint: "6 chiffres, reçus par SMS",
    incidenttitle: "Le back-office n'a pas répondu", retrynow: "Réessayer maintenant", handoffnow: "Transférer au back-office",
    unreachable: "{system} est injoignable. La session attend à cette étape : rien n'est perdu, et elle reprend d'elle-même dès que le back-office répond.",
    since: "Depuis {since} · {tries} · prochain essai automatique à {next}.", nonext: "Depuis {since} · {tries}.",
    once: "1 essai", times: "{n} essais",
    retrying: "Nouvel essai…", failedtitle: "Actions en arrière-plan non faites", redo: "à relancer avec",
    handedoff: "Transféré au back-office : il termine la demande avec tout ce que le client a dit.",
    kept: "Votre demande est conservée",
    systems: { accounts: "Le système des comptes", appointments: "Le système des rendez-vous", billing: "La facturation", callbacks: "Le planificateur de rappels", crm: "Le fichier clients (CRM)", lines: "Le système des lignes", network: "Le système réseau", notify: "La messagerie", orders: "Le système des commandes", payments: "Les paiements", subscriptions: "Le système des abonnements", tickets: "Le système de tickets", other: "Un système du back-office" },
    starting: "Le back-office démarre : cela continue tout seul dans quelques secondes.",
  },
};

// A step whose field has this name asks for the one-time code sent to the customer's phone:
// shown with the phone's numeric keypad and its code autofill (journeys/shared/identify-customer.yaml).
const CODE_FIELD = "one_time_code";

const POLL_MS = 3000;  // how often a page waiting for someone else looks again
const state = { lang: "en", session: null, token: null, selfcare: false, poll: null, queue: "", identity: null, incidentOf: null };
const $ = (id) => document.getElementById(id);
const t = (key) => TEXTS[state.lang][key] || key;

const fill = (text, values) => text.replace(/\{(\w+)\}/g, (_, name) => values[name] ?? "");
// Which system an action belongs to, in plain words: crm.get_customer -> "the customer records".
const system = (action) => { const names = t("systems"); return names[(action || "").split(".")[0]] || names.other; };
// A time as the agent reads it in their language ("14:05", or the day too when not today).
function when(iso) {
  if (!iso) return "";
  const moment = new Date(iso);
  const today = moment.toDateString() === new Date().toDateString();
  const options = today ? { hour: "2-digit", minute: "2-digit" } : { dateStyle: "medium", timeStyle: "short" };
  return moment.toLocaleString(state.lang === "fr" ? "fr-FR" : "en-GB", options);
}

function translate() {
  document.documentElement.lang = state.lang;
  document.querySelectorAll("[data-t]").forEach((el) => { el.textContent = t(el.dataset.t); });
}

async function api(method, path, body) {
  const headers = { "Content-Type": "application/json" };
  if (state.token) headers.Authorization = "Bearer " + state.token;  // self-care: this session only
  for (;;) {
    const response = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const data = await response.json();
    // The back office is starting: nothing was done, so the same request is sent again
    // when the server says, and the page says why it waits (never a silent wait).
    if (response.status === 503 && data.backoffice === "starting") {
      notice(t("starting"));
      const seconds = Number(response.headers.get("Retry-After")) || 3;
      await new Promise((resolve) => setTimeout(resolve, 1000 * seconds));
      continue;
    }
    notice("");
    if (!response.ok) {
      throw Object.assign(new Error(data.detail || data.title || response.statusText), { problem: data });
    }
    return data;
  }
}

function notice(text) {
  const region = $("notice");
  if (region && region.textContent !== text) region.textContent = text;
}

async function search(event) {
  event.preventDefault();
  const list = $("motives");
  list.replaceChildren();
  const found = await api("GET", "/v1/motives/suggest?q=" + encodeURIComponent($("words").value));
  if (!found.length) {
    list.append(Object.assign(document.createElement("li"), { textContent: t("none") }));
  }
  for (const motive of found) {
    const button = document.createElement("button");
    button.type = "button";
    button.textContent = typeof motive.title === "string" ? motive.title : motive.title[state.lang] || motive.id;
    button.addEventListener("click", () => start(motive.id));
    const item = document.createElement("li");
    item.append(button);
    list.append(item);
  }
  const first = list.querySelector("button");
  if (first) first.focus();
}

async function start(motive) {
  const body = { motive, channel: state.selfcare ? "selfcare" : "phone", locale: state.lang };
  const customer = $("customer");
  if (customer && customer.value.trim()) body.customer_id = customer.value.trim();
  if (state.identity) body.identity = state.identity;  // handed over by the company's site
  try {
    const session = await api("POST", "/v1/sessions", body);
    if (state.selfcare) {
      state.token = session.token;
      sessionStorage.setItem("journeys-token", session.token);
      $("code-shown").textContent = t("yourcode") + session.contact;
    }
    show(session);
  } catch (error) {
    $("error").textContent = error.message;
  }
}

async function open(event) {
  event.preventDefault();
  try {
    const found = await api("GET", "/v1/contacts/" + encodeURIComponent($("code").value.trim()));
    // A finished session is shown as it ended (with what is left to do), not continued.
    if (found.status === "ended" || found.status === "survey") show(found);
    else await take(found.id);
  } catch (error) {
    alert(error.message);
  }
}

// An agent continues a session (found by its code or in the queue) on the phone.
async function take(id) {
  show(await api("POST", "/v1/sessions/" + id + "/resume", { channel: "phone" }));
  loadQueue();
}

// The agent page: the self-care sessions waiting for an agent, the longest waiting first.
async function loadQueue() {
  const list = $("queue");
  if (!list) return;
  let waiting;
  try {
    waiting = await api("GET", "/v1/queue");
  } catch (error) {
    list.replaceChildren(Object.assign(document.createElement("li"), { textContent: error.message }));
    return;
  }
  const rows = waiting.map((s) => ({
    id: s.id,
    text: `${s.contact} · ${s.journey} (${s.node}) · ${Math.max(0, Math.round((Date.now() - Date.parse(s.waiting_since)) / 60000))}${t("minutes")}`,
  }));
  const key = state.lang + JSON.stringify(rows);
  if (key === state.queue) return;  // unchanged: keep the list (and the focus) as it is
  state.queue = key;
  const focused = list.contains(document.activeElement) ? document.activeElement.dataset.session : null;
  if (!rows.length) {
    list.replaceChildren(Object.assign(document.createElement("li"), { className: "empty", textContent: t("nobody") }));
    return;
  }
  list.replaceChildren(...rows.map((row) => {
    const button = Object.assign(document.createElement("button"), { type: "button", textContent: row.text });
    button.dataset.session = row.id;
    button.setAttribute("aria-label", t("take") + " " + row.text);
    button.addEventListener("click", () => take(row.id).catch((error) => alert(error.message)));
    const item = document.createElement("li");
    item.append(button);
    return item;
  }));
  const again = focused && list.querySelector(`[data-session="${CSS.escape(focused)}"]`);
  if (again) again.focus();
}

// Self-care: while an agent has the session, look again every few seconds; the page goes on
// when the journey comes back to the customer (or ends).
function watch(session) {
  stopWatching();
  state.poll = setInterval(async () => {
    try {
      const now = await api("GET", "/v1/sessions/" + session.id);
      if (now.seq !== state.session.seq) show(now);
    } catch (error) {
      $("error").textContent = error.message;
    }
  }, POLL_MS);
}

function stopWatching() {
  if (state.poll) clearInterval(state.poll);
  state.poll = null;
}

function showHandover(step) {
  $("question").textContent = t("handover");
  const message = Object.assign(document.createElement("p"), { textContent: step.text });
  const label = Object.assign(document.createElement("p"), { className: "code-label", textContent: t("codelabel") });
  const code = Object.assign(document.createElement("p"), { id: "handover-code", className: "code", textContent: step.contact, tabIndex: -1 });
  const box = Object.assign(document.createElement("div"), { id: "handover" });
  box.setAttribute("role", "status");
  box.append(message, label, code);
  $("answer").append(box);
  code.focus();
}

function show(session) {
  stopWatching();
  state.session = session;
  $("session").hidden = false;
  if ($("context")) $("side").hidden = false;
  $("session-id").textContent = session.id;
  $("error").textContent = "";
  const step = session.step;
  $("messages").replaceChildren(...(step ? step.messages : []).map((text) => Object.assign(document.createElement("p"), { textContent: text })));
  const answer = $("answer");
  answer.replaceChildren();
  $("send").hidden = true;
  $("outcome").textContent = "";
  if ($("incident")) $("incident").hidden = true;
  if (session.status !== "incident") state.incidentOf = null;
  if (session.status === "waiting" && step && step.waiting_for === "agent" && state.selfcare) {
    showHandover(step);
    watch(session);
  } else if (session.status === "waiting" && step) {
    $("question").textContent = step.text || step.node;
    if (step.options) {
      for (const option of step.options) {
        const button = document.createElement("button");
        button.type = "button";
        button.textContent = option.label;
        button.addEventListener("click", () => send(option.value));
        answer.append(button);
      }
      answer.querySelector("button").focus();
    } else {
      const input = Object.assign(document.createElement("input"), { id: "value", name: "value", autocomplete: "off" });
      input.setAttribute("aria-label", step.text || step.node);
      if (step.field === CODE_FIELD) {
        // The one-time code: a heading saying why, the numeric keypad, the SMS autofill.
        const hint = Object.assign(document.createElement("small"), { textContent: t("codehint") });
        const heading = Object.assign(document.createElement("p"), { id: "verify", className: "verify", textContent: t("verify") });
        heading.append(document.createElement("br"), hint);
        answer.append(heading);
        Object.assign(input, { inputMode: "numeric", autocomplete: "one-time-code", maxLength: 6 });
      } else if (!state.selfcare && step.schema && step.schema.pattern) {
        input.placeholder = step.schema.pattern;  // agents only: a customer reads no pattern
      }
      answer.append(input);
      $("send").hidden = false;
      input.focus();
    }
  } else if (session.status === "running") {
    $("question").textContent = t("running");
  } else if (session.status === "incident" && step) {
    showIncident(session, step);
    watch(session);  // the retry loop may clear it: the page goes on by itself
  } else {
    $("question").textContent = "";
    $("outcome").textContent = t("ended") + (session.outcome || "");
  }
  refresh(session.id);
}

// An incident: the agent reads what could not be reached, since when and the next automatic
// retry, and may retry now or hand the contact off; the customer reads that the request is
// kept (the server's calm message, in their language) and the page waits.
function showIncident(session, step) {
  if (state.selfcare || !$("incident")) {
    $("question").textContent = t("kept");
    const box = Object.assign(document.createElement("p"), { id: "kept", textContent: step.text || "" });
    box.setAttribute("role", "status");
    $("answer").append(box);
    return;
  }
  $("question").textContent = "";
  $("incident").hidden = false;
  $("incident-what").textContent = fill(t("unreachable"), { system: system(step.action) });
  const tries = step.tries === 1 ? t("once") : fill(t("times"), { n: step.tries });
  const times = { since: when(step.since), tries, next: when(step.retry_at) };
  $("incident-when").textContent = fill(step.retry_at ? t("since") : t("nonext"), times);
  // The technical reason is in the back office's words (English): shown on an English page.
  $("incident-detail").textContent = state.lang === "en" ? `${step.action}: ${step.message}` : "";
  $("incident-detail").hidden = state.lang !== "en";
  for (const id of ["retry-now", "hand-off"]) $(id).disabled = false;
  // Focus the first time only: the loop's retries re-render the panel while the agent works.
  if (state.incidentOf !== session.id) $("retry-now").focus();
  state.incidentOf = session.id;
}

async function incidentAction(path, body) {
  const session = state.session;
  for (const id of ["retry-now", "hand-off"]) $(id).disabled = true;
  $("incident-when").textContent = t("retrying");
  try {
    show(await api("POST", "/v1/sessions/" + session.id + path, body));
  } catch (error) {
    show(await api("GET", "/v1/sessions/" + session.id));  // the retry loop got there first
    $("error").textContent = error.message;
  }
}

async function send(value) {
  const session = state.session;
  try {
    show(await api("POST", "/v1/sessions/" + session.id + "/answers", { node: session.step.node, value, seq: session.seq }));
  } catch (error) {
    if (error.problem && error.problem.waiting_for === "agent") {
      show(await api("GET", "/v1/sessions/" + session.id));  // handed over meanwhile
      return;
    }
    $("error").textContent = error.message;
  }
}

async function refresh(id) {
  if (!$("context")) return;  // the self-care page shows no back-office detail
  const full = await api("GET", "/v1/sessions/" + id);
  const context = $("context");
  context.replaceChildren();
  for (const [key, value] of Object.entries(full.context)) {
    context.append(Object.assign(document.createElement("dt"), { textContent: key }));
    context.append(Object.assign(document.createElement("dd"), { textContent: typeof value === "object" ? JSON.stringify(value) : String(value) }));
  }
  $("actions").replaceChildren(...full.actions.map((run) => Object.assign(document.createElement("li"), {
    textContent: `${run.action}: ${run.status}${run.error ? " (" + run.error + ")" : ""}`,
  })));
  $("transcript").replaceChildren(...full.path.map((node) => Object.assign(document.createElement("li"), { textContent: node })));
  if (full.handoff) {
    $("outcome").textContent = full.handoff.queue === "backoffice" ? t("handedoff") : t("handoff") + full.handoff.queue;
  }
  // Background actions (wait: false, after) that failed: a promise to keep, never dropped.
  const failed = full.failed_actions || [];
  $("failed-background").hidden = !failed.length;
  $("failed-actions").replaceChildren(...failed.map((run) => {
    const item = Object.assign(document.createElement("li"), { textContent: `${system(run.action)} (${when(run.at)}) · ${t("redo")} ` });
    item.append(Object.assign(document.createElement("code"), { textContent: `journeys runs retry ${run.id}` }));
    return item;
  }));
}

document.addEventListener("DOMContentLoaded", () => {
  const wanted = new URLSearchParams(location.search).get("lang") || (navigator.language || "en").slice(0, 2);
  state.lang = TEXTS[wanted] ? wanted : "en";
  $("lang").value = state.lang;
  $("lang").addEventListener("change", (event) => {
    state.lang = event.target.value;
    translate();
    loadQueue();
    if (state.session && state.session.status === "incident") show(state.session);  // its words too
  });
  translate();
  state.selfcare = document.body.dataset.mode === "selfcare";
  // The company's site may hand over its logged-in customer's signed identity in the link's
  // fragment (/selfcare#identity=...): never sent to any server in a URL, and taken out of
  // the address bar at once, so that it is in no history, bookmark or screenshot.
  const handed = new URLSearchParams(location.hash.slice(1)).get("identity");
  if (state.selfcare && handed) {
    state.identity = handed;
    history.replaceState(null, "", location.pathname + location.search);
  }
  $("search").addEventListener("submit", search);
  if ($("continue")) $("continue").addEventListener("submit", open);
  if ($("queue")) {
    loadQueue();
    setInterval(loadQueue, POLL_MS);
  }
  $("step").addEventListener("submit", (event) => { event.preventDefault(); send($("value").value); });
  if ($("retry-now")) {
    $("retry-now").addEventListener("click", () => incidentAction("/retry", {}));
    $("hand-off").addEventListener("click", () => incidentAction("/handoff", {}));
  }
});
