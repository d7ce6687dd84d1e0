// The labelling page: one text at a time, the model's suggestion pre-selected, every action on a key.
import { getJSON, postJSON, nonce, ApiError } from "./api.js";

const root = document.getElementById("labelling");
const runId = root.dataset.run;
const el = {
  status: document.getElementById("status"),
  task: document.getElementById("task"),
  text: document.getElementById("text"),
  options: document.getElementById("options"),
  progress: document.getElementById("progress"),
  eta: document.getElementById("eta"),
  annotator: document.getElementById("annotator"),
};
const NAME_KEY = "lesslabels.annotator";
const POLL_MS = 1000;

let queue = null; // the batch from /api/runs/ID/queue
let position = 0; // index into queue.items of the text on screen
let selected = 0; // index into the current item's options
let history = []; // positions accepted, for Backspace
let busy = false;
let round = -1;
let started = performance.now();
let acceptedHere = 0;

el.annotator.value = localStorage.getItem(NAME_KEY) ?? "";
el.annotator.addEventListener("change", () => localStorage.setItem(NAME_KEY, el.annotator.value.trim()));
el.annotator.addEventListener("keydown", (event) => {
  if (event.key === "Enter") {
    localStorage.setItem(NAME_KEY, el.annotator.value.trim());
    el.annotator.blur();
    event.preventDefault();
  }
  event.stopPropagation();
});

function setStatus(message, kind = "") {
  el.status.textContent = message;
  el.status.className = kind;
}

function current() {
  return queue?.items[position];
}

function nextUnlabelled(from) {
  const n = queue.items.length;
  for (let step = 1; step <= n; step++) {
    const i = (from + step) % n;
    if (!queue.items[i].label) return i;
  }
  return -1;
}

function show(index) {
  position = index;
  const item = current();
  const given = item.options.findIndex((o) => o.label === item.label);
  const suggested = item.options.findIndex((o) => o.label === item.suggestion);
  selected = given >= 0 ? given : Math.max(suggested, 0);
  render();
}

function render() {
  const item = current();
  el.task.hidden = !item;
  const done = queue ? queue.items.filter((i) => i.label).length : 0;
  el.progress.textContent = queue ? `${done} / ${queue.items.length}` : "– / –";
  if (acceptedHere > 0 && queue && done < queue.items.length) {
    const perLabel = (performance.now() - started) / acceptedHere;
    const seconds = Math.round((perLabel * (queue.items.length - done)) / 1000);
    el.eta.textContent = `about ${seconds < 90 ? `${seconds} s` : `${Math.round(seconds / 60)} min`} left`;
  } else {
    el.eta.textContent = "";
  }
  if (!item) return;
  el.text.textContent = item.text;
  el.options.replaceChildren(
    ...item.options.map((option, i) => {
      const li = document.createElement("li");
      li.dataset.label = option.label;
      li.setAttribute("role", "option");
      li.setAttribute("aria-selected", String(i === selected));
      li.className = i === selected ? "selected" : "";
      const key = document.createElement("kbd");
      key.textContent = i < 9 ? String(i + 1) : "";
      const name = document.createElement("span");
      name.className = "name";
      name.textContent = option.label;
      const p = document.createElement("span");
      p.className = "probability";
      p.textContent = option.probability == null ? "" : `${(option.probability * 100).toFixed(0)} %`;
      if (option.label === item.suggestion) p.textContent += " suggested";
      if (option.label === item.label) name.textContent += " ✓";
      li.append(key, name, p);
      li.addEventListener("click", () => {
        selected = i;
        accept();
      });
      return li;
    }),
  );
}

async function load() {
  try {
    queue = await getJSON(`/api/runs/${runId}/queue`);
  } catch (error) {
    setStatus(`Could not load the batch: ${error.message}`, "error");
    setTimeout(load, POLL_MS * 3);
    return;
  }
  const run = queue.run;
  const open = queue.items.length > 0 && queue.remaining > 0 && run.step === "LABEL";
  if (!open) {
    el.task.hidden = true;
    render();
    if (["COMPLETED", "CANCELLED", "FAILED"].includes(run.state)) {
      setStatus(`The run is ${run.state.toLowerCase()}${run.stop_reason ? `: ${run.stop_reason}` : ""}. Nothing to label.`);
      return;
    }
    setStatus(`Batch done. The run is ${run.state.toLowerCase()} at ${run.step.toLowerCase()} (round ${run.round}); the next batch appears here by itself.`);
    setTimeout(load, POLL_MS);
    return;
  }
  if (queue.round !== round) {
    round = queue.round;
    history = [];
    started = performance.now();
    acceptedHere = 0;
  }
  setStatus(`Round ${queue.round}: ${queue.remaining} of ${queue.items.length} texts still need a label.${queue.model ? "" : " (No model yet: no suggestions in the first batch.)"}`);
  const start = queue.items.findIndex((i) => !i.label);
  show(start >= 0 ? start : 0);
}

async function accept() {
  const item = current();
  if (!item || busy) return;
  const annotator = el.annotator.value.trim();
  if (!annotator) {
    setStatus("Type your name first (it is kept in this browser).", "error");
    el.annotator.focus();
    return;
  }
  localStorage.setItem(NAME_KEY, annotator);
  const label = item.options[selected].label;
  const body = { sample_id: item.sample_id, label, annotator, nonce: nonce() };
  busy = true;
  try {
    let reply;
    for (let attempt = 0; ; attempt++) {
      try {
        reply = await postJSON(`/api/runs/${runId}/labels`, body); // a retry reuses the nonce: never a second label
        break;
      } catch (error) {
        if (error instanceof ApiError || attempt >= 2) throw error;
        await new Promise((resolve) => setTimeout(resolve, 300 * (attempt + 1)));
      }
    }
    item.label = reply.label;
    acceptedHere++;
    history.push(position);
    if (reply.remaining === 0) {
      queue.remaining = 0;
      render();
      el.task.hidden = true;
      setStatus("Batch complete: the model trains on your labels, and the next batch appears here by itself.", "ok");
      setTimeout(load, POLL_MS);
      return;
    }
    const next = nextUnlabelled(position);
    if (next < 0) {
      await load(); // someone else labelled the rest
    } else {
      setStatus(`Saved “${reply.label}”. ${reply.remaining} left in this batch.`);
      show(next);
    }
  } catch (error) {
    setStatus(`Not saved: ${error.message}`, "error");
    if (error instanceof ApiError && error.status === 409) setTimeout(load, POLL_MS);
  } finally {
    busy = false;
  }
}

function back() {
  if (!queue || history.length === 0) return;
  show(history.pop());
  setStatus("Back one: choose again and press Enter to change it.");
}

function skip() {
  if (!queue) return;
  const next = nextUnlabelled(position);
  if (next >= 0 && next !== position) {
    show(next);
    setStatus("Skipped: it comes back at the end.");
  }
}

document.addEventListener("keydown", (event) => {
  if (event.target === el.annotator || event.ctrlKey || event.metaKey || event.altKey) return;
  const item = current();
  if (!item || el.task.hidden) return;
  if (/^[1-9]$/.test(event.key)) {
    const i = Number(event.key) - 1;
    if (i < item.options.length) {
      selected = i;
      render();
    }
  } else if (event.key === "ArrowDown" || event.key === "ArrowUp") {
    const n = item.options.length;
    selected = (selected + (event.key === "ArrowDown" ? 1 : n - 1)) % n;
    render();
  } else if (event.key === "Enter") {
    accept();
  } else if (event.key === "Backspace") {
    back();
  } else if (event.key === "s" || event.key === "S") {
    skip();
  } else {
    return;
  }
  event.preventDefault();
});

load();
