"""Former home of the scorer's model cache, now :mod:`lesslabels.scorer.model_cache`; the old
names stay importable for code that still uses them."""

from lesslabels.scorer.model_cache import CacheConfig as EngineConfig
from lesslabels.scorer.model_cache import LoadedEntry, ModelSpec, Scores, parallelism
from lesslabels.scorer.model_cache import ModelCache as ScorerEngine

__all__ = ["EngineConfig", "LoadedEntry", "ModelSpec", "ScorerEngine", "Scores", "parallelism"]
