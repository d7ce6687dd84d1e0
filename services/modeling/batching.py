"""Tokenise once, then batch by length with dynamic padding.

Texts are tokenised a single time without padding. Batches group texts of similar length so a
batch is padded only to its own longest text: on short-text data such as ATIS this removes most
pad tokens, which is where a naive "batch 32 in file order" loop spends much of its time.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING
from collections.abc import Iterator, Sequence

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    import torch

#: One text's token ids: a list, or an int32 array as :func:`encode` gives them.
TokenIds = Sequence[int] | np.ndarray

#: Characters of a text tokenised per token of ``max_length`` at first: English WordPiece averages
#: 4 to 6 characters a token, so 8 fill ``max_length`` for almost every text. A text cut there that
#: gives fewer tokens than fit is tokenised again from twice as many characters, up to
#: MAX_CHARS_PER_TOKEN (a WordPiece token covers at most 100 characters and a space),
#: so the cut changes the tokens kept only for texts past that. Work and memory per text are
#: proportional to ``max_length``, never to the text's length.
CHARS_PER_TOKEN = 8
MAX_CHARS_PER_TOKEN = 128
#: Texts per tokenizer call: a fast tokenizer's encodings (offsets, token strings...) cost about
#: 100 bytes a token, so they are kept for one chunk at a time, never for a whole request.
CHUNK_TEXTS = 64


def char_limit(max_length: int, per_token: int = CHARS_PER_TOKEN) -> int:
    """Characters of a text tokenised first when ``max_length`` tokens are kept."""
    return per_token * max_length


@dataclasses.dataclass
class Encoded:
    """Token ids per text (special tokens included, at most ``max_length``; int32 arrays, [tokens])
    and which texts lost tokens to the limit ([n] bool)."""

    input_ids: list[np.ndarray]
    truncated: np.ndarray

    def __len__(self) -> int:
        return len(self.input_ids)


def _special_counts(tokenizer) -> tuple[int, int] | None:
    """(special tokens before, after) the text's own tokens for a single text, or None when the
    tokenizer does not put them around the text."""
    probe = "hello world"
    full = list(tokenizer(probe, add_special_tokens=True)["input_ids"])
    bare = list(tokenizer(probe, add_special_tokens=False)["input_ids"])
    for start in range(len(full) - len(bare) + 1):
        if full[start : start + len(bare)] == bare:
            return start, len(full) - start - len(bare)
    return None


def _ids(tokenizer, texts: list[str]) -> list[list[int]]:
    """Token ids of ``texts`` whole (special tokens added): no truncation, so no overflow encodings."""
    encoded = tokenizer(
        texts,
        truncation=False,
        padding=False,
        return_attention_mask=False,
        return_token_type_ids=False,
        verbose=False,  # longer than model_max_length on purpose: cut below
    )
    return encoded["input_ids"]


def _piece(text: str, limit: int, left: bool) -> tuple[str, bool]:
    """The first (``left``: last) ``limit`` characters of ``text``, ending (starting) at whitespace
    so that no word is cut in two (its pieces would differ from the whole word's), and whether it
    does; with no whitespace in reach it is cut where the limit falls (False)."""
    if len(text) <= limit:
        return text, True
    if left:
        piece = text[-limit:]
        found = [i for i in (piece.find(c) for c in _SPACES) if i >= 0]
        return (piece[min(found) + 1 :], True) if found else (piece, False)
    piece = text[:limit]
    end = max(piece.rfind(c) for c in _SPACES)
    return (piece[:end], True) if end > 0 else (piece, False)


_SPACES = (" ", "\n", "\t")


def encode(tokenizer, texts: Sequence[str], max_length: int) -> Encoded:
    """Tokenise ``texts`` keeping at most ``max_length`` tokens each, as the tokenizer's own
    truncation would, without its overflow encodings and with work bounded per text: each text is
    cut to ``char_limit(max_length)`` characters (more only while the cut leaves room for tokens),
    ``CHUNK_TEXTS`` at a time. A text is flagged truncated when it had more tokens than fit, or
    more characters than were tokenised."""
    n = len(texts)
    specials = _special_counts(tokenizer) if n else None
    before, after = specials or (0, 0)
    room = max(1, max_length - before - after)  # the text's own tokens that fit
    left = getattr(tokenizer, "truncation_side", "right") == "left"
    ids: list[np.ndarray] = []
    truncated = np.zeros(n, dtype=bool)
    for start in range(0, n, CHUNK_TEXTS):
        chunk = list(texts[start : start + CHUNK_TEXTS])
        pieces = [_piece(t, char_limit(max_length), left) for t in chunk]
        rows = _ids(tokenizer, [piece for piece, _ in pieces])
        for k, text in enumerate(chunk):
            row, limit, whole_words = rows[k], char_limit(max_length), pieces[k][1]
            # Cut inside a word, or before its tokens filled the room: tokenise more of it (alone).
            while (
                len(text) > limit
                and (not whole_words or len(row) - before - after < room)
                and limit < char_limit(max_length, MAX_CHARS_PER_TOKEN)
            ):
                limit *= 2
                piece, whole_words = _piece(text, limit, left)
                row = _ids(tokenizer, [piece])[0]
            cut = len(text) > limit
            if len(row) > max_length:
                cut = True
                if specials is not None:
                    row = _truncate(row, max_length, before, after, left)
                else:  # an unusual template: the tokenizer truncates this one itself
                    piece = _piece(text, limit, left)[0]
                    row = tokenizer([piece], truncation=True, max_length=max_length, verbose=False)["input_ids"][0]
            truncated[start + k] = cut
            ids.append(np.asarray(row, dtype=np.int32))
    return Encoded(ids, truncated)


def _truncate(row: list[int], max_length: int, before: int, after: int, left: bool) -> list[int]:
    """``row`` (special tokens included) cut to ``max_length`` tokens from the text's own tokens,
    keeping the special tokens around them (what the tokenizer's truncation does)."""
    keep = max(0, max_length - before - after)
    head, body, tail = row[:before], row[before : len(row) - after], row[len(row) - after :]
    return head + (body[len(body) - keep :] if left else body[:keep]) + tail


def tokenize(tokenizer, texts: Sequence[str], max_length: int) -> list[list[int]]:
    """Token ids per text (special tokens included, truncated to ``max_length``, unpadded), with
    the bounded work of :func:`encode`."""
    return [row.tolist() for row in encode(tokenizer, texts, max_length).input_ids]


def length_grouped_batches(
    lengths: Sequence[int] | np.ndarray,
    batch_size: int,
    *,
    rng: np.random.Generator | None = None,
    order: Sequence[int] | np.ndarray | None = None,
    group_factor: int = 50,
) -> list[np.ndarray]:
    """Split sample indices into batches of similar length.

    Without ``rng`` (evaluation) the indices are sorted by length and cut into batches. With
    ``rng`` (training) they are shuffled, taken in chunks of ``batch_size * group_factor``, sorted
    by length inside each chunk, cut into batches, and the batch order is shuffled: every epoch
    sees different batches while padding stays low. ``order`` replaces the shuffled order (e.g.
    indices drawn by class-balanced sampling, repeats allowed).
    """
    if batch_size <= 0:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    lengths = np.asarray(lengths)
    if rng is None and order is None:
        # Stable sort keeps the result independent of the sort implementation.
        ranked = np.argsort(lengths, kind="stable")
        return [ranked[i : i + batch_size] for i in range(0, len(ranked), batch_size)]
    if order is not None:
        indices = np.asarray(order, dtype=np.int64)
    else:
        assert rng is not None  # both None returned above
        indices = rng.permutation(len(lengths))
    chunk = batch_size * max(1, group_factor)
    batches: list[np.ndarray] = []
    for start in range(0, len(indices), chunk):
        part = indices[start : start + chunk]
        part = part[np.argsort(lengths[part], kind="stable")]
        batches.extend(part[i : i + batch_size] for i in range(0, len(part), batch_size))
    if rng is not None and len(batches) > 1:
        batches = [batches[i] for i in rng.permutation(len(batches))]
    return batches


def pin_memory_for(device: torch.device | str) -> bool:
    """Whether batches bound for ``device`` are built in pinned (page-locked) host memory: on CUDA
    only, where a copy from pinned memory with ``non_blocking=True`` runs asynchronously (a CPU
    device reads host memory as it is, and pinning needs CUDA)."""
    import torch

    return torch.device(device).type == "cuda"


def collate(token_ids: Sequence[TokenIds], pad_id: int, *, pin_memory: bool = False) -> dict[str, torch.Tensor]:
    """Pad a batch to its longest sequence: ``input_ids`` and ``attention_mask``, [batch, longest].

    ``pin_memory`` (batches bound for CUDA, :func:`pin_memory_for`) allocates both tensors in pinned
    memory and writes them there, so that :func:`to_device` copies them asynchronously. Not
    ``tensor.pin_memory()`` after the fact: that is one more copy, and pinning then copying ran up
    to twice as slow as a plain copy in PyTorch's own measurements (tutorial "A guide on good usage
    of non_blocking and pin_memory()"); PyTorch's caching host allocator reuses the pinned blocks."""
    import torch

    longest = max(len(ids) for ids in token_ids)
    input_ids = torch.full((len(token_ids), longest), pad_id, dtype=torch.long, pin_memory=pin_memory)
    attention_mask = torch.zeros((len(token_ids), longest), dtype=torch.long, pin_memory=pin_memory)
    for row, ids in enumerate(token_ids):
        input_ids[row, : len(ids)] = torch.as_tensor(ids, dtype=torch.long)
        attention_mask[row, : len(ids)] = 1
    return {"input_ids": input_ids, "attention_mask": attention_mask}


def iterate_batches(
    token_ids: Sequence[TokenIds], batches: Sequence[np.ndarray], pad_id: int, *, pin_memory: bool = False
) -> Iterator[tuple[np.ndarray, dict[str, torch.Tensor]]]:
    """Yield (indices, padded tensors) for each batch of indices (``pin_memory``: see :func:`collate`)."""
    for indices in batches:
        yield indices, collate([token_ids[i] for i in indices], pad_id, pin_memory=pin_memory)


def to_device(batch: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    """``batch``'s tensors on ``device``, copied with ``non_blocking=True``: asynchronous from pinned
    memory (the copy is queued on the current CUDA stream ahead of the kernels that read it, and the
    caching host allocator keeps the pinned block until the copy is done), an ordinary copy from
    pageable memory, and the tensors themselves when they are on ``device`` already."""
    return {name: tensor.to(device, non_blocking=True) for name, tensor in batch.items()}
