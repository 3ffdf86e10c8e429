"""The dock's parts stand alone: a section turns its controls into options and back
without a dock; every run kind offers the one Run protocol the session drives; a run
request says its kind."""

from __future__ import annotations

import numpy as np
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


def test_a_section_round_trips_its_options_without_a_dock(qtbot):
    from napari_nst._widget.sections import EngineSection, LookSection, StacksSection
    from napari_nst.core.options import Options

    defaults = Options().to_dict()
    look = LookSection()
    assert look.options() == {
        "style_scale": 1.0, "preserve_color": "none", "early_stop_tol": None,
        "pyramid": "auto", "luminance_only": False, "output_range": "original",
        "output_size": "working",
    }  # fmt: skip
    changed = {"style_scale": 0.5, "preserve_color": "histogram", "early_stop_tol": 0.01,
               "pyramid": "off", "luminance_only": True, "output_range": "unit",
               "output_size": "content"}  # fmt: skip
    assert look.set_options(defaults | changed) == []
    assert look.options() == changed
    look.set_options(defaults | {"luminance_only": None})  # None: the content decides
    assert look.options()["luminance_only"] is True

    engine = EngineSection()
    notes = engine.set_options(defaults | {"vgg": "caffe:/x/vgg.pth", "seed": 7,
                                           "device": "cuda:5"})  # fmt: skip
    assert engine.options() == {"device": "auto", "vgg": "caffe:/x/vgg.pth", "seed": 7}
    assert notes == ["device='cuda:5' (not available here)"]

    stacks = StacksSection()
    assert not stacks.applies("slice_weight") and stacks.scheduler == ""
    stacks.set_options(defaults | {"stack": "all", "slice_weight": 2.0})
    stacks.dask_scheduler.value = " local:2 "
    assert stacks.applies("slice_weight") and stacks.scheduler == "local:2"
    assert stacks.options() == {"stack": "all", "slice_weight": 2.0}


def test_a_section_shows_what_the_method_uses(qtbot):
    from napari_nst._widget.sections import EngineSection, LookSection, LossSection

    look, loss, engine = LookSection(), LossSection(), EngineSection()
    for section in (look, loss, engine):
        section.set_method("fast")
    shown = {w.name for s in (look, loss, engine) for w in s.controls if s.applies(w.name)}
    assert shown == {"luminance_only", "output_range", "output_size", "device", "train"}
    assert not loss.has_visible_controls


def test_a_run_request_says_its_kind_and_where_it_goes():
    from napari_nst._widget.request import RunRequest

    new = RunRequest(run="job", name="photo × painting", selection=None,  # type: ignore[arg-type]
                     sources={"content": "photo"})  # fmt: skip
    assert new.kind == "new" and not new.extends_curve and new.sweep is None
    record, layer, target = object(), object(), object()
    again = new.continuing("job 2", record, layer, target)  # type: ignore[arg-type]
    assert (again.kind, again.run, again.output, again.target) == ("continue", "job 2", layer,
                                                                    target)  # fmt: skip
    assert again.extends_curve and again.name == new.name
    full = again.at_full_size("job 3", record)  # type: ignore[arg-type]
    assert full.kind == "full size" and full.name == "photo × painting (full size)"
    assert full.output is None and full.target is None and full.extends_curve
    swept = new.in_sweep(target, "sweep layer", "style_weight = 3")  # type: ignore[arg-type]
    assert swept.kind == "sweep" and swept.sweep is target and swept.name == "sweep layer"
    assert swept.label == "style_weight = 3" and new.kind == "new"  # requests are values


@pytest.mark.parametrize("kind", ["gatys", "fast"])
def test_the_dock_request_holds_the_prepared_run(widget, kind):
    widget.method.value = kind
    widget.iterations.value = 2
    request = widget.prepare()
    assert request.kind == "new" and request.record is None
    assert request.sources["content"] == widget.content.value.name
    assert isinstance(request.run, FastTransfer if kind == "fast" else StyleTransfer)
    assert np.shares_memory(request.selection.data, widget.content.value.data) is False
