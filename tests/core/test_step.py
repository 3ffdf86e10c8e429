"""The ``Run`` protocol (``core/step.py``): every run kind offers it and says what it
can do."""

from __future__ import annotations

import pytest

from napari_nst.batch.stack import StackOnDask
from napari_nst.core import prepare
from napari_nst.core.fast import FastTransfer
from napari_nst.core.gatys import StyleTransfer
from napari_nst.core.step import Run

TINY = {"vgg": "random", "device": "cpu", "size": 64, "iterations": 2}


def test_every_run_kind_offers_the_run_protocol_and_says_what_it_can_do(content_rgb, style_rgb):
    gatys = prepare(content_rgb, style_rgb, **TINY)
    fast = prepare(content_rgb, None, method="fast", device="cpu")
    assert isinstance(gatys, StyleTransfer) and isinstance(fast, FastTransfer)
    for run in (gatys, fast):
        assert isinstance(run, Run)
    flags = {kind: (kind.pausable, kind.steerable, kind.continuable)
             for kind in (StyleTransfer, FastTransfer, StackOnDask)}  # fmt: skip
    assert flags == {
        StyleTransfer: (True, True, True),
        FastTransfer: (True, False, False),
        StackOnDask: (False, False, False),  # its planes run on the cluster
    }
    with pytest.raises(ValueError, match="no finished result"):
        gatys.continued(1)  # continuable, once it has run
