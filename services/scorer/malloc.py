"""The C library's allocator, tuned for the scorer: big buffers in pages of their own (set once at
start), and free pages handed back after a big request is tokenised. No-ops where the C library
is not glibc."""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import functools
import logging

log = logging.getLogger(__name__)

#: Allocations from this size up get pages of their own (glibc's M_MMAP_THRESHOLD), handed back
#: to the system when freed.
MMAP_THRESHOLD_BYTES = 1024 * 1024
_M_MMAP_THRESHOLD = -3  # <malloc.h>


@functools.cache
def _glibc():
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        if hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim"):
            return libc
    return None


def return_freed_memory() -> None:
    """Have glibc give freed forward-pass buffers back to the system. By default it raises its
    mmap threshold up to 32 MiB as big blocks are freed, after which activations come from
    per-thread heaps that keep what they once held: with 2 batch workers the scorer kept 150-230 MiB
    more after scoring 2,048 texts, 25 MiB with a fixed 1 MiB threshold (bench/README.md)."""
    libc = _glibc()
    if libc is not None and libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES) != 1:
        log.info("event=mallopt_refused threshold=%d", MMAP_THRESHOLD_BYTES)


def hand_back_free_pages() -> None:
    """Give the system the free pages inside every thread's heap (``malloc_trim(0)``, a few ms).
    Receiving a request and tokenising it leave small blocks freed in the heaps of the threads that
    did it (gRPC's, the handler's), where the batch workers' forward passes cannot reuse them: a
    4,096 x 4 KiB request kept 10-20 MiB of them through its forward passes (bench/README.md)."""
    libc = _glibc()
    if libc is not None:
        libc.malloc_trim(0)
