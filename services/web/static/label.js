// The labelling page: one text at a time, a label picker for 2 to 500 labels, every action on a key.
//
// The picker (#picker) is a combobox: the filter field takes letters, the list below it is an
// ARIA listbox whose selected option is the field's aria-activedescendant. Enter accepts only
// while focus is in the picker, so Enter on a link or a button does what it says there. Nothing
// is pre-selected unless the model is confident (queue.low_confidence): a bare Enter never
// assigns a label nobody chose.
import { getJSON, postJSON, nonce, ApiError } from "./api.js";
import { rank } from "./match.js";

const root = document.getElementById("labelling");
const runId = root.dataset.run;
const el = {
  status: document.getElementById("status"),
  banner: document.getElementById("banner"),
  announce: document.getElementById("announce"),
  task: document.getElementById("task"),
  text: document.getElementById("text"),
  picker: document.getElementById("picker"),
  filter: document.getElementById("filter"),
  orderNote: document.getElementById("order-note"),
  options: document.getElementById("options"),
  keyHints: document.getElementById("key-hints"),
  progress: document.getElementById("progress"),
  eta: document.getElementById("eta"),
  annotator: document.getElementById("annotator"),
};
const NAME_KEY = "lesslabels.annotator";
const POLL_MS = 1000;
const RUN_CHECK_MS = 5000;
// How often the queue is read again while a text is on screen, so that texts others labelled (or
// hold) leave this page and new ones arrive; an asynchronous run's read also renews this person's leases.
const QUEUE_POLL_MS = 4000;
const NUMBERED = 9;

let queue = null; // the batch from /api/runs/ID/queue
let position = 0; // index into queue.items of the text on screen
let view = []; // the current text's options as shown, filtered and ranked
let active = null; // the label the selection is on; null: nothing selected
let history = []; // positions accepted, for Backspace
let busy = false;
let ended = root.dataset.ended === "true";
let round = -1;
let started = performance.now();
let acceptedHere = 0;

el.annotator.value = localStorage.getItem(NAME_KEY) ?? "";
el.annotator.addEventListener("change", () => localStorage.setItem(NAME_KEY, el.annotator.value.trim()));
el.annotator.addEventListener("keydown", (event) => {
  if (event.key === "Enter") {
    localStorage.setItem(NAME_KEY, el.annotator.value.trim());
    if (current() && !el.task.hidden) el.filter.focus();
    else el.annotator.blur();
    event.preventDefault();
  }
  event.stopPropagation();
});

function setStatus(message, kind = "") {
  el.status.textContent = message;
  el.status.className = kind;
}

function announce(message) {
  el.announce.textContent = message;
}

function current() {
  return queue?.items[position];
}

function percent(probability) {
  return `${(probability * 100).toFixed(probability < 0.01 ? 1 : 0)} %`;
}

function suggestionOf(item) {
  return item.options.find((o) => o.label === item.suggestion) ?? null;
}

function confident(item) {
  const suggestion = suggestionOf(item);
  return suggestion != null && suggestion.probability != null && suggestion.probability >= queue.low_confidence;
}

// What is selected when a text comes up: the label given already, else a confident suggestion, else nothing.
function preselected(item) {
  if (item.label) return item.label;
  return confident(item) ? item.suggestion : null;
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
  el.filter.value = "";
  active = preselected(item);
  renderProgress();
  el.task.hidden = false;
  el.text.textContent = item.text;
  renderOptions();
  const suggestion = suggestionOf(item);
  let about = "No suggestion.";
  if (suggestion) {
    about = `Suggested: ${suggestion.label}, ${percent(suggestion.probability)}${confident(item) ? "" : ", low confidence, not selected"}.`;
  }
  announce(`Text ${position + 1} of ${queue.items.length}: ${item.text} ${about}${active ? ` Selected: ${active}.` : ""}`);
  const focus = document.activeElement;
  if (focus === document.body || focus === null || el.picker.contains(focus)) el.filter.focus();
}

function renderProgress() {
  const done = queue ? queue.items.filter((i) => i.label).length : 0;
  el.progress.textContent = queue ? `${done} / ${queue.items.length}` : "– / –";
  if (acceptedHere > 0 && queue && done < queue.items.length) {
    const perLabel = (performance.now() - started) / acceptedHere;
    const seconds = Math.round((perLabel * (queue.items.length - done)) / 1000);
    el.eta.textContent = `about ${seconds < 90 ? `${seconds} s` : `${Math.round(seconds / 60)} min`} left`;
  } else {
    el.eta.textContent = "";
  }
}

function orderNote(item) {
  const n = item.options.length;
  const query = el.filter.value.trim();
  if (query) {
    return view.length
      ? `${view.length} of ${n} labels match “${query}”, best first. Esc clears the filter.`
      : `No label matches “${query}”. Esc clears the filter.`;
  }
  // Each text's options come in the order of the read that brought it (texts added by a later read
  // of the queue may be ranked by a model that the first read did not have yet).
  const order = item.order ?? queue.order;
  if (order === "model") return `${n} labels, most probable first (the model's suggestions).`;
  const nothing = "Nothing is pre-selected: choose with 1–9, the arrows or by typing.";
  if (order === "frequency") {
    return `${n} labels, no model yet: most frequent in the labelled data first, then A–Z. ${nothing}`;
  }
  return `${n} labels, no model yet and no labelled data: A–Z. ${nothing}`;
}

function optionId(item, option) {
  return `option-${item.options.indexOf(option)}`;
}

function renderOptions() {
  const item = current();
  if (!item) return;
  const hadFocus = el.picker.contains(document.activeElement);
  view = rank(el.filter.value, item.options);
  const lowSuggestion = suggestionOf(item) && !confident(item);
  el.options.replaceChildren(
    ...view.map((option, i) => {
      const li = document.createElement("li");
      li.id = optionId(item, option);
      li.dataset.label = option.label;
      li.setAttribute("role", "option");
      li.tabIndex = -1;
      const key = document.createElement("kbd");
      key.textContent = i < NUMBERED ? String(i + 1) : "";
      if (i >= NUMBERED) key.className = "blank";
      key.setAttribute("aria-hidden", "true");
      const name = document.createElement("span");
      name.className = "name";
      name.textContent = option.label;
      if (option.label === item.label) name.textContent += " ✓";
      li.append(key, name);
      if (option.description) {
        const description = document.createElement("span");
        description.className = "description";
        description.textContent = option.description;
        li.append(description);
      }
      const p = document.createElement("span");
      p.className = "probability";
      p.textContent = option.probability == null ? "" : percent(option.probability);
      if (option.label === item.suggestion) {
        p.textContent += lowSuggestion ? " suggested · low confidence" : " suggested";
        if (lowSuggestion) li.classList.add("low");
      }
      li.append(p);
      li.addEventListener("click", () => {
        active = option.label;
        updateSelection();
        accept();
      });
      return li;
    }),
  );
  el.orderNote.textContent = orderNote(item);
  updateSelection();
  if (hadFocus && !el.picker.contains(document.activeElement)) el.filter.focus();
}

function updateSelection() {
  const item = current();
  let selectedLi = null;
  for (const li of el.options.children) {
    const on = li.dataset.label === active;
    li.setAttribute("aria-selected", String(on));
    li.classList.toggle("selected", on);
    if (on) selectedLi = li;
  }
  el.filter.setAttribute("aria-activedescendant", selectedLi ? selectedLi.id : "");
  if (selectedLi) selectedLi.scrollIntoView({ block: "nearest" });
  else if (item) el.options.scrollTop = 0;
}

function choose(option, say = true) {
  active = option ? option.label : null;
  updateSelection();
  if (say && option) {
    const at = view.indexOf(option) + 1;
    const p = option.probability == null ? "" : `, ${percent(option.probability)}`;
    announce(`Selected: ${option.label}${p}, ${at} of ${view.length}. Enter accepts.`);
  }
}

function refilter() {
  const item = current();
  if (!item) return;
  active = null;
  renderOptions();
  if (el.filter.value.trim()) choose(view[0] ?? null, false);
  else choose(item.options.find((o) => o.label === preselected(item)) ?? null, false);
  const top = view[0];
  announce(
    el.filter.value.trim()
      ? `${view.length} match${view.length === 1 ? "" : "es"}${top ? `; selected: ${top.label}` : ""}`
      : "Filter cleared",
  );
}

function move(step) {
  if (view.length === 0) return;
  const at = view.findIndex((o) => o.label === active);
  const next = at < 0 ? (step > 0 ? 0 : view.length - 1) : (at + step + view.length) % view.length;
  choose(view[next]);
}

function showEnded(run) {
  ended = true;
  el.banner.textContent = `Run ${run.id} is ${run.state.toLowerCase()}${run.stop_reason ? `: ${run.stop_reason}` : ""}. Nothing to label here; the labels already given are kept.`;
  el.banner.hidden = false;
  el.task.hidden = true;
  el.keyHints.hidden = true;
  el.text.textContent = "";
  el.options.replaceChildren();
  announce(el.banner.textContent);
}

async function load() {
  if (ended) return;
  try {
    // An asynchronous run leases the texts it hands out to whoever asks, so two people never get the same one.
    queue = await getJSON(`/api/runs/${runId}/queue?annotator=${encodeURIComponent(el.annotator.value.trim())}`);
  } catch (error) {
    setStatus(`Could not load the batch: ${error.message}`, "error");
    setTimeout(load, POLL_MS * 3);
    return;
  }
  const run = queue.run;
  if (run.ended) {
    showEnded(run);
    return;
  }
  // An asynchronous run's queue is open while it fine-tunes; a batch run's only at its LABEL step.
  const open = queue.items.length > 0 && queue.remaining > 0 && (run.asynchronous || run.step === "LABEL");
  if (!open) {
    el.task.hidden = true;
    renderProgress();
    const now = queue.activity ? ` Now: ${queue.activity.message}.` : "";
    setStatus(
      `Batch done. The run is ${run.state.toLowerCase()} at ${run.step.toLowerCase()} (round ${run.round}).${now} The next batch appears here by itself.`,
    );
    setTimeout(load, POLL_MS);
    return;
  }
  if (queue.round !== round) {
    round = queue.round;
    history = [];
    started = performance.now();
    acceptedHere = 0;
  }
  setStatus(
    queue.run.asynchronous
      ? `Queue of run ${runId}: ${queue.remaining} texts for you, picked by the newest model; fine-tunes run in the background.${queue.model ? "" : " (No model yet: no suggestions until two labels differ.)"}`
      : `Round ${queue.round}: ${queue.remaining} of ${queue.items.length} texts still need a label.${queue.model ? "" : " (No model yet: no suggestions in the first batch.)"}`,
  );
  const start = queue.items.findIndex((i) => !i.label);
  show(start >= 0 ? start : 0);
  if (!el.annotator.value.trim()) el.annotator.focus();
}

// The queue as the server has it now: texts others labelled or hold leave this page, a batch text
// someone else labelled shows their label, and new texts join at the end. The text on screen stays
// unless it is gone, and then the next one comes up with a notice.
async function refreshQueue() {
  if (ended || busy || !queue || el.task.hidden) return;
  let fresh;
  try {
    fresh = await getJSON(`/api/runs/${runId}/queue?annotator=${encodeURIComponent(el.annotator.value.trim())}`);
  } catch (error) {
    return; // the next poll tries again
  }
  if (busy || !queue || el.task.hidden || fresh.run.ended) {
    if (fresh.run.ended) showEnded(fresh.run);
    return;
  }
  if (!fresh.run.asynchronous && fresh.round !== queue.round) {
    // Others finished the batch on screen and the run moved on: its next batch (or the wait for it).
    await load();
    return;
  }
  const shown = current();
  const now = new Map(fresh.items.map((item) => [item.sample_id, item]));
  let goneHere = false;
  const kept = [];
  for (const item of queue.items) {
    const there = now.get(item.sample_id);
    if (item.label || there) {
      if (there && there.label && !item.label) {
        item.label = there.label; // a batch text someone else labelled meanwhile
        if (item === shown) goneHere = true;
      }
      kept.push(item);
    } else if (item === shown) {
      goneHere = true;
    }
  }
  const known = new Set(kept.map((item) => item.sample_id));
  const added = fresh.items.filter((item) => !known.has(item.sample_id));
  for (const item of added) item.order = fresh.order;
  if (fresh.model) queue.model = fresh.model;
  const dropped = queue.items.length - kept.length;
  if (dropped === 0 && added.length === 0 && !goneHere) return;
  queue.items = kept.concat(added);
  queue.remaining = queue.items.filter((item) => !item.label).length;
  history = history.filter((i) => i < queue.items.length);
  if (goneHere || !queue.items.includes(shown)) {
    const next = queue.items.findIndex((item) => !item.label);
    if (next < 0) {
      el.task.hidden = true;
      setStatus("Someone else labelled the rest of these texts: waiting for more.", "ok");
      setTimeout(load, POLL_MS);
      return;
    }
    show(next);
    setStatus("Someone else labelled the text you had on screen: here is the next one.");
    announce("Someone else labelled that text. Next text shown.");
  } else {
    position = queue.items.indexOf(shown);
    renderProgress();
  }
}

function pollQueue() {
  if (ended) return;
  refreshQueue().finally(() => setTimeout(pollQueue, QUEUE_POLL_MS));
}

async function checkRun() {
  if (ended) return;
  try {
    const detail = await getJSON(`/api/runs/${runId}`);
    if (detail.run.ended) {
      showEnded(detail.run);
      return;
    }
  } catch (error) {
    // the next check tries again
  }
  setTimeout(checkRun, RUN_CHECK_MS);
}

async function accept() {
  const item = current();
  if (!item || busy || ended) return;
  if (active == null) {
    setStatus(
      view.length
        ? "Choose a label first: type to filter, press 1–9 or move with the arrows, then Enter."
        : "No label matches the filter: Esc clears it.",
      "error",
    );
    return;
  }
  const annotator = el.annotator.value.trim();
  if (!annotator) {
    setStatus("Type your name first (it is kept in this browser).", "error");
    el.annotator.focus();
    return;
  }
  localStorage.setItem(NAME_KEY, annotator);
  const body = { sample_id: item.sample_id, label: active, annotator, nonce: nonce() };
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
    const second = reply.second_opinion
      ? reply.flagged
        ? " Another person labelled this text differently: it is flagged for review on the dataset page."
        : " It agrees with the other person's label."
      : "";
    if (reply.remaining === 0) {
      queue.remaining = 0;
      renderProgress();
      el.task.hidden = true;
      if (queue.run.asynchronous) {
        setStatus("Queue empty for a moment: it is being refilled from the newest model.", "ok");
        announce("Refilling the queue.");
      } else {
        setStatus("Batch complete: the model trains on your labels, and the next batch appears here by itself.", "ok");
        announce("Batch complete.");
      }
      setTimeout(load, POLL_MS);
      return;
    }
    const next = nextUnlabelled(position);
    if (next < 0) {
      await load(); // someone else labelled the rest
    } else {
      setStatus(`Saved “${reply.label}”.${second} ${reply.remaining} left in this ${queue.run.asynchronous ? "queue" : "batch"}.`);
      show(next);
    }
  } catch (error) {
    setStatus(`Not saved: ${error.message}`, "error");
    if (error instanceof ApiError && error.status === 409) await load(); // an ended run shows its banner
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

function focusFilter() {
  el.filter.focus();
  el.filter.select();
}

// Keys inside the picker (the filter field or a focused option).
function pickerKey(event) {
  const empty = el.filter.value === "";
  if (/^[1-9]$/.test(event.key)) {
    const option = view[Number(event.key) - 1];
    if (option) choose(option);
  } else if (event.key === "ArrowDown" || event.key === "ArrowUp") {
    move(event.key === "ArrowDown" ? 1 : -1);
  } else if (event.key === "Enter") {
    accept();
  } else if (event.key === "Escape") {
    if (empty) return false;
    el.filter.value = "";
    refilter();
  } else if (event.key === "/") {
    focusFilter();
  } else if (event.key === " " && empty) {
    skip();
  } else if (event.key === "Backspace" && empty) {
    back();
  } else if (event.target !== el.filter && event.key.length === 1) {
    el.filter.focus(); // a letter typed on a focused option goes to the filter
    el.filter.value += event.key;
    refilter();
  } else {
    return false;
  }
  return true;
}

el.filter.addEventListener("input", refilter);
el.picker.addEventListener("keydown", (event) => {
  if (event.ctrlKey || event.metaKey || event.altKey || !current() || el.task.hidden) return;
  if (pickerKey(event)) event.preventDefault();
});

// Keys anywhere else: "/" and letters bring the picker back; Enter there never accepts.
document.addEventListener("keydown", (event) => {
  if (el.picker.contains(event.target) || event.target === el.annotator) return;
  if (event.ctrlKey || event.metaKey || event.altKey || !current() || el.task.hidden || ended) return;
  const onPage = event.target === document.body || event.target === document.documentElement || el.task.contains(event.target);
  if (event.key === "/") {
    focusFilter();
  } else if (!onPage) {
    return; // a link, a button or a form field keeps its own keys
  } else if (event.key === "Enter") {
    setStatus("Enter accepts only in the label list: press / or type a letter to go back to it.", "error");
  } else if (event.key.length === 1 || ["ArrowDown", "ArrowUp", "Escape", "Backspace"].includes(event.key)) {
    el.filter.focus();
    if (event.key.length === 1 && !/^[1-9]$/.test(event.key) && !(event.key === " " && el.filter.value === "")) {
      el.filter.value += event.key;
      refilter();
    } else if (!pickerKey(event)) {
      return;
    }
  } else {
    return;
  }
  event.preventDefault();
});

if (ended) {
  el.task.hidden = true;
} else {
  load();
  setTimeout(checkRun, RUN_CHECK_MS);
  setTimeout(pollQueue, QUEUE_POLL_MS);
}
