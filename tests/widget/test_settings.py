"""Settings (``_widget/settings.py``): the last used settings come back, Restore
defaults forgets them, an unreadable file means the defaults."""

from __future__ import annotations

import json

from napari_nst._widget.settings import settings_file
from tests.helpers import press_and_wait


def test_the_last_used_settings_come_back_and_restore_defaults_forgets_them(
    widget, viewer, qtbot, make_napari_viewer
):
    from napari_nst._widget import StyleTransferWidget

    defaults = StyleTransferWidget(make_napari_viewer()).options()
    widget.preset.value, widget.iterations.value, widget.pyramid.value = "bold", 2, "off"
    used = widget.options()
    press_and_wait(widget, qtbot)
    assert json.loads(settings_file().read_text())["options"] == used

    again = StyleTransferWidget(viewer)  # as in the next napari session
    viewer.window.add_dock_widget(again, name="again")  # napari fills its pickers
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
