"""The cheap paths that keep a small call's Python cost low build the same objects and make
the same decisions as the general ones (sparseforge._arrays.new_frozen, _from_numpy,
check_status's byte scan)."""

import dataclasses
import warnings

import numpy as np
import pytest

from sparseforge._arrays import ArrayInfo, Placement, _from_numpy, describe, new_frozen
from sparseforge._status import LinearDependenceWarning, OMPStatus, check_status


def test_new_frozen_is_the_constructor():
    fields = dict(kind="cpu", infos={}, ctx=None, inner=None)
    a, b = new_frozen(Placement, **fields), Placement(**fields)
    assert a == b and repr(a) == repr(b) and type(a) is Placement
    with pytest.raises(dataclasses.FrozenInstanceError):
        a.kind = "cuda"


@pytest.mark.parametrize("make", [
    lambda: np.zeros((5, 3), np.float32),
    lambda: np.zeros((5, 6), np.float64)[:, ::2],
    lambda: np.asfortranarray(np.ones((4, 7))),
    lambda: np.frombuffer(bytearray(8 * 10 + 1), np.float64, count=10, offset=1),
    lambda: np.ones(3).view(np.matrix),
])
def test_numpy_description_matches_the_generic_one(make):
    x = make()
    x.flags.writeable = False if x.base is None else x.flags.writeable
    fast = _from_numpy(x, "X")
    item = x.itemsize
    slow = ArrayInfo(obj=x, name="X", framework="numpy", device="cpu",
                     ptr=int(x.__array_interface__["data"][0]),
                     shape=tuple(int(s) for s in x.shape),
                     strides=tuple(int(s) // item for s in x.strides), dtype=x.dtype,
                     readonly=not x.flags.writeable, aligned=bool(x.flags.aligned))
    assert fast == slow
    assert all(type(s) is int for s in fast.shape + fast.strides)
    assert describe(x, "X") == slow


@pytest.mark.parametrize("codes, raises, warns", [
    ([0, 1, 4, 0], False, False),
    ([0, 2, 2, 1], False, True),
    ([0, 3, 2, 0], True, False),
    ([], False, False),
])
def test_status_scan_decides_as_the_tally(codes, raises, warns):
    status = np.array(codes, np.int8)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        if raises:
            with pytest.raises(ValueError, match="row 1"):
                check_status(status, "X")
        else:
            check_status(status, "X")
    assert any(issubclass(w.category, LinearDependenceWarning) for w in caught) == warns
    assert OMPStatus.NON_FINITE == 3 and OMPStatus.LINEAR_DEPENDENCE == 2
