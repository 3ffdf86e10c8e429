"""The npe2 manifest, the menu/dock entry points and the offline sample data."""

from __future__ import annotations

import numpy as np
import pytest
from npe2 import PluginManager, PluginManifest

from napari_nst import _sample_data
from napari_nst._widget import StyleTransferWidget


def test_manifest_validates_and_declares_widget_samples_and_menu():
    manifest = PluginManifest.from_distribution("napari-nst")
    assert manifest.name == "napari-nst"
    widgets = [w.display_name for w in manifest.contributions.widgets]
    assert widgets == ["Style Transfer", "Train Fast Style"]
    assert {s.key for s in manifest.contributions.sample_data} == {
        "astronaut", "cell", "starry_night",
    }  # fmt: skip
    menu = manifest.contributions.menus["napari/layers/filter"]
    assert [item.command for item in menu] == ["napari-nst.style_transfer"]
    assert all(c.id.startswith("napari-nst.") for c in manifest.contributions.commands)
    PluginManager().register(manifest)  # raises on an invalid manifest


def test_widget_opens_from_the_plugin_menu(make_napari_viewer):
    viewer = make_napari_viewer()
    _dock, widget = viewer.window.add_plugin_dock_widget("napari-nst", "Style Transfer")
    assert isinstance(widget, StyleTransferWidget)
    names = {"content", "style", "method", "content_weight", "style_weight", "tv_weight",
             "iterations", "size", "device", "vgg", "checkpoint", "run", "cancel"}  # fmt: skip
    assert all(widget[name].name == name for name in names)  # in view or in a section
    assert {"content", "style", "method", "iterations", "size"} <= {
        w.name for w in widget.essentials
    }


@pytest.mark.parametrize(
    ("loader", "shape", "rgb"),
    [
        (_sample_data.astronaut, (512, 512, 3), True),
        (_sample_data.cell, (660, 550), False),
        (_sample_data.starry_night, (240, 384, 3), True),
    ],
)
def test_sample_data_loads_offline(loader, shape, rgb):
    ((data, meta, kind),) = loader()
    assert kind == "image" and data.shape == shape and data.dtype == np.uint8
    assert meta.get("rgb", False) == rgb


def test_sample_data_opens_in_napari(make_napari_viewer):
    viewer = make_napari_viewer()
    viewer.open_sample("napari-nst", "starry_night")
    assert viewer.layers[-1].rgb and viewer.layers[-1].name == "starry night"
