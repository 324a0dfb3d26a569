"""The instance's handle table: reps of its own, and reps an object brings (kept until its last handle goes)."""

from __future__ import annotations

import pytest

from agent.runtime.handles import HostTrap, Table


class _Thing:
    def __init__(self) -> None:
        self.drops = 0

    def dropped(self) -> None:
        self.drops += 1


def test_own_reps_are_new_for_each_handle_and_released_once() -> None:
    table = Table()
    first, second = _Thing(), _Thing()
    a, b = table.keep(1, first), table.keep(1, second)
    assert a.rep != b.rep and table.live == 2
    assert table.release(a.rep) is first and first.drops == 1
    with pytest.raises(HostTrap, match=f"handle {a.rep} is not live"):
        table.release(a.rep)
    assert table.get(b.rep) is second


def test_a_rep_given_by_its_object_lives_until_its_last_handle_is_dropped() -> None:
    table = Table()
    bucket = _Thing()
    rep = 0x80000000 | 7
    handles = [table.keep(2, bucket, rep) for _ in range(3)]  # the guest opened it three times
    assert {h.rep for h in handles} == {rep} and table.live == 1
    assert table.release(rep) is bucket and table.get(rep) is bucket
    assert table.release(rep) is bucket and table.get(rep) is bucket
    assert bucket.drops == 0
    assert table.release(rep) is bucket and bucket.drops == 1
    with pytest.raises(HostTrap):
        table.get(rep)
    assert table.keep(2, bucket, rep).rep == rep and table.live == 1  # opened again afterwards
    own = table.keep(2, _Thing())
    assert own.rep < 0x80000000
