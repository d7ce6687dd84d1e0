"""ListSamples' shards (a pool split over scorer replicas), on SQLite and PostgreSQL: the shards of a
count split a listing, and a random subset, without overlap or loss, by the bucket of each id that
``lesslabels.contract.shards.bucket`` computes; they page and resume; every bad shard is refused with
a message naming it."""

from __future__ import annotations

import grpc
import numpy as np
import pytest

from lesslabels.client import InvalidArgument, PoolClient
from lesslabels.contract import shards
from lesslabels.contract.shards import Shard
from lesslabels.v1 import common_pb2, pool_pb2
from tests.helpers import BOTH_DATABASES


def _ids(pool: PoolClient, **kwargs) -> list[int]:
    return [s.id for s in pool.list_samples("d", split="train", **kwargs)]


@BOTH_DATABASES
@pytest.mark.parametrize("count", [1, 2, 3, 7])
def test_the_shards_of_a_count_split_the_unlabelled_pool_without_overlap_or_loss(labelled_pool, count):
    unlabelled = labelled_pool.train_ids[40:]
    parts = [_ids(labelled_pool, state="unlabelled", shard=s) for s in shards.all_shards(count)]
    assert sorted(i for part in parts for i in part) == unlabelled  # each sample in exactly one shard
    for index, part in enumerate(parts):
        assert part == sorted(part)
        assert (shards.bucket(part, count) == index).all()  # the bucket computed in SQL is id % count
        # Consecutive ids: the shards are the same size to within one sample.
        assert abs(len(part) - len(unlabelled) / count) <= 1
    pages = list(labelled_pool.sample_pages("d", split="train", state="unlabelled", shard=Shard(0, count)))
    assert pages[0].total == len(parts[0])


@BOTH_DATABASES
@pytest.mark.parametrize("count", [2, 3])
def test_the_shards_of_a_random_subset_split_that_subset(labelled_pool, count):
    whole = _ids(labelled_pool, state="unlabelled", subset=50, subset_seed=7)
    parts = [
        _ids(labelled_pool, state="unlabelled", subset=50, subset_seed=7, shard=s) for s in shards.all_shards(count)
    ]
    assert sorted(i for part in parts for i in part) == whole
    for index, part in enumerate(parts):
        assert (shards.bucket(part, count) == index).all()
        assert part, "a shard of a random subset of 50 is empty: the subset's ids are not spread"
    first = list(
        labelled_pool.sample_pages(
            "d", split="train", state="unlabelled", subset=50, subset_seed=7, shard=Shard(1, count)
        )
    )
    assert first[0].total == len(parts[1])  # the shard's share of the subset, not the subset


def test_a_shard_pages_and_resumes_after_a_token(labelled_pool):
    expected = _ids(labelled_pool, state="any", shard=Shard(1, 3))
    pages = list(labelled_pool.sample_pages("d", split="train", shard=Shard(1, 3), page_size=30))
    assert [s.id for p in pages for s in p.samples] == expected and len(pages) == 4
    rest = labelled_pool.sample_pages(
        "d", split="train", shard=Shard(1, 3), page_size=30, page_token=pages[1].next_page_token
    )
    assert [s.id for p in rest for s in p.samples] == expected[60:]
    subset_expected = _ids(labelled_pool, state="any", subset=60, subset_seed=2, shard=Shard(0, 2))
    pages = list(
        labelled_pool.sample_pages("d", split="train", subset=60, subset_seed=2, shard=Shard(0, 2), page_size=7)
    )
    assert [s.id for p in pages for s in p.samples] == subset_expected


def test_a_shard_of_given_sample_ids_keeps_only_those_in_it(labelled_pool):
    wanted = labelled_pool.train_ids[:10]
    got = _ids(labelled_pool, sample_ids=wanted, shard=Shard(0, 2))
    assert got == [i for i in wanted if i % 2 == 0] and got
    pages = list(labelled_pool.sample_pages("d", split="train", sample_ids=wanted, shard=Shard(1, 2)))
    assert pages[0].total == len([i for i in wanted if i % 2 == 1])


@pytest.mark.parametrize(
    "shard, message",
    [
        (common_pb2.Shard(index=0, count=0), "shard.count must be at least 1, got 0"),
        (common_pb2.Shard(), "shard.count must be at least 1, got 0"),  # set but empty: not "no shard"
        (common_pb2.Shard(index=0, count=-2), "shard.count must be at least 1, got -2"),
        (common_pb2.Shard(index=3, count=3), "shard.index must be in [0, 3) for shard.count 3, got 3"),
        (common_pb2.Shard(index=-1, count=3), "shard.index must be in [0, 3) for shard.count 3, got -1"),
        (common_pb2.Shard(index=0, count=10**6), f"shard.count must be at most {shards.MAX_SHARDS}, got 1000000"),
    ],
)
def test_bad_shards_are_invalid_arguments_that_say_what_is_wrong(labelled_pool, stub, shard, message):
    request = pool_pb2.ListSamplesRequest(dataset="d", split=common_pb2.SPLIT_TRAIN, shard=shard)
    with pytest.raises(grpc.RpcError) as err:
        list(stub.ListSamples(request, timeout=10))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert message in err.value.details()


def test_the_sdk_refuses_a_bad_shard_before_sending_it():
    with pytest.raises(InvalidArgument, match=r"shard.index must be in \[0, 2\)"):
        Shard(2, 2)
    assert str(Shard(1, 4)) == "1/4"
    assert shards.bucket(np.array([1, 2, 3, 4]), 3).tolist() == [1, 2, 0, 1]
