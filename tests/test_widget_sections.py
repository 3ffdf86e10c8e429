"""The dock's layout: essentials in view, the rest in closed sections, what does not
apply hidden, narrow enough for a laptop, and the last used settings kept."""

from __future__ import annotations

import json

import numpy as np

from napari_nst._widget.settings import settings_file
from tests.conftest import WAIT_MS

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


def _shown(widget, name: str) -> bool:
    return getattr(widget, name).native.isVisibleTo(widget.native)


def test_the_essentials_are_in_view_and_the_rest_in_closed_sections(widget):
    for name in ESSENTIALS:
        assert _shown(widget, name), name
        assert widget[name] is getattr(widget, name)  # by name, as scripts drive it
    assert all(not section.expanded for section in widget.sections.values())
    for name, key in SECTION_OF.items():
        section = widget.sections[key]
        assert section[name] is getattr(widget, name) is widget[name], name
        assert section.controls.native.isAncestorOf(getattr(widget, name).native)
    widget.sections["loss"].expanded = True
    assert widget.sections["loss"].expanded and not widget.sections["look"].expanded


def test_sections_that_do_not_apply_are_hidden(widget):
    shown = {key: s.native.isVisibleTo(widget.native) for key, s in widget.sections.items()}
    assert shown == dict.fromkeys(shown, True) | {"stacks": False}  # the photo is one plane
    widget.method.value = "fast"
    for key in ("loss", "styles"):
        assert not widget.sections[key].native.isVisibleTo(widget.native), key
    for key in ("engine", "explore"):  # device and Train…; compare and blend
        assert widget.sections[key].native.isVisibleTo(widget.native), key
    assert not _shown(widget, "sweep") and _shown(widget, "compare")
    widget.method.value = "gatys"
    planes = np.arange(3 * 32 * 32, dtype=np.float32).reshape(3, 32, 32)
    widget.content.value = widget._viewer.add_image(planes, name="stack")
    assert widget.sections["stacks"].native.isVisibleTo(widget.native)


def test_the_dock_is_narrow_enough_for_a_laptops_default_dock(widget):
    # napari gives a dock about 375 px of a 1366 px wide window
    assert widget.native.minimumSizeHint().width() <= 360
    for section in widget.sections.values():
        section.expanded = True
        assert widget.native.minimumSizeHint().width() <= 360, section.name


def test_the_last_used_settings_come_back_and_restore_defaults_forgets_them(
    widget, qtbot, make_napari_viewer
):
    from napari_nst._widget import StyleTransferWidget

    defaults = StyleTransferWidget(make_napari_viewer()).options()
    widget.preset.value, widget.iterations.value, widget.pyramid.value = "bold", 2, "off"
    used = widget.options()
    widget.run.clicked.emit()
    qtbot.waitUntil(lambda: not widget.running, timeout=WAIT_MS)
    assert json.loads(settings_file().read_text())["options"] == used

    again = StyleTransferWidget(widget._viewer)  # as in the next napari session
    widget._viewer.window.add_dock_widget(again, name="again")  # napari fills its pickers
    assert again.options() == used
    assert again.content.value is widget.content.value  # layers are not remembered
    again.restore_defaults.clicked.emit()
    assert again.options() == defaults and again.status.value == "defaults restored"


def test_an_unreadable_settings_file_means_the_defaults(make_napari_viewer):
    from napari_nst._widget import StyleTransferWidget

    viewer = make_napari_viewer()
    defaults = StyleTransferWidget(viewer).options()
    settings_file().parent.mkdir(parents=True, exist_ok=True)
    for text in ("not json", '{"options": {"iterations": "many"}}', '{"options": 3}'):
        settings_file().write_text(text)
        assert StyleTransferWidget(viewer).options() == defaults, text
