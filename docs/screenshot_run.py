"""Take docs/screenshot-run.png: napari with the Style Transfer widget mid-run.

The loss curve needs a few dozen iterations to say anything, so the picture is
taken at iteration ``--at`` of the widget's default run (then the run is cancelled):
the bundled VGG19 (real weights, offline), 384 px on a CPU, coarse to fine, so at
iteration 70 the full-size level has just begun from the 256 px level's result.

    xvfb-run -a -s "-screen 0 1366x768x24" python docs/screenshot_run.py [--at 70] \
        [--screen 1366x768] [-o docs/screenshot-run.png]
"""

from __future__ import annotations

import argparse
from pathlib import Path


def open_dock(screen: str):
    """napari at ``screen`` (WxH) with the astronaut, *The Starry Night* and the Style
    Transfer dock set to them: (viewer, its Qt window, the dock)."""
    import napari

    from napari_nst._sample_data import astronaut, starry_night
    from napari_nst._widget import StyleTransferWidget

    viewer = napari.Viewer(show=True)
    window = viewer.window._qt_window
    window.resize(*map(int, screen.split("x")))
    for data, kwargs, _ in astronaut() + starry_night():
        viewer.add_image(data, **kwargs)
    widget = StyleTransferWidget(viewer)
    viewer.window.add_dock_widget(widget, name="Style Transfer (napari-nst)")
    widget.content.value = viewer.layers["astronaut"]
    widget.style.value = viewer.layers["starry night"]
    return viewer, window, widget


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--at", type=int, default=70, help="iteration to take it at")
    parser.add_argument("--size", type=int, default=0, help="working size (0: the default)")
    parser.add_argument("--screen", default="1366x768", help="window size WxH (a laptop)")
    parser.add_argument("-o", "--output", type=Path, default=Path("docs/screenshot-run.png"))
    args = parser.parse_args()

    import napari
    from qtpy.QtCore import QTimer

    viewer, window, widget = open_dock(args.screen)
    if args.size:
        widget.size.value = args.size
    widget.session.preview_interval = 0.0

    take_step = widget.session._take_step
    taken: list[bool] = []

    def take_and_watch(step, record) -> None:
        take_step(step, record)
        if step.iteration >= args.at and not taken:
            taken.append(True)
            viewer.reset_view()
            QTimer.singleShot(300, shoot)  # let the last preview and the plot paint

    def shoot() -> None:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        window.grab().save(str(args.output))
        print(f"saved {args.output} at iteration {widget.loss_plot.count()}")
        widget.cancel.clicked.emit()

    widget.session._take_step = take_and_watch  # looked up per step, so this sees every one
    on_finished = widget.session._on_finished

    def finished() -> None:
        on_finished()
        if not widget.running:
            napari.qt.get_qapp().quit()

    widget.session._on_finished = finished
    QTimer.singleShot(500, widget.run.clicked.emit)
    napari.run()


if __name__ == "__main__":
    main()
