"""The text hash behind the pool's indexed duplicate check.

A stored sample's ``text_hash`` is the first 8 bytes of BLAKE2b over its UTF-8 text, as a signed
64-bit integer (a BIGINT column on every database). An import looks up the hashes of its texts
in the index (dataset_id, text_hash) and compares the texts of the few rows that match, so adding
rows costs what the new rows cost, not a scan of the dataset. Migration 0006 fills the column with
this function: changing it means a migration that recomputes every row.
"""

from __future__ import annotations

import hashlib


def text_hash(text: str) -> int:
    return int.from_bytes(
        hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=8).digest(), "big", signed=True
    )
