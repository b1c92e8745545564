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
    starting: "Le back-office démarre : cela continue tout seul dans quelques secondes.",
  },
};

const POLL_MS = 3000;  // how often a page waiting for someone else looks again
const state = { lang: "en", session: null, token: null, selfcare: false, poll: null, queue: "" };
const $ = (id) => document.getElementById(id);
const t = (key) => TEXTS[state.lang][key] || key;

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
    await take(found.id);
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
      if (step.schema && step.schema.pattern) input.placeholder = step.schema.pattern;
      answer.append(input);
      $("send").hidden = false;
      input.focus();
    }
  } else if (session.status === "running") {
    $("question").textContent = t("running");
  } else {
    $("question").textContent = "";
    $("outcome").textContent = t("ended") + (session.outcome || "");
  }
  refresh(session.id);
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
  if (full.handoff) $("outcome").textContent = t("handoff") + full.handoff.queue;
}

document.addEventListener("DOMContentLoaded", () => {
  const wanted = new URLSearchParams(location.search).get("lang") || (navigator.language || "en").slice(0, 2);
  state.lang = TEXTS[wanted] ? wanted : "en";
  $("lang").value = state.lang;
  $("lang").addEventListener("change", (event) => { state.lang = event.target.value; translate(); loadQueue(); });
  translate();
  state.selfcare = document.body.dataset.mode === "selfcare";
  $("search").addEventListener("submit", search);
  if ($("continue")) $("continue").addEventListener("submit", open);
  if ($("queue")) {
    loadQueue();
    setInterval(loadQueue, POLL_MS);
  }
  $("step").addEventListener("submit", (event) => { event.preventDefault(); send($("value").value); });
});
