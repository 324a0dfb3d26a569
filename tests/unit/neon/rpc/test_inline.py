"""Unary methods served in the thread that polls for them (neon.rpc.inline), on a real grpc server
over loopback: answers, errors with their details, the hand-off to worker threads, a long inline
call that must not hold the others back, stopping with calls in flight, and mutual TLS."""

from __future__ import annotations

import gc
import threading
import time
from collections.abc import Iterator
from concurrent import futures
from typing import Any

import grpc
import pytest

from neon.errors import ERROR_METADATA_KEY, NotFound, PermissionDenied, from_rpc_error
from neon.rpc import inline
from neon.rpc.inline import Crew
from neon.rpc.servers import GuardedServer, SyncServer, create_sync_server, edge
from neon.security import pki
from neon.security.tls import Credentials, peer_of, sync_channel

SERVICE = "neon.v1.DataPlane"  # the method names the call guard's policy knows
METHOD = f"/{SERVICE}/Call"


# ------------------------------------------------------------------ Crew --


def test_crew_keeps_one_poller_and_rescues_a_long_inline_call() -> None:
    crew = Crew(most=3)
    crew.joined()
    crew.polling()
    crew.polled()
    assert not crew.may_leave()  # the only poller stays
    crew.began(1, now=10.0)
    assert not crew.rescue(now=10.001, after=0.005)  # not long yet
    assert crew.rescue(now=10.006, after=0.005)  # long, and nobody polls: one more
    assert crew.threads == 2
    crew.polling()  # the new one polls
    assert not crew.rescue(now=10.02, after=0.005)  # somebody polls: no more
    crew.ended(1)
    assert crew.may_leave()  # the rescued poller is done and another polls: it goes
    assert crew.threads == 1
    assert not crew.may_leave()


def test_crew_rescues_no_more_than_most() -> None:
    crew = Crew(most=2)
    crew.joined()
    crew.began(1, now=0.0)
    assert crew.rescue(now=1.0, after=0.005)
    crew.began(2, now=0.5)
    assert not crew.rescue(now=2.0, after=0.005)  # two threads, both in long calls: the most
    assert crew.threads == 2


# ---------------------------------------------------------------- server --


class _Echo:
    """Answers its request with the thread that ran it; a few requests do something else."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.blocked = threading.Event()
        self.remaining: list[float] = []
        self.peers: list[str] = []

    @edge
    def Call(self, request: bytes, context: Any) -> bytes:
        self.remaining.append(context.time_remaining())
        self.peers.append(peer_of(context).name)
        if request == b"fail":
            raise NotFound("no such thing here; apply it first", component="thing")
        if request == b"boom":
            raise RuntimeError("a bug")
        if request == b"coded":  # a status set without an abort: it wins over the response
            context.set_code(grpc.StatusCode.FAILED_PRECONDITION)
            context.set_details("not now")
            return b"unsent"
        if request.startswith(b"block"):
            self.blocked.set()
            self.release.wait(10)
        return request + b" " + threading.current_thread().name.encode()

    def register(self, server: GuardedServer) -> None:
        handler = grpc.unary_unary_rpc_method_handler(self.Call, request_deserializer=bytes)
        server.add_inline_method_handlers(
            SERVICE, {"Call": handler}, {"Call": lambda request: not request.startswith(b"slow")}
        )


def _serve(echo: _Echo, creds: Credentials) -> tuple[SyncServer, int]:
    server, port = create_sync_server("127.0.0.1:0", echo.register, [SERVICE], creds, threads=4)
    server.start()
    assert server.inline is not None, "this grpcio cannot serve inline: neon.rpc.inline needs updating"
    return server, port


@pytest.fixture
def served() -> Iterator[tuple[_Echo, SyncServer, grpc.Channel]]:
    echo = _Echo()
    server, port = _serve(echo, Credentials.insecure())
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    try:
        yield echo, server, channel
    finally:
        echo.release.set()
        channel.close()
        server.stop(None).wait(10)


def test_a_quick_call_runs_in_the_poller_a_slow_one_in_a_worker(served: Any) -> None:
    echo, server, channel = served
    call = channel.unary_unary(METHOD)
    assert call(b"hello", timeout=5) == b"hello inline-poller"
    assert call(b"slow", timeout=5).startswith(b"slow grpc-handler_")  # one of the pool's threads, all started
    assert server.inline.served() == {(METHOD, "poller"): 1, (METHOD, "worker"): 1}
    assert 4 < echo.remaining[0] < 5.5  # the caller's 5 s, as grpc's core converted it (its clock, not time.time())


def test_errors_keep_their_status_and_details(served: Any) -> None:
    _, _, channel = served
    call = channel.unary_unary(METHOD)
    with pytest.raises(grpc.RpcError) as failed:
        call(b"fail", timeout=5)
    assert failed.value.code() == grpc.StatusCode.NOT_FOUND
    assert dict(failed.value.trailing_metadata())[ERROR_METADATA_KEY]  # type: ignore[attr-defined]
    err = from_rpc_error(failed.value)
    assert isinstance(err, NotFound) and err.attrs == {"component": "thing"}
    with pytest.raises(grpc.RpcError) as crashed:
        call(b"boom", timeout=5)
    assert crashed.value.code() == grpc.StatusCode.UNKNOWN
    assert "a bug" in crashed.value.details()  # type: ignore[attr-defined]
    with pytest.raises(grpc.RpcError) as coded:
        call(b"coded", timeout=5)
    assert (coded.value.code(), coded.value.details()) == (grpc.StatusCode.FAILED_PRECONDITION, "not now")  # type: ignore[attr-defined]
    assert call(b"after", timeout=5) == b"after inline-poller"  # the poller lives on


def test_a_request_that_is_no_message_is_refused_by_name() -> None:
    echo = _Echo()

    def register(server: GuardedServer) -> None:
        handler = grpc.unary_unary_rpc_method_handler(echo.Call, request_deserializer=_strict)
        server.add_inline_method_handlers(SERVICE, {"Call": handler}, {"Call": lambda r: True})

    server, port = create_sync_server("127.0.0.1:0", register, [SERVICE], Credentials.insecure(), threads=2)
    server.start()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            with pytest.raises(grpc.RpcError) as refused:
                channel.unary_unary(METHOD)(b"\xff", timeout=5)
            assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert METHOD in refused.value.details()  # type: ignore[attr-defined]
            assert channel.unary_unary(METHOD)(b"fine", timeout=5) == b"fine inline-poller"
    finally:
        server.stop(None).wait(10)


def _strict(raw: bytes) -> bytes:
    raw.decode("utf-8")  # raises on bad UTF-8, as a protobuf string field would
    return raw


def test_a_long_inline_call_does_not_hold_back_the_next(served: Any) -> None:
    echo, server, channel = served
    call = channel.unary_unary(METHOD)
    with futures.ThreadPoolExecutor(1) as pool:
        stuck = pool.submit(call, b"block", timeout=10)
        assert echo.blocked.wait(5)
        started = time.monotonic()
        assert call(b"next", timeout=5) == b"next inline-poller"  # served by a rescuing poller
        assert time.monotonic() - started < 2
        echo.release.set()
        assert stuck.result(5) == b"block inline-poller"
    assert server.inline.served()[METHOD, "poller"] == 2


def test_stopping_lets_calls_in_flight_finish_and_the_pollers_go() -> None:
    echo = _Echo()
    before = _inline_threads()
    server, port = _serve(echo, Credentials.insecure())
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    with futures.ThreadPoolExecutor(1) as pool:
        inflight = pool.submit(channel.unary_unary(METHOD), b"block", timeout=10)
        assert echo.blocked.wait(5)
        stopped = server.stop(5)
        time.sleep(0.2)
        assert not stopped.is_set()  # the call in flight still runs
        echo.release.set()
        assert inflight.result(5) == b"block inline-poller"
        assert stopped.wait(10)
    channel.close()
    left = _gone(_inline_threads() - before)
    assert not left, f"threads left behind: {left}"


def _inline_threads() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.name.startswith("inline")}


def _gone(threads: set[threading.Thread], timeout: float = 10) -> set[threading.Thread]:
    """Those of ``threads`` still alive after waiting up to ``timeout`` seconds for them to end."""
    deadline = time.monotonic() + timeout
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    return {t for t in threads if t.is_alive()}


def test_a_server_dropped_without_a_stop_takes_its_pollers_along() -> None:
    before = _inline_threads()
    server, port = _serve(_Echo(), Credentials.insecure())
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        assert channel.unary_unary(METHOD)(b"hi", timeout=5) == b"hi inline-poller"
    mine = _inline_threads() - before
    assert mine
    del server
    gc.collect()  # grpc's server notices it was dropped and shuts down; the requests asked of it fail
    assert not _gone(mine), "pollers of a dropped server are still running"


def test_over_mutual_tls_the_peer_is_read_and_the_policy_applies(tmp_path: Any) -> None:
    ca = pki.create_ca()
    node = pki.issue(ca, "edge-1", pki.AGENT)
    viewer = pki.issue(ca, "alice", pki.VIEWER)
    echo = _Echo()
    server, port = _serve(echo, Credentials(ca.cert, node.cert, node.key))
    try:
        as_node = sync_channel(f"127.0.0.1:{port}", Credentials(ca.cert, node.cert, node.key), pki.AGENT_NAME, [])
        assert as_node.unary_unary(METHOD)(b"hi", timeout=5) == b"hi inline-poller"
        assert echo.peers == ["edge-1"]
        as_viewer = sync_channel(f"127.0.0.1:{port}", Credentials(ca.cert, viewer.cert, viewer.key), pki.AGENT_NAME, [])
        with pytest.raises(grpc.RpcError) as refused:
            as_viewer.unary_unary(METHOD)(b"hi", timeout=5)
        assert isinstance(from_rpc_error(refused.value), PermissionDenied)
        assert echo.peers == ["edge-1"]  # the handler never ran for the viewer
        as_node.close()
        as_viewer.close()
    finally:
        server.stop(None).wait(10)


def test_without_the_grpcio_parts_the_server_serves_every_method_itself(monkeypatch: Any) -> None:
    assert inline.attach(grpc.server(futures.ThreadPoolExecutor(1)), futures.ThreadPoolExecutor(1)) is not None
    assert inline.attach(object(), futures.ThreadPoolExecutor(1)) is None  # type: ignore[arg-type]
    monkeypatch.setattr(inline, "attach", lambda server, workers: None)  # as on a grpcio without them
    echo = _Echo()
    server, port = create_sync_server("127.0.0.1:0", echo.register, [SERVICE], Credentials.insecure(), threads=2)
    server.start()
    try:
        assert server.inline is None
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            assert channel.unary_unary(METHOD)(b"hi", timeout=5).startswith(b"hi grpc-handler_")
    finally:
        server.stop(None).wait(10)
