"""The fast head: scikit-learn's multinomial logistic regression (lbfgs) on L2-normalised embeddings.

Pure numpy/scikit-learn, no gRPC, no pool: fit on labelled rows, predict probabilities over a
fixed label order. A class of the label set without a labelled row gets probability 0 (the head
cannot predict what it has never seen), so the columns always follow the run's label set.
Fit times for 10,000 x 384 are in bench/README.md ("Fast head"); a refit starts from the run's last head.
"""

from __future__ import annotations

import collections
import dataclasses
import threading
from collections.abc import Callable, Hashable, Sequence

import numpy as np
from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

from lesslabels.common import errors

#: Inverse regularisation strength on unit-length features, chosen on held-out data that is never
#: test (bench/fast_head.py --choose-c: CLINC150 dev, 20 % of ATIS train; 2-20 % of the labels):
#: 100 beats 10 by 0.3-4.1 points and 1 by far; 1000 is within 0.5 points of 100 either way.
C = 100.0
MAX_ITER = 300
#: BLAS threads of a fit and of a prediction. One: on 2 busy cores OpenBLAS's two threads made a fit of
#: 290 x 384 take 1.8 s instead of 0.03 s (they spin waiting for each other beside torch's threads).
BLAS_THREADS = 1


def normalise(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (an all-zero row stays zero): ``[n, d]`` -> ``[n, d]`` float32."""
    vectors = np.asarray(vectors, np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)  # [n, 1]
    return vectors / np.maximum(norms, 1e-12)


@dataclasses.dataclass
class FittedHead:
    """A fitted head; ``labels`` is the full label order of its probabilities."""

    version: str
    labels: list[str]
    classes: np.ndarray  # [k] indices into labels of the classes it was fit on (k >= 2)
    model: object  # sklearn.linear_model.LogisticRegression
    train_count: int
    fit_seconds: float
    iterations: int = 0

    def probabilities(self, vectors: np.ndarray) -> np.ndarray:
        """``[n, d]`` embeddings -> ``[n, len(labels)]`` float32 probabilities, rows summing to 1."""
        out = np.zeros((len(vectors), len(self.labels)), np.float32)  # [n, c]
        if len(vectors):
            with threadpool_limits(BLAS_THREADS):
                out[:, self.classes] = self.model.predict_proba(normalise(vectors))  # type: ignore[attr-defined]
        return out


def fit(
    vectors: np.ndarray,
    targets: Sequence[str],
    labels: Sequence[str],
    *,
    version: str,
    c: float = C,
    start: FittedHead | None = None,
) -> FittedHead:
    """Fit on ``vectors`` ``[n, d]`` with ``targets[i]`` the label of row i; ``labels`` gives the
    output order (targets outside it are InvalidArgument). FailedPrecondition with fewer than 2
    classes among the targets. ``start``: a head fit earlier on the same label set (the run's last
    one), whose weights the optimiser starts from: a few new labels then take a few iterations."""
    import time
    import warnings

    from sklearn.exceptions import ConvergenceWarning  # type: ignore[import-untyped]
    from sklearn.linear_model import LogisticRegression  # type: ignore[import-untyped]

    labels = list(labels)
    position = {label: i for i, label in enumerate(labels)}
    unknown = sorted({t for t in targets if t not in position})
    if unknown:
        raise errors.InvalidArgument(f"labels outside the label set: {', '.join(map(repr, unknown[:5]))}")
    y = np.fromiter((position[t] for t in targets), dtype=np.int64, count=len(targets))  # [n]
    classes = np.unique(y)
    if len(classes) < 2:
        have = f"only {labels[classes[0]]!r}" if len(classes) else "none"
        raise errors.FailedPrecondition(
            f"the fast head needs labels of at least 2 classes; the labelled set has {have} ({len(y)} labels)"
        )
    started = time.perf_counter()
    model = LogisticRegression(C=c, max_iter=MAX_ITER, solver="lbfgs")
    _start_from(model, start, labels, classes, vectors.shape[1])
    with warnings.catch_warnings(), threadpool_limits(BLAS_THREADS):
        warnings.simplefilter("ignore", ConvergenceWarning)  # MAX_ITER bounds the time; nearly converged is fine
        model.fit(normalise(vectors), y)
    elapsed = time.perf_counter() - started
    # predict_proba's columns are model.classes_, sorted: the same as np.unique(y).
    iterations = int(np.max(model.n_iter_))
    return FittedHead(version, labels, np.asarray(model.classes_, np.int64), model, len(y), elapsed, iterations)


def _start_from(model, start: FittedHead | None, labels: list[str], classes: np.ndarray, dim: int) -> None:
    """Give ``model`` the weights of ``start`` for the classes both know (a new class starts at 0).
    Only between multinomial heads (3 classes and more: scikit-learn keeps one row for 2) of one
    label set and dimension."""
    if start is None or start.labels != labels or len(classes) < 3 or len(start.classes) < 3:
        return
    old_coef, old_bias = start.model.coef_, start.model.intercept_  # type: ignore[attr-defined]
    if old_coef.shape[1] != dim:
        return
    row = {int(k): i for i, k in enumerate(start.classes)}
    coef = np.zeros((len(classes), dim), old_coef.dtype)  # [k, d]
    bias = np.zeros(len(classes), old_bias.dtype)  # [k]
    for i, k in enumerate(classes.tolist()):
        if k in row:
            coef[i], bias[i] = old_coef[row[k]], old_bias[row[k]]
    model.warm_start = True
    model.coef_, model.intercept_ = coef, bias


class HeadCache:
    """The most recently used fitted heads by key (run, labelled set, model): a repeated call with
    the same labels does not fit again. One fit per key at a time."""

    def __init__(self, size: int = 16):
        self.size = size
        self._heads: collections.OrderedDict[Hashable, FittedHead] = collections.OrderedDict()
        self._lock = threading.Lock()
        self._fitting: dict[Hashable, threading.Lock] = {}
        self._latest: collections.OrderedDict[Hashable, FittedHead] = collections.OrderedDict()
        self.fits = 0

    def latest(self, line: Hashable) -> FittedHead | None:
        """The head fit last for ``line`` (a run on one model): where the next fit starts from."""
        with self._lock:
            return self._latest.get(line)

    def get(self, key: Hashable, fit_head: Callable[[], FittedHead], *, line: Hashable = None) -> FittedHead:
        with self._lock:
            head = self._heads.get(key)
            if head is not None:
                self._heads.move_to_end(key)
                return head
            gate = self._fitting.setdefault(key, threading.Lock())
        with gate:
            with self._lock:
                head = self._heads.get(key)
                if head is not None:
                    return head
            try:
                head = fit_head()
            finally:
                with self._lock:
                    self._fitting.pop(key, None)
            with self._lock:
                self.fits += 1
                self._heads[key] = head
                while len(self._heads) > self.size:
                    self._heads.popitem(last=False)
                if line is not None:
                    self._latest[line] = head
                    self._latest.move_to_end(line)
                    while len(self._latest) > self.size:
                        self._latest.popitem(last=False)
            return head
