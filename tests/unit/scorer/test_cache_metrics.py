"""The scorer's model cache counts hits, misses and evictions (``lesslabels.common.metrics``)."""

from __future__ import annotations

import shutil

import pytest
from prometheus_client import REGISTRY

from lesslabels.scorer.model_cache import CacheConfig, ModelCache, ModelSpec

pytestmark = pytest.mark.usefixtures("few_torch_threads")


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_hits_misses_and_evictions_are_counted(store_and_id, tiny_bert_dir, tmp_path):
    store, checkpoint_id = store_and_id
    other = shutil.copytree(tiny_bert_dir, tmp_path / "other-bert")  # a second base model
    cache = ModelCache(store, CacheConfig(cache_size=1, model_dirs=(str(tiny_bert_dir), str(other))))
    names = [
        ("lesslabels_scorer_model_cache_lookups_total", {"result": "hit"}),
        ("lesslabels_scorer_model_cache_lookups_total", {"result": "miss"}),
        ("lesslabels_scorer_model_cache_evictions_total", {}),
    ]
    before = [sample(n, **labels) for n, labels in names]
    try:
        cache.load(ModelSpec(checkpoint_id=checkpoint_id))  # miss
        cache.load(ModelSpec(checkpoint_id=checkpoint_id))  # hit
        cache.load(ModelSpec(base_model=str(other)))  # miss, evicts the checkpoint
        cache.load(ModelSpec(checkpoint_id=checkpoint_id))  # miss, evicts the base model
        assert cache.unload(checkpoint_id)  # asked for: not an eviction
    finally:
        cache.close()
    hits, misses, evictions = (sample(n, **labels) - b for (n, labels), b in zip(names, before, strict=True))
    assert (hits, misses, evictions) == (1, 3, 2)
