"""The scorer's model cache management is internal (issue 25 O2): with an internal token set, the
public token may score and list loaded models but not load or evict them."""

from __future__ import annotations

import grpc
import pytest

from lesslabels.common.channels import make_channel
from lesslabels.common.server import Server
from lesslabels.scorer.servicer import ScorerServicer, registration
from lesslabels.v1 import scorer_pb2, scorer_pb2_grpc
from tests.helpers import server_settings_for_tests


class Cache:
    """Just the calls the management methods make."""

    def __init__(self):
        self.unloaded: list[str] = []

    def unload(self, checkpoint_id: str) -> bool:
        self.unloaded.append(checkpoint_id)
        return True

    def loaded(self) -> list:
        return []


@pytest.fixture
def scorer():
    cache = Cache()
    settings = server_settings_for_tests(token="public-token", internal_token="internal-token")
    server = Server(settings, [registration(ScorerServicer(cache))], name="scorer")
    port = server.start()
    server.set_serving()
    yield f"127.0.0.1:{port}", cache
    server.stop(0)


def _stub(address: str, token: str):
    return scorer_pb2_grpc.ScorerServiceStub(make_channel(address, token=token))


def test_the_public_token_cannot_load_or_evict_models(scorer):
    address, cache = scorer
    public = _stub(address, "public-token")
    for call, request in (
        (public.UnloadCheckpoint, scorer_pb2.UnloadCheckpointRequest(checkpoint_id="c1")),
        (public.LoadCheckpoint, scorer_pb2.LoadCheckpointRequest()),
    ):
        with pytest.raises(grpc.RpcError) as refused:
            call(request, timeout=5)
        assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
        assert "internal token" in refused.value.details()
    assert cache.unloaded == []
    assert list(public.ListLoaded(scorer_pb2.ListLoadedRequest(), timeout=5).models) == []


def test_the_internal_token_manages_the_cache(scorer):
    address, cache = scorer
    internal = _stub(address, "internal-token")
    reply = internal.UnloadCheckpoint(scorer_pb2.UnloadCheckpointRequest(checkpoint_id="c1"), timeout=5)
    assert reply.unloaded and cache.unloaded == ["c1"]
