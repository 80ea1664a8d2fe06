// The annotation studio page: plain JS, no build step, nothing fetched from outside the studio.
// Every text from the server (prompts, messages) is set with textContent, never parsed as HTML.
"use strict";

const BASE = document.body.dataset.base || "";
const DIMENSION_TEXT = {
  semantic_consistency: ["Semantic consistency", "Does it show what the prompt asks: subjects, colours, count, action, scene?"],
  motion_smoothness: ["Motion smoothness", "Is the motion smooth and natural: no jitter, flicker or jumps?"],
  faithfulness: ["Faithfulness", "Is the picture clean: no blur, noise, deformation or vanishing subject?"],
};
const NO_REASON = { pointwise: "Good", pairwise: "tie" };
const SPEEDS = [1, 0.5, 0.25];
const $ = (id) => document.getElementById(id);

const state = { session: null, annotator: null, task: null, answers: {}, shownAt: 0, speed: 0, busy: false, videoProblem: null, urls: [] };

async function api(path, options = {}) {
  const headers = { "Content-Type": "application/json" };
  if (state.session) headers.Authorization = `Bearer ${state.session}`;
  const response = await fetch(`${BASE}/api/${path}`, { ...options, headers });
  const body = response.headers.get("content-type")?.includes("json") ? await response.json() : null;
  if (!response.ok) throw Object.assign(new Error(describe(body, response.status)), { status: response.status, body });
  return body;
}

function describe(body, status) {
  const detail = body?.detail;
  if (Array.isArray(detail)) return detail.map((d) => `${(d.loc || []).slice(1).join(".")}: ${d.msg}`).join("; ");
  return typeof detail === "string" ? detail : `request failed (${status})`;
}

function show(section) {
  for (const id of ["sign-in", "task", "done"]) $(id).hidden = id !== section;
  $("who").hidden = section === "sign-in";
}

function say(text, kind = "error", where = "message") {
  const el = $(where);
  el.textContent = text;
  el.dataset.kind = kind;
}

// ---- session ------------------------------------------------------------------------------

async function signIn(event) {
  event.preventDefault();
  state.session = null;
  try {
    const body = await api("session", { method: "POST", body: JSON.stringify({ name: $("name").value.trim(), token: $("token").value || null }) });
    Object.assign(state, { session: body.session, annotator: body.annotator });
    localStorage.setItem("studio-session", JSON.stringify({ session: body.session, annotator: body.annotator }));
    $("token").value = "";
    await loadNext();
  } catch (error) {
    say(error.status === 401 ? "Unknown name or wrong token." : error.message, "error", "sign-in-message");
  }
}

function signOut() {
  localStorage.removeItem("studio-session");
  Object.assign(state, { session: null, annotator: null, task: null });
  stopVideos();
  show("sign-in");
  $("name").focus();
}

// ---- tasks --------------------------------------------------------------------------------

async function loadNext() {
  try {
    const body = await api("next");
    setProgress(body.progress);
    $("annotator").textContent = state.annotator;
    if (!body.task) {
      stopVideos();
      show("done");
      return;
    }
    render(body.task);
  } catch (error) {
    if (error.status === 401) return signOut();
    say(`Could not load the next task: ${error.message}`);
  }
}

function setProgress({ done, total }) {
  $("progress-text").textContent = `${done} / ${total} done`;
  $("progress").max = Math.max(total, 1);
  $("progress").value = done;
}

function render(task) {
  Object.assign(state, { task, answers: {}, videoProblem: null, shownAt: performance.now() });
  show("task");
  say("", "info");
  $("problem").value = "";
  $("kind").textContent = task.kind === "pairwise" ? "Compare the two videos — which is better on each question?" : "Judge the video against its prompt";
  $("prompt").textContent = task.prompt;
  renderDimensions(task);
  loadVideos(task);
  document.activeElement?.blur();
}

function renderDimensions(task) {
  const box = $("dimensions");
  box.replaceChildren();
  task.dimensions.forEach((dim, i) => {
    const [title, hint] = DIMENSION_TEXT[dim] || [dim, ""];
    const row = document.createElement("fieldset");
    row.className = "dimension";
    row.dataset.dimension = dim;
    const legend = document.createElement("legend");
    legend.textContent = title;
    const help = document.createElement("p");
    help.className = "hint";
    help.textContent = task.kind === "pairwise" ? `Which is better? ${hint}` : hint;
    const choices = document.createElement("div");
    choices.className = "choices";
    task.choices.forEach((choice, j) => {
      const button = document.createElement("button");
      button.type = "button";
      button.className = `choice choice-${choice.toLowerCase()}`;
      button.dataset.answer = choice;
      const key = document.createElement("kbd");
      key.textContent = String(i * 3 + j + 1);
      button.append(key, ` ${choice === "tie" ? "Tie" : choice}`);
      button.addEventListener("click", () => {
        button.blur(); // keys go back to shortcuts, not to this button
        choose(dim, choice);
      });
      choices.append(button);
    });
    const reason = document.createElement("textarea");
    reason.className = "reason";
    reason.rows = 1;
    reason.maxLength = 1000;
    reason.placeholder = `Reason (required unless ${NO_REASON[task.kind] === "tie" ? "Tie" : "Good"})`;
    reason.addEventListener("input", () => row.classList.remove("missing"));
    row.append(legend, help, choices, reason);
    box.append(row);
  });
}

function choose(dim, answer) {
  state.answers[dim] = answer;
  const row = document.querySelector(`fieldset[data-dimension="${dim}"]`);
  row.classList.remove("missing");
  for (const b of row.querySelectorAll(".choice")) b.classList.toggle("selected", b.dataset.answer === answer);
  const reason = row.querySelector(".reason");
  reason.classList.toggle("needed", answer !== NO_REASON[state.task.kind]);
  if (answer !== NO_REASON[state.task.kind] && !reason.value.trim()) reason.focus();
}

async function submit() {
  const task = state.task;
  if (!task || state.busy) return;
  const reasons = {};
  const missing = [];
  for (const row of document.querySelectorAll("fieldset.dimension")) {
    const dim = row.dataset.dimension;
    const text = row.querySelector(".reason").value.trim();
    if (text) reasons[dim] = text;
    if (!state.answers[dim]) missing.push(`${DIMENSION_TEXT[dim]?.[0] || dim}: choose an answer`);
    else if (state.answers[dim] !== NO_REASON[task.kind] && !text) missing.push(`${DIMENSION_TEXT[dim]?.[0] || dim}: a reason is required`);
    row.classList.toggle("missing", !state.answers[dim] || (state.answers[dim] !== NO_REASON[task.kind] && !text));
  }
  if (missing.length) return say(missing.join(" · "));
  const seconds = (performance.now() - state.shownAt) / 1000;
  await send(`tasks/${encodeURIComponent(task.task_id)}/label`, { answers: state.answers, reasons, seconds });
}

async function skip() {
  const task = state.task;
  if (!task || state.busy) return;
  const note = $("problem").value.trim();
  const problem = [state.videoProblem, note].filter(Boolean).join(" — ") || null;
  await send(`tasks/${encodeURIComponent(task.task_id)}/skip`, { problem });
}

// The next task is loaded only after the server answered: a label is stored before the page moves on.
async function send(path, body) {
  state.busy = true;
  $("submit").disabled = $("skip").disabled = true;
  try {
    await api(path, { method: "POST", body: JSON.stringify(body) });
    await loadNext();
  } catch (error) {
    if (error.status === 401) return signOut();
    if (error.status === 422) markFields(error.body?.detail);
    say(error.status === 409 ? `${error.message}. Loading your next task.` : `Not saved: ${error.message}`);
    if (error.status === 409) setTimeout(loadNext, 1200);
  } finally {
    state.busy = false;
    $("submit").disabled = $("skip").disabled = false;
  }
}

function markFields(detail) {
  for (const d of Array.isArray(detail) ? detail : []) {
    const dim = (d.loc || []).at(-1);
    document.querySelector(`fieldset[data-dimension="${CSS.escape(String(dim))}"]`)?.classList.add("missing");
  }
}

// ---- videos -------------------------------------------------------------------------------

function stopVideos() {
  for (const v of document.querySelectorAll("#videos video")) v.pause();
  for (const url of state.urls) URL.revokeObjectURL(url);
  state.urls = [];
}

async function loadVideos(task) {
  stopVideos();
  const box = $("videos");
  box.replaceChildren();
  box.className = task.videos.length > 1 ? "pair" : "single";
  const videos = task.videos.map((side) => {
    const card = document.createElement("figure");
    const video = document.createElement("video");
    Object.assign(video, { muted: true, playsInline: true, preload: "auto", loop: task.videos.length === 1 });
    video.dataset.side = side;
    const caption = document.createElement("figcaption");
    caption.textContent = task.videos.length > 1 ? `Video ${side.toUpperCase()}` : "";
    card.append(video, caption);
    box.append(card);
    video.addEventListener("error", () => videoFailed(side, `cannot be played (${video.error?.message || "decode error"})`));
    return video;
  });
  if (videos.length > 1) syncPair(videos);
  await Promise.all(videos.map(async (video) => {
    try {
      const response = await fetch(`${BASE}/api/tasks/${encodeURIComponent(task.task_id)}/video/${video.dataset.side}`, { headers: { Authorization: `Bearer ${state.session}` } });
      if (!response.ok) throw new Error(describe(await response.json().catch(() => null), response.status));
      const url = URL.createObjectURL(await response.blob());
      state.urls.push(url);
      if (state.task !== task) return;
      video.src = url;
    } catch (error) {
      videoFailed(video.dataset.side, error.message);
    }
  }));
  if (state.task === task && !state.videoProblem) playAll();
}

function videoFailed(side, why) {
  state.videoProblem = `video ${side.toUpperCase()} failed to load: ${why}`;
  const figure = document.querySelector(`#videos video[data-side="${side}"]`)?.parentElement;
  if (figure && !figure.classList.contains("failed")) {
    const note = document.createElement("p");
    note.className = "problem";
    note.textContent = `${state.videoProblem}. Press S to skip: the problem is recorded and the task goes to someone else.`;
    figure.classList.add("failed");
    figure.prepend(note);
  }
  say(`${state.videoProblem}. Press S (or Skip) to skip the task.`);
}

// Two videos start together and, when both have ended, restart together: they stay frame-aligned.
function syncPair(videos) {
  for (const v of videos) {
    v.addEventListener("ended", () => {
      if (videos.every((x) => x.ended)) playAll();
    });
  }
}

function playAll() {
  for (const v of document.querySelectorAll("#videos video")) {
    v.playbackRate = SPEEDS[state.speed];
    v.currentTime = 0;
    v.play().catch(() => {});
  }
}

function cycleSpeed() {
  state.speed = (state.speed + 1) % SPEEDS.length;
  $("speed").firstChild.textContent = `Speed ${SPEEDS[state.speed]}× `;
  playAll();
}

// ---- keyboard -----------------------------------------------------------------------------

const COMMANDS = { enter: submit, s: skip, " ": playAll, v: cycleSpeed };

function onKey(event) {
  if ($("task").hidden || event.ctrlKey && event.key !== "Enter" || event.altKey || event.metaKey) return;
  const typing = event.target.matches("textarea, input");
  if (typing) {
    if (event.key === "Escape" || (event.key === "Enter" && !event.shiftKey && !event.ctrlKey)) {
      event.preventDefault();
      event.target.blur();
    } else if (event.key === "Enter" && event.ctrlKey) {
      event.preventDefault();
      submit();
    }
    return;
  }
  const task = state.task;
  if (/^[1-9]$/.test(event.key) && task) {
    const index = Number(event.key) - 1;
    const dim = task.dimensions[Math.floor(index / 3)];
    const answer = task.choices[index % 3];
    if (dim && answer) {
      event.preventDefault();
      choose(dim, answer);
    }
  } else if (COMMANDS[event.key.toLowerCase()]) {
    event.preventDefault();
    COMMANDS[event.key.toLowerCase()]();
  }
}

// ---- start --------------------------------------------------------------------------------

$("sign-in").addEventListener("submit", signIn);
$("sign-out").addEventListener("click", signOut);
$("submit").addEventListener("click", submit);
$("skip").addEventListener("click", skip);
$("replay").addEventListener("click", playAll);
$("speed").addEventListener("click", cycleSpeed);
document.addEventListener("keydown", onKey);

const saved = JSON.parse(localStorage.getItem("studio-session") || "null");
if (saved?.session) {
  Object.assign(state, saved);
  loadNext();
} else {
  show("sign-in");
  $("name").focus();
}
