"""The scorer's model cache: a small LRU cache of loaded models, each with its own dynamic batcher,
and scoring through them (probabilities, uncertainty, embeddings). Knows nothing of gRPC."""

from __future__ import annotations

import collections
import concurrent.futures
import contextlib
import dataclasses
import datetime
import functools
import logging
import os
import threading
import time
from collections.abc import Iterator, Sequence

import numpy as np

from lesslabels.common import errors, metrics, uncertainty
from lesslabels.common.checkpoints import Checkpoint
from lesslabels.common.timeutil import utcnow
from lesslabels.contract.vocabulary import RUNTIMES
from lesslabels.modeling import inference, onnx_runtime
from lesslabels.modeling.models import ModelPlaces
from lesslabels.scorer import malloc
from lesslabels.scorer.batching import BatcherClosed, DynamicBatcher
from lesslabels.scorer.ports import CheckpointSource

log = logging.getLogger(__name__)

BASE_PREFIX = "base:"
#: Token ids of one call from which the allocator's free pages are handed back before its forward
#: passes (a few ms, against seconds of scoring): what receiving and tokenising the texts freed.
HAND_BACK_AFTER_TOKENS = 1 << 18
#: Texts of one call tokenised and queued at a time. A call holds the token ids of at most two
#: windows (the one being scored and the next, tokenised meanwhile) besides its results, never
#: those of all its texts (4,096 texts at max_length 512 held 8.6 MiB of ids through their forward
#: passes: issue 25, F1). Rows are sorted by length within a window, which is plenty to keep
#: padding low; concurrent calls' windows still share batches.
WINDOW_TEXTS = 512


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """Which model to use: exactly one of a checkpoint id, the latest or the best (on validation)
    checkpoint of a run, or a base model."""

    checkpoint_id: str = ""
    latest_of_run: int = 0
    base_model: str = ""
    best_of_run: int = 0

    def describe(self) -> str:
        if self.checkpoint_id:
            return f"checkpoint {errors.quote(self.checkpoint_id)}"
        if self.latest_of_run:
            return f"latest checkpoint of run {self.latest_of_run}"
        if self.best_of_run:
            return f"best checkpoint of run {self.best_of_run}"
        return f"base model {errors.quote(self.base_model)}"


def _check_one(spec: ModelSpec) -> None:
    given = sum(bool(x) for x in (spec.checkpoint_id, spec.latest_of_run, spec.best_of_run, spec.base_model))
    if given != 1:
        raise errors.InvalidArgument(
            "name exactly one model: a checkpoint id, latest_of_run, best_of_run or a base model"
        )
    for field in ("latest_of_run", "best_of_run"):
        if getattr(spec, field) < 0:
            raise errors.InvalidArgument(f"{field} must be positive, got {getattr(spec, field)}")


@dataclasses.dataclass(frozen=True)
class CacheConfig:
    """How the cache loads and runs models: how many it keeps, where, in which precision, and how
    its batchers group texts."""

    cache_size: int = 3
    device: str = ""  # "" = CUDA when present, else CPU
    precision: str = "auto"
    max_length: int = 0  # 0 = the checkpoint's training max_length, else the model's limit
    max_batch_size: int = 256
    max_tokens: int = 8192
    max_wait_ms: float = 5.0
    # With bf16/fp16: rows whose top probability is below this are scored again in fp32. A logit
    # error e moves a probability by at most about 2e * p(1 - p) (p the top probability), so the
    # confident rows barely move and the uncertain ones (what acquisition ranks) get exact fp32
    # scores. Measured e gives at most 0.05 * p(1 - p), so 0.008 at 0.8; the largest change on
    # two ATIS checkpoints was 0.0054 (bench/README.md). 0 = off.
    refine_below: float = 0.8
    # Batches run side by side on this many threads (see parallelism()); 1 = one at a time.
    batch_workers: int = 1
    # Folders a request's base_model may name a model in (besides the bundled model and the
    # checkpoint store): lesslabels.modeling.models.ModelPlaces.
    model_dirs: tuple[str, ...] = ()
    # The engine for checkpoints: "torch", "onnx" (the ONNX graphs the trainer published with a
    # checkpoint, int8 where its check passed: lesslabels.modeling.onnx_runtime; torch for a
    # checkpoint without them and for base models) or "auto" (onnx on a CPU with onnxruntime
    # installed, else torch; on CUDA "onnx" runs the fp32 graph on ONNX Runtime's CUDA provider, where
    # installed). ``onnx_threads``: threads per ONNX forward (torch's are set per process).
    runtime: str = "torch"
    onnx_threads: int = 1


def pick_runtime(runtime: str, device: str = "") -> str:
    """ "torch" or "onnx" for ``runtime`` (RUNTIMES) on ``device``; ValueError for an unknown name,
    or "onnx" without onnxruntime, or on CUDA without its CUDA provider (``onnxruntime-gpu``).
    ``auto`` is torch on CUDA: bf16 autocast there, where ONNX Runtime would serve the fp32 graph
    (``lesslabels.modeling.onnx_runtime``), and no measurement says the CUDA provider is faster."""
    if runtime not in RUNTIMES:
        raise ValueError(f"runtime {runtime!r}: expected one of {', '.join(RUNTIMES)}")
    on_cpu = inference.pick_device(device).type == "cpu"
    if runtime == "onnx":
        if not onnx_runtime.available():
            raise ValueError("runtime onnx needs onnxruntime: pip install 'lesslabels[onnx]'")
        if not on_cpu and not onnx_runtime.cuda_available():
            raise ValueError(
                "runtime onnx on CUDA needs ONNX Runtime's CUDAExecutionProvider (pip install onnxruntime-gpu); "
                "or use runtime torch (or auto)"
            )
    if runtime == "auto":
        return "onnx" if on_cpu and onnx_runtime.available() else "torch"
    return runtime


def parallelism(device: str = "", threads: int = 0, batch_workers: int = 0) -> tuple[int, int]:
    """(batch workers, torch threads per forward) for a scorer process. ``threads`` = CPU threads
    to use (0 = all cores), ``batch_workers`` = 0 for automatic: on a CPU one worker per thread,
    each forward single-threaded (several small batches side by side beat one batch on every
    core: 1.4x for MiniLM on 2 cores, bench/README.md); on CUDA one worker."""
    threads = threads or os.cpu_count() or 1
    if inference.pick_device(device).type != "cpu":
        return batch_workers or 1, threads
    workers = batch_workers or threads
    return workers, max(1, threads // workers)


@dataclasses.dataclass
class LoadedEntry:
    key: str  # the cache's own key: a base model's is its path on this server (never shown to callers)
    checkpoint_id: str  # "" for a base model
    base_model: str  # as callers may be shown it: a name, never a server path
    model: inference.InferenceModel | onnx_runtime.OnnxModel
    batcher: DynamicBatcher
    loaded_at: datetime.datetime
    # fp32 re-scoring of uncertain rows: on when the model runs in reduced precision
    refine: bool = False
    #: What callers know the model by: the checkpoint id, or ``base:`` and the base model's name
    #: (ModelPlaces.name_of); UnloadCheckpoint takes it.
    name: str = ""

    @property
    def labels(self) -> list[str]:
        return self.model.labels

    @property
    def runtime(self) -> str:
        """What computes its scores: "torch", "onnx-int8" or "onnx-fp32" (onnx_runtime's names)."""
        return getattr(self.model, "runtime", onnx_runtime.TORCH)


@dataclasses.dataclass
class Scores:
    """Scores of n texts. Arrays are row-aligned with the input texts."""

    checkpoint_id: str
    labels: list[str]
    probabilities: np.ndarray  # [n, n_classes] float32 ([n, 0] for a base model)
    predicted: np.ndarray  # [n] int, index into labels (-1 for a base model)
    entropy: np.ndarray  # [n]
    margin: np.ndarray  # [n]
    least_confidence: np.ndarray  # [n]
    ratio: np.ndarray  # [n]
    truncated: np.ndarray  # [n] bool
    embeddings: np.ndarray | None  # [n, hidden] float32 when asked for

    def __len__(self) -> int:
        return len(self.truncated)

    def predicted_labels(self) -> list[str]:
        return [self.labels[i] if i >= 0 else "" for i in self.predicted]

    @classmethod
    def from_probabilities(
        cls,
        checkpoint_id: str,
        labels: Sequence[str],
        probs: np.ndarray,
        truncated: np.ndarray,
        embeddings: np.ndarray | None = None,
    ) -> Scores:
        """Scores with the prediction and uncertainty of ``probs`` ``[n, c]`` (``c`` = 0: a base model)."""
        n = len(truncated)
        if len(labels):
            predicted = probs.argmax(axis=1)
            ent, mar = uncertainty.entropy(probs), uncertainty.margin(probs)
            lc, rat = uncertainty.least_confidence(probs), uncertainty.ratio(probs)
        else:
            predicted = np.full(n, -1)
            ent = mar = lc = rat = np.zeros(n)
        return cls(
            checkpoint_id, list(labels), probs, predicted, ent, mar, lc, rat, np.asarray(truncated, bool), embeddings
        )


@dataclasses.dataclass(frozen=True)
class _Row:
    ids: np.ndarray  # [tokens] int32
    embed: bool
    full_precision: bool = False  # an fp32 re-scoring row

    def __len__(self) -> int:
        return len(self.ids)


@contextlib.contextmanager
def _load_errors(what: str, log_context: str) -> Iterator[None]:
    """Turn a model that cannot be loaded (a broken checkpoint, an allowed folder that holds no
    model) into FailedPrecondition naming ``what``. The cause names files on this server: it goes
    to the log, not to the caller."""
    try:
        yield
    except (OSError, ValueError) as exc:
        log.error("event=load_failed %s error=%r", log_context, exc)
        raise errors.FailedPrecondition(
            f"{what} cannot be loaded ({type(exc).__name__}; see the scorer's log)"
        ) from None


class ModelCache:
    """Keep the most recently used models loaded (checkpoints and base models), score texts through
    each model's dynamic batcher."""

    def __init__(self, store: CheckpointSource, config: CacheConfig | None = None):
        self.store = store
        self.config = config or CacheConfig()
        self.places = ModelPlaces(tuple(self.config.model_dirs), str(store.root))
        if self.config.cache_size < 1:
            raise ValueError(f"cache_size must be >= 1, got {self.config.cache_size}")
        if self.config.batch_workers < 1:
            raise ValueError(f"batch_workers must be >= 1, got {self.config.batch_workers}")
        if not self.config.refine_below >= 0:
            raise ValueError(f"refine_below must be >= 0, got {self.config.refine_below}")
        self.device = inference.pick_device(self.config.device)
        inference.autocast_dtype(self.config.precision, self.device)  # validates the name early
        self.runtime = pick_runtime(self.config.runtime, self.config.device)
        self._cache: collections.OrderedDict[str, LoadedEntry] = collections.OrderedDict()
        self._lock = threading.Lock()
        self._load_lock = threading.Lock()

    # -- cache -----------------------------------------------------------------------------
    def _resolve(self, spec: ModelSpec) -> tuple[str, str]:
        """(cache key, checkpoint id) for ``spec``; raises NotFound for an unknown checkpoint/run."""
        _check_one(spec)
        if spec.base_model:
            return f"{BASE_PREFIX}{self.places.resolve(spec.base_model)}", ""
        if spec.checkpoint_id:
            return spec.checkpoint_id, spec.checkpoint_id  # a cached model needs no manifest read
        checkpoint_id = self.checkpoint(spec).id
        return checkpoint_id, checkpoint_id

    def checkpoint(self, spec: ModelSpec) -> Checkpoint:
        """The published checkpoint ``spec`` names, from the store's manifests (nothing is loaded).
        NotFound for an unknown checkpoint or a run without one; InvalidArgument for a base model."""
        _check_one(spec)
        if spec.checkpoint_id:
            return self.store.get(spec.checkpoint_id)
        if spec.latest_of_run:
            return self.store.latest(spec.latest_of_run)
        if spec.best_of_run:
            return self.store.best(spec.best_of_run)
        raise errors.InvalidArgument(f"{spec.describe()} is not a published checkpoint")

    def load(self, spec: ModelSpec) -> LoadedEntry:
        """The loaded model for ``spec``, loading it (and evicting the least recently used) if needed."""
        key, checkpoint_id = self._resolve(spec)
        with self._lock:
            entry = self._cache.get(key)
            if entry is not None:
                self._cache.move_to_end(key)
                metrics.SCORER_CACHE_LOOKUPS.labels("hit").inc()
                return entry
        with self._load_lock:  # one load at a time: loads are rare and memory-heavy
            with self._lock:
                entry = self._cache.get(key)
                if entry is not None:
                    self._cache.move_to_end(key)
                    metrics.SCORER_CACHE_LOOKUPS.labels("hit").inc()  # loaded while this call waited
                    return entry
            metrics.SCORER_CACHE_LOOKUPS.labels("miss").inc()
            entry = self._load_entry(key, checkpoint_id, spec)
            evicted = []
            with self._lock:
                self._cache[key] = entry
                while len(self._cache) > self.config.cache_size:
                    evicted.append(self._cache.popitem(last=False)[1])
            metrics.SCORER_CACHE_EVICTIONS.inc(len(evicted))
            for old in evicted:
                log.info("event=model_evicted key=%s", old.key)
                old.batcher.close()
            return entry

    def _load_entry(self, key: str, checkpoint_id: str, spec: ModelSpec) -> LoadedEntry:
        cfg = self.config
        if checkpoint_id:
            checkpoint = self.store.get(checkpoint_id, verify=True)
            hp = checkpoint.manifest.get("hyperparameters") or {}
            max_length = cfg.max_length or int(hp.get("max_length") or 0)
            model: inference.InferenceModel | onnx_runtime.OnnxModel | None = self._load_onnx(checkpoint, max_length)
            if model is None:
                with _load_errors(f"checkpoint {errors.quote(checkpoint_id)}", f"id={checkpoint_id}"):
                    model = inference.load_classifier(
                        checkpoint.path,
                        labels=checkpoint.labels,
                        name=checkpoint_id,
                        device=self.device,
                        max_length=max_length,
                        precision=cfg.precision,
                    )
            base = self.places.name_of(str(checkpoint.manifest.get("base_model", "")))
        else:
            base = spec.base_model
            with _load_errors(f"base model {base[:200]!r}", f"base_model={base!r}"):
                model = inference.load_encoder(
                    key.removeprefix(BASE_PREFIX),
                    device=self.device,
                    max_length=cfg.max_length,
                    precision=cfg.precision,
                )
        reduced = model.dtype is not None or getattr(model, "runtime", "") == onnx_runtime.ONNX_INT8
        refine = cfg.refine_below > 0 and reduced and model.is_classifier
        forward = onnx_runtime.forward if isinstance(model, onnx_runtime.OnnxModel) else inference.forward
        # The fp32 re-scoring rows go through this same batcher, not a second one with threads of
        # its own: torch work from two sets of threads, even taking turns, ran about 1.4x slower
        # on 2 cores (bench/README.md).
        batcher = DynamicBatcher(
            functools.partial(self._run_batch, forward, model),
            max_batch_size=cfg.max_batch_size,
            max_tokens=cfg.max_tokens,
            max_wait_s=cfg.max_wait_ms / 1000.0,
            workers=cfg.batch_workers,
            name=f"batcher-{key}",
        )
        log.info(
            "event=model_loaded key=%s device=%s runtime=%s max_length=%d dtype=%s refine_below=%s labels=%d",
            key,
            self.device,
            getattr(model, "runtime", onnx_runtime.TORCH),
            model.max_length,
            model.dtype,
            cfg.refine_below if refine else "-",
            len(model.labels),
        )
        if not checkpoint_id:
            base = self.places.name_of(key.removeprefix(BASE_PREFIX))
        name = checkpoint_id or f"{BASE_PREFIX}{base}"
        return LoadedEntry(key, checkpoint_id, base, model, batcher, utcnow(), refine, name)

    def _load_onnx(self, checkpoint: Checkpoint, max_length: int) -> onnx_runtime.OnnxModel | None:
        """The checkpoint's ONNX graphs when this cache serves with them and the trainer published
        them; None (torch serves) otherwise, or when they cannot be loaded (logged)."""
        if self.runtime != "onnx":
            return None
        if not onnx_runtime.has_export(checkpoint.path):
            log.info("event=onnx_unavailable id=%s reason=no_export: served by torch", checkpoint.id)
            return None
        try:
            model = onnx_runtime.load(
                checkpoint.path,
                labels=checkpoint.labels,
                name=checkpoint.id,
                max_length=max_length,
                threads=self.config.onnx_threads,
                refine_below=self.config.refine_below,
                device=str(self.device),
            )
        except Exception as exc:  # noqa: BLE001 - a damaged export: the weights still serve, with torch
            log.error("event=onnx_load_failed id=%s error=%r: served by torch", checkpoint.id, exc)
            return None
        if model.why_fp32:
            log.warning(
                "event=onnx_int8_not_served id=%s reason=%r: the fp32 graph serves", checkpoint.id, model.why_fp32
            )
        return model

    def runtime_of(self, checkpoint: Checkpoint) -> str:
        """What serves (or would serve, once loaded) ``checkpoint``: LoadedEntry.runtime's names."""
        with self._lock:
            entry = self._cache.get(checkpoint.id)
        if entry is not None:
            return entry.runtime
        if self.runtime != "onnx" or not onnx_runtime.has_export(checkpoint.path):
            return onnx_runtime.TORCH
        return onnx_runtime.runtime_of_export(checkpoint.path, self.config.refine_below, str(self.device))

    def loaded(self) -> list[LoadedEntry]:
        """Loaded models, most recently used first."""
        with self._lock:
            return list(reversed(self._cache.values()))

    def unload(self, key: str) -> bool:
        """Unload the model callers know as ``key`` (a checkpoint id, or ``base:`` and a base model's
        name as ListLoaded gives it); False when none such is loaded."""
        with self._lock:
            key = next((e.key for e in self._cache.values() if key in (e.name, e.key)), key)
            entry = self._cache.pop(key, None)
        if entry is None:
            return False
        entry.batcher.close()
        log.info("event=model_unloaded key=%s", key)
        return True

    def close(self) -> None:
        with self._lock:
            entries = list(self._cache.values())
            self._cache.clear()
        for entry in entries:
            entry.batcher.close()

    # -- scoring ---------------------------------------------------------------------------
    @staticmethod
    def _run_batch(forward, model, rows: list[_Row]) -> list[tuple]:
        """One forward per precision present in ``rows`` (re-scoring rows run in fp32)."""
        results: list[tuple] = [None] * len(rows)  # type: ignore[list-item]
        for full in (False, True):
            group = [i for i, r in enumerate(rows) if r.full_precision == full]
            if not group:
                continue
            embed = any(rows[i].embed for i in group)
            out = forward(model, [rows[i].ids for i in group], embeddings=embed, full_precision=full)
            probs = out.probabilities if out.probabilities is not None else np.zeros((len(group), 0), np.float32)
            embs = out.embeddings if embed else None  # forward() fills them in when asked
            for k, i in enumerate(group):
                results[i] = (probs[k], embs[k] if embs is not None else None)
        return results

    def _refine(
        self, entry: LoadedEntry, rows: list[_Row], results: list[tuple], deadline: float | None
    ) -> list[tuple]:
        """Score again in fp32 the rows whose reduced-precision top probability is below
        ``refine_below``: a second request to the same batcher, so the uncertain rows of
        concurrent requests share fp32 batches."""
        if not entry.refine or not results:
            return results
        top = np.array([r[0].max() for r in results])  # [n]
        unsure = np.flatnonzero(top < self.config.refine_below)  # [k]
        if not len(unsure):
            return results
        timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
        again = [dataclasses.replace(rows[i], full_precision=True) for i in unsure]
        exact = entry.batcher.submit(again).result(timeout)
        results = list(results)
        for i, row in zip(unsure, exact, strict=False):
            results[i] = row
        return results

    def score(
        self, spec: ModelSpec, texts: Sequence[str], *, embeddings: bool = False, timeout: float | None = None
    ) -> Scores:
        """Score ``texts`` (any number; the batcher splits them). Empty list -> empty Scores."""
        deadline = None if timeout is None else time.monotonic() + timeout
        for attempt in (0, 1):
            entry = self.load(spec)
            if not entry.model.is_classifier and not embeddings:
                raise errors.InvalidArgument(
                    f"{spec.describe()} has no classification head: only embeddings can be asked of it"
                )
            try:
                return self._score_windows(entry, texts, embeddings, deadline)
            except concurrent.futures.TimeoutError:
                raise errors.Unavailable(f"scoring {len(texts)} texts did not finish within {timeout:.1f}s") from None
            except BatcherClosed:
                if attempt:
                    raise errors.Unavailable(f"{spec.describe()} was unloaded while scoring; retry") from None
                continue  # evicted between lookup and submit: load again once
        raise AssertionError("unreachable")

    def _score_windows(
        self, entry: LoadedEntry, texts: Sequence[str], embeddings: bool, deadline: float | None
    ) -> Scores:
        """Tokenise and queue ``WINDOW_TEXTS`` texts at a time, the next window while the batcher
        scores the one before, writing each window's results into arrays of the whole call."""
        n = len(texts)
        out = _Results(n, len(entry.labels), embeddings)
        truncated = np.zeros(n, dtype=bool)
        queued: list[_Window] = []  # submitted, not finished: at most two
        tokens_since_hand_back = 0
        try:
            for start in range(0, n, WINDOW_TEXTS):
                tokens = inference.tokenize(entry.model, texts[start : start + WINDOW_TEXTS])
                truncated[start : start + len(tokens)] = tokens.truncated
                rows = [_Row(ids, embeddings) for ids in tokens.input_ids]
                del tokens
                tokens_since_hand_back += sum(map(len, rows))
                if tokens_since_hand_back >= HAND_BACK_AFTER_TOKENS:
                    malloc.hand_back_free_pages()
                    tokens_since_hand_back = 0
                queued.append(_Window(start, rows, entry.batcher.submit(rows)))
                if len(queued) == 2:
                    self._finish(entry, queued[0], out, deadline)
                    queued.pop(0)
            while queued:
                self._finish(entry, queued[0], out, deadline)
                queued.pop(0)
        finally:
            for window in queued:  # the call failed: windows not yet run need not be
                window.future.cancel()
        return Scores.from_probabilities(entry.checkpoint_id, entry.labels, out.probs, truncated, out.embeddings())

    def _finish(self, entry: LoadedEntry, window: _Window, out: _Results, deadline: float | None) -> None:
        timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
        results = self._refine(entry, window.rows, window.future.result(timeout), deadline)
        out.put(window.start, results)


@dataclasses.dataclass
class _Window:
    """Rows of one call queued together: where they start in the call, and their future."""

    start: int
    rows: list[_Row]
    future: concurrent.futures.Future


class _Results:
    """A call's probabilities ``[n, c]`` and embeddings ``[n, h]``, written a window at a time."""

    def __init__(self, n: int, n_classes: int, embeddings: bool):
        self.probs = np.zeros((n, n_classes), np.float32)
        self._want_embeddings = embeddings
        self._embeddings: np.ndarray | None = None

    def put(self, start: int, results: list[tuple]) -> None:
        """One window's results (never empty: a window holds at least one text)."""
        end = start + len(results)
        self.probs[start:end] = np.stack([r[0] for r in results])
        if self._want_embeddings:
            rows = np.stack([r[1] for r in results])  # [m, h]
            if self._embeddings is None:
                self._embeddings = np.zeros((len(self.probs), rows.shape[1]), np.float32)
            self._embeddings[start:end] = rows

    def embeddings(self) -> np.ndarray | None:
        if not self._want_embeddings:
            return None
        return self._embeddings if self._embeddings is not None else np.zeros((0, 0), np.float32)
