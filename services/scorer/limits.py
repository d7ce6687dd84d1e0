"""Request limits both scorer protocols (ScorerService and the Open Inference Protocol) enforce."""

from __future__ import annotations

from lesslabels.common import errors

DEFAULT_MAX_TEXTS = 4096


def check_request_size(n_texts: int, max_texts: int) -> None:
    if n_texts > max_texts:
        raise errors.ResourceExhausted(
            f"{n_texts} texts in one request: the limit is {max_texts} (--max-texts); split the request"
        )
