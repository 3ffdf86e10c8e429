"""Take the dock's screenshots on a laptop screen: sections closed, and one opened.

napari at ``--screen`` (1366×768, a common laptop) with the sample photo and painting
and the Style Transfer dock at napari's default dock width. Prints whether the dock
needs a horizontal scroll bar (it must not) and, with the sections closed, a vertical
one (the essentials must fit).

    xvfb-run -a -s "-screen 0 1366x768x24" python docs/screenshot_widget.py \
        [--screen 1366x768] [--open look] [-o docs/screenshots]
"""

from __future__ import annotations

import argparse
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--screen", default="1366x768", help="window size WxH")
    parser.add_argument("--open", default="look", help="the section to show opened")
    parser.add_argument("-o", "--output", type=Path, default=Path("docs/screenshots"))
    args = parser.parse_args()
    width, height = map(int, args.screen.split("x"))

    import napari
    from qtpy.QtWidgets import QApplication, QScrollArea

    from napari_nst._sample_data import astronaut, starry_night
    from napari_nst._widget import StyleTransferWidget

    viewer = napari.Viewer(show=True)
    window = viewer.window._qt_window
    window.resize(width, height)
    for data, kwargs, _ in astronaut() + starry_night():
        viewer.add_image(data, **kwargs)
    widget = StyleTransferWidget(viewer)
    viewer.window.add_dock_widget(widget, name="Style Transfer (napari-nst)")
    scroll = widget.native.findChild(QScrollArea)  # the dock scrolls its controls
    args.output.mkdir(parents=True, exist_ok=True)

    def shoot(name: str) -> dict[str, bool]:
        for _ in range(3):
            QApplication.processEvents()
        window.grab().save(str(args.output / f"{name}.png"))
        fits = {
            "no horizontal scroll": scroll.horizontalScrollBar().maximum() == 0,
            "no vertical scroll": scroll.verticalScrollBar().maximum() == 0,
        }
        print(f"{name}: window {window.width()}×{window.height()}, dock "
              f"{scroll.width()}×{scroll.height()} px; {fits}")  # fmt: skip
        return fits

    closed = shoot("sections-closed")
    widget.sections[args.open].expanded = True
    opened = shoot(f"section-{args.open}-open")
    viewer.close()
    ok = closed["no horizontal scroll"] and closed["no vertical scroll"]
    ok = ok and opened["no horizontal scroll"]
    raise SystemExit(0 if ok else 1)


if __name__ == "__main__":
    main()
