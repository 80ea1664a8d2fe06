// The disagreement view: plain JS, every server text set with textContent (never parsed as HTML).
// Uses the studio page's session (localStorage); without one it sends the reviewer to sign in there.
"use strict";

const BASE = document.body.dataset.base || "";
const session = JSON.parse(localStorage.getItem("studio-session") || "null")?.session;
const auth = { Authorization: `Bearer ${session}` };

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function say(text) {
  const box = document.getElementById("message");
  box.textContent = text;
  box.dataset.kind = "error";
}

async function load() {
  if (!session) return say("Sign in on the labelling page first (Back to labelling), then reload.");
  const response = await fetch(`${BASE}/api/disagreements`, { headers: auth });
  if (!response.ok) return say(response.status === 401 ? "Session expired: sign in on the labelling page." : `Could not load (${response.status}).`);
  const { items } = await response.json();
  const box = document.getElementById("items");
  box.replaceChildren(...items.map(card));
  if (!items.length) say("No disagreements: the critic agrees with every human vote it has scored.");
}

function card(item) {
  const root = el("article", "card");
  root.dataset.task = item.task_id;
  root.append(el("h2", "", `${item.dimension.replace(/_/g, " ")} · ${item.kind} · ${item.task_id}`));
  root.append(el("p", "prompt", item.prompt));
  const videos = el("div", "videos");
  for (const side of item.videos) videos.append(video(item, side));
  root.append(videos);

  const humans = el("section", "human");
  humans.append(el("h3", "", "Annotators' vote: "), el("span", "verdict", item.human.verdict));
  const list = el("ul");
  for (const h of item.human.labels) list.append(el("li", "", `${h.annotator}: ${h.answer}${h.reason ? ` — ${h.reason}` : ""}`));
  humans.append(list);
  const critic = el("section", "critic");
  critic.append(el("h3", "", `Critic ${item.critic.version}: `), el("span", "verdict", item.critic.verdict));
  critic.append(el("p", "certainty", `certainty ${(100 * item.critic.certainty).toFixed(0)}% · votes ${JSON.stringify(item.critic.votes)}`));
  critic.append(el("p", "reason", item.critic.reason || "(no reason)"));
  const sides = el("div", "sides");
  sides.append(humans, critic);
  root.append(sides);

  const button = el("button", "relabel", item.review_queued ? "Queued for relabelling" : "Relabel");
  button.type = "button";
  button.disabled = item.review_queued;
  button.addEventListener("click", async () => {
    button.disabled = true;
    const response = await fetch(`${BASE}/api/disagreements/${encodeURIComponent(item.task_id)}/review`, { method: "POST", headers: auth });
    button.textContent = response.ok ? "Queued for relabelling" : `Failed (${response.status})`;
  });
  root.append(button);
  return root;
}

function video(item, side) {
  const figure = el("figure");
  const player = Object.assign(el("video"), { muted: true, loop: true, autoplay: true, playsInline: true });
  fetch(`${BASE}/api/disagreements/${encodeURIComponent(item.task_id)}/video/${side}`, { headers: auth })
    .then((r) => (r.ok ? r.blob() : Promise.reject(new Error(`video ${side}: ${r.status}`))))
    .then((blob) => { player.src = URL.createObjectURL(blob); })
    .catch((error) => figure.append(el("figcaption", "", error.message)));
  figure.append(player);
  if (item.videos.length > 1) figure.append(el("figcaption", "", `Video ${side.toUpperCase()}`));
  return figure;
}

load();
