"""Options in messages are spelled for where they are read (``_wording.py``)."""

from __future__ import annotations

import pytest


@pytest.mark.parametrize(
    ("message", "cli", "gui"),
    [
        (
            "could not download it. Use vgg='bundled' (no download)",
            "could not download it. Use --vgg bundled (no download)",
            "could not download it. Use vgg: bundled (no download)",
        ),
        ("use preset='texture only'", "use --preset 'texture only'", "use preset: texture only"),
        ("got 'lots'", "got 'lots'", "got 'lots'"),
    ],
)
def test_options_in_messages_are_spelled_for_where_they_are_read(message, cli, gui):
    from napari_nst._wording import for_cli, for_gui

    assert for_cli(message) == cli and for_gui(message) == gui
