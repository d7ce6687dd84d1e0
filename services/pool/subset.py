"""Seeded random subsets of samples, drawn in the database: the ``size`` matching samples that come
first in a pseudo-random order of their ids fixed by a seed (``ORDER BY rank LIMIT size``).

The rank is integer arithmetic that SQLite and PostgreSQL evaluate alike (so both stores draw the
same subset for the same seed), and that never leaves 64-bit integers: every value is kept below a
prime ``P < 2**31``, so a product of two is below ``2**62``. Three rounds in the manner of the MiMC
permutation: an affine map of the id, then twice ``x -> a * x**3 + b (mod P)``; with ``P % 3 == 2``
cubing is a permutation of ``[0, P)``, so distinct ids (below ``P``) never share a rank, and the
cube makes the order non-linear in the id (an affine map alone would pick ids at near-regular
spacings, which can fall in step with the order rows were imported in). The round constants come
from the seed through BLAKE2b.

Drawing the subset scans the matching rows once in the database and hands only the ``size`` chosen
ids to Python, never the whole pool.
"""

from __future__ import annotations

import hashlib

from sqlalchemy import BigInteger, ColumnElement, cast, literal

from lesslabels.contract.shards import Shard

#: The largest prime below 2**31 with P % 3 == 2 (cubing permutes [0, P) exactly when 3 does not divide P - 1).
P = 2_147_483_579
ROUNDS = 2


def round_constants(seed: int) -> list[int]:
    """``[a0, b0, a1, b1, a2, b2]``: multipliers in ``[1, P)``, offsets in ``[0, P)``, from ``seed``."""
    digest = hashlib.blake2b(f"lesslabels-subset:{int(seed)}".encode(), digest_size=8 * 2 * (ROUNDS + 1)).digest()
    words = [int.from_bytes(digest[i : i + 8], "big") for i in range(0, len(digest), 8)]
    return [1 + w % (P - 1) if i % 2 == 0 else w % P for i, w in enumerate(words)]


def rank(sample_id: int, seed: int) -> int:
    """The rank of one id in the order of ``seed``, computed in Python (the reference ``rank_sql`` matches)."""
    c = round_constants(seed)
    x = (sample_id % P * c[0] + c[1]) % P
    for r in range(1, ROUNDS + 1):
        x = ((x * x % P) * x % P * c[2 * r] + c[2 * r + 1]) % P
    return x


def rank_sql(column, seed: int) -> ColumnElement:
    """The same rank as a SQL expression over an integer id ``column``."""
    c = [literal(v, BigInteger) for v in round_constants(seed)]
    p = literal(P, BigInteger)
    x = (cast(column, BigInteger) % p * c[0] + c[1]) % p
    for r in range(1, ROUNDS + 1):
        x = ((x * x % p) * x % p * c[2 * r] + c[2 * r + 1]) % p
    return x


def in_shard_sql(column, shard: Shard) -> ColumnElement:
    """Whether an integer id ``column`` is in ``shard`` (``id % count == index``, as
    ``lesslabels.contract.shards.bucket``): ids are positive, so both databases agree on the remainder."""
    return cast(column, BigInteger) % literal(shard.count, BigInteger) == literal(shard.index, BigInteger)
