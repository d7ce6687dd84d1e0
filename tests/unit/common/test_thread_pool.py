"""The servers' thread pool (issue 25 O3): bounded, and it gives its threads back after a flood."""

from __future__ import annotations

import threading
import time

import grpc
import pytest

from lesslabels.common import thread_pool
from lesslabels.common.server import Server, ServiceRegistration
from lesslabels.common.thread_pool import ElasticThreadPool
from tests.helpers import server_settings_for_tests

SERVICE = "lesslabels.test.Hold"


def _named(prefix: str) -> int:
    return sum(1 for t in threading.enumerate() if t.name.startswith(prefix))


def _until(predicate, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def test_results_and_errors_reach_their_futures():
    pool = ElasticThreadPool(2, idle_seconds=0.2, thread_name_prefix="t-results")
    assert [f.result(5) for f in [pool.submit(pow, 2, n) for n in range(10)]] == [2**n for n in range(10)]
    failed = pool.submit(int, "not a number")
    with pytest.raises(ValueError, match="not a number"):
        failed.result(5)
    pool.shutdown()
    with pytest.raises(RuntimeError, match="after shutdown"):
        pool.submit(pow, 2, 2)
    assert pool.threads == 0


def test_never_more_threads_than_max_workers_and_queued_work_still_runs():
    release = threading.Event()
    pool = ElasticThreadPool(3, idle_seconds=0.2, thread_name_prefix="t-bound")
    running = []
    lock = threading.Lock()

    def hold(i):
        with lock:
            running.append(i)
        release.wait(10)
        return i

    jobs = [pool.submit(hold, i) for i in range(20)]
    assert _until(lambda: len(running) == 3, 5)
    time.sleep(0.2)
    assert len(running) == 3 and pool.threads == 3 and _named("t-bound") == 3  # the rest wait
    release.set()
    assert [j.result(10) for j in jobs] == list(range(20))  # in order, none lost
    assert _until(lambda: pool.threads == 0 and _named("t-bound") == 0, 5)  # idle threads end


def test_an_idle_thread_takes_new_work_instead_of_a_new_thread():
    pool = ElasticThreadPool(8, idle_seconds=5, thread_name_prefix="t-reuse")
    for _ in range(50):
        pool.submit(time.sleep, 0).result(5)
    assert pool.threads == 1
    pool.shutdown()


def test_work_racing_an_idle_timeout_is_never_lost():
    """Threads time out every few milliseconds while work keeps arriving in small bursts."""
    pool = ElasticThreadPool(4, idle_seconds=0.003, thread_name_prefix="t-race")
    for _ in range(300):
        burst = [pool.submit(pow, 3, n) for n in range(3)]
        assert [f.result(5) for f in burst] == [1, 3, 9]
        time.sleep(0.003)
    pool.shutdown()


def _hold_registration(release: threading.Event) -> ServiceRegistration:
    def stream(request: bytes, context):
        yield b"first"
        release.wait(60)
        yield b"done"

    handlers = {"Stream": grpc.unary_stream_rpc_method_handler(stream)}

    def register(server):
        server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, handlers),))

    return ServiceRegistration(names=(SERVICE,), register=register)


def test_a_server_gives_back_its_threads_after_a_flood_of_streams(monkeypatch):
    """200 response streams at once take 200 threads (the bound: workers + max_streams, never
    more); closed, the pool is back to no threads within a few seconds (ThreadPoolExecutor kept
    all 200 for the life of the process)."""
    monkeypatch.setattr(thread_pool, "IDLE_SECONDS", 1.0)
    release = threading.Event()
    server = Server(server_settings_for_tests(workers=4, max_streams=250), [_hold_registration(release)], name="flood")
    port = server.start()
    server.set_serving()
    bound = 4 + 250
    channels = [grpc.insecure_channel(f"127.0.0.1:{port}") for _ in range(4)]
    calls = []
    peak = 0
    try:
        for i in range(200):
            call = channels[i % 4].unary_stream(f"/{SERVICE}/Stream")(b"x", timeout=60)
            assert next(call) == b"first"  # its handler holds a thread now
            calls.append(call)
            peak = max(peak, _named("flood-rpc"))
        assert 200 <= server.thread_pool.threads <= bound and peak <= bound
        release.set()
        for call in calls:
            assert list(call) == [b"done"]
        assert _until(lambda: _named("flood-rpc") == 0, 10), _named("flood-rpc")
        assert server.thread_pool.threads == 0
        # It still serves: a new stream gets a thread again.
        release.clear()
        call = channels[0].unary_stream(f"/{SERVICE}/Stream")(b"x", timeout=60)
        assert next(call) == b"first" and server.thread_pool.threads >= 1
        release.set()
        assert list(call) == [b"done"]
    finally:
        release.set()
        for call in calls:
            call.cancel()
        for channel in channels:
            channel.close()
        server.stop(0)
