"""Chaos suite: seeded trials, each a short active-learning run through the real
services of ``docker-compose.yml`` as local processes (``LocalTopology``), during which one service
(pool, trainer, scorer or coordinator) gets SIGKILL at a seeded moment and comes back by the
compose restart policy (``unless-stopped``), as it would in Docker.

Every run must still complete, and then:

- no sample was acquired twice by the run (``ListAcquisitions``, and the pool's table);
- the oracle gave no sample two labels in the run (the pool's ``label_events``, run scope);
- no label was lost: every acquired sample has its label, the run's labelled samples are exactly
  its acquisitions, and each round's labelled count is what the rounds before it acquired;
- rounds are numbered 0..n-1 without gaps, each trained, evaluated and finished;
- the run is COMPLETED by its stopping rule (the round limit);
- the killed service was restarted once, by the restart policy, and is healthy again; no other
  service restarted.

The moment: a seeded phase of the run (a (round, step) pair, SEED to the last EVALUATE) and a
seeded fraction of that phase, timed from the coordinator's announcement of the phase (WatchRun)
with the phase's length in an uninterrupted run measured once at the start (steps such as LABEL
take milliseconds, TRAIN a second or more). Should the run end before the moment (it ran faster
than the measured one), the trial runs again, killing as the phase begins. The pool has no API
that lists the label events of a run's scope, so after each run the test reads the pool's database
(the compose file's postgres service) directly, in a read-only transaction.

One topology serves all trials (as one long-lived deployment would); each trial is a new run.
``LESSLABELS_CHAOS_TRIALS`` (default 20) and ``LESSLABELS_CHAOS_SEED`` (default 1400) choose the
trials: trial i uses seed SEED + i, which alone decides its service, phase, fraction and the run's
random seed (the timing of processes is not seeded: a replay kills at the same point of the run,
give or take the machine's load). A failure names its seed;
``LESSLABELS_CHAOS_SEED=<seed> LESSLABELS_CHAOS_TRIALS=1`` replays that trial.

Asynchronous runs (issue 23: rounds as model versions, a queue refilled from the fast head) get
trials of their own, ``LESSLABELS_CHAOS_ASYNC_TRIALS`` (default 8) from the same base seed: each
seed also decides the labeller, the coordinator's simulated annotator (``annotator_seconds``) or a
scripted person labelling the queue through the coordinator's API from this process (retrying with
the same idempotency key after UNAVAILABLE). Their checks (``check_asynchronous_run``): the run is
COMPLETED by its round limit with rounds 0..n-1 finished, no sample acquired twice, every label
recorded once (one label event per sample in the run's scope, all gold), none lost (the run's
labelled samples are exactly its label events, every label the person was told was recorded is
there, and nothing else), each fine-tune on at least the seed or batch size of new labels, and the
restarts as above. Texts still queued when the run ends stay acquired without a label. Each
asynchronous run has the flight set to itself, imported again under its own name (a dataset reuses
the labels people gave in its earlier runs).
"""

from __future__ import annotations

import collections
import dataclasses
import os
import random
import threading
import time
import uuid

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from lesslabels.client import (
    CoordinatorClient,
    DeadlineExceeded,
    InvalidArgument,
    PoolClient,
    RunConfig,
    RunDetail,
    RunEvent,
    Unavailable,
)
from lesslabels.contract.vocabulary import FINAL_RUN_STATES as FINAL_STATES
from lesslabels.demo.data import synthetic_rows
from lesslabels.pool.run_store_client import RunStoreClient
from tests.integration.compose import LocalTopology, stand_in_unavailable_reason
from tests.integration.values import (
    CHILD_ENV,
    DATASET,
    INTERNAL_TOKEN,
    TEST_ROWS,
    TOKEN,
    TRAIN_ROWS,
    VARIABLES,
    tiny_run_config,
)

pytestmark = [pytest.mark.slow, pytest.mark.integration]

TRIALS = int(os.environ.get("LESSLABELS_CHAOS_TRIALS", "20"))
BASE_SEED = int(os.environ.get("LESSLABELS_CHAOS_SEED", "1400"))

SERVICES = ("pool", "trainer", "scorer", "coordinator")
SEED, BATCH, ROUNDS = 16, 8, 2
#: The phases of a 2-round run in order, as (round, step) the coordinator announces on entering them.
PHASES = (
    (0, "SEED"),
    (0, "LABEL"),
    (0, "TRAIN"),
    (0, "EVALUATE"),
    (0, "SCORE"),
    (0, "SELECT"),
    (1, "LABEL"),
    (1, "TRAIN"),
    (1, "EVALUATE"),
)
RUN_TIMEOUT = 300.0
HEALTHY_TIMEOUT = 120.0


@dataclasses.dataclass(frozen=True)
class Plan:
    """What one trial does, decided by its seed alone: which service dies, in which phase of the
    run, and how far into that phase (a fraction of the phase's length in the uninterrupted run)."""

    seed: int
    service: str
    phase: int  # an index into PHASES
    fraction: float
    run_seed: int

    @classmethod
    def of(cls, seed: int) -> Plan:
        rng = random.Random(seed)
        service = rng.choice(SERVICES)
        phase = rng.randrange(len(PHASES))
        fraction = round(rng.random(), 3)
        return cls(seed, service, phase, fraction, rng.randrange(1, 10_000))

    def __str__(self) -> str:
        round_index, step = PHASES[self.phase]
        return (
            f"chaos seed {self.seed}: SIGKILL {self.service} {self.fraction:.0%} into round {round_index} {step} "
            f"(replay: LESSLABELS_CHAOS_SEED={self.seed} LESSLABELS_CHAOS_TRIALS=1)"
        )


def _phase_index(run) -> int:
    """Where the run is in PHASES (len(PHASES) once it is over)."""
    if run.state in FINAL_STATES or run.step == "DONE":
        return len(PHASES)
    step = "SEED" if run.state == "PENDING" else run.step
    return PHASES.index((run.round, step)) if (run.round, step) in PHASES else len(PHASES)


@pytest.fixture(scope="module")
def topology(tmp_path_factory, tiny_bert_dir):
    """Pool, trainer, scorer and coordinator up and healthy (no web app), the synthetic flight set imported."""
    env = dict(CHILD_ENV, LESSLABELS_MODEL_DIR=str(tiny_bert_dir))
    # The wiring (commands, variables) is checked by test_compose_wiring.py; not again here.
    stack = LocalTopology(tmp_path_factory.mktemp("chaos"), variables=VARIABLES, env=env, check_variables=False)
    reason = stand_in_unavailable_reason(stack.services)
    if reason is not None:
        stack.down()
        pytest.skip(reason)
    try:
        stack.up(["coordinator"])
        train, test = synthetic_rows()
        with PoolClient(stack.address("pool"), token=TOKEN, timeout=60) as pool:
            # synthetic_rows() gives (label, text) rows; import_samples takes (text, label).
            pool.import_samples(DATASET, [(t, label) for label, t in train[:TRAIN_ROWS]], split="train")
            pool.import_samples(DATASET, [(t, label) for label, t in test[:TEST_ROWS]], split="test")
        yield stack
    finally:
        stack.down()


def run_config(base_model: str, random_seed: int) -> RunConfig:
    return tiny_run_config(base_model, seed_size=SEED, batch_size=BATCH, rounds=ROUNDS, random_seed=random_seed)


class Chaos:
    """Starts a run and follows its events; with a kill planned, kills ``service`` ``delay`` seconds
    after the run announced phase ``phase`` (on a timer thread)."""

    def __init__(self, topology: LocalTopology, service: str = "", phase: int = 0, delay: float = 0.0):
        self.topology = topology
        self.service, self.phase, self.delay = service, phase, delay
        self.started = time.monotonic()
        self.last = None  # the run as last announced
        self.phase_started: dict[int, float] = {}  # PHASES index (len(PHASES): over) -> seconds into the run
        self.timer: threading.Timer | None = None
        self.killed_at: float | None = None  # seconds into the run
        self.seen_at_kill = ""  # the run as last announced when the kill came
        self.state_at_kill = ""
        self.timeline: list[str] = []  # each phase as it was announced, and the kill, with their times
        self._lock = threading.Lock()

    def run(self, config: RunConfig) -> RunDetail:
        with CoordinatorClient(self.topology.public_address("coordinator"), token=TOKEN, timeout=30) as coordinator:
            run = coordinator.start_run(config, request_id=str(uuid.uuid4()))
        self.started = time.monotonic()
        try:
            return self.follow(run.id)
        finally:
            if self.timer is not None:
                self.timer.join(self.delay + 10)

    def on_event(self, event: RunEvent) -> None:
        with self._lock:
            now, run = time.monotonic() - self.started, event.run
            phase = f"{run.state} round {run.round} {run.step}"
            if not self.timeline or not self.timeline[-1].endswith(phase):
                self.timeline.append(f"{now:.2f}s {phase}")
            self.last = run
            index = _phase_index(run)
            self.phase_started.setdefault(index, now)
            if self.service and self.timer is None and index >= self.phase:
                self.timer = threading.Timer(self.delay, self._kill)
                self.timer.daemon = True
                self.timer.start()

    def _kill(self) -> None:
        with self._lock:
            self.topology.kill(self.service)
            self.killed_at = time.monotonic() - self.started
            self.timeline.append(f"{self.killed_at:.2f}s SIGKILL {self.service}")
            run = self.last
            self.state_at_kill = run.state if run else ""
            self.seen_at_kill = f"{run.state} round {run.round} {run.step}" if run else "nothing yet"

    @property
    def killed_during_run(self) -> bool:
        return self.killed_at is not None and self.state_at_kill not in FINAL_STATES

    def follow(self, run_id: int) -> RunDetail:
        """Watch the run until it is over, reconnecting while the coordinator (or the pool behind it) is down."""
        address = self.topology.public_address("coordinator")
        deadline = self.started + RUN_TIMEOUT
        while time.monotonic() < deadline:
            try:
                with CoordinatorClient(address, token=TOKEN, timeout=10) as coordinator:
                    for event in coordinator.watch(run_id, window=20):
                        self.on_event(event)
                        if time.monotonic() > deadline:
                            break
                    detail = coordinator.get_run(run_id)
                if detail.run.state in FINAL_STATES:
                    return detail
            except (Unavailable, DeadlineExceeded):
                time.sleep(0.5)
        raise AssertionError(f"run {run_id} not over after {RUN_TIMEOUT:.0f}s ({self.describe()})")

    def phase_seconds(self) -> list[float]:
        """How long each phase of PHASES lasted (0 for one not seen)."""
        marks = sorted(self.phase_started.items())
        lengths = [0.0] * len(PHASES)
        for (index, start), (_, end) in zip(marks, marks[1:], strict=False):
            if index < len(PHASES):
                lengths[index] = end - start
        return lengths

    def describe(self) -> str:
        kill = "no kill" if self.killed_at is None else f"killed {self.killed_at:.2f}s into the run"
        return f"{kill}, the run last announced as {self.seen_at_kill}; timeline: {', '.join(self.timeline)}"


def read_pool_database(
    topology: LocalTopology, run_id: int
) -> tuple[list[tuple[int, int]], list[tuple[int, str, str]]]:
    """The run's acquisitions (sample, round) and its label events (sample, label, source), read
    from the pool's database (the compose file's postgres service) in a read-only transaction."""
    env = topology.environment("pool")
    url = make_url(env["LESSLABELS_DATABASE_URL"])
    if "PGPASSWORD" in env:
        url = url.set(password=env["PGPASSWORD"])
    engine = create_engine(url)
    try:
        with engine.connect() as db:
            if engine.dialect.name == "postgresql":
                db.execute(text("SET TRANSACTION READ ONLY"))
            acquisitions = [
                (sample, round_)
                for sample, round_ in db.execute(
                    text("SELECT sample_id, round FROM acquisitions WHERE run_id = :run ORDER BY id"), {"run": run_id}
                )
            ]
            events = [
                (sample, label, source)
                for sample, label, source in db.execute(
                    text("SELECT sample_id, label, source FROM label_events WHERE scope = :scope ORDER BY id"),
                    {"scope": f"run:{run_id}"},
                )
            ]
    finally:
        engine.dispose()
    return acquisitions, events


def check_run(topology: LocalTopology, detail: RunDetail) -> list[str]:
    """Every invariant of a completed chaos run; returns what is broken (empty when nothing)."""
    problems: list[str] = []
    run, rounds = detail.run, list(detail.rounds)
    run_id = run.id
    if run.state != "COMPLETED" or run.stop_reason != f"round limit {ROUNDS} reached":
        problems.append(f"run ended {run.state} ({run.stop_reason!r}; error {run.error!r}), not by its round limit")
    indices = [r.index for r in rounds]
    if indices != list(range(ROUNDS)):
        problems.append(f"rounds are {indices}, not 0..{ROUNDS - 1}")
    for r in rounds:
        if not (r.checkpoint_id and r.train_job_id and r.test is not None and r.finished_at):
            problems.append(f"round {r.index} is unfinished: {r}")
    with RunStoreClient(topology.address("pool"), token=INTERNAL_TOKEN, timeout=30) as runs:
        acquired = runs.list_acquisitions(run_id)
    with PoolClient(topology.address("pool"), token=TOKEN, timeout=30) as pool:
        labelled = [s.id for s in pool.list_samples(DATASET, state="labelled", run_id=run_id, page_size=5000)]
        counts = pool.get_counts(DATASET, run_id=run_id)
    ids = [a.sample_id for a in acquired]
    twice = sorted(i for i, n in collections.Counter(ids).items() if n > 1)
    if twice:
        problems.append(f"samples acquired twice: {twice}")
    by_round = collections.Counter(a.round for a in acquired)
    expected_by_round = {0: SEED, **{r: BATCH for r in range(1, ROUNDS)}}
    if dict(by_round) != expected_by_round:
        problems.append(f"acquisitions per round {dict(by_round)}, expected {expected_by_round}")
    unlabelled = sorted(a.sample_id for a in acquired if not a.label)
    if unlabelled:
        problems.append(f"acquired samples without a label (lost labels): {unlabelled}")
    if sorted(labelled) != sorted(set(ids)):
        problems.append(
            f"labelled samples of the run != its acquisitions: only labelled {sorted(set(labelled) - set(ids))}, "
            f"only acquired {sorted(set(ids) - set(labelled))}"
        )
    if not (run.labelled_count == counts.train.labelled == len(ids)):
        problems.append(
            f"labelled counts disagree: run {run.labelled_count}, pool counts {counts.train.labelled}, "
            f"acquisitions {len(ids)}"
        )
    expected_counts = [SEED + BATCH * i for i in range(ROUNDS)]
    if [r.labelled_count for r in rounds] != expected_counts:
        problems.append(f"labelled count per round {[r.labelled_count for r in rounds]}, expected {expected_counts}")
    # The pool's own tables: the unique constraint and the label events of the run's scope.
    table, events = read_pool_database(topology, run_id)
    if sorted(table) != sorted((a.sample_id, a.round) for a in acquired):
        problems.append("the acquisitions table disagrees with ListAcquisitions")
    given = collections.Counter(sample for sample, _, _ in events)
    relabelled = sorted(s for s, n in given.items() if n > 1)
    if relabelled:
        problems.append(f"samples labelled more than once by the oracle: {relabelled}")
    strays = sorted(set(given) - set(ids))
    if strays:
        problems.append(f"labels given to samples the run never acquired: {strays}")
    round_of = {a.sample_id: a.round for a in acquired}
    wrong_source = sorted(s for s, _, source in events if source != ("seed" if round_of.get(s) == 0 else "oracle"))
    if wrong_source:
        problems.append(f"labels with the wrong source (seed for round 0, oracle after): {wrong_source}")
    return problems


def restarted_once(topology: LocalTopology, service: str, before: dict[str, int]) -> list[str]:
    """What is wrong with the restarts: ``service`` must have been brought back once by the restart
    policy (not the test) and be healthy again, and no other service may have restarted."""
    deadline = time.monotonic() + HEALTHY_TIMEOUT
    while topology.restarts(service) == before[service] and time.monotonic() < deadline:
        time.sleep(0.2)
    problems = [
        f"{name} restarted {topology.restarts(name) - before[name]} times, expected {int(name == service)}"
        for name in SERVICES
        if topology.restarts(name) - before[name] != int(name == service)
    ]
    if not problems:
        topology.wait_healthy(service, timeout=HEALTHY_TIMEOUT)
    return problems


@pytest.fixture(scope="module")
def phase_seconds(topology, tiny_bert_dir) -> list[float]:
    """A run with no kill: it warms the trainer and scorer up, passes every check, and measures the
    phases that the trials' fractions apply to."""
    for random_seed in (1, 2):  # the first run loads the models: its phases are not typical
        chaos = Chaos(topology)
        detail = chaos.run(run_config(str(tiny_bert_dir), random_seed))
        problems = check_run(topology, detail)
        assert not problems, f"run {detail.run.id} without a kill:\n  " + "\n  ".join(problems)
    return chaos.phase_seconds()


@pytest.mark.parametrize("seed", [BASE_SEED + i for i in range(TRIALS)])
def test_a_service_killed_at_a_random_moment_loses_nothing(topology, tiny_bert_dir, phase_seconds, seed):
    plan = Plan.of(seed)
    delay = plan.fraction * phase_seconds[plan.phase]
    # A run faster than the measured one may end before the moment: then once more, killing as the phase begins.
    for attempt_delay in (delay, 0.0):
        for name in SERVICES:  # a previous trial's restart is over
            topology.wait_healthy(name, timeout=HEALTHY_TIMEOUT)
        restarts = {name: topology.restarts(name) for name in SERVICES}
        chaos = Chaos(topology, plan.service, plan.phase, attempt_delay)
        try:
            detail = chaos.run(run_config(str(tiny_bert_dir), plan.run_seed))
        except AssertionError as exc:
            raise AssertionError(f"{plan}: {exc}") from None
        # The restart first: with the pool killed late, its stream reads (ListSamples) would fail while it comes back.
        problems = restarted_once(topology, plan.service, restarts)
        problems += check_run(topology, detail)
        print(f"{plan}; run {detail.run.id}, delay {attempt_delay:.3f}s, {chaos.describe()}")
        assert not problems, f"{plan}; run {detail.run.id}, {chaos.describe()}:\n  " + "\n  ".join(problems)
        if chaos.killed_during_run:
            return
    pytest.fail(f"{plan}: the run ended before the kill twice ({chaos.describe()})")


# ---------------------------------------------------------------- asynchronous runs

ASYNC_TRIALS = int(os.environ.get("LESSLABELS_CHAOS_ASYNC_TRIALS", "8"))
LABELLERS = ("simulated", "human")
#: Labels between refills of the queue (the queue holds twice as many), and the labellers' pace.
REFILL_EVERY = 4
ANNOTATOR_SECONDS = 0.05
PERSON = "chaos-person"


@dataclasses.dataclass(frozen=True)
class AsyncPlan(Plan):
    """A trial of an asynchronous run: a Plan, plus who labels the queue."""

    labeller: str = "simulated"

    @classmethod
    def of(cls, seed: int) -> AsyncPlan:
        plan = Plan.of(seed)
        labeller = random.Random(f"asynchronous-{seed}").choice(LABELLERS)
        return cls(plan.seed, plan.service, plan.phase, plan.fraction, plan.run_seed, labeller)

    def __str__(self) -> str:
        round_index, step = PHASES[self.phase]
        return (
            f"asynchronous chaos seed {self.seed} ({self.labeller} labeller): SIGKILL {self.service} "
            f"{self.fraction:.0%} into round {round_index} {step} (replay: LESSLABELS_CHAOS_SEED={self.seed} "
            f"LESSLABELS_CHAOS_ASYNC_TRIALS=1 pytest tests/chaos/test_chaos.py -k asynchronous)"
        )


def async_dataset(topology: LocalTopology, name: str) -> str:
    """The topology's dataset again under ``name``, for one asynchronous run: labels people give in a
    run also count for the dataset, and a later run on it reuses them (nobody is asked again), which
    would leave later people fewer texts and mix labels of earlier runs into a run's checks."""
    dataset = f"{DATASET}-{name}"
    train, test = synthetic_rows()
    with PoolClient(topology.address("pool"), token=TOKEN, timeout=60) as pool:
        pool.import_samples(dataset, [(t, label) for label, t in train[:TRAIN_ROWS]], split="train")
        pool.import_samples(dataset, [(t, label) for label, t in test[:TEST_ROWS]], split="test")
    return dataset


def async_run_config(base_model: str, random_seed: int, labeller: str, dataset: str) -> RunConfig:
    config = dataclasses.replace(run_config(base_model, random_seed), dataset=dataset)
    if labeller == "simulated":
        return dataclasses.replace(
            config, asynchronous=True, refill_every=REFILL_EVERY, annotator_seconds=ANNOTATOR_SECONDS
        )
    return dataclasses.replace(config, oracle="human", asynchronous=True, refill_every=REFILL_EVERY)


def gold_labels() -> dict[str, str]:
    train, _ = synthetic_rows()
    return {t: label for label, t in train[:TRAIN_ROWS]}


class ScriptedPerson:
    """A person labelling an asynchronous run's queue through the coordinator's API, two texts at a
    time at ANNOTATOR_SECONDS a text, until the run is over. A submission cut off by a dead
    coordinator or pool is sent again with the same idempotency key; ``confirmed`` holds what the
    coordinator said was recorded (sample -> label), ``problems`` what went wrong."""

    def __init__(self, topology: LocalTopology, gold: dict[str, str]):
        self.address = topology.public_address("coordinator")
        self.gold = gold
        self.run_id = 0
        self.confirmed: dict[int, str] = {}
        self.retries = 0  # submissions sent again after UNAVAILABLE or DEADLINE_EXCEEDED
        self.outages = 0  # other calls that met one (the queue or the run asked for again)
        self.problems: list[str] = []
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._work, name="scripted-person", daemon=True)

    def start(self, run_id: int) -> None:
        self.run_id = run_id
        self.thread.start()

    def stop(self) -> None:
        self.done.set()
        self.thread.join(30)

    def _work(self) -> None:
        while not self.done.is_set():
            try:
                with CoordinatorClient(self.address, token=TOKEN, timeout=10) as coordinator:
                    while not self.done.is_set():
                        if coordinator.get_run(self.run_id).run.state in FINAL_STATES:
                            return
                        queued = coordinator.pending_labels(self.run_id, annotator=PERSON).samples[:2]
                        if not queued:
                            self.done.wait(ANNOTATOR_SECONDS)
                            continue
                        self.done.wait(ANNOTATOR_SECONDS * len(queued))
                        self._submit(coordinator, {s.sample_id: self.gold[s.text] for s in queued})
            except (Unavailable, DeadlineExceeded):
                self.outages += 1
                self.done.wait(0.3)
            except Exception as exc:  # noqa: BLE001 - reported by the test
                self.problems.append(f"the person stopped on {exc!r}")
                return

    def _submit(self, coordinator: CoordinatorClient, labels: dict[int, str]) -> None:
        key = "chaos-" + "-".join(str(i) for i in sorted(labels))
        while not self.done.is_set():
            try:
                coordinator.submit_labels(self.run_id, labels, annotator=PERSON, idempotency_key=key)
                self.confirmed.update(labels)
                return
            except (Unavailable, DeadlineExceeded):
                self.retries += 1
                self.done.wait(0.3)
            except InvalidArgument:
                # Refused only once the run is over (its queue closed); anything else is a problem.
                if coordinator.get_run(self.run_id).run.state not in FINAL_STATES:
                    raise
                return


class AsyncChaos(Chaos):
    """Chaos for an asynchronous run; with a human labeller, a ScriptedPerson labels its queue."""

    def __init__(self, topology: LocalTopology, person: ScriptedPerson | None, *args, **kwargs):
        super().__init__(topology, *args, **kwargs)
        self.person = person

    def run(self, config: RunConfig) -> RunDetail:
        with CoordinatorClient(self.topology.public_address("coordinator"), token=TOKEN, timeout=30) as coordinator:
            run = coordinator.start_run(config, request_id=str(uuid.uuid4()))
        self.started = time.monotonic()
        if self.person is not None:
            self.person.start(run.id)
        try:
            return self.follow(run.id)
        finally:
            if self.person is not None:
                self.person.stop()
            if self.timer is not None:
                self.timer.join(self.delay + 10)


def check_asynchronous_run(topology: LocalTopology, detail: RunDetail, person: ScriptedPerson | None) -> list[str]:
    """Every invariant of a completed asynchronous chaos run; returns what is broken."""
    problems: list[str] = list(person.problems) if person is not None else []
    run, rounds = detail.run, list(detail.rounds)
    run_id = run.id
    if run.state != "COMPLETED" or run.stop_reason != f"round limit {ROUNDS} reached":
        problems.append(f"run ended {run.state} ({run.stop_reason!r}; error {run.error!r}), not by its round limit")
    indices = [r.index for r in rounds]
    if indices != list(range(ROUNDS)):
        problems.append(f"rounds are {indices}, not 0..{ROUNDS - 1}")
    for r in rounds:
        if not (r.checkpoint_id and r.train_job_id and r.test is not None and r.finished_at):
            problems.append(f"round {r.index} is unfinished: {r}")
    trained_on = [r.labelled_count for r in rounds]
    minimum = [SEED + BATCH * i for i in range(len(rounds))]
    if any(n < m for n, m in zip(trained_on, minimum, strict=True)) or trained_on != sorted(trained_on):
        problems.append(f"labelled count per round {trained_on}: expected at least {minimum}, growing")
    with RunStoreClient(topology.address("pool"), token=INTERNAL_TOKEN, timeout=30) as runs:
        acquired = runs.list_acquisitions(run_id)
    with PoolClient(topology.address("pool"), token=TOKEN, timeout=30) as pool:
        samples = pool.list_samples(run.config.dataset, state="labelled", run_id=run_id, page_size=5000)
        counts = pool.get_counts(run.config.dataset, run_id=run_id)
    labelled = {s.id: s.label for s in samples}
    ids = [a.sample_id for a in acquired]
    twice = sorted(i for i, n in collections.Counter(ids).items() if n > 1)
    if twice:
        problems.append(f"samples acquired twice: {twice}")
    table, events = read_pool_database(topology, run_id)
    if sorted(table) != sorted((a.sample_id, a.round) for a in acquired):
        problems.append("the acquisitions table disagrees with ListAcquisitions")
    given = collections.Counter(sample for sample, _, _ in events)
    relabelled = sorted(s for s, n in given.items() if n > 1)
    if relabelled:
        problems.append(f"samples labelled more than once: {relabelled}")
    strays = sorted(set(given) - set(ids))
    if strays:
        problems.append(f"labels given to samples the run never acquired: {strays}")
    if set(labelled) != set(given):
        problems.append(
            f"the run's labelled samples != its label events: only labelled {sorted(set(labelled) - set(given))}, "
            f"only in events {sorted(set(given) - set(labelled))}"
        )
    if not (run.labelled_count == counts.train.labelled == len(labelled)):
        problems.append(
            f"labelled counts disagree: run {run.labelled_count}, pool counts {counts.train.labelled}, "
            f"labelled samples {len(labelled)}"
        )
    in_acquisitions = {a.sample_id: a.label for a in acquired if a.label}
    if in_acquisitions != labelled:
        problems.append("the acquisitions' labels disagree with the run's labelled samples")
    texts = {a.sample_id: a.text for a in acquired}
    gold = gold_labels()
    wrong = sorted(i for i, label in labelled.items() if gold.get(texts.get(i, "")) != label)
    if wrong:
        problems.append(f"labels that are not the gold label: {wrong}")
    source = "human" if person is not None else "oracle"
    wrong_source = sorted(s for s, _, found in events if found != source)
    if wrong_source:
        problems.append(f"labels with a source other than {source}: {wrong_source}")
    if person is not None:
        lost = sorted(i for i, label in person.confirmed.items() if labelled.get(i) != label)
        if lost:
            problems.append(f"labels the person was told were recorded, missing or changed in the pool: {lost}")
        unknown = sorted(set(labelled) - set(person.confirmed))
        if unknown:
            problems.append(f"labels in the pool the person never saw recorded: {unknown}")
    return problems


@pytest.fixture(scope="module")
def async_phase_seconds(topology, tiny_bert_dir) -> dict[str, list[float]]:
    """An asynchronous run of each labeller with no kill (the simulated one twice: the first loads
    the models and embeds the pool for the fast head): each passes every check, and measures the
    phases that the trials' fractions apply to."""
    measured: dict[str, list[float]] = {}
    for random_seed, labeller in ((1, "simulated"), (2, "simulated"), (3, "human")):
        person = ScriptedPerson(topology, gold_labels()) if labeller == "human" else None
        chaos = AsyncChaos(topology, person)
        dataset = async_dataset(topology, f"measure-{random_seed}")
        detail = chaos.run(async_run_config(str(tiny_bert_dir), random_seed, labeller, dataset))
        problems = check_asynchronous_run(topology, detail, person)
        assert not problems, f"{labeller} asynchronous run {detail.run.id} without a kill:\n  " + "\n  ".join(problems)
        measured[labeller] = chaos.phase_seconds()
    return measured


@pytest.mark.parametrize("seed", [BASE_SEED + i for i in range(ASYNC_TRIALS)])
def test_a_service_killed_during_an_asynchronous_run_loses_nothing(topology, tiny_bert_dir, async_phase_seconds, seed):
    plan = AsyncPlan.of(seed)
    delay = plan.fraction * async_phase_seconds[plan.labeller][plan.phase]
    for attempt, attempt_delay in enumerate((delay, 0.0)):
        for name in SERVICES:
            topology.wait_healthy(name, timeout=HEALTHY_TIMEOUT)
        restarts = {name: topology.restarts(name) for name in SERVICES}
        dataset = async_dataset(topology, f"{seed}-{attempt}")
        person = ScriptedPerson(topology, gold_labels()) if plan.labeller == "human" else None
        chaos = AsyncChaos(topology, person, plan.service, plan.phase, attempt_delay)
        try:
            detail = chaos.run(async_run_config(str(tiny_bert_dir), plan.run_seed, plan.labeller, dataset))
        except AssertionError as exc:
            raise AssertionError(f"{plan}: {exc}") from None
        problems = restarted_once(topology, plan.service, restarts)
        problems += check_asynchronous_run(topology, detail, person)
        retries = f", person: {person.retries} submissions retried, {person.outages} outages" if person else ""
        print(f"{plan}; run {detail.run.id}, delay {attempt_delay:.3f}s{retries}, {chaos.describe()}")
        assert not problems, f"{plan}; run {detail.run.id}, {chaos.describe()}:\n  " + "\n  ".join(problems)
        if chaos.killed_during_run:
            return
    pytest.fail(f"{plan}: the run ended before the kill twice ({chaos.describe()})")
