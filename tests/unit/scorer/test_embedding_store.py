"""The embedding store: texts embedded once per model, kept on disk across restarts, added to
incrementally, safe under concurrent requests, damaged segments never deleted."""

from __future__ import annotations

import concurrent.futures
import logging
import threading

import numpy as np
import pytest

from lesslabels.common import errors
from lesslabels.pool.texthash import text_hash as pool_text_hash
from lesslabels.scorer import embedding_store
from lesslabels.scorer.embedding_store import EmbeddingModel, EmbeddingStore, folder_identity, text_hash

MODEL = EmbeddingModel(source="/models/enc", files="abc", max_length=64, precision="fp32")
DIM = 8


class CountingEncoder:
    """A deterministic fake encoder (a vector per text from its hash) that counts what it embeds."""

    def __init__(self):
        self.calls: list[list[str]] = []
        self.lock = threading.Lock()

    def __call__(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        with self.lock:
            self.calls.append(list(texts))
        vectors = np.stack([np.random.default_rng(abs(text_hash(t))).normal(size=DIM) for t in texts])
        return vectors.astype(np.float32), np.array([len(t) > 20 for t in texts])

    @property
    def texts(self) -> list[str]:
        return [t for call in self.calls for t in call]


def test_the_text_hash_is_the_pools():
    for text in ["", "hello", "flights to boston ✈", "a\ud800b", "x" * 10_000]:
        assert text_hash(text) == pool_text_hash(text)


def test_texts_are_embedded_once_and_reused_after_a_restart(tmp_path):
    encoder = CountingEncoder()
    texts = [f"text {i}" for i in range(30)]
    first = EmbeddingStore(tmp_path).embeddings(MODEL, texts, encoder)
    assert first.computed == 30 and len(encoder.texts) == 30
    np.testing.assert_array_equal(first.vectors, encoder(texts)[0])  # row-aligned with the texts
    encoder.calls.clear()

    again = EmbeddingStore(tmp_path).embeddings(MODEL, list(reversed(texts)), encoder)  # a new process
    assert encoder.calls == [] and again.computed == 0
    np.testing.assert_array_equal(again.vectors, first.vectors[::-1])
    np.testing.assert_array_equal(again.truncated, first.truncated[::-1])


def test_only_missing_texts_are_embedded_and_duplicates_once(tmp_path):
    encoder = CountingEncoder()
    store = EmbeddingStore(tmp_path, chunk=4)
    store.embeddings(MODEL, ["a", "b", "c"], encoder)
    encoder.calls.clear()
    out = store.embeddings(MODEL, ["b", "d", "d", "e", "a", "f", "g", "h", "i"], encoder)
    assert sorted(encoder.texts) == ["d", "e", "f", "g", "h", "i"]  # d once, a and b kept
    assert [len(c) for c in encoder.calls] == [4, 2]  # in chunks of at most 4
    np.testing.assert_array_equal(out.vectors[1], out.vectors[2])
    assert out.computed == 6 and store.count(MODEL) == 9


def test_another_model_key_embeds_again(tmp_path):
    encoder = CountingEncoder()
    store = EmbeddingStore(tmp_path)
    store.embeddings(MODEL, ["a", "b"], encoder)
    for other in (
        EmbeddingModel(source="/models/enc", files="abd", max_length=64, precision="fp32"),  # other weights
        EmbeddingModel(source="/models/enc", files="abc", max_length=128, precision="fp32"),
        EmbeddingModel(source="/models/enc", files="abc", max_length=64, precision="bf16"),
    ):
        encoder.calls.clear()
        store.embeddings(other, ["a", "b"], encoder)
        assert encoder.texts == ["a", "b"], other


def test_two_requests_at_once_embed_each_text_once(tmp_path):
    encoder = CountingEncoder()
    store = EmbeddingStore(tmp_path, chunk=8)
    texts = [f"shared text {i}" for i in range(40)]
    barrier = threading.Barrier(4)

    def ask(k: int):
        barrier.wait()
        return store.embeddings(MODEL, texts[k:] + texts[:k], encoder).vectors

    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        results = list(pool.map(ask, range(4)))
    assert sorted(encoder.texts) == sorted(texts)
    for k, vectors in enumerate(results):
        np.testing.assert_array_equal(vectors, np.roll(results[0], -k, axis=0))


def test_two_processes_on_one_folder_see_each_others_rows(tmp_path):
    encoder = CountingEncoder()
    one, two = EmbeddingStore(tmp_path), EmbeddingStore(tmp_path)
    two.embeddings(MODEL, ["x"], encoder)  # loaded before one writes
    one.embeddings(MODEL, ["a", "b"], encoder)
    encoder.calls.clear()
    two.embeddings(MODEL, ["a", "b", "c"], encoder)
    assert encoder.texts == ["c"]  # two looked on disk before computing


def test_many_segments_are_compacted_without_losing_rows(tmp_path, monkeypatch):
    monkeypatch.setattr(embedding_store, "MAX_SEGMENTS", 3)
    encoder = CountingEncoder()
    store = EmbeddingStore(tmp_path, chunk=2)
    texts = [f"t{i}" for i in range(11)]
    expected = store.embeddings(MODEL, texts, encoder).vectors
    folder = tmp_path / MODEL.key
    assert len(list(folder.glob("seg-*.npz"))) <= 3
    encoder.calls.clear()
    again = EmbeddingStore(tmp_path).embeddings(MODEL, texts, encoder)
    assert encoder.calls == []
    np.testing.assert_array_equal(again.vectors, expected)


def test_a_damaged_segment_is_logged_left_in_place_and_its_texts_embedded_again(tmp_path, caplog):
    encoder = CountingEncoder()
    EmbeddingStore(tmp_path).embeddings(MODEL, ["a", "b"], encoder)
    (segment,) = (tmp_path / MODEL.key).glob("seg-*.npz")
    segment.write_bytes(b"not a numpy file")
    encoder.calls.clear()
    with caplog.at_level(logging.WARNING):
        out = EmbeddingStore(tmp_path).embeddings(MODEL, ["a", "b"], encoder)
    assert encoder.texts == ["a", "b"] and out.vectors.shape == (2, DIM)
    assert "embedding_segment_unreadable" in caplog.text
    assert segment.exists()  # nothing stored is deleted


def test_a_cancelled_computation_stops_between_chunks_and_keeps_what_it_did(tmp_path):
    encoder = CountingEncoder()
    store = EmbeddingStore(tmp_path, chunk=2)
    with pytest.raises(errors.Cancelled):
        store.embeddings(MODEL, ["a", "b", "c", "d", "e"], encoder, cancelled=lambda: len(encoder.calls) >= 1)
    assert encoder.texts == ["a", "b"]
    encoder.calls.clear()
    store.embeddings(MODEL, ["a", "b", "c"], encoder)
    assert encoder.texts == ["c"]


def test_an_encoder_that_returns_the_wrong_number_of_rows_stores_nothing(tmp_path):
    store = EmbeddingStore(tmp_path)
    with pytest.raises(RuntimeError, match="1 rows for 2 texts"):
        store.embeddings(MODEL, ["a", "b"], lambda texts: (np.zeros((1, DIM), np.float32), np.zeros(1, bool)))
    assert store.count(MODEL) == 0


def test_folder_identity_follows_the_files(tmp_path):
    (tmp_path / "model.safetensors").write_bytes(b"weights")
    (tmp_path / "config.json").write_text("{}")
    before = folder_identity(str(tmp_path))
    assert folder_identity(str(tmp_path)) == before
    (tmp_path / "model.safetensors").write_bytes(b"other weights")
    assert folder_identity(str(tmp_path)) != before
