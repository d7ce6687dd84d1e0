"""Scorer: dynamic batcher, model cache (tiny BERT checkpoint), ScorerService over real gRPC."""

from __future__ import annotations

import dataclasses
import concurrent.futures
import logging
import threading
import time

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from lesslabels.common import errors, uncertainty
from lesslabels.common.channels import make_channel
from lesslabels.common.checkpoints import CheckpointStore
from lesslabels.modeling.batching import char_limit
from lesslabels.v1 import common_pb2, scorer_pb2, scorer_pb2_grpc
from lesslabels.scorer.batching import BatcherClosed, DynamicBatcher, plan_batches
from lesslabels.scorer.model_cache import CacheConfig, ModelCache, ModelSpec
from lesslabels.contract import SampleQuery
from lesslabels.scorer.pool_scoring import PoolQuery, PoolScoring
from lesslabels.scorer.pool_source import PoolPage
from tests.helpers import server_settings_for_tests
from tests.scorer_checkpoints import LABELS, RUN_ID, TEXTS, publish_tiny_checkpoint

pytestmark = pytest.mark.usefixtures("few_torch_threads")


@pytest.fixture(scope="module")
def cache(store_and_id, tiny_bert_dir):
    config = CacheConfig(max_batch_size=4, max_tokens=64, max_wait_ms=20, model_dirs=(str(tiny_bert_dir),))
    cache = ModelCache(store_and_id[0], config)
    yield cache
    cache.close()


# -- batching ------------------------------------------------------------------------------
def test_plan_batches_bounds_and_covers_every_row():
    rng = np.random.default_rng(0)
    lengths = rng.integers(1, 60, size=200).tolist() + [500]
    batches = plan_batches(lengths, max_batch_size=16, max_tokens=256)
    seen = np.concatenate(batches)
    assert sorted(seen.tolist()) == list(range(len(lengths)))
    for rows in batches:
        longest = max(lengths[i] for i in rows)
        assert len(rows) <= 16
        assert len(rows) * longest <= 256 or len(rows) == 1  # a row over budget goes alone
        assert len(rows) * longest <= 1.1 * sum(lengths[i] for i in rows) + 1e-9  # little padding
    # length bucketing: padding stays small compared with file order
    padded = sum(len(r) * max(lengths[i] for i in r) for r in batches)
    naive = sum(16 * max(lengths[i : i + 16]) for i in range(0, len(lengths), 16))
    assert padded < 0.75 * naive
    assert plan_batches([], 4, 10) == []


@pytest.mark.parametrize("workers", [1, 2])
def test_concurrent_callers_each_get_their_own_rows_in_order(workers):
    calls = []

    def batch_fn(items):
        calls.append(len(items))
        return [("out", tag, idx) for tag, idx in items]

    batcher = DynamicBatcher(
        batch_fn,
        length_fn=lambda item: 1 + item[1] % 7,
        max_batch_size=8,
        max_tokens=64,
        max_wait_s=0.05,
        workers=workers,
    )
    barrier = threading.Barrier(12)

    def caller(tag):
        items = [(tag, i) for i in range(tag % 5 + 1)]
        barrier.wait()
        return tag, batcher(items, timeout=10)

    with concurrent.futures.ThreadPoolExecutor(12) as pool:
        results = list(pool.map(caller, range(12)))
    batcher.close()
    for tag, rows in results:
        assert rows == [("out", tag, i) for i in range(tag % 5 + 1)]
    assert batcher.stats.collections < 12  # requests really were merged
    assert max(calls) <= 8


def test_error_reaches_every_caller_of_the_failed_batch_and_worker_survives():
    fail = threading.Event()
    fail.set()

    def batch_fn(items):
        if fail.is_set():
            raise ValueError("boom")
        return items

    batcher = DynamicBatcher(batch_fn, length_fn=lambda _: 1, max_batch_size=64, max_wait_s=0.1)
    futures = [batcher.submit([i, i + 100]) for i in range(5)]
    for f in futures:
        with pytest.raises(ValueError, match="boom"):
            f.result(5)
    fail.clear()
    assert batcher([1, 2, 3], timeout=5) == [1, 2, 3]
    batcher.close()


def test_a_request_is_not_kept_by_the_batcher_once_answered():
    """Finding F1: the worker kept its last collection (every row's token ids and results) while
    it waited for the next request, so a big request's memory outlived it, through its response."""
    import gc
    import weakref

    class Row:
        def __init__(self, i):
            self.i = i

    batcher = DynamicBatcher(lambda items: [r.i for r in items], length_fn=lambda _: 1, max_wait_s=0.01)
    rows = [Row(i) for i in range(5)]
    refs = [weakref.ref(r) for r in rows]
    assert batcher(rows, timeout=5) == [0, 1, 2, 3, 4]
    del rows
    gc.collect()
    try:
        assert [ref() for ref in refs] == [None] * 5
    finally:
        batcher.close()


@pytest.mark.parametrize("workers", [1, 3])
def test_a_failed_batch_fails_only_its_callers(workers):
    def batch_fn(items):
        if "bad" in items:
            raise ValueError("poisoned batch")
        return [x.upper() for x in items]

    # lengths 1 vs 5 never share a batch (padding bound), so only the poisoned caller fails
    batcher = DynamicBatcher(batch_fn, length_fn=lambda x: 1 if x == "bad" else 5, max_wait_s=0.1, workers=workers)
    poisoned = batcher.submit(["bad"])
    healthy = batcher.submit(["okay1", "okay2"])
    with pytest.raises(ValueError, match="poisoned"):
        poisoned.result(5)
    assert healthy.result(5) == ["OKAY1", "OKAY2"]
    batcher.close()


def test_wrong_number_of_outputs_is_an_error_for_all_callers():
    batcher = DynamicBatcher(lambda items: items[:-1], length_fn=lambda _: 1, max_wait_s=0.05)
    futures = [batcher.submit([1, 2]), batcher.submit([3])]
    for f in futures:
        with pytest.raises(RuntimeError, match="results for"):
            f.result(5)
    batcher.close()


def test_batches_run_side_by_side_with_several_workers():
    running, peak, lock = [0], [0], threading.Lock()

    def batch_fn(items):
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        time.sleep(0.05)
        with lock:
            running[0] -= 1
        return [x * 10 for x in items]

    # lengths 1..4 never share a batch (padding bound): four batches, run two at a time
    batcher = DynamicBatcher(batch_fn, length_fn=lambda x: x % 4 + 1, max_wait_s=0.05, workers=2)
    assert batcher(list(range(12)), timeout=5) == [x * 10 for x in range(12)]
    batcher.close()
    assert peak[0] == 2
    with pytest.raises(ValueError, match="workers"):
        DynamicBatcher(batch_fn, workers=0)


def test_scorer_parallelism_is_one_worker_per_cpu_thread():
    from lesslabels.scorer.model_cache import parallelism

    assert parallelism("cpu", threads=2) == (2, 1)
    assert parallelism("cpu", threads=4, batch_workers=2) == (2, 2)
    assert parallelism("cpu", threads=2, batch_workers=1) == (1, 2)


def test_closed_batcher_finishes_queued_work_and_refuses_new():
    gate = threading.Event()

    def slow(items):
        gate.wait(5)
        return items

    batcher = DynamicBatcher(slow, length_fn=lambda _: 1, max_wait_s=0)
    first = batcher.submit([1])
    time.sleep(0.05)
    second = batcher.submit([2])
    closer = threading.Thread(target=batcher.close)
    closer.start()
    gate.set()
    closer.join(5)
    assert first.result(5) == [1] and second.result(5) == [2]
    with pytest.raises(BatcherClosed):
        batcher.submit([3])
    assert batcher.submit([]).result(0) == []


# -- model cache ---------------------------------------------------------------------------
def test_scores_are_distributions_and_uncertainty_matches(cache, store_and_id):
    scores = cache.score(ModelSpec(checkpoint_id=store_and_id[1]), TEXTS)
    assert scores.labels == LABELS and len(scores) == len(TEXTS)
    np.testing.assert_allclose(scores.probabilities.sum(axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(scores.entropy, uncertainty.entropy(scores.probabilities))
    np.testing.assert_allclose(scores.margin, uncertainty.margin(scores.probabilities))
    np.testing.assert_allclose(scores.ratio, uncertainty.ratio(scores.probabilities))
    assert scores.predicted_labels() == [LABELS[i] for i in scores.probabilities.argmax(1)]
    # the random head gives texts visibly different rows
    assert np.ptp(scores.probabilities[:, 0]) > 0.01


def test_batching_does_not_change_results(cache, store_and_id):
    spec = ModelSpec(checkpoint_id=store_and_id[1])
    together = cache.score(spec, TEXTS).probabilities
    alone = np.concatenate([cache.score(spec, [t]).probabilities for t in TEXTS])
    np.testing.assert_allclose(together, alone, atol=1e-4)


def test_empty_list_empty_string_and_truncation(cache, store_and_id):
    spec = ModelSpec(latest_of_run=RUN_ID)
    empty = cache.score(spec, [])
    assert len(empty) == 0 and empty.probabilities.shape == (0, 3)
    scored = cache.score(spec, ["", "word " * 100, "short text"])
    assert scored.checkpoint_id == store_and_id[1]
    assert scored.truncated.tolist() == [False, True, False]  # max_length 16 from the manifest
    assert np.all(np.isfinite(scored.probabilities))


def test_a_huge_text_is_cut_to_a_character_limit_before_tokenising(cache):
    """An 8 MiB text (tokenised whole, about 1.16 GB more memory and 27 s) is cut to
    ``char_limit(max_length)`` characters first: same scores as its cut prefix, flagged truncated."""
    spec = ModelSpec(latest_of_run=RUN_ID)
    huge = "the flight from boston to denver " * (8 * 1024 * 1024 // 33)
    started = time.monotonic()
    scored = cache.score(spec, [huge, "short text"])
    elapsed = time.monotonic() - started
    prefix = cache.score(spec, [huge[: char_limit(16)]])
    assert scored.truncated.tolist() == [True, False]
    np.testing.assert_allclose(scored.probabilities[0], prefix.probabilities[0], atol=1e-5)
    assert elapsed < 10, f"scoring one 8 MiB text took {elapsed:.1f}s"


def test_scoring_tokenises_characters_in_proportion_to_max_length_and_asks_for_no_overflow(store_and_id, monkeypatch):
    """Finding F1: 4,096 texts of 4 KiB added 580-609 MiB, because every text was tokenised from at
    least 4,096 characters with the tokenizer's truncation, which builds an overflow encoding
    (~740 tokens with offsets) per text. The scorer now hands the tokenizer at most
    ``char_limit(max_length)`` characters of each such text, never with truncation on, a chunk of
    texts at a time, and still reports which texts were truncated."""
    from lesslabels.modeling import batching

    cache = ModelCache(store_and_id[0], CacheConfig(precision="fp32"))
    spec = ModelSpec(latest_of_run=RUN_ID)  # max_length 16 from the manifest
    tokenizer = cache.load(spec).model.tokenizer
    calls: list[tuple[int, int, object]] = []
    real_call = type(tokenizer).__call__

    def spy(self, text, *args, **kwargs):
        batch = [text] if isinstance(text, str) else list(text)
        calls.append((len(batch), max(map(len, batch), default=0), kwargs.get("truncation")))
        return real_call(self, text, *args, **kwargs)

    monkeypatch.setattr(type(tokenizer), "__call__", spy)
    texts = [f"{i} " + "the flight from boston to denver " * 124 for i in range(200)]  # ~4 KiB each
    try:
        scored = cache.score(spec, [*texts, "short text"])
    finally:
        cache.close()
    assert max(chars for _, chars, _ in calls) <= 1024  # 64 a token at most, not 4,096 whatever max_length is
    assert not any(truncation for _, _, truncation in calls)  # no overflow encodings built
    big = [c for c in calls if c[0] > 1]  # the chunks (the single calls probe the special tokens)
    assert big and all(n <= batching.CHUNK_TEXTS for n, _, _ in big)
    assert scored.truncated.tolist() == [True] * 200 + [False]


def test_free_pages_are_handed_back_between_tokenising_a_big_request_and_its_forward_passes(store_and_id, monkeypatch):
    """Finding F1: the blocks freed by receiving and tokenising a big request stayed in the heaps of
    the threads that freed them through its forward passes (10-20 MiB for 4,096 x 4 KiB). A call
    with at least HAND_BACK_AFTER_TOKENS token ids hands them back before its first batch runs;
    smaller calls do not pay for it."""
    from lesslabels.scorer import malloc, model_cache

    events: list[str] = []
    monkeypatch.setattr(malloc, "hand_back_free_pages", lambda: events.append("hand back"))
    monkeypatch.setattr(model_cache, "HAND_BACK_AFTER_TOKENS", 320)
    cache = ModelCache(store_and_id[0], CacheConfig(precision="fp32"))  # fp32: no re-scoring batches
    spec = ModelSpec(latest_of_run=RUN_ID)  # max_length 16 from the manifest
    batcher = cache.load(spec).batcher
    submit = batcher.submit
    monkeypatch.setattr(batcher, "submit", lambda rows: events.append(f"submit {len(rows)}") or submit(rows))
    texts = ["the flight from boston to denver " * 4] * 20  # 16 token ids each: 320
    try:
        cache.score(spec, texts)
        cache.score(spec, texts[:19])
    finally:
        cache.close()
    assert events == ["hand back", "submit 20", "submit 19"]


def test_a_big_call_is_tokenised_and_queued_a_window_at_a_time(store_and_id, monkeypatch):
    """Finding F1: a call held every text's token ids through all its forward passes (8.6 MiB for
    4,096 x 4 KiB at max_length 512). It now queues WINDOW_TEXTS texts at a time, tokenising the
    next window while the one before is scored: at most two windows' rows are queued and unfinished,
    and the results are those of scoring the texts in one go, in order."""
    from lesslabels.scorer import model_cache

    cache = ModelCache(store_and_id[0], CacheConfig(precision="fp32"))
    spec = ModelSpec(latest_of_run=RUN_ID)
    texts = [f"flight {i} from boston to denver" + " please" * (i % 7) for i in range(23)]
    try:
        whole = cache.score(spec, texts, embeddings=True)
        monkeypatch.setattr(model_cache, "WINDOW_TEXTS", 5)
        batcher = cache.load(spec).batcher
        submit = batcher.submit
        queued: list[int] = []
        unfinished: list[int] = []
        futures: list = []

        def spy(rows):
            unfinished.append(sum(not f.done() for f in futures))  # windows queued before this one, not done
            queued.append(len(rows))
            futures.append(submit(rows))
            return futures[-1]

        monkeypatch.setattr(batcher, "submit", spy)
        windowed = cache.score(spec, texts, embeddings=True)
    finally:
        cache.close()
    assert queued == [5, 5, 5, 5, 3]
    assert max(unfinished) <= 1
    # Batches are padded to other lengths when cut from other windows: float noise only.
    np.testing.assert_allclose(windowed.probabilities, whole.probabilities, atol=1e-4)
    np.testing.assert_allclose(windowed.embeddings, whole.embeddings, atol=1e-4)
    assert np.abs(np.diff(whole.probabilities, axis=0)).max() > 1e-2  # rows differ: a misplaced row would show
    assert windowed.truncated.tolist() == whole.truncated.tolist()


def test_a_call_that_runs_out_of_time_cancels_its_window_still_queued(store_and_id, monkeypatch):
    """The window queued behind one that timed out is cancelled, not scored for nobody."""

    from lesslabels.scorer import model_cache

    monkeypatch.setattr(model_cache, "WINDOW_TEXTS", 2)
    cache = ModelCache(store_and_id[0], CacheConfig(precision="fp32"))
    spec = ModelSpec(latest_of_run=RUN_ID)
    batcher = cache.load(spec).batcher
    futures: list[concurrent.futures.Future] = []

    def never_runs(rows):  # queued, never started: the first window times out
        futures.append(concurrent.futures.Future())
        return futures[-1]

    monkeypatch.setattr(batcher, "submit", never_runs)
    try:
        with pytest.raises(errors.Unavailable, match="did not finish within"):
            cache.score(spec, ["a b", "c d", "e f", "g h"], timeout=0.05)
    finally:
        cache.close()
    assert len(futures) == 2 and all(f.cancelled() for f in futures)


def test_in_flight_budget_refuses_past_its_limit_but_always_takes_one_request():
    from lesslabels.scorer.limits import InFlightBudget

    budget = InFlightBudget(100)
    with budget.hold(500):  # alone: runs whatever its size
        assert budget.used == 500
        with pytest.raises(errors.ResourceExhausted, match="--max-inflight-mb"):
            with budget.hold(1):
                pass
    with budget.hold(60), budget.hold(40):
        with pytest.raises(errors.ResourceExhausted):
            with budget.hold(1):
                pass
    assert budget.used == 0  # released, refused ones included
    with pytest.raises(ValueError):
        InFlightBudget(0)


def test_embeddings_are_mean_pooled(cache, store_and_id):
    scores = cache.score(ModelSpec(checkpoint_id=store_and_id[1]), ["hello there", "x"], embeddings=True)
    assert scores.embeddings.shape == (2, 32)
    assert not np.allclose(scores.embeddings[0], scores.embeddings[1])


def test_bf16_with_fp32_refinement_of_uncertain_rows(store_and_id):
    spec = ModelSpec(checkpoint_id=store_and_id[1])
    fp32 = ModelCache(store_and_id[0], CacheConfig(precision="fp32"))
    # every row of the random 3-class head is below 1.01, so every row is re-scored in fp32
    refined = ModelCache(store_and_id[0], CacheConfig(precision="bf16", refine_below=1.01))
    try:
        assert refined.load(spec).model.dtype is not None  # bf16 autocast really is on
        np.testing.assert_allclose(
            refined.score(spec, TEXTS).probabilities, fp32.score(spec, TEXTS).probabilities, atol=1e-4
        )
    finally:
        fp32.close()
        refined.close()


def test_last_layer_for_cls_only_gives_the_models_own_probabilities(store_and_id):
    import dataclasses

    import torch

    from lesslabels.modeling import inference

    checkpoint = store_and_id[0].get(store_and_id[1])
    model = inference.load_classifier(checkpoint.path, precision="fp32", device=torch.device("cpu"))
    assert model.cls_only  # the load-time probe found it equal to the full forward
    full = dataclasses.replace(model, cls_only=False)
    rows = inference.tokenize(model, ["a", "cheap flight to boston tomorrow morning please", "", "fares"]).input_ids
    fast, slow = inference.forward(model, rows), inference.forward(full, rows)
    np.testing.assert_allclose(fast.probabilities, slow.probabilities, atol=1e-5)
    # embeddings need every position of the last layer: those requests take the full forward
    np.testing.assert_allclose(
        inference.forward(model, rows, embeddings=True).embeddings,
        inference.forward(full, rows, embeddings=True).embeddings,
        atol=1e-6,
    )
    ids, mask = inference.pad_batch(rows, model.pad_token_id)
    with torch.inference_mode():
        assert inference.cls_only_logits(model.model, ids, mask).shape == (4, len(model.labels))
    # a model it does not fit (a plain encoder) is never given the shortcut
    assert not inference._is_plain_bert_classifier(model.model.bert)


def test_refinement_rescores_only_the_uncertain_rows(store_and_id):
    spec = ModelSpec(checkpoint_id=store_and_id[1])
    texts = [f"{w} flight to city {i}" for i, w in enumerate(["cheap", "late", "first", "a", "my", "next"] * 4)]
    fp32 = ModelCache(store_and_id[0], CacheConfig(precision="fp32"))
    try:
        exact = fp32.score(spec, texts).probabilities
        threshold = float(np.median(exact.max(axis=1)))
        mixed = ModelCache(store_and_id[0], CacheConfig(precision="bf16", refine_below=threshold))
        plain = ModelCache(store_and_id[0], CacheConfig(precision="bf16", refine_below=0.0))
        got, bf16 = mixed.score(spec, texts).probabilities, plain.score(spec, texts).probabilities
    finally:
        fp32.close()
    mixed.close()
    plain.close()
    unsure = bf16.max(axis=1) < threshold
    assert 0 < unsure.sum() < len(texts)
    np.testing.assert_allclose(got[unsure], exact[unsure], atol=1e-5)  # re-scored in fp32
    np.testing.assert_array_equal(got[~unsure], bf16[~unsure])  # kept from the bf16 pass
    assert np.abs(bf16 - exact).max() > 1e-5  # bf16 really differs, so the check above means something


def test_auto_precision_is_bf16_only_on_cpus_with_native_bf16(monkeypatch, tmp_path):
    import torch

    from lesslabels.modeling import inference

    flags = tmp_path / "cpuinfo"
    flags.write_text("processor : 0\nflags : fpu sse2 avx2 avx512f avx512_bf16 avx512_vnni\n")
    assert inference.cpu_has_native_bf16(str(flags))
    other = tmp_path / "cpuinfo2"
    other.write_text("flags : fpu sse2 avx2 avx512f\n")
    assert not inference.cpu_has_native_bf16(str(other))
    assert not inference.cpu_has_native_bf16(str(tmp_path / "missing"))
    cpu = torch.device("cpu")
    monkeypatch.setattr(inference, "cpu_has_native_bf16", lambda: True)
    assert inference.autocast_dtype("auto", cpu) == torch.bfloat16
    monkeypatch.setattr(inference, "cpu_has_native_bf16", lambda: False)
    assert inference.autocast_dtype("auto", cpu) is None
    assert inference.autocast_dtype("bf16", cpu) == torch.bfloat16 and inference.autocast_dtype("fp32", cpu) is None


def test_cache_with_batch_workers_gives_the_same_scores(store_and_id, cache):
    spec = ModelSpec(checkpoint_id=store_and_id[1])
    texts = [f"{w} flight to city {i}" * (i % 3 + 1) for i, w in enumerate(["cheap", "late", "first"] * 5)]
    parallel = ModelCache(store_and_id[0], CacheConfig(max_batch_size=4, max_tokens=64, batch_workers=2))
    try:
        np.testing.assert_allclose(
            parallel.score(spec, texts).probabilities, cache.score(spec, texts).probabilities, atol=1e-5
        )
    finally:
        parallel.close()
    with pytest.raises(ValueError, match="batch_workers"):
        ModelCache(store_and_id[0], CacheConfig(batch_workers=0))


def _fake_pages(texts, asked):
    """A pool reader over ``texts`` (sample i has id 100 + i) that records what it was asked."""

    def read_pages(query, *, page_size, cancel):
        asked.update(dataclasses.asdict(query), page_size=page_size)
        for start in range(0, len(texts), page_size):
            if cancel.is_set():
                return
            ids = list(range(100 + start, 100 + min(start + page_size, len(texts))))
            yield PoolPage(ids, texts[start : start + page_size], [], len(texts))

    return read_pages


def test_pool_scoring_scores_each_page_and_stops_when_cancelled(cache, store_and_id, caplog):
    spec = ModelSpec(checkpoint_id=store_and_id[1])
    asked: dict = {}
    query = PoolQuery(SampleQuery("toy", subset=5, subset_seed=3), spec, chunk_size=50)
    chunks = list(PoolScoring(cache, _fake_pages(TEXTS, asked), query, max_chunk=3))
    # chunk_size is capped by max_chunk; each chunk carries its page's ids and the scores of its texts
    assert asked["page_size"] == 3 and asked["subset"] == 5 and asked["subset_seed"] == 3
    assert [c.sample_ids for c in chunks] == [[100, 101, 102], [103, 104, 105], [106]]
    assert [(c.done, c.total) for c in chunks] == [(3, 7), (6, 7), (7, 7)]
    assert all(c.checkpoint_id == store_and_id[1] for c in chunks)
    together = np.concatenate([c.scores.probabilities for c in chunks])
    np.testing.assert_allclose(together, cache.score(spec, TEXTS).probabilities, atol=1e-5)

    caplog.set_level(logging.INFO, logger="lesslabels.scorer.pool_scoring")
    scoring = PoolScoring(
        cache, _fake_pages(TEXTS, {}), PoolQuery(SampleQuery("toy"), spec, chunk_size=2), max_chunk=100
    )
    scored = iter(scoring)
    assert len(next(scored).sample_ids) == 2
    scoring.cancel()
    assert list(scored) == []  # no further page is read or scored
    assert "event=score_pool_cancelled dataset=toy done=2" in caplog.text
    assert "event=score_pool_done" not in caplog.text


def test_pool_query_refuses_what_cannot_be_scored():
    spec = ModelSpec(checkpoint_id="c")
    for samples, kwargs, fragment in (
        (dict(dataset=""), {}, "dataset is required"),
        ({}, dict(chunk_size=-1), "chunk_size must not be negative, got -1"),
        (dict(subset=-2), {}, "subset.size must not be negative, got -2"),
        (dict(subset=2, sample_ids=(1,)), {}, "random subset or sample_ids, not both"),
        (dict(split="holdout"), {}, "unknown split 'holdout'"),
    ):
        with pytest.raises(errors.InvalidArgument, match=fragment):
            PoolQuery(SampleQuery(**{"dataset": "toy", **samples}), spec, **kwargs)


def test_unknown_checkpoint_and_run_are_not_found(cache):
    with pytest.raises(errors.NotFound, match="nope"):
        cache.score(ModelSpec(checkpoint_id="nope"), ["x"])
    with pytest.raises(errors.NotFound, match="run 999"):
        cache.score(ModelSpec(latest_of_run=999), ["x"])


def test_base_model_gives_embeddings_only(cache, tiny_bert_dir):
    spec = ModelSpec(base_model=str(tiny_bert_dir))
    scores = cache.score(spec, ["a b c"], embeddings=True)
    assert scores.embeddings.shape == (1, 32) and scores.labels == []
    with pytest.raises(errors.InvalidArgument, match="only embeddings"):
        cache.score(spec, ["a b c"])
    assert cache.unload(f"base:{tiny_bert_dir}")


def test_lru_cache_evicts_least_recently_used(tmp_path, tiny_bert_dir):
    store = CheckpointStore(tmp_path)
    first = publish_tiny_checkpoint(store, tiny_bert_dir, run_id=1, seed=1)
    second = publish_tiny_checkpoint(store, tiny_bert_dir, run_id=2, seed=2)
    cache = ModelCache(store, CacheConfig(cache_size=1))
    try:
        a = cache.score(ModelSpec(checkpoint_id=first), ["hi"]).probabilities
        cache.score(ModelSpec(checkpoint_id=second), ["hi"])
        assert [e.key for e in cache.loaded()] == [second]
        again = cache.score(ModelSpec(checkpoint_id=first), ["hi"]).probabilities  # reloads transparently
        np.testing.assert_allclose(a, again, atol=1e-6)
        assert [e.key for e in cache.loaded()] == [first]
    finally:
        cache.close()


# -- the best checkpoint of a run ------------------------------------------------------------
def _publish_manifest(store: CheckpointStore, **manifest) -> str:
    """A checkpoint with dummy weights: enough for the store's manifest logic. Returns its id."""
    with store.publish(manifest) as folder:
        (folder / "model.safetensors").write_bytes(b"not really weights")
    return manifest["id"]


def test_best_checkpoint_is_chosen_by_validation_never_test(tmp_path):
    store = CheckpointStore(tmp_path)
    # Round 0 has the best test accuracy and round 2 the latest; round 1 the best validation.
    r0 = _publish_manifest(
        store, run_id=5, round=0, labels=LABELS, validation={"accuracy": 0.6}, test={"accuracy": 0.99}
    )
    r1 = _publish_manifest(
        store, run_id=5, round=1, labels=LABELS, validation={"accuracy": 0.8}, test={"accuracy": 0.1}
    )
    r2 = _publish_manifest(store, run_id=5, round=2, labels=LABELS, validation={"accuracy": 0.7})
    _publish_manifest(store, run_id=6, round=0, labels=LABELS, validation={"accuracy": 0.95})  # another run
    _publish_manifest(store, run_id=5, round=3, labels=LABELS)  # no validation metrics: not a candidate
    assert store.best(5).id == r1
    assert store.latest(5).id not in (r0, r1, r2)
    # No checkpoint has a validation macro-F1: the latest round's is kept (the most labels).
    assert store.best(5, "macro_f1").manifest["round"] == 3
    with pytest.raises(errors.NotFound, match="run 404 has no published checkpoint"):
        store.best(404)


def test_best_checkpoint_follows_the_paired_comparisons_in_the_manifests(tmp_path):
    """The trainer records each checkpoint's comparison with the one its run kept, on the same held-out
    texts; best_of_run (and OIP's "best") follow them over validation accuracies measured on different
    texts, and a checkpoint that lost its comparison is passed over."""
    store = CheckpointStore(tmp_path)
    r0 = _publish_manifest(store, run_id=5, round=0, labels=LABELS, validation={"accuracy": 0.99, "count": 50})
    assert store.best(5).id == r0
    # By validation accuracies alone round 0 would stay kept (0.99 vs 0.80 on 50 texts each).
    on_other_texts = {"accuracy": 0.8, "count": 50}
    r1 = _publish_manifest(
        store,
        run_id=5,
        round=1,
        labels=LABELS,
        validation=on_other_texts,
        comparison={"against": r0, "count": 40, "new_only": 3, "kept_only": 1},
    )
    assert store.best(5).id == r1
    _publish_manifest(
        store,
        run_id=5,
        round=2,
        labels=LABELS,
        validation=on_other_texts,
        comparison={"against": r1, "count": 40, "new_only": 0, "kept_only": 9},  # a collapse
    )
    assert store.best(5).id == r1
    # A malformed comparison is ignored: the fallback (validation accuracies) decides.
    _publish_manifest(
        store, run_id=5, round=3, labels=LABELS, validation={"accuracy": 0.5, "count": 400}, comparison={"against": r1}
    )
    assert store.best(5).id == r1


def test_best_checkpoint_tie_goes_to_the_later_round(tmp_path):
    store = CheckpointStore(tmp_path)
    later = _publish_manifest(store, run_id=5, round=4, labels=LABELS, validation={"accuracy": 0.75})
    _publish_manifest(store, run_id=5, round=3, labels=LABELS, validation={"accuracy": 0.75})  # newer, earlier round
    assert store.best(5).id == later


def test_retention_keeps_the_best_and_the_latest(tmp_path):
    store = CheckpointStore(tmp_path)
    best = _publish_manifest(store, run_id=5, round=0, labels=LABELS, validation={"accuracy": 0.9})
    _publish_manifest(store, run_id=5, round=1, labels=LABELS, validation={"accuracy": 0.5})
    _publish_manifest(store, run_id=5, round=2, labels=LABELS, validation={"accuracy": 0.4}, test={"accuracy": 1.0})
    latest = _publish_manifest(store, run_id=5, round=3, labels=LABELS, validation={"accuracy": 0.6})
    assert len(store.apply_retention(5, keep_last=1)) == 2
    assert {c.id for c in store.list(5)} == {best, latest}


def test_store_errors_do_not_name_the_store_path(tmp_path):
    store = CheckpointStore(tmp_path)
    checkpoint_id = _publish_manifest(store, run_id=5, labels=LABELS)
    with pytest.raises(errors.NotFound) as missing:
        store.get("ghost")
    (store.get(checkpoint_id).path / "model.safetensors").unlink()
    with pytest.raises(errors.FailedPrecondition, match="weights cannot be read") as unreadable:
        store.get(checkpoint_id, verify=True)
    for exc in (missing.value, unreadable.value):
        assert str(tmp_path) not in str(exc)


# -- ScorerService over gRPC ---------------------------------------------------------------
@pytest.fixture
def scorer(store_and_id, pool_address):
    from lesslabels.scorer.main import build_server

    server = build_server(
        server_settings_for_tests(max_message_bytes=256 * 1024),
        str(store_and_id[0].root),
        pool_address,
        cache_config=CacheConfig(max_batch_size=8, max_tokens=256, max_wait_ms=10),
        max_texts=50,
    )
    port = server.start()
    server.set_serving()
    channel = make_channel(f"127.0.0.1:{port}", max_message_bytes=8 * 1024 * 1024)
    yield server, channel, store_and_id[1], pool_address
    channel.close()
    server.stop(0)


def test_score_base_model_outside_the_model_folders_is_one_invalid_argument(scorer, tmp_path, tiny_bert_dir):
    from lesslabels.modeling.models import NOT_ALLOWED

    _, channel, _, _ = scorer  # no --model-dir: only the bundled model and the checkpoint store
    stub = scorer_pb2_grpc.ScorerServiceStub(channel)
    (tmp_path / "empty").mkdir()
    names = [
        "/etc",
        "/root",
        "/etc/passwd",
        "/nonexistent/model",
        "../x",
        "sentence-transformers/all-mpnet-base-v2",  # a hub name, not present locally
        str(tiny_bert_dir),  # a real model, but not in a model folder of this server
        str(tmp_path / "empty"),
        "a\x00b",
    ]
    for name in names:
        model = common_pb2.ModelRef(base_model=name)
        with pytest.raises(grpc.RpcError) as info:
            stub.Score(scorer_pb2.ScoreRequest(model=model, texts=["hello"]), timeout=30)
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT, name
        assert info.value.details() == NOT_ALLOWED, name  # the same answer whether or not it exists
    assert _health(channel) == health_pb2.HealthCheckResponse.SERVING


def test_model_places_allow_only_the_bundled_model_the_model_folders_and_the_store(tmp_path, tiny_bert_dir):
    from lesslabels.modeling.models import NOT_ALLOWED, ModelPlaces, default_model_path

    models_dir = tmp_path / "models"
    (models_dir / "org").mkdir(parents=True)
    (models_dir / "org" / "tiny").symlink_to(tiny_bert_dir)  # a link out of the folder: not allowed
    (models_dir / "escape").symlink_to("/etc")
    store = tmp_path / "store"
    (store / "ckpt-1").mkdir(parents=True)
    (store / "ckpt-1" / "config.json").write_text("{}")
    places = ModelPlaces((str(models_dir), str(tiny_bert_dir)), str(store))
    assert places.resolve("default") == places.resolve("") == default_model_path()
    assert places.resolve(str(tiny_bert_dir)) == str(tiny_bert_dir.resolve())
    assert places.resolve(str(store / "ckpt-1")) == str((store / "ckpt-1").resolve())
    only_models = ModelPlaces((str(models_dir),), "")
    for name in ["org/tiny", "escape", str(tiny_bert_dir), "ckpt-1", "org", "/", "x/../../etc"]:
        with pytest.raises(errors.InvalidArgument) as info:
            only_models.resolve(name)
        assert str(info.value) == NOT_ALLOWED, name


def _health(channel) -> int:
    return health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5).status


def _ref(checkpoint_id="", run=0):
    return common_pb2.ModelRef(checkpoint_id=checkpoint_id) if checkpoint_id else common_pb2.ModelRef(latest_of_run=run)


def test_score_rpc(scorer):
    _, channel, checkpoint_id, _ = scorer
    stub = scorer_pb2_grpc.ScorerServiceStub(channel)
    reply = stub.Score(
        scorer_pb2.ScoreRequest(model=_ref(run=RUN_ID), texts=TEXTS, include_embeddings=True), timeout=30
    )
    assert reply.checkpoint_id == checkpoint_id and list(reply.labels) == LABELS
    assert len(reply.scores) == len(TEXTS)
    first = reply.scores[0]
    assert len(first.probabilities) == 3 and len(first.embedding) == 32
    assert first.predicted_label == LABELS[int(np.argmax(first.probabilities))]
    assert first.entropy == pytest.approx(float(uncertainty.entropy(np.array([first.probabilities]))[0]), abs=1e-6)
    slim = stub.Score(
        scorer_pb2.ScoreRequest(model=_ref(checkpoint_id), texts=["x"], omit_probabilities=True), timeout=30
    )
    assert len(slim.scores[0].probabilities) == 0 and slim.scores[0].predicted_label in LABELS
    empty = stub.Score(scorer_pb2.ScoreRequest(model=_ref(checkpoint_id), texts=[]), timeout=30)
    assert len(empty.scores) == 0 and list(empty.labels) == LABELS


def test_requests_past_the_in_flight_budget_are_refused_while_others_run(scorer):
    """Finding F1: concurrent big requests each took their full memory (3 at once +1.65 GiB). Score
    and ModelInfer share one budget of request bytes (--max-inflight-mb): past it a request is
    RESOURCE_EXHAUSTED at once, naming the flag; when the others end it runs."""
    from lesslabels.inference import grpc_predict_v2_pb2 as pb
    from lesslabels.inference import grpc_predict_v2_pb2_grpc as pb_grpc

    server, channel, checkpoint_id, _ = scorer
    stub = scorer_pb2_grpc.ScorerServiceStub(channel)
    request = scorer_pb2.ScoreRequest(model=_ref(checkpoint_id), texts=["a text to score"])
    infer = pb.ModelInferRequest(model_name=checkpoint_id)
    infer.inputs.add(name="text", datatype="BYTES", shape=[1])
    infer.raw_input_contents.append(b"\x04\x00\x00\x00text")
    with server.in_flight.hold(server.in_flight.limit):  # others' requests fill the budget
        for call in (
            lambda: stub.Score(request, timeout=30),
            lambda: pb_grpc.GRPCInferenceServiceStub(channel).ModelInfer(infer, timeout=30),
        ):
            with pytest.raises(grpc.RpcError) as info:
                call()
            assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert "--max-inflight-mb" in info.value.details()
    assert server.in_flight.used == 0
    assert len(stub.Score(request, timeout=30).scores) == 1


def test_the_in_flight_budget_counts_the_texts_utf8_bytes_without_serializing_the_request(scorer, monkeypatch):
    """Finding F1: the budget measured a request with ``ByteSize()``, which protobuf (upb) computes
    by serializing the whole message: 4,096 texts of 4 KiB took +65 MiB at once before any
    scoring. Both protocols now count the UTF-8 bytes of the texts, read one at a time."""
    from lesslabels.inference import grpc_predict_v2_pb2 as pb
    from lesslabels.inference import grpc_predict_v2_pb2_grpc as pb_grpc
    from lesslabels.scorer.oip.codec import encode_bytes_elements

    server, channel, checkpoint_id, _ = scorer
    held: list[int] = []
    hold = server.in_flight.hold
    monkeypatch.setattr(server.in_flight, "hold", lambda size: held.append(size) or hold(size))
    texts = ["naïve café über", "x" * 300, ""]
    utf8 = sum(len(t.encode()) for t in texts)  # 17 + 300 + 0; the message is 12 bytes longer
    request = scorer_pb2.ScoreRequest(model=_ref(checkpoint_id), texts=texts, include_embeddings=True)
    assert len(scorer_pb2_grpc.ScorerServiceStub(channel).Score(request, timeout=30).scores) == 3
    infer = pb.ModelInferRequest(model_name=checkpoint_id)
    infer.inputs.add(name="text", datatype="BYTES", shape=[3])
    infer.raw_input_contents.append(encode_bytes_elements(texts))  # + a 4-byte length per text
    pb_grpc.GRPCInferenceServiceStub(channel).ModelInfer(infer, timeout=30)
    typed = pb.ModelInferRequest(model_name=checkpoint_id)
    typed.inputs.add(name="text", datatype="BYTES", shape=[3]).contents.bytes_contents.extend(t.encode() for t in texts)
    pb_grpc.GRPCInferenceServiceStub(channel).ModelInfer(typed, timeout=30)
    assert held == [utf8, utf8 + 4 * len(texts), utf8]
    assert server.in_flight.used == 0


def test_concurrent_grpc_callers_get_their_own_rows(scorer):
    server, channel, checkpoint_id, _ = scorer
    stub = scorer_pb2_grpc.ScorerServiceStub(channel)
    words = "flight fare boston denver monday airline ground ticket cheap first class meal".split()
    requests = [
        [" ".join(words[(i + j) % len(words)] for j in range(1 + (i * 3 + k) % 9)) for k in range(1 + i % 4)]
        for i in range(16)
    ]
    expected = [
        server.model_cache.score(ModelSpec(checkpoint_id=checkpoint_id), texts).probabilities for texts in requests
    ]

    def call(texts):
        return stub.Score(scorer_pb2.ScoreRequest(model=_ref(checkpoint_id), texts=texts), timeout=30)

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        replies = list(pool.map(call, requests))
    for _texts, reply, want in zip(requests, replies, expected, strict=True):
        got = np.array([list(s.probabilities) for s in reply.scores])
        assert got.shape == want.shape
        np.testing.assert_allclose(got, want, atol=1e-4)


@pytest.mark.parametrize(
    "request_kw, code, fragment",
    [
        (dict(model=common_pb2.ModelRef(checkpoint_id="missing"), texts=["x"]), grpc.StatusCode.NOT_FOUND, "missing"),
        (dict(model=common_pb2.ModelRef(latest_of_run=12345), texts=["x"]), grpc.StatusCode.NOT_FOUND, "12345"),
        (dict(texts=["x"]), grpc.StatusCode.INVALID_ARGUMENT, "model is required"),
        (
            dict(model=common_pb2.ModelRef(latest_of_run=RUN_ID), texts=["x"] * 51),
            grpc.StatusCode.RESOURCE_EXHAUSTED,
            "limit is 50",
        ),
        (
            dict(model=common_pb2.ModelRef(latest_of_run=RUN_ID), texts=["y" * 300_000]),
            grpc.StatusCode.RESOURCE_EXHAUSTED,
            "262144",
        ),
        (dict(model=common_pb2.ModelRef(best_of_run=12345), texts=["x"]), grpc.StatusCode.NOT_FOUND, "run 12345"),
        (
            dict(model=common_pb2.ModelRef(best_of_run=-2), texts=["x"]),
            grpc.StatusCode.INVALID_ARGUMENT,
            "best_of_run must be a positive run id",
        ),
        (
            dict(model=common_pb2.ModelRef(checkpoint_id="../etc"), texts=["x"]),
            grpc.StatusCode.INVALID_ARGUMENT,
            "invalid checkpoint id",
        ),
    ],
    ids=[
        "unknown-checkpoint",
        "unknown-run",
        "no-model",
        "too-many-texts",
        "over-message-limit",
        "best-unknown-run",
        "best-negative",
        "bad-checkpoint-id",
    ],
)
def test_bad_score_requests_get_clear_status_and_server_stays_serving(scorer, request_kw, code, fragment):
    server, channel, _, _ = scorer
    stub = scorer_pb2_grpc.ScorerServiceStub(channel)
    with pytest.raises(grpc.RpcError) as info:
        stub.Score(scorer_pb2.ScoreRequest(**request_kw), timeout=30)
    assert info.value.code() == code
    assert fragment in info.value.details()
    assert str(server.model_cache.store.root) not in info.value.details()  # no server paths in errors
    assert _health(channel) == health_pb2.HealthCheckResponse.SERVING
    ok = stub.Score(scorer_pb2.ScoreRequest(model=_ref(run=RUN_ID), texts=["still works"]), timeout=30)
    assert len(ok.scores) == 1


def test_loaded_base_models_are_named_without_server_paths(store_and_id, tiny_bert_dir):
    """Finding F8: LoadCheckpoint and ListLoaded answered ``base:/<server path>`` for a base model.
    They name it as a caller may (``base:default``, ``base:`` and its name in the model folder),
    and UnloadCheckpoint takes that name."""
    from lesslabels.scorer.main import build_server

    models_dir = str(tiny_bert_dir.parent)
    server = build_server(
        server_settings_for_tests(),
        str(store_and_id[0].root),
        "",
        cache_config=CacheConfig(model_dirs=(models_dir,), precision="fp32"),
    )
    port = server.start()
    server.set_serving()
    try:
        with make_channel(f"127.0.0.1:{port}") as channel:
            stub = scorer_pb2_grpc.ScorerServiceStub(channel)
            answers = [
                stub.LoadCheckpoint(
                    scorer_pb2.LoadCheckpointRequest(model=common_pb2.ModelRef(base_model=name)), timeout=60
                )
                for name in (str(tiny_bert_dir), "default")
            ]
            listed = stub.ListLoaded(scorer_pb2.ListLoadedRequest(), timeout=30).models
            shown = [(m.checkpoint_id, m.base_model) for m in [*answers, *listed]]
            assert shown[:2] == [(f"base:{tiny_bert_dir.name}", tiny_bert_dir.name), ("base:default", "default")]
            assert sorted(shown[2:]) == sorted(shown[:2])
            assert not any("/" in text for pair in shown for text in pair), shown  # no path of this server
            unload = scorer_pb2.UnloadCheckpointRequest(checkpoint_id=f"base:{tiny_bert_dir.name}")
            assert stub.UnloadCheckpoint(unload, timeout=30).unloaded
            assert [m.checkpoint_id for m in stub.ListLoaded(scorer_pb2.ListLoadedRequest(), timeout=30).models] == [
                "base:default"
            ]
    finally:
        server.stop(0)


def test_load_list_unload(scorer):
    _, channel, checkpoint_id, _ = scorer
    stub = scorer_pb2_grpc.ScorerServiceStub(channel)
    loaded = stub.LoadCheckpoint(scorer_pb2.LoadCheckpointRequest(model=_ref(run=RUN_ID)), timeout=30)
    assert loaded.checkpoint_id == checkpoint_id and list(loaded.labels) == LABELS
    assert loaded.max_length == 16 and loaded.device == "cpu" and loaded.loaded_at.endswith("Z")
    listed = stub.ListLoaded(scorer_pb2.ListLoadedRequest(), timeout=30)
    assert [m.checkpoint_id for m in listed.models] == [checkpoint_id]
    assert stub.UnloadCheckpoint(scorer_pb2.UnloadCheckpointRequest(checkpoint_id=checkpoint_id), timeout=30).unloaded
    assert not stub.UnloadCheckpoint(
        scorer_pb2.UnloadCheckpointRequest(checkpoint_id=checkpoint_id), timeout=30
    ).unloaded
    assert len(stub.ListLoaded(scorer_pb2.ListLoadedRequest(), timeout=30).models) == 0
    with pytest.raises(grpc.RpcError) as info:
        stub.LoadCheckpoint(scorer_pb2.LoadCheckpointRequest(model=_ref("nope")), timeout=30)
    assert info.value.code() == grpc.StatusCode.NOT_FOUND
    assert _health(channel) == health_pb2.HealthCheckResponse.SERVING


def _import_toy(pool_address, n=10):
    from tests.helpers import import_rows

    train = [(LABELS[i % 3], f"train text number {i} about flights") for i in range(n)]
    test = [(LABELS[i % 3], f"test text {i}") for i in range(4)]
    import_rows(pool_address, "toy", train)
    import_rows(pool_address, "toy", test, split="test", create=False)
    return train, test


def test_score_pool_streams_chunks_in_pages(scorer):
    server, channel, checkpoint_id, pool_address = scorer
    train, test = _import_toy(pool_address, n=10)
    stub = scorer_pb2_grpc.ScorerServiceStub(channel)
    chunks = list(
        stub.ScorePool(scorer_pb2.ScorePoolRequest(model=_ref(checkpoint_id), dataset="toy", chunk_size=3), timeout=60)
    )
    assert [len(c.sample_ids) for c in chunks] == [3, 3, 3, 1]
    assert [c.done for c in chunks] == [3, 6, 9, 10] and chunks[0].total == 10
    ids = [i for c in chunks for i in c.sample_ids]
    assert len(set(ids)) == 10
    assert all(len(c.scores) == len(c.sample_ids) and not c.gold_labels for c in chunks)
    # the chunk's scores belong to its samples: rescoring the texts gives the same rows
    from tests.helpers import pool_stub
    from lesslabels.v1 import pool_pb2

    pages = list(
        pool_stub(pool_address).ListSamples(
            pool_pb2.ListSamplesRequest(dataset="toy", split=common_pb2.SPLIT_TRAIN), timeout=30
        )
    )
    text_of = {s.id: s.text for p in pages for s in p.samples}
    direct = server.model_cache.score(ModelSpec(checkpoint_id=checkpoint_id), [text_of[i] for i in ids]).probabilities
    streamed = np.array([list(s.probabilities) for c in chunks for s in c.scores])
    np.testing.assert_allclose(streamed, direct, atol=1e-4)
    # the test split with include_all carries gold labels for evaluation
    test_chunks = list(
        stub.ScorePool(
            scorer_pb2.ScorePoolRequest(
                model=_ref(checkpoint_id), dataset="toy", split=common_pb2.SPLIT_TEST, include_all=True
            ),
            timeout=60,
        )
    )
    assert sorted(g for c in test_chunks for g in c.gold_labels) == sorted(label for label, _ in test)


def test_score_pool_scores_a_random_subset_or_given_samples_and_only_what_is_asked(scorer):
    from lesslabels.client import PoolClient, ScorerClient
    from lesslabels.client.errors import InvalidArgument as ClientInvalidArgument

    server, channel, checkpoint_id, pool_address = scorer
    _import_toy(pool_address, n=40)
    stub = scorer_pb2_grpc.ScorerServiceStub(channel)
    with ScorerClient(f"127.0.0.1:{server.port}", timeout=60) as client, PoolClient(pool_address, timeout=30) as pool:
        expected = [s.id for s in pool.list_samples("toy", split="train", state="unlabelled", subset=7, subset_seed=11)]
        seen = []
        chunks = list(
            client.score_pool_chunks(
                "toy",
                checkpoint=checkpoint_id,
                subset=7,
                subset_seed=11,
                probabilities=False,
                chunk_size=3,
                progress=lambda done, total: seen.append((done, total)),
            )
        )
        # Exactly the pool's subset, chunk by chunk, with uncertainty and no probability rows.
        assert [c.sample_ids.tolist() for c in chunks] == [expected[:3], expected[3:6], expected[6:]]
        assert seen == [(3, 7), (6, 7), (7, 7)]
        assert all(c.probabilities is None and c.uncertainty.entropy.shape == (len(c.sample_ids),) for c in chunks)
        whole = client.score_pool("toy", checkpoint=checkpoint_id, subset=7, subset_seed=11)
        assert whole.sample_ids.tolist() == expected and whole.probabilities.shape == (7, 3)
        np.testing.assert_allclose(whole.uncertainty.entropy, uncertainty.entropy(whole.probabilities), atol=1e-6)
        # Given samples, labelled or not, with their embeddings.
        picked = client.score_pool(
            "toy", checkpoint=checkpoint_id, include_all=True, embeddings=True, sample_ids=expected[::-2]
        )
        assert picked.sample_ids.tolist() == sorted(expected[::-2]) and picked.embeddings.shape[0] == 4
        with pytest.raises(ClientInvalidArgument, match="subset.size must not be negative, got -2"):
            client.score_pool("toy", checkpoint=checkpoint_id, subset=-2)
        with pytest.raises(ClientInvalidArgument, match="subset.size must be a whole number of samples, got 2.5"):
            client.score_pool("toy", checkpoint=checkpoint_id, subset=2.5)
        with pytest.raises(ClientInvalidArgument, match="give a SampleQuery or its fields as keywords, not both"):
            client.score_pool(SampleQuery("toy"), checkpoint=checkpoint_id, subset=2)
        with pytest.raises(ClientInvalidArgument, match="unexpected keyword argument 'colour'"):
            client.score_pool("toy", checkpoint=checkpoint_id, colour="red")
    for request, fragment in (
        (dict(subset=common_pb2.RandomSubset(size=-2)), "subset.size must not be negative, got -2"),
        (dict(subset=common_pb2.RandomSubset(size=2), sample_ids=[1]), "random subset or sample_ids, not both"),
    ):
        with pytest.raises(grpc.RpcError) as info:
            list(
                stub.ScorePool(
                    scorer_pb2.ScorePoolRequest(model=_ref(checkpoint_id), dataset="toy", **request), timeout=30
                )
            )
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT and fragment in info.value.details()


def test_score_pool_scores_one_shard_and_refuses_bad_shards(scorer):
    from lesslabels.client import PoolClient, ScorerClient
    from lesslabels.contract.shards import Shard, all_shards

    server, channel, checkpoint_id, pool_address = scorer
    _import_toy(pool_address, n=40)
    stub = scorer_pb2_grpc.ScorerServiceStub(channel)
    with ScorerClient(f"127.0.0.1:{server.port}", timeout=60) as client, PoolClient(pool_address, timeout=30) as pool:
        subset = [s.id for s in pool.list_samples("toy", split="train", state="unlabelled", subset=13, subset_seed=5)]
        parts = [
            client.score_pool("toy", checkpoint=checkpoint_id, subset=13, subset_seed=5, shard=shard)
            for shard in all_shards(3)
        ]
        # The three shards of the subset: each only its own ids, together the subset exactly once.
        assert sorted(i for p in parts for i in p.sample_ids.tolist()) == subset
        assert all((p.sample_ids % 3 == index).all() for index, p in enumerate(parts))
        whole = client.score_pool("toy", checkpoint=checkpoint_id, subset=13, subset_seed=5)
        by_id = dict(zip(whole.sample_ids.tolist(), whole.uncertainty.entropy.tolist(), strict=True))
        # The same scores as unsharded, up to the last bits a batch's padding moves (batches differ).
        for part in parts:
            for i, e in zip(part.sample_ids.tolist(), part.uncertainty.entropy.tolist(), strict=True):
                assert e == pytest.approx(by_id[i], abs=1e-4)
    for shard, fragment in (
        (common_pb2.Shard(index=2, count=2), "shard.index must be in [0, 2) for shard.count 2, got 2"),
        (common_pb2.Shard(), "shard.count must be at least 1, got 0"),
    ):
        with pytest.raises(grpc.RpcError) as info:
            list(
                stub.ScorePool(
                    scorer_pb2.ScorePoolRequest(model=_ref(checkpoint_id), dataset="toy", shard=shard), timeout=30
                )
            )
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT and fragment in info.value.details()
    assert Shard(0, 1).count == 1


def test_score_pool_errors_and_cancellation(scorer, caplog):
    _, channel, checkpoint_id, pool_address = scorer
    _import_toy(pool_address, n=40)
    stub = scorer_pb2_grpc.ScorerServiceStub(channel)
    with pytest.raises(grpc.RpcError) as info:
        list(stub.ScorePool(scorer_pb2.ScorePoolRequest(model=_ref(checkpoint_id), dataset="no-such"), timeout=30))
    assert info.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.RpcError) as info:
        list(stub.ScorePool(scorer_pb2.ScorePoolRequest(model=_ref("gone"), dataset="toy"), timeout=30))
    assert info.value.code() == grpc.StatusCode.NOT_FOUND
    caplog.set_level(logging.INFO, logger="lesslabels.scorer.pool_scoring")
    call = stub.ScorePool(
        scorer_pb2.ScorePoolRequest(model=_ref(checkpoint_id), dataset="toy", chunk_size=2), timeout=60
    )
    first = next(call)
    assert len(first.sample_ids) == 2
    call.cancel()
    deadline = time.monotonic() + 10
    while "event=score_pool_cancelled" not in caplog.text and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "event=score_pool_cancelled" in caplog.text
    assert "event=score_pool_done" not in caplog.text
    assert _health(channel) == health_pb2.HealthCheckResponse.SERVING


def test_score_pool_without_pool_address_is_failed_precondition(store_and_id):
    from lesslabels.scorer.main import build_server

    server = build_server(server_settings_for_tests(), str(store_and_id[0].root), "")
    port = server.start()
    server.set_serving()
    try:
        with make_channel(f"127.0.0.1:{port}") as channel:
            stub = scorer_pb2_grpc.ScorerServiceStub(channel)
            with pytest.raises(grpc.RpcError) as info:
                list(
                    stub.ScorePool(scorer_pb2.ScorePoolRequest(model=_ref(store_and_id[1]), dataset="toy"), timeout=10)
                )
            assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION
            assert "--pool-address" in info.value.details()
    finally:
        server.stop(0)


def test_main_rejects_bad_flags(tmp_path):
    from lesslabels.scorer.main import main

    with pytest.raises(SystemExit):
        main(["--port", "0", "--checkpoint-dir", str(tmp_path), "--cache-size", "0"])
    with pytest.raises(SystemExit):
        main(["--port", "0", "--checkpoint-dir", str(tmp_path), "--max-texts", "0"])
    for bad in ("-0.5", "nan"):
        with pytest.raises(SystemExit):
            main(["--port", "0", "--checkpoint-dir", str(tmp_path), "--refine-below", bad])
    for flag in ("--threads", "--batch-workers"):
        with pytest.raises(SystemExit):
            main(["--port", "0", "--checkpoint-dir", str(tmp_path), flag, "-1"])


@pytest.mark.slow
def test_real_minilm_checkpoint_scores(tmp_path):
    """The bundled all-MiniLM-L6-v2 with a fresh head: loads, scores, truncates at 256 tokens."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from lesslabels.modeling.models import default_model_path

    base = default_model_path()
    store = CheckpointStore(tmp_path)
    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(base, num_labels=3)
    manifest = {"run_id": 3, "labels": LABELS, "base_model": "default", "hyperparameters": {"max_length": 64}}
    with store.publish(manifest) as folder:
        model.save_pretrained(folder)
        AutoTokenizer.from_pretrained(base).save_pretrained(folder)
    cache = ModelCache(store)
    try:
        scores = cache.score(ModelSpec(latest_of_run=3), TEXTS + ["flight " * 200], embeddings=True)
        assert scores.probabilities.shape == (len(TEXTS) + 1, 3)
        assert scores.embeddings.shape[1] == 384
        assert scores.truncated.tolist() == [False] * len(TEXTS) + [True]
        with torch.inference_mode():
            tok = AutoTokenizer.from_pretrained(base)
            enc = tok(TEXTS, padding=True, truncation=True, max_length=64, return_tensors="pt")
            ref = torch.softmax(model.eval()(**enc).logits, -1).numpy()
        np.testing.assert_allclose(scores.probabilities[: len(TEXTS)], ref, atol=1e-4)
    finally:
        cache.close()


def test_model_dir_flag_is_repeatable_and_falls_back_to_the_environment(tmp_path, monkeypatch):
    import argparse
    import os

    from lesslabels.common.config import add_model_dir_flag, model_dirs

    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    parser = argparse.ArgumentParser()
    add_model_dir_flag(parser)
    assert model_dirs(parser.parse_args(["--model-dir", str(a), "--model-dir", str(b)])) == (str(a), str(b))
    monkeypatch.setenv("LESSLABELS_MODEL_DIR", f"{a}{os.pathsep}{b}")
    assert model_dirs(parser.parse_args([])) == (str(a), str(b))
    assert model_dirs(parser.parse_args(["--model-dir", str(a)])) == (str(a),)  # the flag wins
    with pytest.raises(SystemExit, match="not a folder"):
        model_dirs(parser.parse_args(["--model-dir", str(tmp_path / "missing")]))
