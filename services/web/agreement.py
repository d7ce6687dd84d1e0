"""How well people agree, from the texts two or more of them labelled (``PoolClient.label_opinions``):
Cohen's kappa per pair of annotators (scikit-learn's ``cohen_kappa_score``, over the texts both
labelled) and, per label, the share of the texts someone gave it that everyone gave it."""

from __future__ import annotations

import collections
import itertools
import math
import warnings
from collections.abc import Sequence


def pair_agreement(texts: Sequence) -> list[dict]:
    """Per pair of annotators (by name): texts both labelled, the share they agree on, Cohen's kappa
    (None while it is undefined: under two texts, or one label only between them)."""
    from sklearn.metrics import cohen_kappa_score  # type: ignore[import-untyped]

    pairs: dict[tuple[str, str], list[tuple[str, str]]] = collections.defaultdict(list)
    for text in texts:
        given = {o.annotator: o.label for o in text.opinions}
        for a, b in itertools.combinations(sorted(given), 2):
            pairs[a, b].append((given[a], given[b]))
    rows = []
    for (a, b), labels in sorted(pairs.items()):
        first, second = [x for x, _ in labels], [y for _, y in labels]
        kappa = None
        if len(labels) >= 2 and len(set(first) | set(second)) >= 2:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # a 0/0 is reported as None below
                value = float(cohen_kappa_score(first, second))
            kappa = value if math.isfinite(value) else None
        rows.append(
            {
                "annotators": (a, b),
                "texts": len(labels),
                "agreement": sum(x == y for x, y in labels) / len(labels),
                "kappa": kappa,
            }
        )
    return rows


def label_agreement(texts: Sequence) -> list[dict]:
    """Per label: the texts (labelled by two or more people) someone gave it, and the share of them
    everyone gave it; lowest agreement first."""
    given: collections.Counter[str] = collections.Counter()
    unanimous: collections.Counter[str] = collections.Counter()
    for text in texts:
        labels = {o.label for o in text.opinions}
        for label in labels:
            given[label] += 1
            unanimous[label] += len(labels) == 1
    rows = [{"label": label, "texts": n, "agreement": unanimous[label] / n} for label, n in given.items()]
    return sorted(rows, key=lambda r: (r["agreement"], -r["texts"], r["label"]))
