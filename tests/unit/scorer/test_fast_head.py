"""The fast head: the logistic regression itself, and ModelRef.fast_head through a real pool and
scorer over gRPC (the tiny random BERT as the base encoder), with the SDK."""

from __future__ import annotations

import grpc
import numpy as np
import pytest

from lesslabels.client import FastHead, ScorerClient
from lesslabels.client import errors as client_errors
from lesslabels.common import errors
from lesslabels.common.channels import make_channel
from lesslabels.common.checkpoints import labelled_set_hash
from lesslabels.scorer import fast_head
from lesslabels.scorer.model_cache import CacheConfig
from lesslabels.v1 import common_pb2, run_pb2, run_store_pb2, scorer_pb2, scorer_pb2_grpc
from tests.helpers import import_rows, pool_stub, server_settings_for_tests, submit_labels

pytestmark = pytest.mark.usefixtures("few_torch_threads")

LABELS = ["flight", "weather", "hotel"]


# -- the head --------------------------------------------------------------------------------
def _clusters(n_per_class: int, classes: int, dim: int = 16, seed: int = 0) -> tuple[np.ndarray, list[int]]:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(classes, dim)) * 4
    x = np.concatenate([centres[c] + rng.normal(size=(n_per_class, dim)) for c in range(classes)])
    return x.astype(np.float32), [c for c in range(classes) for _ in range(n_per_class)]


def test_the_head_learns_a_separable_set_and_gives_distributions():
    x, y = _clusters(60, 3)
    head = fast_head.fit(x[::2], [LABELS[c] for c in y[::2]], LABELS, version="v")
    probs = head.probabilities(x[1::2])  # [90, 3], points it was not fit on
    assert probs.shape == (90, 3) and probs.dtype == np.float32
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    assert (probs.argmax(axis=1) == np.array(y[1::2])).mean() >= 0.95
    assert head.train_count == 90 and head.fit_seconds > 0


def test_a_class_without_labels_gets_zero_and_the_label_order_stays():
    x, y = _clusters(10, 2)
    label_set = ["hotel", "flight", "weather"]  # "hotel" has no label yet
    head = fast_head.fit(x, [["flight", "weather"][c] for c in y], label_set, version="v")
    probs = head.probabilities(x)
    assert head.labels == label_set
    np.testing.assert_array_equal(probs[:, 0], 0.0)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    assert (probs.argmax(axis=1) == np.array([1 + c for c in y])).all()
    assert head.probabilities(np.zeros((0, 16), np.float32)).shape == (0, 3)


def test_the_head_refuses_one_class_and_labels_outside_the_set():
    x, _ = _clusters(5, 1)
    with pytest.raises(errors.FailedPrecondition, match="at least 2 classes.*only 'flight'"):
        fast_head.fit(x, ["flight"] * 5, LABELS, version="v")
    with pytest.raises(errors.FailedPrecondition, match="at least 2 classes"):
        fast_head.fit(x[:0], [], LABELS, version="v")
    with pytest.raises(errors.InvalidArgument, match="outside the label set: 'train'"):
        fast_head.fit(x[:2], ["flight", "train"], LABELS, version="v")


def test_the_head_cache_fits_once_per_key():
    cache = fast_head.HeadCache(size=2)
    x, y = _clusters(5, 2)
    fits = []

    def fit(version):
        def go():
            fits.append(version)
            return fast_head.fit(x, [LABELS[c] for c in y], LABELS, version=version)

        return go

    assert cache.get("a", fit("a")).version == "a"
    assert cache.get("a", fit("a2")).version == "a"  # cached: not fit again
    cache.get("b", fit("b"))
    cache.get("c", fit("c"))  # evicts a
    cache.get("a", fit("a3"))
    assert fits == ["a", "b", "c", "a3"]
    with pytest.raises(ValueError):
        cache.get("d", lambda: (_ for _ in ()).throw(ValueError("no")))
    assert cache.get("d", fit("d")).version == "d"  # a failed fit leaves nothing behind


def test_a_refit_starts_from_the_runs_last_head_and_needs_fewer_iterations():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 5, 400)
    x = (rng.normal(size=(5, 32))[y] + rng.normal(size=(400, 32))).astype(np.float32)  # overlapping classes
    labels = [f"c{c}" for c in range(6)]  # c5 has no label yet
    targets = [labels[c] for c in y]
    first = fast_head.fit(x[:380], targets[:380], labels, version="1")  # 20 labels ago
    cold = fast_head.fit(x, targets, labels, version="2")
    warm = fast_head.fit(x, targets, labels, version="2", start=first)
    assert warm.iterations < cold.iterations / 2
    np.testing.assert_allclose(warm.probabilities(x), cold.probabilities(x), atol=0.02)  # the same optimum
    extra = np.concatenate([x, x[:3] + 5.0])  # a new class arrives: its weights start at 0
    grown = fast_head.fit(extra, targets + ["c5"] * 3, labels, version="3", start=warm)
    assert len(grown.classes) == 6 and grown.probabilities(extra[-3:]).argmax(axis=1).tolist() == [5, 5, 5]
    pair = [i for i in range(400) if y[i] < 2]
    two = fast_head.fit(x[pair], [targets[i] for i in pair], labels, version="4", start=warm)  # 2 classes: cold
    assert len(two.classes) == 2


# -- over gRPC ---------------------------------------------------------------------------------
TRAIN = (
    [("flight", f"show me flights from city {i} to city {i + 1}") for i in range(8)]
    + [("weather", f"what is the weather like in town {i} tomorrow") for i in range(8)]
    + [("hotel", f"book a hotel room in place {i}") for i in range(4)]
)


@pytest.fixture
def head_scorer(tmp_path, pool_address, tiny_bert_dir):
    """A pool with dataset "trips" (20 train texts, labels flight/weather/hotel) and a run on it,
    and a scorer on that pool that may use the tiny BERT as a base model."""
    from lesslabels.scorer.main import build_server

    import_rows(pool_address, "trips", TRAIN)
    stub = pool_stub(pool_address)
    config = run_pb2.RunConfig(dataset="trips")
    config.seed_size.count = 4
    config.batch_size.count = 4
    config.stopping.max_rounds = 2
    run = stub.CreateRun(run_store_pb2.CreateRunRequest(config=config), timeout=10)
    ids = {text: s_id for s_id, text in _ids(pool_address)}

    def start():
        server = build_server(
            server_settings_for_tests(),
            str(tmp_path / "checkpoints"),
            pool_address,
            cache_config=CacheConfig(max_batch_size=8, max_tokens=256, max_wait_ms=5, model_dirs=(str(tiny_bert_dir),)),
            embedding_dir=str(tmp_path / "embeddings"),
        )
        server.start()
        server.set_serving()
        servers.append(server)
        return server

    servers: list = []
    start()

    class Env:
        pass

    env = Env()
    env.run_id = run.id  # type: ignore[attr-defined]
    env.new_run = lambda: stub.CreateRun(run_store_pb2.CreateRunRequest(config=config), timeout=10).id  # type: ignore[attr-defined]
    env.ids = ids  # type: ignore[attr-defined]
    env.stub = stub  # type: ignore[attr-defined]
    env.base = str(tiny_bert_dir)  # type: ignore[attr-defined]
    env.servers = servers  # type: ignore[attr-defined]
    env.start = start  # type: ignore[attr-defined]
    env.server = lambda: servers[-1]  # type: ignore[attr-defined]
    env.client = lambda: ScorerClient(f"127.0.0.1:{servers[-1].port}", timeout=60)  # type: ignore[attr-defined]
    env.label = lambda pairs: submit_labels(  # type: ignore[attr-defined]
        stub, [(ids[text], label) for label, text in pairs], run_id=run.id, dataset="trips"
    )
    yield env
    for server in servers:
        server.stop(0)


def _ids(pool_address):
    from lesslabels.client import PoolClient

    with PoolClient(pool_address) as pool:
        return [(s.id, s.text) for s in pool.list_samples("trips")]


def _encoder_texts(server) -> int:
    """Texts the scorer's embedding store holds for the tiny BERT."""
    heads = server.fast_heads
    _, model = heads.embedding_model(heads.cache.places.resolve(next(iter(heads.cache.config.model_dirs))))
    return heads.store.count(model)


def test_score_pool_with_the_fast_head(head_scorer):
    env = head_scorer
    env.label(TRAIN[:3] + TRAIN[8:11])  # 3 flight, 3 weather; no hotel label yet
    with env.client() as scorer:
        scores = scorer.score_pool("trips", run_id=env.run_id, fast_head=FastHead(env.run_id, base_model=env.base))
    assert len(scores.sample_ids) == 14  # the unlabelled ones
    assert scores.labels == ("flight", "weather", "hotel")  # the dataset's label set, in order
    np.testing.assert_allclose(scores.probabilities.sum(axis=1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(scores.probabilities[:, 2], 0.0)  # no hotel label: probability 0
    pairs = [(env.ids[text], label) for label, text in TRAIN[:3] + TRAIN[8:11]]
    expected = f"head-{env.run_id}-{labelled_set_hash(pairs)[:12]}-"
    assert scores.checkpoint_id.startswith(expected)
    assert scores.uncertainty.entropy.shape == (14,)


def test_embeddings_are_computed_once_and_reused_by_a_restarted_scorer(head_scorer):
    env = head_scorer
    env.label(TRAIN[:2] + TRAIN[8:10])
    heads = env.server().fast_heads
    calls = []
    real = heads.cache.score

    def counting(spec, texts, **kw):
        calls.append(len(texts))
        return real(spec, texts, **kw)

    heads.cache.score = counting
    ref = FastHead(env.run_id, base_model=env.base)
    with env.client() as scorer:
        first = scorer.score_pool("trips", run_id=env.run_id, fast_head=ref, chunk_size=5)
        assert sum(calls) == 20  # the 4 labelled texts, then the 16 others page by page
        again = scorer.score_pool("trips", run_id=env.run_id, fast_head=ref, chunk_size=5)
    assert sum(calls) == 20  # nothing embedded again, and the head was not fit again
    assert heads.heads.fits == 1
    np.testing.assert_allclose(again.probabilities, first.probabilities)

    env.server().stop(0)
    restarted = env.start()
    restarted.model_cache.score = lambda *a, **k: pytest.fail("a restarted scorer embedded texts again")
    with env.client() as scorer:
        after = scorer.score_pool("trips", run_id=env.run_id, fast_head=ref)
    assert after.checkpoint_id == first.checkpoint_id
    np.testing.assert_allclose(after.probabilities, first.probabilities, atol=1e-6)


def test_the_version_changes_with_the_labels_and_score_agrees_with_score_pool(head_scorer):
    env = head_scorer
    env.label(TRAIN[:2] + TRAIN[8:10])
    ref = FastHead(env.run_id, dataset="trips", base_model=env.base)
    texts = [TRAIN[5][1], TRAIN[12][1], "something else entirely"]
    with env.client() as scorer:
        before = scorer.score(texts, fast_head=ref, embeddings=True)
        env.label([TRAIN[16]])  # a hotel label arrives
        after = scorer.score(texts, fast_head=ref)
        pool = scorer.score_pool(
            "trips",
            run_id=env.run_id,
            include_all=True,
            sample_ids=[env.ids[TRAIN[5][1]], env.ids[TRAIN[12][1]]],
            fast_head=FastHead(env.run_id, base_model=env.base),
        )
    assert before.checkpoint_id != after.checkpoint_id
    assert before.checkpoint_id.startswith(f"head-{env.run_id}-") and after.checkpoint_id.startswith(
        f"head-{env.run_id}-"
    )
    assert (before.probabilities[:, 2] == 0).all() and (after.probabilities[:, 2] > 0).all()
    assert before.embeddings is not None and before.embeddings.shape == (3, 32)  # the tiny BERT's hidden size
    assert pool.checkpoint_id == after.checkpoint_id
    rows = {sid: i for i, sid in enumerate(pool.sample_ids)}
    for k, text in enumerate(texts[:2]):
        np.testing.assert_allclose(pool.probabilities[rows[env.ids[text]]], after.probabilities[k], atol=1e-6)


def _stub(env):
    channel = make_channel(f"127.0.0.1:{env.server().port}")
    return channel, scorer_pb2_grpc.ScorerServiceStub(channel)


def _pool_request(env, **head):
    ref = common_pb2.ModelRef(fast_head=common_pb2.FastHead(**head))
    return scorer_pb2.ScorePoolRequest(model=ref, dataset="trips", run_id=env.run_id)


@pytest.mark.parametrize(
    "case, code, fragment",
    [
        ("unknown run", grpc.StatusCode.NOT_FOUND, "run 999 not found"),
        ("one class", grpc.StatusCode.FAILED_PRECONDITION, "needs labels of at least 2 classes"),
        ("no labels", grpc.StatusCode.FAILED_PRECONDITION, "its labelled set has no labels"),
        ("unknown base model", grpc.StatusCode.INVALID_ARGUMENT, "base_model must be 'default'"),
        ("negative run", grpc.StatusCode.INVALID_ARGUMENT, "fast_head.run_id must be a run id"),
        ("other dataset", grpc.StatusCode.INVALID_ARGUMENT, "is not the dataset scored"),
        ("unknown dataset", grpc.StatusCode.NOT_FOUND, "dataset 'nope' not found"),
    ],
)
def test_bad_fast_head_requests_get_clear_errors(head_scorer, case, code, fragment):
    env = head_scorer
    if case == "one class":
        env.label(TRAIN[:3])
    else:
        env.label(TRAIN[:2] + TRAIN[8:10])
    head = {"run_id": env.run_id, "base_model": env.base}
    request = _pool_request(env, **head)
    if case == "unknown run":
        request = _pool_request(env, **{**head, "run_id": 999})
    elif case == "no labels":
        fresh = env.new_run()
        request = _pool_request(env, **{**head, "run_id": fresh})
    elif case == "unknown base model":
        request = _pool_request(env, **{**head, "base_model": "/etc"})
    elif case == "negative run":
        request = _pool_request(env, **{**head, "run_id": -3})
    elif case == "other dataset":
        request = _pool_request(env, **head, dataset="other")
    elif case == "unknown dataset":
        request.dataset = "nope"
    channel, stub = _stub(env)
    with pytest.raises(grpc.RpcError) as info:
        list(stub.ScorePool(request, timeout=60))
    assert info.value.code() == code, info.value.details()
    assert fragment in info.value.details()
    channel.close()


def test_score_and_load_refuse_what_a_fast_head_cannot_do(head_scorer):
    env = head_scorer
    env.label(TRAIN[:2] + TRAIN[8:10])
    channel, stub = _stub(env)
    ref = common_pb2.ModelRef(fast_head=common_pb2.FastHead(run_id=env.run_id, base_model=env.base))
    with pytest.raises(grpc.RpcError) as info:
        stub.Score(scorer_pb2.ScoreRequest(model=ref, texts=["x"]), timeout=30)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "fast_head.dataset is required" in info.value.details()
    with pytest.raises(grpc.RpcError) as info:
        stub.LoadCheckpoint(scorer_pb2.LoadCheckpointRequest(model=ref), timeout=30)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "cannot be loaded" in info.value.details()
    channel.close()
    with env.client() as scorer:
        with pytest.raises(client_errors.InvalidArgument, match="exactly one of"):
            scorer.score(["x"], run=1, fast_head=FastHead(env.run_id, dataset="trips"))
        with pytest.raises(client_errors.InvalidArgument, match="must be a lesslabels.contract.FastHead"):
            scorer.score(["x"], fast_head=env.run_id)  # type: ignore[arg-type]


def test_a_scorer_without_a_pool_refuses_the_fast_head(tmp_path):
    from lesslabels.scorer.main import build_server

    server = build_server(server_settings_for_tests(), str(tmp_path / "checkpoints"))
    server.start()
    server.set_serving()
    try:
        with ScorerClient(f"127.0.0.1:{server.port}", timeout=30) as scorer:
            with pytest.raises(client_errors.FailedPrecondition, match="no pool address"):
                scorer.score(["x"], fast_head=FastHead(1, dataset="trips"))
    finally:
        server.stop(0)


def test_embed_pool_keeps_the_embeddings_the_fast_head_reads_later(head_scorer):
    env = head_scorer
    heads = env.server().fast_heads
    seen = []
    with env.client() as scorer:
        first = scorer.embed_pool("trips", base_model=env.base, chunk_size=8, progress=lambda d, t: seen.append((d, t)))
        assert (first.done, first.total, first.computed) == (20, 20, 20)  # every training text, none kept before
        assert seen == [(8, 20), (16, 20), (20, 20)]
        assert _encoder_texts(env.server()) == 20
        again = scorer.embed_pool("trips", base_model=env.base)
        assert (again.done, again.computed) == (20, 0)  # a lookup each
        # The fast head's first fit and its scoring of the pool embed nothing now.
        heads.cache.score = lambda *a, **k: pytest.fail("the fast head embedded a text EmbedPool had kept")
        env.label(TRAIN[:2] + TRAIN[8:10])
        scores = scorer.score_pool("trips", run_id=env.run_id, fast_head=FastHead(env.run_id, base_model=env.base))
    assert len(scores.sample_ids) == 16


def test_embed_pool_of_one_shard_embeds_that_shard_only(head_scorer):
    from lesslabels.contract import Shard

    env = head_scorer
    with env.client() as scorer:
        halves = [scorer.embed_pool("trips", base_model=env.base, shard=Shard(i, 2)) for i in range(2)]
    assert sum(h.computed for h in halves) == 20 and all(0 < h.done < 20 for h in halves)
    assert _encoder_texts(env.server()) == 20


@pytest.mark.parametrize(
    "request_fields, code, fragment",
    [
        ({"dataset": ""}, grpc.StatusCode.INVALID_ARGUMENT, "dataset is required"),
        ({"dataset": "nope"}, grpc.StatusCode.NOT_FOUND, "dataset 'nope' not found"),
        ({"base_model": "/etc"}, grpc.StatusCode.INVALID_ARGUMENT, "base_model must be 'default'"),
        ({"shard": common_pb2.Shard(index=3, count=2)}, grpc.StatusCode.INVALID_ARGUMENT, "shard"),
    ],
)
def test_bad_embed_pool_requests_get_clear_errors_and_embed_nothing(head_scorer, request_fields, code, fragment):
    env = head_scorer
    request = scorer_pb2.EmbedPoolRequest(**{"dataset": "trips", "base_model": env.base, **request_fields})
    channel, stub = _stub(env)
    with pytest.raises(grpc.RpcError) as info:
        list(stub.EmbedPool(request, timeout=60))
    channel.close()
    assert info.value.code() == code, info.value.details()
    assert fragment in info.value.details()
    assert _encoder_texts(env.server()) == 0


def test_a_scorer_without_a_pool_refuses_embed_pool(tmp_path):
    from lesslabels.scorer.main import build_server

    server = build_server(server_settings_for_tests(), str(tmp_path / "checkpoints"))
    server.start()
    server.set_serving()
    try:
        with ScorerClient(f"127.0.0.1:{server.port}", timeout=30) as scorer:
            with pytest.raises(client_errors.FailedPrecondition, match="no pool address"):
                scorer.embed_pool("trips")
    finally:
        server.stop(0)
