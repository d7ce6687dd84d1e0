"""A server process killed (SIGKILL) while it holds a server-streaming call: the caller must get
UNAVAILABLE at once, so that it can retry, instead of hanging.

Found by the scorer-crash test of the topology: with grpcio 1.85, a server-streaming call under
the channel's retryPolicy, whose server dies before the first response, hung past its own
deadline. ``make_channel`` therefore retries unary calls only; callers of streams retry
themselves (the coordinator retries the step).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import grpc
import pytest

from lesslabels.common.channels import make_channel
from lesslabels.v1 import common_pb2, scorer_pb2, scorer_pb2_grpc

pytestmark = pytest.mark.integration

# A ScorerService whose ScorePool accepts the call, says so on stdout, and never answers.
SERVER = textwrap.dedent("""
    import sys, time
    from concurrent import futures
    import grpc
    from lesslabels.v1 import scorer_pb2, scorer_pb2_grpc

    class Stuck(scorer_pb2_grpc.ScorerServiceServicer):
        def ScorePool(self, request, context):
            print("in-call", flush=True)
            time.sleep(3600)
            yield scorer_pb2.ScorePoolChunk()

    server = grpc.server(futures.ThreadPoolExecutor(4))
    scorer_pb2_grpc.add_ScorerServiceServicer_to_server(Stuck(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    print(port, flush=True)
    server.wait_for_termination()
""")


def test_a_stream_whose_server_is_killed_fails_fast_with_unavailable():
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    proc = subprocess.Popen(
        [sys.executable, "-c", SERVER], stdout=subprocess.PIPE, text=True, env=dict(os.environ, PYTHONPATH=root)
    )
    try:
        port = int(proc.stdout.readline())
        stub = scorer_pb2_grpc.ScorerServiceStub(make_channel(f"127.0.0.1:{port}"))
        request = scorer_pb2.ScorePoolRequest(model=common_pb2.ModelRef(checkpoint_id="c"), dataset="d")
        stream = stub.ScorePool(request, timeout=20)
        started = time.monotonic()
        assert proc.stdout.readline().strip() == "in-call"
        proc.send_signal(signal.SIGKILL)
        with pytest.raises(grpc.RpcError) as info:
            next(stream)
        elapsed = time.monotonic() - started
    finally:
        proc.kill()
        proc.wait()
    assert info.value.code() is grpc.StatusCode.UNAVAILABLE, info.value
    assert elapsed < 10, f"the caller waited {elapsed:.1f}s for a dead server"
