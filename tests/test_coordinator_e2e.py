"""End to end over the real in-process services (pool, trainer, scorer, coordinator) with the
tiny random BERT: a two-round run, a coordinator stopped between steps and resumed, human mode."""

from __future__ import annotations

import collections

import grpc
import pytest

from lesslabels.v1 import (
    common_pb2,
    coordinator_pb2,
    coordinator_pb2_grpc,
    pool_pb2,
    pool_pb2_grpc,
    run_pb2,
    trainer_pb2,
    trainer_pb2_grpc,
)
from tests.stack import load_toy_dataset, real_stack, wait_for  # noqa: F401 - fixture

FINAL = (run_pb2.RUN_STATE_COMPLETED, run_pb2.RUN_STATE_FAILED, run_pb2.RUN_STATE_CANCELLED)


def _config(tiny_bert_dir, **overrides) -> run_pb2.RunConfig:
    message = run_pb2.RunConfig(
        dataset="toy", base_model=str(tiny_bert_dir), random_seed=3,
        hyperparameters=common_pb2.Hyperparameters(max_epochs=2, batch_size=8, max_length=16, num_threads=1,
                                                   learning_rate=1e-3),
    )
    message.seed_size.count = 12
    message.batch_size.count = 8
    message.stopping.max_rounds = 2
    for key, value in overrides.items():
        setattr(message, key, value)
    return message


class Clients:
    def __init__(self, stack):
        self._channels = [grpc.insecure_channel(a) for a in (stack.pool_address, stack.trainer_address)]
        self.pool = pool_pb2_grpc.PoolServiceStub(self._channels[0])
        self.trainer = trainer_pb2_grpc.TrainerServiceStub(self._channels[1])
        self.connect(stack)

    def connect(self, stack):
        channel = grpc.insecure_channel(stack.coordinator_address)
        self._channels.append(channel)
        self.coordinator = coordinator_pb2_grpc.CoordinatorServiceStub(channel)

    def close(self):
        for channel in self._channels:
            channel.close()

    def run(self, run_id) -> run_pb2.Run:
        return self.pool.GetRun(pool_pb2.GetRunRequest(run_id=run_id), timeout=10)

    def wait_final(self, run_id, timeout=240) -> run_pb2.Run:
        return wait_for(lambda: (r := self.run(run_id)).state in FINAL and r, timeout, 0.2, f"run {run_id} to end")

    def acquisitions(self, run_id):
        reply = self.pool.ListAcquisitions(pool_pb2.ListAcquisitionsRequest(run_id=run_id, round=-1), timeout=10)
        return list(reply.acquisitions)

    def jobs(self, run_id):
        return list(self.trainer.ListJobs(trainer_pb2.ListJobsRequest(run_id=run_id), timeout=10).jobs)


@pytest.fixture
def clients(real_stack):
    load_toy_dataset(real_stack.pool_address)
    clients = Clients(real_stack)
    yield clients
    clients.close()


def _assert_recorded_once(clients, run_id, rounds: int, labelled: int):
    acquisitions = clients.acquisitions(run_id)
    ids = [a.sample_id for a in acquisitions]
    assert len(ids) == len(set(ids)), "a sample was acquired twice"
    assert len(ids) == labelled and all(a.label for a in acquisitions)
    succeeded = [j for j in clients.jobs(run_id) if j.state == trainer_pb2.JOB_STATE_SUCCEEDED]
    assert sorted(j.request.round for j in succeeded) == list(range(rounds)), "a round was trained twice"
    return acquisitions


def test_two_round_run_over_the_real_services(clients, tiny_bert_dir):
    config = _config(tiny_bert_dir, seed_strategy=run_pb2.SEED_STRATEGY_DIVERSE,
                     strategy=run_pb2.STRATEGY_CLUSTERED_ENTROPY)
    run = clients.coordinator.StartRun(coordinator_pb2.StartRunRequest(config=config), timeout=30)
    events = list(clients.coordinator.WatchRun(coordinator_pb2.WatchRunRequest(run_id=run.id), timeout=240))
    assert events[-1].run.state == run_pb2.RUN_STATE_COMPLETED, events[-1].run.error
    done = clients.run(run.id)
    assert done.stop_reason == "round limit 2 reached" and done.labelled_count == 20
    detail = clients.coordinator.GetRun(pool_pb2.GetRunRequest(run_id=run.id), timeout=10)
    assert [r.index for r in detail.rounds] == [0, 1]
    assert [r.labelled_count for r in detail.rounds] == [12, 20]
    assert detail.rounds[0].selected_count == 8
    for r in detail.rounds:
        assert r.checkpoint_id and r.train_job_id
        assert r.test.count == 12 and 0 <= r.test.accuracy <= 1 and r.test.per_class_f1
        assert r.train_seconds > 0
    assert 0 <= detail.rounds[0].agreement <= 1
    acquisitions = _assert_recorded_once(clients, run.id, rounds=2, labelled=20)
    assert collections.Counter(a.round for a in acquisitions) == {0: 12, 1: 8}
    # The checkpoints are the trainer's, trained on this run's labels.
    manifest = clients.trainer.GetCheckpoint(trainer_pb2.GetCheckpointRequest(latest_of_run=run.id), timeout=10)
    assert manifest.id == detail.rounds[1].checkpoint_id and manifest.round == 1
    assert any("training" in e.message for e in events)


def test_a_coordinator_stopped_between_steps_resumes_without_selecting_twice(clients, real_stack, tiny_bert_dir):
    run = clients.coordinator.StartRun(coordinator_pb2.StartRunRequest(config=_config(tiny_bert_dir)), timeout=30)
    seen = []
    # Stop the coordinator at three points of the run, each time starting a fresh one that resumes it.
    for step, round_index in ((run_pb2.RUN_STEP_TRAIN, 0), (run_pb2.RUN_STEP_SCORE, 0), (run_pb2.RUN_STEP_LABEL, 1)):
        current = wait_for(
            lambda round_index=round_index, step=step: (r := clients.run(run.id)).state in FINAL or (r.round, r.step) >= (round_index, step) and r,
            240, 0.05, f"step {run_pb2.RunStep.Name(step)} of round {round_index}",
        )
        assert current.state not in FINAL, "the run ended before the coordinator could be stopped"
        seen.append((current.round, run_pb2.RunStep.Name(current.step)))
        real_stack.restart_coordinator()
        clients.connect(real_stack)
    done = clients.wait_final(run.id)
    assert done.state == run_pb2.RUN_STATE_COMPLETED, (done.error, seen)
    _assert_recorded_once(clients, run.id, rounds=2, labelled=20)
    detail = clients.coordinator.GetRun(pool_pb2.GetRunRequest(run_id=run.id), timeout=10)
    assert [r.index for r in detail.rounds] == [0, 1] and all(r.test.count == 12 for r in detail.rounds)


def test_human_mode_with_partial_and_repeated_label_submissions(clients, real_stack, tiny_bert_dir):
    run = clients.coordinator.StartRun(
        coordinator_pb2.StartRunRequest(config=_config(tiny_bert_dir, oracle=run_pb2.ORACLE_MODE_HUMAN)), timeout=30)
    coordinator = clients.coordinator

    def pending():
        return coordinator.GetPendingLabels(coordinator_pb2.GetPendingLabelsRequest(run_id=run.id), timeout=10)

    def submit(samples, label_of, key=""):
        labels = [pool_pb2.LabelAssignment(sample_id=s.sample_id, label=label_of(s.text)) for s in samples]
        return coordinator.SubmitRunLabels(
            coordinator_pb2.SubmitRunLabelsRequest(run_id=run.id, labels=labels, annotator="t", idempotency_key=key),
            timeout=10)

    def truth(text):  # the toy texts start with their label
        return next(name for name in ("flight", "airfare", "ground_service", "abbreviation") if text.startswith(name.replace("_", " ")))

    batch = wait_for(lambda: (p := pending()).remaining and p, 60, 0.1, "the seed batch")
    assert clients.run(run.id).state == run_pb2.RUN_STATE_WAITING_FOR_LABELS
    assert batch.round == 0 and batch.remaining == 12
    samples = list(batch.samples)
    assert submit(samples[:5], truth, key="part-1").remaining == 7
    assert submit(samples[:5], truth, key="part-1").result.recorded == 0  # the same import again
    again = submit(samples[3:8], truth)  # overlapping, without a key
    assert (again.result.recorded, again.result.unchanged, again.remaining) == (3, 2, 4)
    assert clients.run(run.id).state == run_pb2.RUN_STATE_WAITING_FOR_LABELS
    assert not clients.jobs(run.id), "training started before the batch was complete"
    # The coordinator restarts while the batch is half done; the labels so far are kept.
    real_stack.restart_coordinator()
    clients.connect(real_stack)
    coordinator = clients.coordinator
    assert pending().remaining == 4
    assert submit(samples[8:], truth).remaining == 0
    second = wait_for(lambda: (p := pending()).round == 1 and p.remaining and p, 240, 0.2, "the round 1 batch")
    assert second.remaining == 8
    submit(list(second.samples), truth)
    submit(list(second.samples), truth)  # a repeat after the batch completed is harmless
    done = clients.wait_final(run.id)
    assert done.state == run_pb2.RUN_STATE_COMPLETED, done.error
    acquisitions = _assert_recorded_once(clients, run.id, rounds=2, labelled=20)
    assert all(a.label == truth(a.text) for a in acquisitions)
