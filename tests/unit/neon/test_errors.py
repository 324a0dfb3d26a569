"""Errors keep their status code, class name and details across every hop, whatever classes a hop has loaded."""

from __future__ import annotations

from typing import Any

import grpc
import pytest
from hypothesis import given
from hypothesis import strategies as st

import agent.runtime.pool  # noqa: F401 - loads PoolClosed: every class that can be raised is in the tree
import agent.values.codec  # noqa: F401 - loads CodecError and Unsupported
from neon import errors
from neon.errors import NeonGridError, from_status


def _every_class() -> list[type[NeonGridError]]:
    return sorted(errors._all_subclasses(NeonGridError).values(), key=lambda cls: cls.__name__)


CLASSES = _every_class()
messages = st.text(min_size=1, max_size=40)
attrs = st.dictionaries(
    st.sampled_from(["field", "component", "function", "node", "artifact", "count", "kind", "name"]),
    st.one_of(st.text(max_size=20), st.integers(-(2**40), 2**40)),
    max_size=4,
)


def _hop(err: NeonGridError) -> NeonGridError:
    """What the next process rebuilds from what a server sends: the status code, its details and the trailer."""
    return from_status(err.code, err.message, err.to_json())


def _same(a: NeonGridError, b: NeonGridError) -> None:
    assert (b.code, b.type_name, b.message, b.attrs) == (a.code, a.type_name, a.message, a.attrs)


@given(st.sampled_from(CLASSES), messages, attrs)
def test_an_error_relayed_by_a_process_that_knows_its_class_comes_back_as_itself(
    cls: type[NeonGridError], message: str, details: dict[str, Any]
) -> None:
    err = cls(message, **details)
    back = _hop(err)
    assert type(back) is cls
    _same(err, back)


@given(st.sampled_from(CLASSES), messages, attrs)
def test_an_error_relayed_by_a_process_without_its_class_keeps_code_name_and_details(
    cls: type[NeonGridError], message: str, details: dict[str, Any]
) -> None:
    err = cls(message, **details)
    known = {name: c for name, c in errors._all_subclasses(NeonGridError).items() if c.__module__ == "neon.errors"}
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(errors, "_all_subclasses", lambda _root: known)  # the control plane: no agent classes
        relayed = _hop(err)
        assert isinstance(relayed, NeonGridError)
        _same(err, relayed)
        onward = _hop(relayed)  # and relayed once more by the same kind of process
        _same(err, onward)
    final = _hop(onward)  # at a client that has the class
    assert type(final) is cls
    _same(err, final)


def test_a_codec_error_relayed_is_still_an_invalid_argument() -> None:
    relayed = from_status(
        grpc.StatusCode.INVALID_ARGUMENT,
        "bad",
        b'{"type": "SomethingNew", "code": 3, "message": "bad", "attrs": {"field": "x"}}',
    )
    assert isinstance(relayed, errors.InvalidArgument) and relayed.type_name == "SomethingNew"
    assert relayed.code == grpc.StatusCode.INVALID_ARGUMENT and relayed.attrs == {"field": "x"}


def test_without_a_trailer_the_status_code_picks_the_general_class() -> None:
    assert type(from_status(grpc.StatusCode.UNAVAILABLE, "down", None)) is errors.Unavailable
    assert type(from_status(grpc.StatusCode.FAILED_PRECONDITION, "no", None)) is errors.FailedPrecondition
    odd = from_status(grpc.StatusCode.CANCELLED, "", None)
    assert type(odd) is NeonGridError and odd.code == grpc.StatusCode.CANCELLED and odd.message == "CANCELLED"
    assert from_status(grpc.StatusCode.INTERNAL, "x", b"not json").code == grpc.StatusCode.INTERNAL
