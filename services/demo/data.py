"""Data for ``lesslabels demo``: ATIS when it can be found, otherwise a built-in synthetic set.

ATIS is looked for, in order, at a path given by the user, at ``$LESSLABELS_DATA``, in the cache
folder (``$LESSLABELS_CACHE_DIR`` or ``~/.cache/lesslabels``), and finally downloaded into that
cache from a public mirror and checked against known sha256 digests. Any failure (no network, a
digest mismatch) falls back to the synthetic flight-intent set, generated from templates with a
fixed seed so that every machine gets the same rows.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import pathlib
import random
import tempfile
import urllib.error
import urllib.request

from lesslabels.common import spreadsheet
from lesslabels.common.checkpoints import sha256_file

log = logging.getLogger(__name__)

ATIS_TRAIN = "atis_intents_train.csv"
ATIS_TEST = "atis_intents_test.csv"
# The Kaggle "ATIS Airline Travel Information System" intent split as published in a public repository.
ATIS_MIRROR = "https://raw.githubusercontent.com/ShadabLeeway/ATIS-with-UI/074869cb5f57ad97ca2db6e3a68e8a15406c628b"
ATIS_SHA256 = {
    ATIS_TRAIN: "5880015a4d9cfd31863853e6063ceda7db3dcc8e9da5443ffec40cc8e91adade",
    ATIS_TEST: "d21e39c49da80f408ae569855540c122e3f608febe0d6ae232e3934de85241bc",
}


@dataclasses.dataclass(frozen=True)
class DemoData:
    """Files to import: headerless ``label,text`` CSVs."""

    name: str  # "atis" or "synthetic"
    train: pathlib.Path
    test: pathlib.Path
    source: str  # where it came from, for the user


class DataError(Exception):
    """A data path the user gave does not hold usable files."""


def cache_dir() -> pathlib.Path:
    configured = os.environ.get("LESSLABELS_CACHE_DIR", "")
    return pathlib.Path(configured) if configured else pathlib.Path.home() / ".cache" / "lesslabels"


def _atis_in(folder: pathlib.Path) -> DemoData | None:
    train, test = folder / ATIS_TRAIN, folder / ATIS_TEST
    if train.is_file() and test.is_file():
        return DemoData("atis", train, test, str(folder))
    return None


def _from_user_path(path: pathlib.Path, what: str) -> DemoData:
    if not path.exists():
        raise DataError(f"{what} {path} does not exist")
    if path.is_dir():
        found = _atis_in(path)
        if found is None:
            raise DataError(f"{what} {path} holds neither {ATIS_TRAIN} nor {ATIS_TEST}")
        return found
    # A training file: the test file is expected next to it.
    if path.name == ATIS_TRAIN and (path.parent / ATIS_TEST).is_file():
        return DemoData("atis", path, path.parent / ATIS_TEST, str(path.parent))
    raise DataError(f"{what} {path}: give the folder holding {ATIS_TRAIN} and {ATIS_TEST}")


def download_atis(folder: pathlib.Path, *, mirror: str = ATIS_MIRROR, timeout: float = 10.0) -> DemoData:
    """Fetch both ATIS files into ``folder``, verifying their sha256; raise OSError on any failure."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, expected in ATIS_SHA256.items():
        target = folder / name
        if target.is_file() and sha256_file(target) == expected:
            continue
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{name}.")
        try:
            with os.fdopen(fd, "wb") as out, urllib.request.urlopen(f"{mirror}/{name}", timeout=timeout) as resp:
                out.write(resp.read())
            actual = sha256_file(pathlib.Path(tmp))
            if actual != expected:
                raise OSError(f"{name} from {mirror}: sha256 {actual} is not the expected {expected}")
            os.replace(tmp, target)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    return DemoData("atis", folder / ATIS_TRAIN, folder / ATIS_TEST, f"downloaded from {mirror}")


def resolve_demo_data(
    path: str | os.PathLike | None,
    work_dir: pathlib.Path,
    *,
    download: bool = True,
    mirror: str = ATIS_MIRROR,
    synthetic_only: bool = False,
) -> tuple[DemoData, list[str]]:
    """Find the demo data; returns it and notes on what was tried (to tell the user).

    A path given explicitly (argument or ``$LESSLABELS_DATA``) must be valid: a typo should not
    silently turn into the synthetic data. Only the cache and the download fall back.
    """
    notes: list[str] = []
    if not synthetic_only:
        if path:
            return _from_user_path(pathlib.Path(path), "--data"), notes
        env = os.environ.get("LESSLABELS_DATA", "")
        if env:
            return _from_user_path(pathlib.Path(env), "LESSLABELS_DATA"), notes
        cached = _atis_in(cache_dir() / "atis")
        if cached is not None and all(sha256_file(p) == ATIS_SHA256[p.name] for p in (cached.train, cached.test)):
            return cached, notes
        notes.append(f"ATIS not in the cache {cache_dir() / 'atis'}")
        if download:
            try:
                return download_atis(cache_dir() / "atis", mirror=mirror), notes
            except (OSError, urllib.error.URLError, ValueError) as exc:
                notes.append(f"ATIS download failed ({exc})")
        else:
            notes.append("download disabled")
    train, test = write_synthetic(work_dir)
    return DemoData("synthetic", train, test, "built-in synthetic flight intents"), notes


# --------------------------------------------------------------------------- synthetic data

CITIES = [
    "boston",
    "denver",
    "atlanta",
    "dallas",
    "pittsburgh",
    "baltimore",
    "san francisco",
    "philadelphia",
    "washington",
    "oakland",
    "seattle",
    "chicago",
    "miami",
    "new york",
    "houston",
    "phoenix",
]
DAYS = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday", "tomorrow", "today"]
TIMES = ["in the morning", "in the afternoon", "in the evening", "before noon", "after 5 pm", "around 8 am"]
AIRLINES = ["united", "delta", "american airlines", "continental", "us air", "northwest", "twa", "lufthansa"]
CODES = ["ff", "ap/57", "qw", "ua", "dl", "yn", "h", "m80", "d9s", "ewr", "bh", "y"]
AIRCRAFT = ["boeing 737", "dc10", "md80", "airbus a320", "boeing 767", "dash 8", "l1011"]

# intent -> templates. Slots: {a} {b} origin/destination, {d} day, {t} time, {al} airline, {c} code, {ac} aircraft.
TEMPLATES: dict[str, list[str]] = {
    "flight": [
        "show me flights from {a} to {b} {d}",
        "i want to fly from {a} to {b} {d} {t}",
        "what flights leave {a} for {b} {t}",
        "list {al} flights from {a} to {b}",
        "i need a flight from {a} to {b} on {d}",
        "are there any nonstop flights from {a} to {b} {d}",
        "find me a flight to {b} from {a} leaving {t}",
    ],
    "airfare": [
        "how much is a flight from {a} to {b}",
        "what is the cheapest fare from {a} to {b} {d}",
        "show me round trip fares from {a} to {b}",
        "what does a first class ticket from {a} to {b} cost",
        "list the fares on {al} from {a} to {b}",
        "i want the lowest price from {a} to {b} {t}",
    ],
    "ground_service": [
        "what ground transportation is available in {a}",
        "is there a shuttle from the {a} airport to downtown",
        "how do i get from the airport to the city in {b}",
        "show me car rentals in {a}",
        "what taxi service is there at the {b} airport {d}",
        "i need a limousine in {a} {t}",
    ],
    "airline": [
        "which airlines fly from {a} to {b}",
        "what airline is {c}",
        "list the airlines that serve {a}",
        "which airline has flights from {a} to {b} {d}",
        "what carriers fly into {b} {t}",
    ],
    "abbreviation": [
        "what does fare code {c} mean",
        "what is the meaning of {c}",
        "explain the restriction {c}",
        "what does the abbreviation {c} stand for",
        "what is booking class {c}",
    ],
    "aircraft": [
        "what kind of plane is used from {a} to {b}",
        "what type of aircraft does {al} fly to {b}",
        "how many seats are there on a {ac}",
        "what is a {ac}",
        "which aircraft flies from {a} to {b} {d}",
        "show me the plane type for the {al} flight to {b}",
    ],
}
# Rows per intent in the training pool; skewed like ATIS, where most queries ask for flights.
TRAIN_PER_INTENT = {
    "flight": 200,
    "airfare": 90,
    "ground_service": 70,
    "airline": 60,
    "abbreviation": 40,
    "aircraft": 50,
}
TEST_PER_INTENT = {"flight": 60, "airfare": 25, "ground_service": 20, "airline": 20, "abbreviation": 15, "aircraft": 15}


def synthetic_rows(seed: int = 13) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """Deterministic (label, text) rows: (train, test), no text in both, no text twice."""
    rng = random.Random(seed)
    seen: set[str] = set()

    def one(intent: str) -> str:
        for _ in range(1000):
            a, b = rng.sample(CITIES, 2)
            text = rng.choice(TEMPLATES[intent]).format(
                a=a,
                b=b,
                d=rng.choice(DAYS),
                t=rng.choice(TIMES),
                al=rng.choice(AIRLINES),
                c=rng.choice(CODES),
                ac=rng.choice(AIRCRAFT),
            )
            text = " ".join(text.split())
            if text not in seen:
                seen.add(text)
                return text
        raise RuntimeError(f"templates of {intent!r} ran out of distinct texts")

    def split(counts: dict[str, int]) -> list[tuple[str, str]]:
        rows = [(intent, one(intent)) for intent, n in counts.items() for _ in range(n)]
        rng.shuffle(rows)
        return rows

    train = split(TRAIN_PER_INTENT)
    test = split(TEST_PER_INTENT)
    return train, test


def _write_rows(path: pathlib.Path, rows: list[tuple[str, str]]) -> None:

    with open(path, "w", newline="", encoding="utf-8") as fh:
        spreadsheet.writer(fh, lineterminator="\n").writerows(rows)


def write_synthetic(folder: pathlib.Path, seed: int = 13) -> tuple[pathlib.Path, pathlib.Path]:
    """Write the synthetic set as headerless ``label,text`` CSVs; returns (train, test) paths."""
    folder.mkdir(parents=True, exist_ok=True)
    train_rows, test_rows = synthetic_rows(seed)
    train, test = folder / "synthetic_train.csv", folder / "synthetic_test.csv"
    _write_rows(train, train_rows)
    _write_rows(test, test_rows)
    return train, test
