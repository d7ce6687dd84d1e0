"""ListSamples' random subsets (a round's candidates, drawn in the pool's database) and its sample-id
filter, on SQLite and PostgreSQL: exactly N unlabelled samples, the same for the same seed on both
databases, resumable page by page, and every bad input refused with a message naming it."""

from __future__ import annotations

import grpc
import pytest

from lesslabels.client import InvalidArgument
from lesslabels.pool import subset
from lesslabels.v1 import common_pb2, pool_pb2
from tests.helpers import LABELLED_POOL_TRAIN, BOTH_DATABASES, submit_labels


def _expected(ids, size: int, seed: int) -> list[int]:
    """The subset by the reference rank computed in Python: the first ``size`` ids in the seed's order."""
    return sorted(sorted(ids, key=lambda i: (subset.rank(i, seed), i))[:size])


@BOTH_DATABASES
def test_a_subset_is_exactly_n_unlabelled_samples_the_same_for_the_same_seed(labelled_pool):
    unlabelled = labelled_pool.train_ids[40:]
    pages = list(
        labelled_pool.sample_pages("d", split="train", state="unlabelled", subset=50, subset_seed=7, page_size=2000)
    )
    got = [s.id for p in pages for s in p.samples]
    assert len(got) == 50 and pages[0].total == 50
    assert set(got) <= set(unlabelled) and all(not s.label for p in pages for s in p.samples)
    assert got == sorted(got)  # in id order, like every listing
    # The pool drew it with the seeded order of pool/subset.py, identically on SQLite and PostgreSQL.
    assert got == _expected(unlabelled, 50, 7)
    again = [s.id for s in labelled_pool.list_samples("d", split="train", state="unlabelled", subset=50, subset_seed=7)]
    assert again == got
    other = [s.id for s in labelled_pool.list_samples("d", split="train", state="unlabelled", subset=50, subset_seed=8)]
    assert len(other) == 50 and other != got
    assert len(set(other) & set(got)) < 30  # independent draws of 50 out of 260 share about 10


@BOTH_DATABASES
def test_more_than_the_unlabelled_pool_is_all_of_it(labelled_pool):
    got = [
        s.id for s in labelled_pool.list_samples("d", split="train", state="unlabelled", subset=10_000, subset_seed=1)
    ]
    assert got == labelled_pool.train_ids[40:]


def test_a_subset_pages_and_resumes_after_a_token(labelled_pool):
    expected = _expected(labelled_pool.train_ids[40:], 50, 3)
    pages = list(
        labelled_pool.sample_pages("d", split="train", state="unlabelled", subset=50, subset_seed=3, page_size=7)
    )
    assert [len(p.samples) for p in pages] == [7] * 7 + [1]
    assert [s.id for p in pages for s in p.samples] == expected
    assert pages[-1].next_page_token == "" and all(p.next_page_token for p in pages[:-1])
    # A stream broken after the third page resumes with its token and the same subset.
    token = pages[2].next_page_token
    rest = labelled_pool.sample_pages(
        "d", split="train", state="unlabelled", subset=50, subset_seed=3, page_size=7, page_token=token
    )
    assert [s.id for p in rest for s in p.samples] == expected[21:]


def test_a_subset_shrinks_as_its_samples_are_labelled_and_the_next_in_order_come_in(labelled_pool, stub):
    first = [s.id for s in labelled_pool.list_samples("d", split="train", state="unlabelled", subset=20, subset_seed=5)]
    submit_labels(stub, [(i, "b") for i in first[:5]])
    after = [s.id for s in labelled_pool.list_samples("d", split="train", state="unlabelled", subset=20, subset_seed=5)]
    assert len(after) == 20 and set(first[5:]) <= set(after) and not set(first[:5]) & set(after)


def test_a_subset_of_every_sample_of_a_split_and_with_a_limit(labelled_pool):
    every = [s.id for s in labelled_pool.list_samples("d", split="train", subset=60, subset_seed=2)]
    assert every == _expected(labelled_pool.train_ids, 60, 2)
    limited = [s.id for s in labelled_pool.list_samples("d", split="train", subset=60, subset_seed=2, limit=10)]
    assert limited == every[:10]


@BOTH_DATABASES
def test_sample_ids_list_only_those_that_match(labelled_pool):
    wanted = [labelled_pool.train_ids[i] for i in (0, 5, 41, 42, 299)] + [10**12, -4]  # two ids that are nobody
    pages = list(labelled_pool.sample_pages("d", split="train", sample_ids=wanted, page_size=2))
    assert [s.id for p in pages for s in p.samples] == sorted(wanted[:5]) and pages[0].total == 5
    unlabelled = [s.id for s in labelled_pool.list_samples("d", split="train", state="unlabelled", sample_ids=wanted)]
    assert unlabelled == sorted(wanted[2:5])  # the first two are labelled
    many = labelled_pool.train_ids[::2] * 2  # repeats, and more ids than one page of the pool's queries
    assert [s.id for s in labelled_pool.list_samples("d", split="train", sample_ids=many)] == labelled_pool.train_ids[
        ::2
    ]


def test_bad_subsets_are_invalid_arguments_that_say_what_is_wrong(labelled_pool, stub):
    def list_raw(**fields):
        request = pool_pb2.ListSamplesRequest(dataset="d", split=common_pb2.SPLIT_TRAIN, **fields)
        return [s for page in stub.ListSamples(request, timeout=10) for s in page.samples]

    with pytest.raises(grpc.RpcError) as err:
        list_raw(subset=common_pb2.RandomSubset(size=-3, seed=1))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "subset.size must not be negative, got -3" in err.value.details()
    with pytest.raises(grpc.RpcError) as err:
        list_raw(subset=common_pb2.RandomSubset(size=3), sample_ids=[1, 2])
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "random subset or sample_ids, not both" in err.value.details()
    # A zero size is no subset at all: every matching sample.
    assert len(list_raw(subset=common_pb2.RandomSubset(size=0, seed=9))) == LABELLED_POOL_TRAIN
    # The SDK refuses a negative size before sending it.
    with pytest.raises(InvalidArgument, match="subset must be a number of samples, 0 or more"):
        labelled_pool.list_samples("d", subset=-1)
    with pytest.raises(InvalidArgument, match="subset must be a number of samples"):
        labelled_pool.list_samples("d", subset=2.5)  # type: ignore[arg-type]


def test_the_seeded_order_mixes_ids_and_seeds():
    """The rank is a permutation of ids below its prime (no ties), and subsets of class-sorted ids
    (rows imported label by label) are balanced like random ones, for any seed."""
    ids = list(range(1, 15_001))
    for seed in (0, 1, 2**40 + 3):
        ranks = [subset.rank(i, seed) for i in ids]
        assert len(set(ranks)) == len(ids)
        chosen = sorted(ids, key=lambda i: (ranks[i - 1], i))[:1500]
        per_block = [0] * 150  # 150 labels of 100 rows each, imported in label order
        for i in chosen:
            per_block[(i - 1) // 100] += 1
        chi2 = sum((c - 10) ** 2 / 10 for c in per_block)
        assert chi2 < 260, f"seed {seed}: subsets are not balanced across import order (chi2 {chi2:.0f})"
    assert subset.rank(2**31 + 5, 1) == subset.rank((2**31 + 5) % subset.P, 1)  # ids beyond P wrap around
