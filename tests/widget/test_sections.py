"""The dock's layout and sections (``_widget/sections.py``): essentials in view, the
rest in closed sections, what does not apply hidden, narrow enough for a laptop; a
section round-trips its options without a dock; artistic options reach the record."""

from __future__ import annotations

import os

import numpy as np
import torch

from napari_nst._layers import RECORD_KEY
from tests.helpers import outputs, press_and_wait, shown


def test_artistic_options_reach_the_run_record(widget, viewer, qtbot):
    widget.iterations.value = 3
    widget.preserve_color.value = "luminance"
    widget.style_scale.value = 0.75
    widget.early_stop_tol.value = 0.05
    widget.pyramid.value = "off"
    cores = os.cpu_count() or 1
    press_and_wait(widget, qtbot)
    (output,) = outputs(viewer)
    record = output.metadata[RECORD_KEY]
    assert record["status"] == "done" and record["luminance_only"] is True
    params = record["params"]
    assert params["preserve_color"] == "luminance" and params["style_scale"] == 0.75
    assert params["early_stop_tol"] == 0.05 and params["preset"] is None
    assert params["pyramid"] == "off"
    # The run leaves a core to napari's main thread, and says how many it used.
    from napari_nst._torch_in_gui import run_threads

    assert record["threads"] == run_threads() == max(1, min(torch.get_num_threads(), cores - 1))


def test_artistic_controls_are_for_the_optimisation_only(widget):
    controls = (
        "preset", "style_strength", "style_scale", "preserve_color", "early_stop_tol", "pyramid"
    )  # fmt: skip
    assert all(getattr(widget, name).native.isVisibleTo(widget.native) for name in controls)
    widget.method.value = "fast"
    assert not any(getattr(widget, name).native.isVisibleTo(widget.native) for name in controls)


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
    assert engine.options() == {"device": "auto", "vgg": "caffe:/x/vgg.pth", "seed": 7,
                                "levels": None, "decoders": None}  # fmt: skip
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
    applied = {w.name for s in (look, loss, engine) for w in s.controls if s.applies(w.name)}
    assert applied == {
        "luminance_only",
        "output_range",
        "output_size",
        "device",
        "server",
        "train",
    }
    assert not loss.has_visible_controls


ESSENTIALS = ("content", "style", "method", "preset", "style_strength", "size",
              "iterations", "run", "cancel", "pause", "status")  # fmt: skip


SECTION_OF = {
    "style_scale": "look", "pyramid": "look", "early_stop_tol": "look",
    "output_size": "look", "content_weight": "loss", "style_weight": "loss",
    "tv_weight": "loss", "styles": "styles", "label_styles": "styles", "stack": "stacks",
    "dask_scheduler": "stacks", "device": "engine", "vgg": "engine", "seed": "engine",
    "sweep": "explore", "compare": "explore", "load_recipe": "recipes",
    "restore_defaults": "recipes",
}  # fmt: skip


def test_the_essentials_are_in_view_and_the_rest_in_closed_sections(widget):
    for name in ESSENTIALS:
        assert shown(widget, name), name
        assert widget[name] is getattr(widget, name)  # by name, as scripts drive it
    assert all(not section.expanded for section in widget.sections.values())
    for name, key in SECTION_OF.items():
        section = widget.sections[key]
        assert section[name] is getattr(widget, name) is widget[name], name
        assert section.controls.native.isAncestorOf(getattr(widget, name).native)
    widget.sections["loss"].expanded = True
    assert widget.sections["loss"].expanded and not widget.sections["look"].expanded


def test_sections_that_do_not_apply_are_hidden(widget, viewer):
    visible = {key: s.native.isVisibleTo(widget.native) for key, s in widget.sections.items()}
    assert visible == dict.fromkeys(visible, True) | {"stacks": False}  # the photo is one plane
    widget.method.value = "fast"
    for key in ("loss", "styles"):
        assert not widget.sections[key].native.isVisibleTo(widget.native), key
    for key in ("engine", "explore"):  # device and Train…; compare and blend
        assert widget.sections[key].native.isVisibleTo(widget.native), key
    assert not shown(widget, "sweep") and shown(widget, "compare")
    widget.method.value = "gatys"
    planes = np.arange(3 * 32 * 32, dtype=np.float32).reshape(3, 32, 32)
    widget.content.value = viewer.add_image(planes, name="stack")
    assert widget.sections["stacks"].native.isVisibleTo(widget.native)


def test_the_dock_is_narrow_enough_for_a_laptops_default_dock(widget):
    # napari gives a dock about 375 px of a 1366 px wide window
    assert widget.native.minimumSizeHint().width() <= 360
    for section in widget.sections.values():
        section.expanded = True
        assert widget.native.minimumSizeHint().width() <= 360, section.name
