"""How fast a person labels through the label picker with 150 labels against 8: keystrokes per
label and the page's own time, in headless Chromium, on CLINC150 and ATIS (issue 24, item 1).

The targets: on CLINC150 (150 intents) any label picked in at most 4 keystrokes at the median,
and a labelling rate within 25 % of the 8-label case (ATIS), i.e. rate(150) / rate(8) >= 0.75.

The services and the web app start as local processes, as ``lesslabels up`` starts them
(``LocalStack``: pool on SQLite, trainer, scorer, coordinator, web app, the bundled
all-MiniLM-L6-v2). Per dataset a seeded random ``--labels`` training texts are imported (the
pool) with ``--test-per-class`` test texts of every intent (so the dataset has all its labels; the
first batch orders them by that frequency, ties A-Z), and an asynchronous human-oracle run starts
(the default for ``--oracle human``): a random seed set, then the queue refilled by the fast head
(a logistic regression on the base model's embeddings), whose suggestions come after two labels
differ. Background fine-tunes are capped at ``--max-steps`` steps on one thread, to leave the
page the CPU.

A scripted person in headless Chromium (selenium, Debian's ``chromium`` and ``chromedriver``)
opens the labelling page, types a name, and labels every text on screen with its gold label,
reading the screen after every key and pressing the fewest keys it allows (as
``tests/browser/test_labelling_browser.py``'s ``pick``): Enter when the gold label is selected
(a confident suggestion is pre-selected); its digit and Enter when it is among the nine numbered;
else the next character of its name (``_`` typed as a space) and look again. Before labelling, the
first text's screen is swept: every label of the set picked once (keys counted, Enter not pressed,
the filter cleared between picks), the issue's "any label".

The page's own time is read in the page: a capturing keydown listener notes each key, a
MutationObserver on the label list notes when the key's change is in the DOM and a
requestAnimationFrame after it the next frame; another on the text notes when the next text is
there after Enter (the POST of the label and the next text's list drawn). An Enter that emptied the
queue is a wait for the refill, counted apart. By default the person is paced in real time by the
keystroke-level model (below): M before each text, K before each key, so the asynchronous run's
refills meet a person's pace; the driver's own overhead (a WebDriver call per key and per look)
adds to the paced wall clock, not to the page time.

The rate is modelled with the keystroke-level model, Card, Moran & Newell, "The keystroke-level
model for user performance time with interactive systems", CACM 23(7):396-410, 1980: per label one
mental preparation M = 1.35 s (deciding the label) plus K = 0.28 s per keystroke (their average
non-secretarial typist, 40 wpm) plus the measured page time; rows with K = 0.20 s (average skilled
typist) and 0.50 s (typing random letters) show how the ratio depends on K. Reading the text is
left out: it does not depend on the label set (and ATIS texts are longer than CLINC150's).

    .venv/bin/python bench/label_rate.py                       # both datasets, 60 labels each (bench/README.md)
    .venv/bin/python bench/label_rate.py --labels 20 --no-sweep --no-pace --out /tmp/label_rate_smoke.json
    .venv/bin/python bench/label_rate.py --report-only
"""

from __future__ import annotations

import argparse
import collections
import datetime as dt
import functools
import json
import os
import pathlib
import platform
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from bench import bench_data  # noqa: E402

RESULTS = ROOT / "bench" / "results"
ANNOTATOR = "bench-person"
NUMBERED = 9  # label.js NUMBERED: options with a digit key
#: Keystroke-level model (Card, Moran & Newell 1980): mental preparation, and K for three typists.
M_S = 1.35
K_S = 0.28
K_SENSITIVITY = {"average skilled typist (55 wpm)": 0.20, "average non-secretarial typist (40 wpm)": 0.28,
                 "typing random letters": 0.50}  # fmt: skip
#: The issue's targets.
MAX_MEDIAN_KEYS = 4
MIN_RATE_RATIO = 0.75
#: Headless Chromium as tests/browser/test_web_browser.py starts it, at a desktop window size.
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--window-size=1280,900",
)

# In the page: every key, when its change reached the label list and the next frame after it, and
# every change of the text on screen; each tagged with what the person was doing.
INSTRUMENT = """
if (!window.__bench) {
  const b = (window.__bench = { tag: "", keys: [], texts: [] });
  document.addEventListener("keydown", (e) => {
    const now = performance.now();
    const at = e.timeStamp > 0 && e.timeStamp <= now && now - e.timeStamp < 1000 ? e.timeStamp : now;
    b.keys.push({ tag: b.tag, key: e.key, at: at, dom: null, frame: null });
  }, true);
  new MutationObserver(() => {
    const k = b.keys[b.keys.length - 1];
    if (k && k.dom === null) {
      k.dom = performance.now();
      requestAnimationFrame(() => { k.frame = performance.now(); });
    }
  }).observe(document.getElementById("options"), { childList: true, subtree: true, attributes: true,
                                                   attributeFilter: ["aria-selected"] });
  new MutationObserver(() => {
    const t = { tag: b.tag, at: performance.now(), text: document.getElementById("text").textContent, frame: null,
                hidden: document.getElementById("task").hidden };
    b.texts.push(t);
    requestAnimationFrame(() => { t.frame = performance.now(); });
  }).observe(document.getElementById("text"), { childList: true, characterData: true, subtree: true });
  new MutationObserver(() => {
    b.texts.push({ tag: b.tag, at: performance.now(), text: null, frame: null, hidden: document.getElementById("task").hidden });
  }).observe(document.getElementById("task"), { attributes: true, attributeFilter: ["hidden"] });
}
"""

# What the screen shows (and the tag the next keys get).
STATE = """
if (window.__bench && arguments[0]) window.__bench.tag = arguments[0];
const selected = document.querySelector("#options li[aria-selected=true]");
const items = Array.from(document.querySelectorAll("#options li"));
const suggested = items.find((li) => (li.querySelector(".probability")?.textContent ?? "").includes("suggested"));
const banner = document.getElementById("banner");
return {
  labels: items.map((li) => li.dataset.label),
  active: selected ? selected.dataset.label : null,
  text: document.getElementById("text").textContent,
  task: !document.getElementById("task").hidden,
  ended: !banner.hidden,
  status: document.getElementById("status").textContent,
  order: document.getElementById("order-note").textContent,
  filter: document.getElementById("filter").value,
  focusInPicker: document.getElementById("picker").contains(document.activeElement),
  suggestion: suggested ? suggested.dataset.label : null,
  suggestionLow: suggested ? suggested.classList.contains("low") : false,
  suggestionText: suggested ? suggested.querySelector(".probability").textContent : "",
};
"""


# ---------------------------------------------------------------- data


def sample(dataset: str, n: int, per_class: int, seed: int) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """A seeded random ``n`` training rows (label, text), distinct texts, and ``per_class`` test rows of
    every label (fewer where the test split has fewer)."""
    rng = random.Random(seed)
    train, seen = [], set()
    rows = bench_data.read_rows(dataset, "train")
    for label, text in rng.sample(rows, k=min(4 * n, len(rows))):
        key = bench_data.normalise(text)
        if key and key not in seen:
            seen.add(key)
            train.append((label, text))
        if len(train) == n:
            break
    by_label: dict[str, list[tuple[str, str]]] = collections.defaultdict(list)
    for row in bench_data.read_rows(dataset, "test"):
        by_label[row[0]].append(row)
    test = [
        row for label in sorted(by_label) for row in rng.sample(by_label[label], min(per_class, len(by_label[label])))
    ]
    return train, test


# ---------------------------------------------------------------- the person


class Person:
    """Reads the screen after every key and presses the fewest keys it allows (module docstring)."""

    def __init__(self, browser: Any, pace: bool):
        self.browser, self.pace = browser, pace

    def look(self, tag: str = "") -> dict:
        return self.browser.execute_script(STATE, tag)

    def press(self, key: str) -> None:
        from selenium.webdriver.common.action_chains import ActionChains

        if self.pace:
            time.sleep(K_S)
        ActionChains(self.browser).send_keys(key).perform()

    def pick(self, label: str, tag: str) -> tuple[int, str, str]:
        """Select ``label``; returns the keys it took counting the Enter that accepts it (not pressed
        here), how (enter, digit, typed+digit, typed+enter, typed+arrows) and the characters typed."""
        typed = label.replace("_", " ")
        strokes = 0
        for n in range(len(typed) + 1):
            now = self.look(tag)
            if now["active"] == label:
                return strokes + 1, "enter" if n == 0 else "typed+enter", typed[:n]
            shown = now["labels"][:NUMBERED]
            if label in shown:
                self.press(str(shown.index(label) + 1))
                if self.look(tag)["active"] != label:
                    raise RuntimeError(f"digit {shown.index(label) + 1} did not select {label!r}")
                return strokes + 2, "digit" if n == 0 else "typed+digit", typed[:n]
            if n == len(typed):
                break
            self.press(typed[n])
            strokes += 1
        from selenium.webdriver.common.keys import Keys

        now = self.look(tag)  # the whole name typed and still not among nine: the arrows
        if label not in now["labels"]:
            raise RuntimeError(f"{label!r} not offered after typing {typed!r}: {now['labels'][:NUMBERED]}")
        for _ in range(now["labels"].index(label) + 1):
            self.press(Keys.ARROW_DOWN)
            strokes += 1
            if self.look(tag)["active"] == label:
                return strokes + 1, "typed+arrows", typed
        raise RuntimeError(f"could not select {label!r}")

    def moved_on(self, text: str, tag: str) -> dict | None:
        """The screen once ``text`` was accepted: another text, or the run's end; None before."""
        after = self.look(tag)
        if "Not saved" in after["status"]:
            raise RuntimeError(f"not saved ({tag}): {after['status']}")
        return after if after["ended"] or (after["task"] and after["text"] != text) else None

    def clear(self, tag: str) -> None:
        """Back to the unfiltered list with nothing chosen (a letter, then Esc); not counted."""
        from selenium.webdriver.common.action_chains import ActionChains
        from selenium.webdriver.common.keys import Keys

        self.browser.execute_script("if (window.__bench) window.__bench.tag = arguments[0];", tag)
        ActionChains(self.browser).send_keys("q", Keys.ESCAPE).perform()


def new_browser() -> Any:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if not (chromium and driver):
        raise SystemExit("chromium and chromedriver are needed (apt-get install chromium chromium-driver)")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    return webdriver.Chrome(service=Service(driver), options=options)


def wait(condition, timeout: float, what: str, poll: float = 0.01) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"waited {timeout:.0f} s for {what}")
        time.sleep(poll)


def open_page(browser: Any, url: str) -> None:
    """The labelling page with a text on screen, instrumented, the name typed, focus in the picker."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    browser.get(url)
    wait(lambda: browser.find_element(By.ID, "task").is_displayed(), 60, "a text on the labelling page", 0.1)
    browser.execute_script(INSTRUMENT)
    name = browser.find_element(By.ID, "annotator")
    if name.get_attribute("value") != ANNOTATOR:
        name.clear()
        name.send_keys(ANNOTATOR, Keys.ENTER)  # Enter in the name field moves to the picker
    wait(lambda: browser.execute_script(STATE, "")["focusInPicker"], 10, "focus in the picker")


# ---------------------------------------------------------------- one dataset


def run_config(dataset: str, args):
    from lesslabels.client import Amount, RunConfig, StoppingRule
    from lesslabels.contract import Hyperparameters

    return RunConfig(
        dataset=dataset,
        name=f"label-rate-{dataset}",
        oracle="human",
        asynchronous=True,
        seed_size=Amount(count=args.seed_size),
        batch_size=Amount(count=args.batch_size),
        refill_every=args.refill_every,
        stopping=StoppingRule(max_rounds=10_000),
        random_seed=args.seed,
        hyperparameters=Hyperparameters(num_threads=1, max_steps=args.max_steps, min_steps=0, min_steps_per_class=0),
    )


def sweep(person: Person, labels: list[str]) -> dict[str, int]:
    """Every label picked once on the text on screen (not accepted): the keys each takes."""
    keys = {}
    for label in labels:
        person.clear("sweep-clear")
        keys[label], _, _ = person.pick(label, "sweep")
    person.clear("sweep-clear")
    return keys


def label_all(person: Person, gold: dict[str, str], args) -> list[dict]:
    """Label the texts on screen until ``--labels`` are done or the run ends; one record per label."""
    from selenium.webdriver.common.keys import Keys

    records: list[dict] = []
    seen_at = time.perf_counter()
    for index in range(args.labels):
        tag = f"label-{index}"
        now = person.look(tag)
        if now["ended"] or not now["task"]:
            break
        text = now["text"]
        answer = gold.get(bench_data.normalise(text))
        if answer is None:
            raise RuntimeError(f"a text not in the sample on screen: {text[:80]!r}")
        record = {
            "index": index,
            "gold": answer,
            "text_chars": len(text),
            "order_note": now["order"],
            "suggestion": now["suggestion"],
            "suggestion_low": now["suggestionLow"],
            "suggestion_text": now["suggestionText"],
            "preselected": now["active"],
            "gold_position": now["labels"].index(answer) + 1 if answer in now["labels"] else None,
        }
        if args.pace:
            time.sleep(M_S)
        record["keys"], record["how"], record["typed"] = person.pick(answer, tag)
        person.press(Keys.ENTER)
        last = index == args.labels - 1

        if last:
            after = person.moved_on(text, tag)
        else:
            after = wait(functools.partial(person.moved_on, text, tag), args.max_wait, f"the text after label {index}")
        now_at = time.perf_counter()
        record["wall_s"] = now_at - seen_at  # text seen -> next text seen, through the driver
        seen_at = now_at
        records.append(record)
        if after and after["ended"]:
            break
    return records


def attach_page_times(records: list[dict], log: dict) -> None:
    """Each label's page times from the page's own log (INSTRUMENT)."""
    keys_by_tag: dict[str, list[dict]] = collections.defaultdict(list)
    for key in log["keys"]:
        keys_by_tag[key["tag"]].append(key)
    texts_by_tag: dict[str, list[dict]] = collections.defaultdict(list)
    for change in log["texts"]:
        texts_by_tag[change["tag"]].append(change)
    for record in records:
        tag = f"label-{record['index']}"
        keys = keys_by_tag.get(tag, [])
        picks = [k for k in keys if k["key"] != "\ue007" and k["key"] != "Enter"]
        record["key_dom_ms"] = [round(k["dom"] - k["at"], 2) if k["dom"] is not None else None for k in picks]
        record["key_frame_ms"] = [round(k["frame"] - k["at"], 2) if k["frame"] is not None else None for k in picks]
        enter = next((k for k in reversed(keys) if k["key"] == "Enter"), None)
        record["next_text_ms"] = record["next_text_frame_ms"] = None
        record["waited"] = False
        if enter is None:
            continue
        changes = [c for c in texts_by_tag.get(tag, []) if c["at"] >= enter["at"]]
        record["waited"] = any(c["hidden"] for c in changes)
        shown = next((c for c in changes if c["text"]), None)
        if shown is not None:
            record["next_text_ms"] = round(shown["at"] - enter["at"], 2)
            if shown["frame"] is not None:
                record["next_text_frame_ms"] = round(shown["frame"] - enter["at"], 2)


def measure(stack, dataset: str, browser: Any, args) -> dict:
    from lesslabels.client import CoordinatorClient, PoolClient

    name = f"rate-{dataset}"
    train, test = sample(dataset, args.labels, args.test_per_class, args.seed)
    gold: dict[str, str] = {}
    for label, text in train:
        gold.setdefault(bench_data.normalise(text), label)
    with PoolClient(stack.address("pool")) as pool:
        pool.import_samples(name, [(text, label) for label, text in train], split="train")
        pool.import_samples(name, [(text, label) for label, text in test], split="test")
        labels = list(pool.get_dataset(name).labels)
    started = time.monotonic()
    with CoordinatorClient(stack.address("coordinator"), timeout=60) as coordinator:
        run = coordinator.start_run(run_config(name, args))
        try:
            wait(lambda: coordinator.pending_labels(run.id).samples, 300, "the seed set", 0.2)
            person = Person(browser, args.pace)
            open_page(browser, f"{stack.web_url.rstrip('/')}/runs/{run.id}/label")
            first_screen = person.look("")
            swept = sweep(person, labels) if args.sweep else {}
            records = label_all(person, gold, args)
            log = browser.execute_script("return window.__bench")
        finally:
            detail = coordinator.get_run(run.id)
            if detail.run.state not in ("COMPLETED", "FAILED", "CANCELLED"):
                coordinator.cancel(run.id)
    attach_page_times(records, log)
    sweep_keys = [k for k in log["keys"] if k["tag"] == "sweep"]
    return {
        "dataset": dataset,
        "labels_in_set": len(labels),
        "run_id": run.id,
        "pool": len(train),
        "test_rows": len(test),
        "wall_seconds": round(time.monotonic() - started, 1),
        "final_state": detail.run.state,
        "first_screen_order": first_screen["order"],
        "sweep": swept,
        "sweep_key_dom_ms": [round(k["dom"] - k["at"], 2) for k in sweep_keys if k["dom"] is not None],
        "records": records,
    }


# ---------------------------------------------------------------- summary


def pct(values: list[float], q: float) -> float | None:
    return round(float(np.percentile(values, q)), 1) if values else None


def rate(keys: float, page_s: float, k: float = K_S, m: float = M_S) -> float:
    """Labels per minute for a person at ``keys`` keystrokes and ``page_s`` of page time a label."""
    return 60.0 / (m + k * keys + page_s)


def summarise_records(records: list[dict]) -> dict:
    keys = [r["keys"] for r in records]
    key_dom = [v for r in records for v in r.get("key_dom_ms", []) if v is not None]
    key_frame = [v for r in records for v in r.get("key_frame_ms", []) if v is not None]
    on_hand = [r for r in records if r.get("next_text_frame_ms") is not None and not r.get("waited")]
    waits = [r for r in records if r.get("waited") and r.get("next_text_ms") is not None]
    page_s = [(sum(v for v in r["key_frame_ms"] if v is not None) + r["next_text_frame_ms"]) / 1000 for r in on_hand]
    mean_keys = statistics.fmean(keys) if keys else float("nan")
    mean_page = statistics.fmean(page_s) if page_s else float("nan")
    wait_s = sum(r["next_text_ms"] for r in waits) / 1000
    suggested = [r for r in records if r["suggestion"]]
    return {
        "labels": len(records),
        "keys_median": statistics.median(keys) if keys else None,
        "keys_mean": round(mean_keys, 2),
        "keys_counts": dict(sorted(collections.Counter(keys).items())),
        "how": dict(collections.Counter(r["how"] for r in records).most_common()),
        "with_suggestion": len(suggested),
        "suggestion_right": sum(r["suggestion"] == r["gold"] for r in suggested),
        "preselected_right": sum(r["preselected"] == r["gold"] for r in records),
        "gold_in_first_9": sum(1 for r in records if r["gold_position"] and r["gold_position"] <= NUMBERED),
        "key_dom_ms_p50": pct(key_dom, 50),
        "key_dom_ms_p95": pct(key_dom, 95),
        "key_frame_ms_p50": pct(key_frame, 50),
        "key_frame_ms_p95": pct(key_frame, 95),
        "next_text_ms_p50": pct([r["next_text_frame_ms"] for r in on_hand], 50),
        "next_text_ms_p95": pct([r["next_text_frame_ms"] for r in on_hand], 95),
        "page_s_per_label_mean": round(mean_page, 3),
        "page_s_per_label_p50": round(float(np.percentile(page_s, 50)), 3) if page_s else None,
        "page_s_per_label_p95": round(float(np.percentile(page_s, 95)), 3) if page_s else None,
        "queue_waits": len(waits),
        "queue_wait_s": round(wait_s, 2),
        "rate_per_min": round(rate(mean_keys, mean_page), 2),
        "rate_per_min_with_waits": round(
            60.0 * len(records) / (len(records) * (M_S + K_S * mean_keys + mean_page) + wait_s), 2
        )
        if records
        else None,
        "rate_page_limited_per_min": round(60.0 / mean_page, 1) if page_s else None,
        "rate_by_k": {name: round(rate(mean_keys, mean_page, k=k), 2) for name, k in K_SENSITIVITY.items()},
        "wall_rate_per_min": round(60.0 / statistics.fmean([r["wall_s"] for r in on_hand]), 2) if on_hand else None,
    }


def summarise(result: dict) -> dict:
    records = result["records"]
    swept = list(result["sweep"].values())
    return {
        "sweep": {
            "labels": len(swept),
            "keys_median": statistics.median(swept) if swept else None,
            "keys_mean": round(statistics.fmean(swept), 2) if swept else None,
            "keys_max": max(swept) if swept else None,
            "keys_counts": dict(sorted(collections.Counter(swept).items())),
            "key_dom_ms_p50": pct(result["sweep_key_dom_ms"], 50),
            "key_dom_ms_p95": pct(result["sweep_key_dom_ms"], 95),
        },
        "all": summarise_records(records),
        "no_suggestion": summarise_records([r for r in records if not r["suggestion"]]),
        "suggestions": summarise_records([r for r in records if r["suggestion"]]),
    }


def compare(data: dict) -> dict:
    """rate(150 labels) / rate(8 labels) per phase and K, against the target."""
    by_set = {r["labels_in_set"]: r["summary"] for r in data["results"]}
    if len(by_set) < 2:
        return {}
    many, few = by_set[max(by_set)], by_set[min(by_set)]
    out: dict[str, Any] = {"many": max(by_set), "few": min(by_set)}
    for phase in ("all", "no_suggestion", "suggestions"):
        a, b = many[phase], few[phase]
        if not (a["labels"] and b["labels"]):
            continue
        out[phase] = {
            "ratio": round(a["rate_per_min"] / b["rate_per_min"], 3),
            "ratio_with_waits": round(a["rate_per_min_with_waits"] / b["rate_per_min_with_waits"], 3),
            "ratio_page_limited": round(a["rate_page_limited_per_min"] / b["rate_page_limited_per_min"], 3),
            "ratio_by_k": {k: round(a["rate_by_k"][k] / b["rate_by_k"][k], 3) for k in K_SENSITIVITY},
        }
        out[phase]["meets_target"] = out[phase]["ratio"] >= MIN_RATE_RATIO
    return out


def markdown(data: dict) -> str:
    meta, s = data["meta"], data["meta"]["settings"]
    lines = [
        f"Headless Chromium {meta.get('chromium', '')}, scripted person (fewest keys the screen allows), "
        f"{s['labels']} training texts per dataset labelled in an asynchronous human run (seed set "
        f"{s['seed_size']}, refill every {s['refill_every']}), bundled all-MiniLM-L6-v2; "
        f"{'paced by the keystroke-level model' if s['pace'] else 'not paced'}; recorded {meta.get('date')} "
        f"on {meta.get('machine')} ({meta.get('cpus')} CPUs, load average at start {meta.get('load_at_start')}).",
        "",
        f"Person model: M = {M_S} s per label + K = {K_S} s per key + the measured page time "
        "(Card, Moran & Newell 1980).",
        "",
        "| dataset | labels in set | sweep: keys median / mean / max | labels | keys median / mean | with suggestion "
        "(right) | key → list p50 / p95 (ms) | Enter → next text p50 / p95 (ms) | page s per label | queue waits (s) "
        "| rate (labels/min) | rate with waits | page-limited rate | driver wall-clock rate |",
        "|---|---:|---|---:|---|---|---|---|---:|---|---:|---:|---:|---:|",
    ]
    for result in data["results"]:
        sm, sw = result["summary"]["all"], result["summary"]["sweep"]
        lines.append(
            f"| {result['dataset']} | {result['labels_in_set']} | {sw['keys_median']} / {sw['keys_mean']} / "
            f"{sw['keys_max']} | {sm['labels']} | {sm['keys_median']} / {sm['keys_mean']} | "
            f"{sm['with_suggestion']} ({sm['suggestion_right']}) | {sm['key_frame_ms_p50']} / {sm['key_frame_ms_p95']} | "
            f"{sm['next_text_ms_p50']} / {sm['next_text_ms_p95']} | {sm['page_s_per_label_mean']} | "
            f"{sm['queue_waits']} ({sm['queue_wait_s']}) | {sm['rate_per_min']} | {sm['rate_per_min_with_waits']} | "
            f"{sm['rate_page_limited_per_min']} | {sm['wall_rate_per_min']} |"
        )
    lines += [
        "",
        "By phase (texts shown without a suggestion: the seed set before the fast head; with one):",
        "",
        "| dataset | phase | labels | keys median / mean | how | rate (labels/min) |",
        "|---|---|---:|---|---|---:|",
    ]
    for result in data["results"]:
        for phase in ("no_suggestion", "suggestions"):
            sm = result["summary"][phase]
            how = ", ".join(f"{k} {v}" for k, v in sm["how"].items())
            lines.append(
                f"| {result['dataset']} | {phase.replace('_', ' ')} | {sm['labels']} | {sm['keys_median']} / "
                f"{sm['keys_mean']} | {how} | {sm['rate_per_min']} |"
            )
    ratios = data.get("comparison", {})
    if ratios:
        lines += [
            "",
            f"rate({ratios['many']} labels) / rate({ratios['few']} labels), target >= {MIN_RATE_RATIO}:",
            "",
            "| phase | ratio (K = 0.28 s) | with waits | page-limited | "
            + " | ".join(f"K = {k} s" for k in K_SENSITIVITY.values())
            + " | target |",
            "|---|---:|---:|---:|" + "---:|" * len(K_SENSITIVITY) + "---|",
        ]
        for phase in ("all", "no_suggestion", "suggestions"):
            if phase in ratios:
                r = ratios[phase]
                by_k = " | ".join(str(r["ratio_by_k"][k]) for k in K_SENSITIVITY)
                lines.append(
                    f"| {phase.replace('_', ' ')} | {r['ratio']} | {r['ratio_with_waits']} | {r['ratio_page_limited']} "
                    f"| {by_k} | {'met' if r['meets_target'] else 'missed'} |"
                )
    return "\n".join(lines) + "\n"


def save(path: pathlib.Path, data: dict) -> None:
    for result in data["results"]:
        result["summary"] = summarise(result)
    data["comparison"] = compare(data)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=1))
    tmp.replace(path)
    path.with_suffix(".md").write_text(markdown(data))


def busiest_processes(n: int = 8) -> list[str]:
    """What else ran: the ``n`` processes using the most CPU (nice, %CPU, command), for the record."""
    try:
        out = subprocess.run(
            ["ps", "-eo", "ni,pcpu,args", "--sort=-pcpu"], capture_output=True, text=True, timeout=10
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [" ".join(line.split())[:140] for line in out.splitlines()[1 : n + 1]]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", nargs="+", default=["clinc150", "atis"], choices=bench_data.DATASETS)
    parser.add_argument("--labels", type=int, default=60, help="training texts per dataset (the pool), all labelled")
    parser.add_argument("--test-per-class", type=int, default=2, help="test texts of every label")
    parser.add_argument("--seed-size", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=20)
    parser.add_argument("--refill-every", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0, help="the sample's and the run's random seed")
    parser.add_argument("--max-steps", type=int, default=20, help="cap background fine-tunes at N steps")
    parser.add_argument("--max-wait", type=float, default=180.0, help="seconds to wait for a next text")
    parser.add_argument("--no-sweep", dest="sweep", action="store_false", help="leave out the every-label sweep")
    parser.add_argument("--no-pace", dest="pace", action="store_false", help="do not pace the person in real time")
    parser.add_argument("--out", type=pathlib.Path, default=RESULTS / "label_rate.json")
    parser.add_argument("--report-only", action="store_true")
    args = parser.parse_args(argv)
    if args.report_only:
        recorded = json.loads(args.out.read_text())
        save(args.out, recorded)
        print(markdown(recorded))
        return 0
    from lesslabels.cli.stack import LocalStack

    args.out.parent.mkdir(parents=True, exist_ok=True)
    settings = {k: v for k, v in vars(args).items() if k not in ("datasets", "out", "report_only", "max_wait")}
    data: dict[str, Any] = {
        "meta": {
            "settings": settings,
            "machine": platform.platform(),
            "cpus": os.cpu_count(),
            "load_at_start": [round(x, 2) for x in os.getloadavg()],
            "busiest_at_start": busiest_processes(),
            "command": "python bench/label_rate.py " + " ".join(argv if argv is not None else sys.argv[1:]),
            "model": "bundled all-MiniLM-L6-v2 (LocalStack's default base model)",
            "person_model": {"M_s": M_S, "K_s": K_S, "K_sensitivity": K_SENSITIVITY},
        },
        "results": [],
    }
    began = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="label-rate-") as tmp:
        with LocalStack(pathlib.Path(tmp) / "state", web_port=0, env={"LESSLABELS_LOG_LEVEL": "WARNING"}) as stack:
            print(f"stack up in {time.monotonic() - began:.0f} s: {stack.web_url}", flush=True)
            browser = new_browser()
            try:
                data["meta"]["chromium"] = browser.capabilities.get("browserVersion", "")
                for dataset in args.datasets:
                    print(f"{dataset}: starting", flush=True)
                    result = measure(stack, dataset, browser, args)
                    data["results"].append(result)
                    data["meta"]["date"] = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
                    data["meta"]["load_at_end"] = [round(x, 2) for x in os.getloadavg()]
                    data["meta"]["busiest_at_end"] = busiest_processes()
                    data["meta"]["wall_seconds"] = round(time.monotonic() - began, 1)
                    save(args.out, data)
                    print(f"{dataset}: {json.dumps(result['summary']['all'])}", flush=True)
            finally:
                browser.quit()
    print(markdown(data))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
