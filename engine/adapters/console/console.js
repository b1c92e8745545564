// The agent console: plain JavaScript on the journeys HTTP API, no build step, no CDN.
"use strict";

const TEXTS = {
  en: {
    title: "Agent console", language: "Language", find: "What does the customer need?",
    words: "The customer's own words", customer: "Customer number (if known)",
    search: "Find the motive", code: "Continue a session (its code)", open: "Open",
    session: "Session", send: "Send", context: "Customer context", actions: "Back office",
    transcript: "Transcript", none: "No motive matches these words.",
    ended: "Ended: ", handoff: "Handed over to ", running: "The back office is working…",
    selftitle: "How can we help?", selfwords: "Tell us in your own words", yourcode: "Your contact code (give it to an agent to continue on the phone): ",
  },
  fr: {
    title: "Console conseiller", language: "Langue", find: "De quoi le client a-t-il besoin ?",
    words: "Les mots du client", customer: "Numéro client (si connu)",
    search: "Trouver le motif", code: "Reprendre une session (son code)", open: "Ouvrir",
    session: "Session", send: "Envoyer", context: "Contexte client", actions: "Back-office",
    transcript: "Historique", none: "Aucun motif ne correspond à ces mots.",
    ended: "Terminé : ", handoff: "Transféré à ", running: "Le back-office travaille…",
    selftitle: "Comment pouvons-nous vous aider ?", selfwords: "Dites-le avec vos mots", yourcode: "Votre code de contact (à donner à un conseiller pour continuer au téléphone) : ",
  },
};

const state = { lang: "en", session: null, token: null, selfcare: false };
const $ = (id) => document.getElementById(id);
const t = (key) => TEXTS[state.lang][key] || key;

function translate() {
  document.documentElement.lang = state.lang;
  document.querySelectorAll("[data-t]").forEach((el) => { el.textContent = t(el.dataset.t); });
}

async function api(method, path, body) {
  const headers = { "Content-Type": "application/json" };
  if (state.token) headers.Authorization = "Bearer " + state.token;  // self-care: this session only
  const response = await fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const data = await response.json();
  if (!response.ok) {
    throw new Error(data.detail || data.title || response.statusText);
  }
  return data;
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
    show(await api("POST", "/v1/sessions/" + found.id + "/resume", { channel: "phone" }));
  } catch (error) {
    alert(error.message);
  }
}

function show(session) {
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
  if (session.status === "waiting" && step) {
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
  $("lang").addEventListener("change", (event) => { state.lang = event.target.value; translate(); });
  translate();
  state.selfcare = document.body.dataset.mode === "selfcare";
  $("search").addEventListener("submit", search);
  if ($("continue")) $("continue").addEventListener("submit", open);
  $("step").addEventListener("submit", (event) => { event.preventDefault(); send($("value").value); });
});
