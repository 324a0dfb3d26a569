"""Hand-framed forwarded calls (agent.dataplane.frames) parse as the generated classes would have built them."""

from __future__ import annotations

from hypothesis import example, given
from hypothesis import strategies as st

from agent.dataplane import frames
from neon._proto import dataplane_pb2, values_pb2

Value = values_pb2.Value


def _args() -> st.SearchStrategy[list[values_pb2.Value]]:
    one = st.one_of(
        st.text().map(lambda t: Value(string=t)),
        st.binary(max_size=300).map(lambda b: Value(bytes=b)),
        st.integers(min_value=-(2**63), max_value=2**63 - 1).map(lambda n: Value(s64=n)),
        st.lists(st.text(max_size=40), max_size=5).map(
            lambda items: Value(list=values_pb2.ValueList(values=[Value(string=t) for t in items]))
        ),
    )
    return st.lists(one, max_size=4)


@given(args=_args(), app=st.text(max_size=70), function=st.text(max_size=200))
# lengths of two and three bytes
@example(args=[Value(string="x" * 200), Value(bytes=b"y" * 70_000)], app="app", function="parse")
def test_a_request_is_the_generated_request(args: list[values_pb2.Value], app: str, function: str) -> None:
    prefix = frames.request_prefix(app, "parser", "x:y/parser@0.1.0", function, "cloud-1")
    raw = frames.call_request(prefix, [a.SerializeToString() for a in args])
    expected = dataplane_pb2.CallRequest(
        app=app, component="parser", interface="x:y/parser@0.1.0", function=function, args=args, caller="cloud-1"
    )
    assert dataplane_pb2.CallRequest.FromString(raw) == expected
    assert len(raw) == expected.ByteSize()


@given(calls=st.lists(st.tuples(_args(), st.floats(min_value=1e-3, max_value=1e6)), max_size=5))
def test_a_batch_is_the_generated_batch(calls: list[tuple[list[values_pb2.Value], float]]) -> None:
    prefix = frames.request_prefix("app", "parser", "", "parse", "cloud-1")
    request = {"app": "app", "component": "parser", "function": "parse", "caller": "cloud-1"}
    raw = frames.batch_request(
        "cloud-1", [(frames.call_request(prefix, [a.SerializeToString() for a in args]), t) for args, t in calls]
    )
    expected = dataplane_pb2.CallBatchRequest(
        caller="cloud-1",
        calls=[
            dataplane_pb2.BatchedCall(
                call=dataplane_pb2.CallRequest(args=a, **request),
                timeout=t,
            )
            for a, t in calls
        ],
    )
    assert dataplane_pb2.CallBatchRequest.FromString(raw) == expected


def test_a_reply_gives_its_result_or_none_and_its_size() -> None:
    with_result = dataplane_pb2.CallResponse(result=Value(string="entry")).SerializeToString()
    assert frames.call_reply(with_result) == (Value(string="entry").SerializeToString(), len(with_result))
    empty_result = dataplane_pb2.CallResponse(result=Value()).SerializeToString()  # a result that is set, empty
    assert frames.call_reply(empty_result) == (b"", len(empty_result))
    assert frames.call_reply(b"") == (None, 0)  # a function without a result


def test_a_reply_in_another_encoding_is_parsed() -> None:
    """A reply that is not the result field alone (here an unknown field follows it) is parsed, not sliced."""
    raw = dataplane_pb2.CallResponse(result=Value(string="entry")).SerializeToString() + b"\x78\x01"
    assert frames.call_reply(raw) == (Value(string="entry").SerializeToString(), len(raw))
