"""Embeddings of texts by a base encoder, computed once and kept on disk: the fast head's features.

A text's row is found by its text hash (``lesslabels.pool.texthash``: the first 8 bytes of BLAKE2b
over the UTF-8 text, as the pool stores it) under an :class:`EmbeddingModel`, the identity of
everything an embedding depends on (the encoder's folder and the contents of its files, pooling,
max_length, the precision it ran in). So a dataset's texts are embedded once per model whatever
run, request or scorer process asks, and a text two datasets share is embedded once.

On disk, one folder per model key under the store's root::

    <root>/<model key>/model.json          what the key stands for (for people)
    <root>/<model key>/seg-<time>-<uuid>.npz   hashes int64 [k], vectors float32 [k, d], truncated bool [k]

Rows are added in segments, each written to a temporary file, fsynced and renamed into place, so a
reader (another thread, another scorer process on the same folder) sees whole segments or none.
A text two writers embed at once lands in two segments; the first row read wins (the vectors are
equal). Past ``MAX_SEGMENTS`` segments the folder is compacted into one, again written before the
old ones go. A segment that cannot be read is logged and left in place (its texts are embedded
again), never deleted.

Memory: every row of a loaded model is held, float32, with a dict from hash to row: 100,000 texts x
384 dimensions is 154 MB of vectors and about 10 MB of index; ``max_models`` models stay loaded
(least recently used dropped). A 64-bit hash collision between two texts of a store (about 3e-10
for 100,000 texts) would give one the other's vector.
"""

from __future__ import annotations

import collections
import dataclasses
import functools
import hashlib
import json
import logging
import os
import pathlib
import threading
import time
import uuid
from collections.abc import Callable, Sequence

import numpy as np

from lesslabels.common import errors

log = logging.getLogger(__name__)

#: Segments a model's folder may hold before it is compacted into one.
MAX_SEGMENTS = 64
#: Texts embedded per call of the encoder (and per segment written): progress survives a restart.
COMPUTE_CHUNK = 1024

#: Embeds texts: ``(vectors [n, d] float32, truncated [n] bool)`` in the order given.
Encoder = Callable[[list[str]], tuple[np.ndarray, np.ndarray]]


def text_hash(text: str) -> int:
    """The pool's text hash (``lesslabels.pool.texthash``; the scorer does not import the pool): the
    first 8 bytes of BLAKE2b over the UTF-8 text as a signed 64-bit integer."""
    digest = hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


@functools.lru_cache(maxsize=32)
def _files_digest(folder: str, snapshot: tuple[tuple[str, int, int], ...]) -> str:
    digest = hashlib.sha256()
    for name, size, _ in snapshot:
        digest.update(f"{name}\t{size}\n".encode())
        with open(os.path.join(folder, name), "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def folder_identity(folder: str) -> str:
    """sha256 over the names and contents of the files directly in ``folder`` (weights, config,
    tokenizer): two folders with the same files give the same embeddings. Hashed once per process
    while the files' sizes and modification times stay the same (MiniLM: 91 MB, about 0.2 s)."""
    entries = []
    with os.scandir(folder) as it:
        for entry in it:
            if entry.is_file():
                stat = entry.stat()
                entries.append((entry.name, stat.st_size, stat.st_mtime_ns))
    return _files_digest(folder, tuple(sorted(entries)))


@dataclasses.dataclass(frozen=True)
class EmbeddingModel:
    """Everything an embedding depends on."""

    source: str  # the encoder's resolved folder
    files: str  # folder_identity(source)
    max_length: int
    precision: str  # what the encoder ran in: fp32, bf16, fp16
    pooling: str = "mean"

    @property
    def key(self) -> str:
        text = json.dumps(dataclasses.asdict(self), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:32]


@dataclasses.dataclass
class Embedded:
    """Embeddings of n texts, row-aligned with them."""

    vectors: np.ndarray  # [n, d] float32
    truncated: np.ndarray  # [n] bool
    computed: int  # texts the encoder embedded for this call (the rest were kept)


class _Table:
    """The rows of one model: in memory, and the segments on disk they came from."""

    def __init__(self, folder: pathlib.Path, model: EmbeddingModel):
        self.folder = folder
        self.model = model
        self.lock = threading.Lock()  # index, blocks, files
        self.compute_lock = threading.Lock()  # one embedding computation at a time per model
        self.index: dict[int, int] = {}
        self.blocks: list[tuple[np.ndarray, np.ndarray]] = []  # (vectors [k, d], truncated [k])
        self.starts: list[int] = []
        self.rows = 0
        self.dim = 0
        self.files: set[str] = set()
        folder.mkdir(parents=True, exist_ok=True)
        about = folder / "model.json"
        if not about.exists():
            _write_atomically(about, lambda f: f.write(json.dumps(dataclasses.asdict(model), indent=1).encode()))
        self.refresh()

    # -- reading -------------------------------------------------------------------------------
    def refresh(self) -> None:
        """Take in the segments written since the last look (by this process or another)."""
        for path in sorted(self.folder.glob("seg-*.npz")):
            if path.name in self.files:
                continue
            try:
                with np.load(path, allow_pickle=False) as data:
                    hashes = np.asarray(data["hashes"], dtype=np.int64)
                    vectors = np.asarray(data["vectors"], dtype=np.float32)
                    truncated = np.asarray(data["truncated"], dtype=bool)
            except FileNotFoundError:
                continue  # compacted away by another process since the listing: its rows are in the new one
            except Exception as exc:  # noqa: BLE001 - a damaged segment: its texts are embedded again
                log.warning("event=embedding_segment_unreadable file=%s error=%r", path, exc)
                with self.lock:
                    self.files.add(path.name)
                continue
            if vectors.ndim != 2 or len(hashes) != len(vectors) or len(truncated) != len(vectors):
                log.warning("event=embedding_segment_malformed file=%s", path)
                with self.lock:
                    self.files.add(path.name)
                continue
            self._take(path.name, hashes, vectors, truncated)

    def _take(self, name: str, hashes: np.ndarray, vectors: np.ndarray, truncated: np.ndarray) -> None:
        with self.lock:
            if self.dim and vectors.shape[1] != self.dim:
                log.warning("event=embedding_segment_malformed file=%s dim=%d", name, vectors.shape[1])
                self.files.add(name)
                return
            self.dim = self.dim or int(vectors.shape[1])
            keep = [i for i, h in enumerate(hashes.tolist()) if h not in self.index]
            self.files.add(name)
            if not keep:
                return
            if len(keep) < len(hashes):
                hashes, vectors, truncated = hashes[keep], vectors[keep], truncated[keep]
            start = self.rows
            for offset, h in enumerate(hashes.tolist()):
                self.index[h] = start + offset
            self.blocks.append((vectors, truncated))
            self.starts.append(start)
            self.rows += len(hashes)

    def find(self, hashes: Sequence[int]) -> np.ndarray:
        """Row of each hash, -1 where there is none: ``[n]``."""
        with self.lock:
            get = self.index.get
            return np.fromiter((get(h, -1) for h in hashes), dtype=np.int64, count=len(hashes))

    def gather(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Vectors ``[n, d]`` and truncation flags ``[n]`` of ``rows`` (all present)."""
        with self.lock:
            blocks, starts, dim = list(self.blocks), list(self.starts), self.dim
        vectors = np.empty((len(rows), dim), np.float32)
        truncated = np.zeros(len(rows), bool)
        for (block, flags), start in zip(blocks, starts, strict=True):
            inside = (rows >= start) & (rows < start + len(block))  # [n]
            if inside.any():
                vectors[inside] = block[rows[inside] - start]
                truncated[inside] = flags[rows[inside] - start]
        return vectors, truncated

    # -- writing -------------------------------------------------------------------------------
    def add(self, hashes: np.ndarray, vectors: np.ndarray, truncated: np.ndarray) -> None:
        """Write one segment, then take its rows in; compact when the folder holds too many."""
        name = f"seg-{time.time_ns():020d}-{uuid.uuid4().hex[:8]}.npz"
        _write_segment(self.folder / name, hashes, vectors, truncated)
        self._take(name, hashes, vectors, truncated)
        if len(self.files) > MAX_SEGMENTS:
            self.compact()

    def compact(self) -> None:
        """Rewrite every row as one segment, then remove the segments it replaces."""
        with self.lock:
            old = sorted(self.files)
            hashes = np.fromiter(self.index.keys(), dtype=np.int64, count=len(self.index))
            rows = np.fromiter(self.index.values(), dtype=np.int64, count=len(self.index))
        vectors, truncated = self.gather(rows)
        name = f"seg-{time.time_ns():020d}-{uuid.uuid4().hex[:8]}.npz"
        _write_segment(self.folder / name, hashes, vectors, truncated)
        order = np.argsort(rows)
        with self.lock:
            self.index = {int(h): i for i, h in enumerate(hashes[order].tolist())}
            self.blocks = [(vectors[order], truncated[order])]
            self.starts = [0]
            self.rows = len(hashes)
            self.files = {name}
        for stale in old:
            if self._readable(stale):  # a damaged segment stays for a person to look at
                (self.folder / stale).unlink(missing_ok=True)
        log.info("event=embeddings_compacted model=%s rows=%d segments=%d", self.model.key, len(hashes), len(old))

    def _readable(self, name: str) -> bool:
        try:
            with np.load(self.folder / name, allow_pickle=False) as data:
                return {"hashes", "vectors", "truncated"} <= set(data.files)
        except Exception:  # noqa: BLE001
            return False


def _write_atomically(path: pathlib.Path, write: Callable) -> None:
    tmp = path.with_name(f".tmp-{uuid.uuid4().hex}-{path.name}")
    try:
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_segment(path: pathlib.Path, hashes: np.ndarray, vectors: np.ndarray, truncated: np.ndarray) -> None:
    _write_atomically(
        path,
        lambda f: np.savez(
            f,
            hashes=np.asarray(hashes, np.int64),
            vectors=np.asarray(vectors, np.float32),
            truncated=np.asarray(truncated, bool),
        ),
    )


class EmbeddingStore:
    """Embeddings kept on disk under ``root``, per :class:`EmbeddingModel`; thread-safe."""

    def __init__(self, root: str | os.PathLike, *, max_models: int = 2, chunk: int = COMPUTE_CHUNK):
        if max_models < 1 or chunk < 1:
            raise ValueError("max_models and chunk must be at least 1")
        self.root = pathlib.Path(root)
        self.max_models = max_models
        self.chunk = chunk
        self._tables: collections.OrderedDict[str, _Table] = collections.OrderedDict()
        self._lock = threading.Lock()

    def _table(self, model: EmbeddingModel) -> _Table:
        key = model.key
        with self._lock:
            table = self._tables.get(key)
            if table is not None:
                self._tables.move_to_end(key)
                return table
            table = _Table(self.root / key, model)  # under the lock: one load per model
            self._tables[key] = table
            while len(self._tables) > self.max_models:
                self._tables.popitem(last=False)
            return table

    def count(self, model: EmbeddingModel) -> int:
        """Texts kept for ``model``."""
        table = self._table(model)
        with table.lock:
            return table.rows

    def embeddings(
        self,
        model: EmbeddingModel,
        texts: Sequence[str],
        encode: Encoder,
        *,
        cancelled: Callable[[], bool] = lambda: False,
    ) -> Embedded:
        """The embeddings of ``texts`` by ``model``: those kept are read, the others computed with
        ``encode`` (``chunk`` texts a call, each chunk kept at once) and kept. ``cancelled()`` is
        checked between chunks: errors.Cancelled when it turns true (the chunks done stay kept)."""
        hashes = [text_hash(t) for t in texts]
        table = self._table(model)
        rows = table.find(hashes)
        computed = 0
        if (rows < 0).any():
            with table.compute_lock:  # a second request for the same texts waits, then finds them
                table.refresh()
                rows = table.find(hashes)
                todo: dict[int, str] = {}
                for i in np.flatnonzero(rows < 0).tolist():
                    todo.setdefault(hashes[i], texts[i])
                pending = list(todo.items())
                for start in range(0, len(pending), self.chunk):
                    if cancelled():
                        raise errors.Cancelled("embedding was cancelled by the caller")
                    part = pending[start : start + self.chunk]
                    vectors, truncated = encode([text for _, text in part])
                    vectors = np.asarray(vectors, np.float32)
                    if vectors.shape[0] != len(part):
                        raise RuntimeError(f"the encoder returned {vectors.shape[0]} rows for {len(part)} texts")
                    table.add(np.array([h for h, _ in part], np.int64), vectors, np.asarray(truncated, bool))
                    computed += len(part)
                if pending:
                    log.info("event=embeddings_computed model=%s texts=%d kept=%d", model.key, computed, table.rows)
                rows = table.find(hashes)
        vectors, truncated = table.gather(rows)
        return Embedded(vectors, truncated, computed)
